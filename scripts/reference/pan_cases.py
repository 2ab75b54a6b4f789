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

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases_common as cc  # noqa: E402
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

def grad_params(model, cfg):
    names = cc.encoder_grad_params(cfg["encoder_depth"])
    names += ["decoder.fpa.branch1.1.conv.weight", "decoder.fpa.branch1.1.conv.bias",
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


def make_tv_weights(out_dir):
    torch.manual_seed(TV_SEED)
    tv = pm.torchvision_resnet("resnet18")
    cc.perturb_bn(tv, tv, torch.randn(2, 3, 64, 64))
    sd = tv.state_dict()
    torch.save(sd, os.path.join(out_dir, TV_NAME + ".pth"))
    st.save(os.path.join(out_dir, TV_NAME + ".safetensors"), sd,
            metadata={"format": "torchvision resnet18 state_dict", "seed": str(TV_SEED)})
    return sd


def run_case(case, out_dir, tv_sd):
    def build(cfg, case):
        weights = {k: v.clone() for k, v in tv_sd.items()} if case.get("tv") else None
        return pm.PAN(**cfg, encoder_weights=weights, strict_smp=case.get("smp_supported", True))

    def check_encoder(model, cfg):
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

    return cc.run_case(case, out_dir, DEFAULTS, build, grad_params, weights_file=TV_NAME + ".pth",
                       check_encoder=check_encoder)


def prepare(out_dir):
    torch.manual_seed(0)
    n = pm.count_trainable(pm.PAN("resnet34", classes=1))
    print(f"PAN-resnet34 classes=1 trainable parameters: {n:,} "
          f"({'OK' if n == 21_475_816 else 'MISMATCH, expected 21,475,816'})")
    return make_tv_weights(out_dir)


def main(argv):
    return cc.main(argv, __doc__, CASES, run_case, prepare=prepare,
                   index_extra={"pth": TV_NAME + ".pth"})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
