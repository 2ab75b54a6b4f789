"""FPN parity fixtures: PyTorch reference data for panseg's TypeScript tests.

Run with Debian's PyTorch (the `python3` on PATH has no torch):

    /usr/bin/python3 scripts/reference/fpn_cases.py <outDir> [case names...]

No names = all cases. The model is scripts/reference/fpn_model.py, a re-implementation of
segmentation_models.pytorch 0.5 `FPN` with a torchvision ResNet encoder (same module tree,
state_dict keys/order and init; its decoder was checked bit-identical, init and forward, against
smp's own decoders/fpn/decoder.py). float32, torch.set_num_threads(2), batch 2 everywhere.

Cases (options not listed take smp's defaults: encoder_name resnet34, encoder_depth 5,
decoder_pyramid_channels 256, decoder_segmentation_channels 128, decoder_merge_policy "add",
decoder_interpolation "nearest", in_channels 3, classes 1, activation null, upsampling 4,
aux_params null; decoder_dropout is 0 in every case, see (*)):

  name                 encoder   depth merge pyr seg interp   in cls activation aux                                       input      logits
  r18_default          resnet18  5     add   256 128 nearest  3  1   null       -                                         2x3x64x64  64x64
  r34_cat_nonsq        resnet34  5     cat   256 128 nearest  3  1   null       -                                         2x3x64x96  64x96
  r50_64px             resnet50  5     add   256 128 nearest  3  1   null       -                                         2x3x64x64  64x64 (**)
  r18_d4_area_nonsq    resnet18  4     add   256 128 area     3  1   null       -                                         2x3x64x96  128x192 (***)
  r18_d3_in1           resnet18  3     add   256 128 nearest  1  1   null       -                                         2x1x32x64  128x256 (***)
  r18_aux_bilinear     resnet18  5     add   256 128 bilinear 3  2   null       max, classes 3, dropout 0, act sigmoid    2x3x64x64  64x64
  r18_c5_softmax2d     resnet18  5     add   64  32  nearest  3  5   softmax2d  -                                         2x3x64x64  64x64

  (*)   decoder.dropout (Dropout2d, smp default p=0.2) draws from torch's RNG in train mode, which
        cannot be reproduced outside torch: every case sets decoder_dropout=0.0, so the train pass is
        deterministic (Dropout2d with p=0 is the identity); eval passes never drop. panseg's engine
        tests cover Dropout2d itself (tests/engine/nn.test.ts).
  (**)  The smallest input for which train mode is well conditioned: at 32x32 (the smallest size a
        depth-5 encoder takes) the deepest feature is 1x1, layer4's BatchNorms normalize 2 values per
        channel, and float32 rounding that depends on the thread count moved the train logits by 1.4.
  (***) smp's FPN keeps four pyramid levels for any depth by taking the last four features: at depth
        4 the finest level is the 1/2 feature, at depth 3 it is the input itself (p2.skip_conv takes
        in_channels), so with upsampling=4 the logits are 2x (depth 4) or 4x (depth 3) the input.
        "area" is F.interpolate's mode = adaptive average pooling to 2x the size (= nearest for 2x).

r18_d3_in1: conv1 patched with smp's pretrained branch of patch_first_conv (w.sum(1, keepdim=True)),
as pan_cases.py's r34_d3_in1 and unet_cases.py's r18_in1.

Per-case algorithm, files and their format: exactly pan_cases.py's (see its docstring and
cases_common.py), with one addition: right after the model is built, every GroupNorm gets
weight = 1 + 0.1*randn, bias = 0.1*randn (GroupNorm has no running statistics), before the
BatchNorms are perturbed. Files: config.json (the smp snake_case kwargs above + encoder_weights null,
input_shape, seed, smp_supported, notes), model.safetensors, io.safetensors (input, eval_logits,
train_logits, upstream, loss, grad.<param>, grad_norms, after_train.<bn>.* for the encoder's BNs,
and *_labels for the aux case), params.json; <outDir>/index.json = {"cases": [...], "torch_version"}.
grad.<param>: the encoder selection of pan_cases.py, the pyramid convs (p5, p4 and p2 skip convs),
the first and last segmentation blocks' convs and GroupNorms, the heads.

Tolerances as pan_cases.py: outputs 1e-4, grads 1e-3 of max |grad|, BN buffers 1e-5.
"""

import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases_common as cc  # noqa: E402
import fpn_model as fm  # noqa: E402

DEFAULTS = dict(encoder_name="resnet34", encoder_depth=5, decoder_pyramid_channels=256,
                decoder_segmentation_channels=128, decoder_merge_policy="add", decoder_dropout=0.0,
                decoder_interpolation="nearest", in_channels=3, classes=1, activation=None,
                upsampling=4, aux_params=None)

LARGER = "smp's FPN at depth {d} takes the last four features, so the logits are {k}x the input (upsampling 4)"

CASES = [
    dict(name="r18_default", seed=1, input=[2, 3, 64, 64], cfg=dict(encoder_name="resnet18")),
    dict(name="r34_cat_nonsq", seed=2, input=[2, 3, 64, 96], cfg=dict(decoder_merge_policy="cat")),
    dict(name="r50_64px", seed=3, input=[2, 3, 64, 64], cfg=dict(encoder_name="resnet50"),
         notes="64x64, not the smallest valid 32x32: a 1x1 deepest feature makes train-mode BatchNorm ill-conditioned"),
    dict(name="r18_d4_area_nonsq", seed=4, input=[2, 3, 64, 96],
         cfg=dict(encoder_name="resnet18", encoder_depth=4, decoder_interpolation="area"),
         notes=LARGER.format(d=4, k=2)),
    dict(name="r18_d3_in1", seed=5, input=[2, 1, 32, 64],
         cfg=dict(encoder_name="resnet18", encoder_depth=3, in_channels=1),
         notes=LARGER.format(d=3, k=4) + "; conv1 patched with smp's pretrained branch: w.sum(1, keepdim=True)"),
    dict(name="r18_aux_bilinear", seed=6, input=[2, 3, 64, 64],
         cfg=dict(encoder_name="resnet18", decoder_interpolation="bilinear", classes=2,
                  aux_params=dict(classes=3, pooling="max", dropout=0.0, activation="sigmoid"))),
    dict(name="r18_c5_softmax2d", seed=7, input=[2, 3, 64, 64],
         cfg=dict(encoder_name="resnet18", decoder_pyramid_channels=64, decoder_segmentation_channels=32,
                  classes=5, activation="softmax2d")),
]


def grad_params(model, cfg):
    names = cc.encoder_grad_params(cfg["encoder_depth"])
    names += ["decoder.p5.weight", "decoder.p5.bias", "decoder.p4.skip_conv.weight",
              "decoder.p2.skip_conv.weight", "decoder.p2.skip_conv.bias"]
    for blk in ("seg_blocks.0.block.0", "seg_blocks.0.block.2", "seg_blocks.3.block.0"):
        names += [f"decoder.{blk}.block.0.weight", f"decoder.{blk}.block.1.weight", f"decoder.{blk}.block.1.bias"]
    names += ["segmentation_head.0.weight", "segmentation_head.0.bias"]
    if cfg["aux_params"] is not None:
        names += ["classification_head.3.weight", "classification_head.3.bias"]
    return names


@torch.no_grad()
def perturb_gn(model):
    for m in model.modules():
        if isinstance(m, nn.GroupNorm):
            m.weight.copy_(1 + 0.1 * torch.randn(m.num_channels))
            m.bias.copy_(0.1 * torch.randn(m.num_channels))


def run_case(case, out_dir, _prepared):
    def build(cfg, case):
        model = fm.FPN(**cfg, encoder_weights=None)
        perturb_gn(model)
        return model

    return cc.run_case(case, out_dir, DEFAULTS, build, grad_params)


def prepare(_out_dir):
    torch.manual_seed(0)
    n = cc.count_trainable(fm.FPN("resnet34", classes=1))
    print(f"FPN-resnet34 classes=1 trainable parameters: {n:,} "
          f"({'OK' if n == 23_155_393 else 'MISMATCH, expected 23,155,393'})")


def main(argv):
    return cc.main(argv, __doc__, CASES, run_case, prepare=prepare)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
