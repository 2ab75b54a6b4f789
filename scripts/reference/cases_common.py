"""What every model's parity-fixture generator shares (pan_cases.py, unet_cases.py, ...): BatchNorm
perturbation, the per-case run (state dict, config.json, params.json, io.safetensors) and the main loop.
The file format is described in pan_cases.py's docstring; an architecture supplies its defaults,
a builder and the parameters whose full gradients are stored.
"""

import json
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

_DEEPEST_LAYER = {3: "layer2", 4: "layer3", 5: "layer4"}


def encoder_grad_params(depth):
    """The ResNet encoder parameters whose gradients are stored (the deepest used layer moves with depth)."""
    layer = _DEEPEST_LAYER[depth]
    return ["encoder.conv1.weight", "encoder.bn1.weight", "encoder.layer1.0.conv1.weight",
            f"encoder.{layer}.0.conv1.weight", f"encoder.{layer}.0.downsample.0.weight",
            f"encoder.{layer}.0.downsample.1.weight", f"encoder.{layer}.1.conv2.weight"]


def count_trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _bns(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


@torch.no_grad()
def perturb_bn(root, bn_scope, calib_input):
    """Give the BatchNorm2d layers inside `bn_scope` (a submodule of `root`, or root itself)
    non-trivial but sane values: random affine params, running stats calibrated on one
    train-mode forward of `calib_input` (momentum 1 => running = batch stats) and then
    jittered, random num_batches_tracked. BNs outside bn_scope are untouched (eval mode)."""
    bns = _bns(bn_scope)
    for m in bns:
        n = m.num_features
        m.weight.copy_(1 + 0.1 * torch.randn(n))
        m.bias.copy_(0.1 * torch.randn(n))
    root.eval()
    saved = []
    for m in bns:
        saved.append(m.momentum)
        m.momentum = 1.0
        m.train()
    root(calib_input)
    for m, mom in zip(bns, saved):
        n = m.num_features
        m.momentum = mom
        m.running_var.mul_(0.8 + 0.4 * torch.rand(n)).clamp_(min=0.05)
        m.running_mean.add_(0.1 * torch.randn(n) * m.running_var.sqrt())
        m.num_batches_tracked.fill_(int(torch.randint(0, 1000, ())))
    root.eval()


def run_case(case, out_dir, defaults, build, grad_params, weights_file=None, check_encoder=None):
    """Builds one case's model and writes its directory; returns (trainable count, io dict).

    build(cfg, case) -> model, called right after torch.manual_seed(case["seed"]).
    grad_params(model, cfg) -> names of the parameters whose full gradients are stored.
    case["tv"]: the encoder holds pretrained weights (named `weights_file` in config.json), so only
    the decoder's BatchNorms are perturbed; check_encoder(model, cfg) then asserts what it holds.
    """
    cfg = dict(defaults, **case["cfg"])
    d = os.path.join(out_dir, case["name"])
    os.makedirs(d, exist_ok=True)

    torch.manual_seed(case["seed"])
    model = build(cfg, case)
    perturb_bn(model, model.decoder if case.get("tv") else model, torch.randn(*case["input"]))
    if case.get("tv") and check_encoder is not None:
        check_encoder(model, cfg)

    sd = model.state_dict()
    st.save(os.path.join(d, "model.safetensors"), sd, metadata={"case": case["name"]})
    params = {
        "trainable": count_trainable(model),
        "keys": list(sd.keys()),
        "shapes": {k: list(v.shape) for k, v in sd.items()},
        "parameters": [n for n, _ in model.named_parameters()],
    }
    with open(os.path.join(d, "params.json"), "w") as f:
        json.dump(params, f, indent=1)
    conf = dict(cfg)
    conf.update(encoder_weights=weights_file if case.get("tv") else None,
                input_shape=case["input"], seed=case["seed"],
                smp_supported=case.get("smp_supported", True), notes=case.get("notes", ""))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=1)

    x = torch.randn(*case["input"])
    aux = cfg["aux_params"] is not None
    io = {"input": x}

    model.eval()
    with torch.no_grad():
        out = model(x)
    masks, labels = out if aux else (out, None)
    io["eval_logits"] = masks
    if aux:
        io["eval_labels"] = labels

    model.train()
    dropout_disabled = aux and bool(cfg["aux_params"].get("dropout", 0.2))
    if dropout_disabled:
        model.classification_head[2].eval()
    out = model(x)
    masks, labels = out if aux else (out, None)
    upstream = torch.randn(masks.shape)
    loss = (masks * upstream).sum()
    io["train_logits"] = masks.detach()
    if aux:
        up_l = torch.randn(labels.shape)
        loss = loss + (labels * up_l).sum()
        io["train_labels"] = labels.detach()
    io["upstream"] = upstream
    if aux:
        io["upstream_labels"] = up_l
    loss.backward()
    io["loss"] = loss.detach().reshape(())

    named = dict(model.named_parameters())
    for n in grad_params(model, cfg):
        g = named[n].grad
        assert g is not None, f"{case['name']}: no grad for {n}"
        io["grad." + n] = g
    io["grad_norms"] = torch.stack([
        p.grad.norm() if p.grad is not None else torch.zeros(())
        for _, p in model.named_parameters()])
    for mname, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            for b in ("running_mean", "running_var", "num_batches_tracked"):
                io[f"after_train.{mname}.{b}"] = getattr(m, b)
    st.save(os.path.join(d, "io.safetensors"), io,
            metadata={"case": case["name"], "torch_version": torch.__version__,
                      "train_dropout": "disabled" if dropout_disabled else "n/a"})

    # self-check: what we wrote reads back bit-exactly
    back = st.load(os.path.join(d, "io.safetensors"))
    for k, v in io.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v.detach()), k
    return params["trainable"], io


def main(argv, doc, cases, run_one, prepare=None, index_extra=None):
    """`script <outDir> [case names...]`: runs the selected cases (all by default) and writes
    <outDir>/index.json = {"cases", "torch_version", **index_extra}.
    prepare(out_dir) runs first (after seeding and thread setup) and its result is passed to
    run_one(case, out_dir, prepared) -> (trainable, io)."""
    if len(argv) < 2:
        print(doc)
        return 2
    out_dir = argv[1]
    wanted = argv[2:]
    names = [c["name"] for c in cases]
    for w in wanted:
        if w not in names:
            raise SystemExit(f"unknown case {w!r}; valid cases: {', '.join(names)}")
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    os.makedirs(out_dir, exist_ok=True)

    t_all = time.time()
    prepared = prepare(out_dir) if prepare is not None else None
    selected = [c for c in cases if not wanted or c["name"] in wanted]
    for case in selected:
        t0 = time.time()
        trainable, io = run_one(case, out_dir, prepared)
        e = io["eval_logits"]
        tr = io["train_logits"]
        print(f"{case['name']:<26} in={tuple(io['input'].shape)} out={tuple(e.shape)} "
              f"params={trainable:,} eval|max|={e.abs().max():.4g} train|max|={tr.abs().max():.4g} "
              f"loss={io['loss'].item():.6g} ({time.time() - t0:.2f}s)")
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump({"cases": [c["name"] for c in selected], "torch_version": torch.__version__,
                   **(index_extra or {})}, f, indent=1)
    print(f"wrote {len(selected)} cases to {out_dir} in {time.time() - t_all:.1f}s")
    return 0
