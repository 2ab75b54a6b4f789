#!/usr/bin/python3
"""Reference data for the training tests (tests/train/optim.test.ts, tests/train/losses.test.ts).

Usage: /usr/bin/python3 scripts/reference/train_ref.py <outDir>

Writes, in <outDir>:
  optim.safetensors   float64 tensors: "init.<p>" (p0 [3, 4], p1 [5]), "grad.<step>.<p>" (steps 0..S-1),
                      and per case "<case>.<step>.<p>" = the parameter after optimizer step <step>.
  optim.json          {"steps": S, "cases": {case: {"optimizer": "sgd"|"adamw", "options": {...camelCase panseg
                      options...}, "lrs": [lr before each step] | null, "groups": [[param names], ...] | null,
                      "group_options": [{lr?, weightDecay?}, ...] | null}}}
                      The torch optimizer runs with the same options (foreach=False). When "lrs" is set,
                      each step first sets every group's lr to lrs[step] (as a schedule would).
  sched.json          {"cases": {case: {"schedule": {...lrFactor options...}, "base_lr", "lrs": [lr at it = 0..N]}}}
                      lrs[it] is optimizer.param_groups[0]["lr"] after `it` scheduler.step() calls, from
                      torch.optim.lr_scheduler: PolynomialLR, CosineAnnealingLR, StepLR, ConstantLR(factor 1),
                      and warmup as ChainedScheduler([LinearLR(start_factor=r, total_iters=w), main]), which
                      multiplies the two factors exactly as panseg's lrFactor does. Cosine with a nonzero
                      minimum and warmup is not multiplicative in torch's recursive form, so it is not here.
  losses.safetensors  float64 "<case>.logits" [N, C, H, W], int64 "<case>.target" [N, H, W] (255 = ignored),
                      "<case>.loss" (0-d), "<case>.grad" (d loss / d logits)
  losses.json         {"cases": {case: {"loss": "ce"|"dice"|"focal", "options": {...panseg options...}}}}
                      ce: F.cross_entropy(weight, ignore_index, label_smoothing), mean reduction.
                      dice: the formula in panseg's diceLoss docs (smp's multiclass DiceLoss, but averaged over
                      the classes present in the target): probs = softmax * valid, onehot * valid,
                      per class 1 - (2 sum(p t) + smooth) / clamp(sum(p + t) + smooth, eps).
                      focal: mean over valid pixels of -alpha (1 - p_t)^gamma log p_t.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(2)
gen = torch.Generator().manual_seed(1234)
torch.set_default_dtype(torch.float64)


def rn(*shape):
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64)


# ---------------------------------------------------------------- optimizers
STEPS = 6
SHAPES = {"p0": (3, 4), "p1": (5,)}
tensors = {}
init = {k: rn(*s) for k, s in SHAPES.items()}
grads = [{k: rn(*s) for k, s in SHAPES.items()} for _ in range(STEPS)]
for k, t in init.items():
    tensors[f"init.{k}"] = t
for i, g in enumerate(grads):
    for k, t in g.items():
        tensors[f"grad.{i}.{k}"] = t

OPTIM_CASES = {
    "sgd_plain": ("sgd", {"lr": 0.1}),
    "sgd_momentum": ("sgd", {"lr": 0.05, "momentum": 0.9}),
    "sgd_momentum_wd": ("sgd", {"lr": 0.05, "momentum": 0.9, "weightDecay": 1e-2}),
    "sgd_dampening_wd": ("sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weightDecay": 5e-3}),
    "sgd_nesterov_wd": ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weightDecay": 1e-3}),
    "adamw_default": ("adamw", {}),
    "adamw_betas_eps_wd": ("adamw", {"lr": 0.02, "betas": [0.8, 0.95], "eps": 1e-6, "weightDecay": 0.1}),
    "adamw_no_wd": ("adamw", {"lr": 0.01, "weightDecay": 0.0}),
}
LRS = [0.05 * (1 - i / STEPS) ** 0.9 for i in range(STEPS)]


def torch_optimizer(kind, o, groups):
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=o["lr"], momentum=o.get("momentum", 0), dampening=o.get("dampening", 0),
                               nesterov=o.get("nesterov", False), weight_decay=o.get("weightDecay", 0), foreach=False)
    return torch.optim.AdamW(groups, lr=o.get("lr", 1e-3), betas=tuple(o.get("betas", [0.9, 0.999])), eps=o.get("eps", 1e-8),
                             weight_decay=o.get("weightDecay", 1e-2), foreach=False)


def run_optim(name, kind, o, lrs=None, group_spec=None):
    params = {k: init[k].clone().requires_grad_(True) for k in SHAPES}
    if group_spec:
        groups = []
        for names, go in group_spec:
            g = {"params": [params[n] for n in names]}
            if "lr" in go:
                g["lr"] = go["lr"]
            if "weightDecay" in go:
                g["weight_decay"] = go["weightDecay"]
            groups.append(g)
    else:
        groups = [params[k] for k in SHAPES]
    opt = torch_optimizer(kind, o, groups)
    for i in range(STEPS):
        if lrs is not None:
            for g in opt.param_groups:
                g["lr"] = lrs[i]
        for k, p in params.items():
            p.grad = grads[i][k].clone()
        opt.step()
        for k, p in params.items():
            tensors[f"{name}.{i}.{k}"] = p.detach().clone()
    return {
        "optimizer": kind, "options": o, "lrs": lrs,
        "groups": [names for names, _ in group_spec] if group_spec else None,
        "group_options": [go for _, go in group_spec] if group_spec else None,
    }


optim_index = {}
for name, (kind, o) in OPTIM_CASES.items():
    optim_index[name] = run_optim(name, kind, o)
# A changing lr (decoupled weight decay must use the current lr) and two parameter groups.
optim_index["adamw_scheduled_lr"] = run_optim("adamw_scheduled_lr", "adamw", {"lr": 0.05, "weightDecay": 0.05}, lrs=LRS)
optim_index["sgd_scheduled_lr"] = run_optim("sgd_scheduled_lr", "sgd", {"lr": 0.05, "momentum": 0.9, "weightDecay": 1e-2}, lrs=LRS)
optim_index["sgd_groups"] = run_optim("sgd_groups", "sgd", {"lr": 0.05, "momentum": 0.9, "weightDecay": 1e-2},
                                      group_spec=[(["p0"], {}), (["p1"], {"lr": 0.2, "weightDecay": 0.0})])
optim_index["adamw_groups"] = run_optim("adamw_groups", "adamw", {"lr": 0.01, "weightDecay": 0.1},
                                        group_spec=[(["p0"], {"weightDecay": 0.0}), (["p1"], {"lr": 0.03})])
st.save(os.path.join(OUT, "optim.safetensors"), tensors)
with open(os.path.join(OUT, "optim.json"), "w") as f:
    json.dump({"steps": STEPS, "cases": optim_index}, f, indent=1)

# ---------------------------------------------------------------- schedules
S = torch.optim.lr_scheduler


def sched_lrs(make, base_lr, n):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr)
    sch = make(opt)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(n):
        opt.step()
        sch.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def with_warmup(main, r, w):
    return lambda opt: S.ChainedScheduler([S.LinearLR(opt, start_factor=r, end_factor=1.0, total_iters=w), main(opt)])


T = 40
BASE = 0.01
SCHED_CASES = {
    "poly": ({"name": "poly", "totalIters": T}, lambda o: S.PolynomialLR(o, total_iters=T, power=0.9)),
    "poly_power2": ({"name": "poly", "totalIters": T, "power": 2.0}, lambda o: S.PolynomialLR(o, total_iters=T, power=2.0)),
    "cosine": ({"name": "cosine", "totalIters": T}, lambda o: S.CosineAnnealingLR(o, T_max=T, eta_min=0.0)),
    "cosine_min": ({"name": "cosine", "totalIters": T, "minLrRatio": 0.1}, lambda o: S.CosineAnnealingLR(o, T_max=T, eta_min=0.1 * BASE)),
    "step": ({"name": "step", "totalIters": T, "stepSize": 7, "gamma": 0.5}, lambda o: S.StepLR(o, step_size=7, gamma=0.5)),
    "step_default_gamma": ({"name": "step", "totalIters": T, "stepSize": 13}, lambda o: S.StepLR(o, step_size=13, gamma=0.1)),
    "constant": ({"name": "constant", "totalIters": T}, lambda o: S.ConstantLR(o, factor=1.0, total_iters=T)),
    "poly_warmup": ({"name": "poly", "totalIters": T, "warmupIters": 8, "warmupRatio": 0.01},
                    with_warmup(lambda o: S.PolynomialLR(o, total_iters=T, power=0.9), 0.01, 8)),
    "poly_warmup_default_ratio": ({"name": "poly", "totalIters": T, "warmupIters": 5},
                                  with_warmup(lambda o: S.PolynomialLR(o, total_iters=T, power=0.9), 0.001, 5)),
    "cosine_warmup": ({"name": "cosine", "totalIters": T, "warmupIters": 10, "warmupRatio": 0.1},
                      with_warmup(lambda o: S.CosineAnnealingLR(o, T_max=T, eta_min=0.0), 0.1, 10)),
    "step_warmup": ({"name": "step", "totalIters": T, "stepSize": 6, "gamma": 0.5, "warmupIters": 9, "warmupRatio": 0.2},
                    with_warmup(lambda o: S.StepLR(o, step_size=6, gamma=0.5), 0.2, 9)),
    "constant_warmup": ({"name": "constant", "totalIters": T, "warmupIters": 4, "warmupRatio": 0.25},
                        with_warmup(lambda o: S.ConstantLR(o, factor=1.0, total_iters=T), 0.25, 4)),
}
sched_index = {}
for name, (opts, make) in SCHED_CASES.items():
    sched_index[name] = {"schedule": opts, "base_lr": BASE, "lrs": sched_lrs(make, BASE, T)}
with open(os.path.join(OUT, "sched.json"), "w") as f:
    json.dump({"cases": sched_index}, f, indent=1)

# ---------------------------------------------------------------- losses
N, C, H, W = 2, 4, 5, 6


def make_target(ignore_frac, absent=None):
    t = torch.randint(0, C, (N, H, W), generator=gen)
    if absent is not None:
        t[t == absent] = (absent + 1) % C
    ign = torch.rand((N, H, W), generator=gen) < ignore_frac
    t[ign] = 255
    return t


def dice_ref(x, t, smooth=0.0, eps=1e-7, ignore=255):
    valid = (t != ignore)
    safe = torch.where(valid, t, torch.zeros_like(t))
    v = valid.unsqueeze(1).to(x.dtype)
    probs = x.softmax(1) * v
    onehot = F.one_hot(safe, x.shape[1]).permute(0, 3, 1, 2).to(x.dtype) * v
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    card = (probs + onehot).sum(dims)
    dice = (2 * inter + smooth) / (card + smooth).clamp_min(eps)
    present = (onehot.sum(dims) > 0).to(x.dtype)
    return ((1 - dice) * present).sum() / present.sum().clamp_min(1)


def focal_ref(x, t, gamma=2.0, alpha=1.0, ignore=255):
    logpt = -F.cross_entropy(x, t, ignore_index=ignore, reduction="none")
    pt = logpt.exp()
    valid = (t != ignore).to(x.dtype)
    loss = -alpha * (1 - pt) ** gamma * logpt * valid
    return loss.sum() / valid.sum().clamp_min(1)


WEIGHTS = [0.5, 1.0, 2.0, 1.5]
LOSS_CASES = {
    "ce_plain": ("ce", {}, 0.0, None),
    "ce_ignore": ("ce", {}, 0.25, None),
    "ce_weights_ignore": ("ce", {"classWeights": WEIGHTS}, 0.25, None),
    "ce_smoothing_ignore": ("ce", {"labelSmoothing": 0.1}, 0.25, None),
    "ce_weights_smoothing_ignore": ("ce", {"classWeights": WEIGHTS, "labelSmoothing": 0.2}, 0.25, None),
    "dice_ignore": ("dice", {}, 0.25, None),
    "dice_absent_class": ("dice", {}, 0.2, 2),
    "dice_smooth": ("dice", {"smooth": 1.0}, 0.2, None),
    "focal_ignore": ("focal", {}, 0.25, None),
    "focal_gamma_alpha": ("focal", {"gamma": 1.5, "alpha": 0.25}, 0.1, None),
}
ltensors = {}
lindex = {}
for name, (kind, o, ign, absent) in LOSS_CASES.items():
    x = (2 * rn(N, C, H, W)).requires_grad_(True)
    t = make_target(ign, absent)
    if kind == "ce":
        w = torch.tensor(o["classWeights"], dtype=torch.float64) if "classWeights" in o else None
        loss = F.cross_entropy(x, t, weight=w, ignore_index=255, label_smoothing=o.get("labelSmoothing", 0.0))
    elif kind == "dice":
        loss = dice_ref(x, t, smooth=o.get("smooth", 0.0))
    else:
        loss = focal_ref(x, t, gamma=o.get("gamma", 2.0), alpha=o.get("alpha", 1.0))
    loss.backward()
    ltensors[f"{name}.logits"] = x.detach().clone()
    ltensors[f"{name}.target"] = t
    ltensors[f"{name}.loss"] = loss.detach().clone()
    ltensors[f"{name}.grad"] = x.grad.clone()
    lindex[name] = {"loss": kind, "options": o}
st.save(os.path.join(OUT, "losses.safetensors"), ltensors)
with open(os.path.join(OUT, "losses.json"), "w") as f:
    json.dump({"torch": torch.__version__, "cases": lindex}, f, indent=1)
print(f"train_ref: {len(optim_index)} optimizer, {len(sched_index)} schedule, {len(lindex)} loss cases -> {OUT}")
