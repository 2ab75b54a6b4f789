"""PAN parity fixtures: PyTorch reference data for panseg's TypeScript tests.

Run with Debian's PyTorch (the `python3` on PATH has no torch):

    /usr/bin/python3 scripts/reference/pan_cases.py <outDir> [case names...]

No names = all cases. The model is scripts/reference/pan_model.py, a re-implementation of
segmentation_models.pytorch 0.5 `PAN` with a torchvision ResNet encoder (same module tree,
state_dict keys/order and init). float32 everywhere, torch.set_num_threads(2). Every case
uses batch 2 (train-mode BN on the 1x1 pooled FPA/GAU branches needs > 1 value per channel).

Cases (all decoder_channels/upsampling/... not listed take smp defaults: encoder_depth 5,
encoder_output_stride 16, decoder_channels 32, decoder_interpolation "bilinear",
in_channels 3, classes 1, activation null, upsampling 4, aux_params null):

  name                       encoder   depth OS  C   interp   in cls activation  aux                                       input
  r34_default                resnet34  5     16  32  bilinear 3  1   null        -                                         2x3x128x128
  r18_c64_k5_aux_avg_nonsq   resnet18  5     16  64  bilinear 3  5   null        avg, classes 3, dropout 0, act null       2x3x128x192
  r50_aux_max_softmax        resnet50  5     16  32  bilinear 3  5   softmax2d   max, classes 4, dropout 0, act sigmoid    2x3x128x128
  r18_os32_aux_dropout       resnet18  5     32  32  bilinear 3  1   sigmoid     avg, classes 2, dropout 0.5, act null (*) 2x3x256x256
  r18_d4_nearest_nonsq       resnet18  4     16  32  nearest  3  5   identity    -                                         2x3x128x192
  r34_d3_in1                 resnet34  3     16  64  bilinear 1  1   null        -                                         2x1x64x64
  r18_os8_beyond_smp         resnet18  5     8   32  bilinear 3  5   null        -                                         2x3x64x64  (**)
  r18_tv_weights             resnet18  5     16  32  bilinear 3  1   null        -                                         2x3x128x128 (***)
  r18_tv_weights_in4         resnet18  5     16  32  bilinear 4  2   null        avg, classes 3, dropout 0, act null       2x4x128x128 (***)

  Bottleneck (FPA input) sizes: 8x8, 8x12, 8x8, 8x8, 8x12, 8x8 (1/8, depth 3), 8x8 (1/8), 8x8, 8x8.
  Encoder output stride is min(OS, 2**depth): r34_d3_in1 -> 8 (layer4 is still dilated, just unused);
  r18_d4_nearest_nonsq -> 16 with an undilated layer3 (layer4 dilated but unused).

  (*)   Dropout in train mode is random and cannot be reproduced outside torch: the train pass of
        this case runs with classification_head.2 (the Dropout) switched to eval(), i.e. p ignored.
        io metadata has train_dropout="disabled". Eval outputs are unaffected.
  (**)  smp's PAN rejects encoder_output_stride=8 (ValueError "PAN support output stride 16 or 32,
        got 8"); this case exists for a panseg extension and uses smp's encoder make_dilated(8):
        layer3 dilation 2, layer4 dilation 4. config.json has "smp_supported": false.
        Skip/expect an error if panseg follows smp strictly.
  (***) Encoder weights come from <outDir>/resnet18_tv.pth (see below); the in4 case patches conv1
        with smp's pretrained patch_first_conv branch: w'[:, i] = w[:, i % 3] * 3/4.

Per-case algorithm: torch.manual_seed(seed); build PAN (pan_model.PAN); perturb every BatchNorm2d
so that eval mode is non-trivial but well scaled [tv cases: only the decoder's BNs; the encoder's
were perturbed the same way before saving the .pth]: weight = 1 + 0.1*randn, bias = 0.1*randn,
running stats = batch stats of one no-grad calibration forward on a separate randn input (momentum
1, other layers in eval), then running_var *= U(0.8, 1.2) (clamped >= 0.05), running_mean +=
0.1*randn*sqrt(running_var), num_batches_tracked = randint(0, 1000); save the state dict;
input = randn; model.eval() forward under no_grad; model.train() forward; loss = sum(masks *
upstream) [+ sum(labels * upstream_labels)]; loss.backward(). No optimizer step.

Files in <outDir>/<case>/:
  config.json      smp snake_case kwargs: encoder_name, encoder_depth, encoder_output_stride,
                   decoder_channels, decoder_interpolation, in_channels, classes, activation (null or
                   string), upsampling, aux_params (null or {classes, pooling, dropout, activation}),
                   encoder_weights (null, or "resnet18_tv.pth" = path relative to <outDir>)
                   + input_shape [N,C,H,W], seed, smp_supported (bool), notes (string, may be "").
  model.safetensors  the full state_dict (after BN perturbation), in state_dict order: params and
                   buffers F32, num_batches_tracked I64 with shape [] (0-d).
  io.safetensors   input            F32 [N,C,H,W]
                   eval_logits      F32 [N,classes,H,W]   model.eval() output (after activation;
                                    "logits" is just the name: it is the masks output)
                   eval_labels      F32 [N,aux classes]   (aux cases only)
                   train_logits     F32                   model.train() output, same input
                   train_labels     F32                   (aux cases only)
                   upstream         F32, shape of train_logits
                   upstream_labels  F32, shape of train_labels (aux cases only)
                   loss             F32 []  = (train_logits*upstream).sum() + (train_labels*upstream_labels).sum()
                   grad.<param>     F32, d loss / d param for a selection of params (see GRAD_PARAMS below;
                                    the deepest used layer changes with depth; all GAUs present)
                   grad_norms       F32 [P]: L2 norm of every parameter's grad, in params.json "parameters"
                                    order; 0 for params with no grad (unused layers with depth < 5)
                   after_train.<bn>.running_mean / .running_var (F32) / .num_batches_tracked (I64 [])
                                    for EVERY BatchNorm2d, after the single train forward
                   __metadata__: case, torch_version, train_dropout ("n/a"|"disabled")
  params.json      {"trainable": int, "keys": [state_dict keys in order], "shapes": {key: [dims]},
                    "parameters": [named_parameters() names in order]}

<outDir>/resnet18_tv.pth: torch.save(torchvision_resnet18.state_dict()) in torch 1.13's zip format
  (records under "resnet18_tv/..." ; data.pkl is a collections.OrderedDict with a `_metadata`
  attribute, as every torch state_dict); keys are torchvision's (conv1.weight, bn1.*, layerL.B.*,
  fc.weight [1000,512], fc.bias [1000]) including num_batches_tracked; BN stats perturbed as above;
  seed 1000. smp's ResNetEncoder.load_state_dict drops fc.* and loads the rest strictly.
<outDir>/resnet18_tv.safetensors: the same tensors, for a test that wants to compare the .pth reader.
<outDir>/index.json: {"cases": [names], "torch_version": str, "pth": "resnet18_tv.pth"}

Verified (once, by hand): smp master's own decoders/pan, base and encoders/resnet.py sources with
Debian's torchvision 0.14.1, built with the same seeds, give bit-identical initial state dicts and
bit-identical outputs, grads and BN buffers for all cases (OS8 via encoder.make_dilated(8)).

Suggested tolerances (float32, CPU): outputs atol 1e-4 + rtol 1e-4 relative to max |value|; grads
rtol ~1e-3 of max |grad|; BN buffers atol 1e-5.
"""

import json
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pan_model as pm  # noqa: E402
import st  # noqa: E402

DEFAULTS = dict(encoder_name="resnet34", encoder_depth=5, encoder_output_stride=16,
                decoder_channels=32, decoder_interpolation="bilinear", in_channels=3,
                classes=1, activation=None, upsampling=4, aux_params=None)

TV_SEED = 1000
TV_NAME = "resnet18_tv"

CASES = [
    dict(name="r34_default", seed=1, input=[2, 3, 128, 128], cfg=dict()),
    dict(name="r18_c64_k5_aux_avg_nonsq", seed=2, input=[2, 3, 128, 192],
         cfg=dict(encoder_name="resnet18", decoder_channels=64, classes=5,
                  aux_params=dict(classes=3, pooling="avg", dropout=0.0, activation=None))),
    dict(name="r50_aux_max_softmax", seed=3, input=[2, 3, 128, 128],
         cfg=dict(encoder_name="resnet50", classes=5, activation="softmax2d",
                  aux_params=dict(classes=4, pooling="max", dropout=0.0, activation="sigmoid"))),
    dict(name="r18_os32_aux_dropout", seed=4, input=[2, 3, 256, 256],
         cfg=dict(encoder_name="resnet18", encoder_output_stride=32, activation="sigmoid",
                  aux_params=dict(classes=2, pooling="avg", dropout=0.5, activation=None)),
         notes="train pass runs with classification_head.2 (Dropout p=0.5) in eval mode"),
    dict(name="r18_d4_nearest_nonsq", seed=5, input=[2, 3, 128, 192],
         cfg=dict(encoder_name="resnet18", encoder_depth=4, decoder_interpolation="nearest",
                  classes=5, activation="identity")),
    dict(name="r34_d3_in1", seed=6, input=[2, 1, 64, 64],
         cfg=dict(encoder_depth=3, decoder_channels=64, in_channels=1),
         notes="conv1 patched with smp's pretrained branch: w.sum(1, keepdim=True)"),
    dict(name="r18_os8_beyond_smp", seed=7, input=[2, 3, 64, 64],
         cfg=dict(encoder_name="resnet18", encoder_output_stride=8, classes=5),
         smp_supported=False,
         notes="smp PAN raises ValueError for output stride 8; encoder uses smp make_dilated(8)"),
    dict(name="r18_tv_weights", seed=8, input=[2, 3, 128, 128], tv=True,
         cfg=dict(encoder_name="resnet18"),
         notes="encoder weights from resnet18_tv.pth (fc.* dropped)"),
    dict(name="r18_tv_weights_in4", seed=9, input=[2, 4, 128, 128], tv=True,
         cfg=dict(encoder_name="resnet18", in_channels=4, classes=2,
                  aux_params=dict(classes=3, pooling="avg", dropout=0.0, activation=None)),
         notes="encoder weights from resnet18_tv.pth, then conv1 patched: w'[:,i]=w[:,i%3]*3/4"),
]

_DEEPEST_LAYER = {3: "layer2", 4: "layer3", 5: "layer4"}


def grad_params(model, cfg):
    layer = _DEEPEST_LAYER[cfg["encoder_depth"]]
    names = ["encoder.conv1.weight", "encoder.bn1.weight", "encoder.layer1.0.conv1.weight",
             f"encoder.{layer}.0.conv1.weight", f"encoder.{layer}.0.downsample.0.weight",
             f"encoder.{layer}.0.downsample.1.weight", f"encoder.{layer}.1.conv2.weight",
             "decoder.fpa.branch1.1.conv.weight", "decoder.fpa.branch1.1.conv.bias",
             "decoder.fpa.mid.0.conv.weight", "decoder.fpa.mid.0.bn.bias",
             "decoder.fpa.down1.1.conv.weight", "decoder.fpa.down2.1.conv.weight",
             "decoder.fpa.down3.2.conv.weight", "decoder.fpa.conv2.conv.weight",
             "decoder.fpa.conv1.conv.weight", "decoder.fpa.conv1.bn.weight"]
    for gau, _ in model.decoder.gaus:
        names += [f"decoder.{gau}.conv1.1.conv.weight", f"decoder.{gau}.conv1.1.bn.weight",
                  f"decoder.{gau}.conv2.conv.weight", f"decoder.{gau}.conv2.bn.bias"]
    names += ["segmentation_head.0.weight", "segmentation_head.0.bias"]
    if cfg["aux_params"] is not None:
        names += ["classification_head.3.weight", "classification_head.3.bias"]
    return names


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


def make_tv_weights(out_dir):
    torch.manual_seed(TV_SEED)
    tv = pm.torchvision_resnet("resnet18")
    perturb_bn(tv, tv, torch.randn(2, 3, 64, 64))
    sd = tv.state_dict()
    torch.save(sd, os.path.join(out_dir, TV_NAME + ".pth"))
    st.save(os.path.join(out_dir, TV_NAME + ".safetensors"), sd,
            metadata={"format": "torchvision resnet18 state_dict", "seed": str(TV_SEED)})
    return sd


def run_case(case, out_dir, tv_sd):
    cfg = dict(DEFAULTS, **case["cfg"])
    d = os.path.join(out_dir, case["name"])
    os.makedirs(d, exist_ok=True)

    torch.manual_seed(case["seed"])
    weights = None
    if case.get("tv"):
        weights = {k: v.clone() for k, v in tv_sd.items()}
    model = pm.PAN(**cfg, encoder_weights=weights, strict_smp=case.get("smp_supported", True))
    perturb_bn(model, model.decoder if case.get("tv") else model, torch.randn(*case["input"]))
    if case.get("tv"):
        # the encoder must hold exactly the .pth tensors (conv1 patched when in_channels != 3)
        esd = model.encoder.state_dict()
        for k, v in tv_sd.items():
            if k.startswith("fc."):
                continue
            if k == "conv1.weight" and cfg["in_channels"] != 3:
                n = cfg["in_channels"]
                exp = torch.stack([v[:, i % 3] for i in range(n)], 1) * (3 / n)
                assert torch.equal(esd[k], exp), k
                continue
            assert torch.equal(esd[k], v), k

    sd = model.state_dict()
    st.save(os.path.join(d, "model.safetensors"), sd, metadata={"case": case["name"]})
    params = {
        "trainable": pm.count_trainable(model),
        "keys": list(sd.keys()),
        "shapes": {k: list(v.shape) for k, v in sd.items()},
        "parameters": [n for n, _ in model.named_parameters()],
    }
    with open(os.path.join(d, "params.json"), "w") as f:
        json.dump(params, f, indent=1)
    conf = dict(cfg)
    conf.update(encoder_weights=(TV_NAME + ".pth") if case.get("tv") else None,
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


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    out_dir = argv[1]
    wanted = argv[2:]
    names = [c["name"] for c in CASES]
    for w in wanted:
        if w not in names:
            raise SystemExit(f"unknown case {w!r}; valid cases: {', '.join(names)}")
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    os.makedirs(out_dir, exist_ok=True)

    t_all = time.time()
    torch.manual_seed(0)
    n = pm.count_trainable(pm.PAN("resnet34", classes=1))
    print(f"PAN-resnet34 classes=1 trainable parameters: {n:,} "
          f"({'OK' if n == 21_475_816 else 'MISMATCH, expected 21,475,816'})")

    tv_sd = make_tv_weights(out_dir)
    selected = [c for c in CASES if not wanted or c["name"] in wanted]
    for case in selected:
        t0 = time.time()
        trainable, io = run_case(case, out_dir, tv_sd)
        e = io["eval_logits"]
        tr = io["train_logits"]
        print(f"{case['name']:<26} in={tuple(io['input'].shape)} out={tuple(e.shape)} "
              f"params={trainable:,} eval|max|={e.abs().max():.4g} train|max|={tr.abs().max():.4g} "
              f"loss={io['loss'].item():.6g} ({time.time() - t0:.2f}s)")
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump({"cases": [c["name"] for c in selected], "torch_version": torch.__version__,
                   "pth": TV_NAME + ".pth"}, f, indent=1)
    print(f"wrote {len(selected)} cases to {out_dir} in {time.time() - t_all:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
