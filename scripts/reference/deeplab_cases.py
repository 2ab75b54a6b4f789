"""DeepLabV3 and DeepLabV3Plus parity fixtures: PyTorch reference data for panseg's TypeScript tests.

Run with Debian's PyTorch (the `python3` on PATH has no torch):

    /usr/bin/python3 scripts/reference/deeplab_cases.py <DeepLabV3|DeepLabV3Plus> <outDir> [case names...]

or through the per-class entry points the tests name (each test caches its own directory):

    /usr/bin/python3 scripts/reference/deeplabv3_cases.py <outDir> [case names...]
    /usr/bin/python3 scripts/reference/deeplabv3plus_cases.py <outDir> [case names...]

No names = all cases of that class. The models are scripts/reference/deeplab_model.py, a
re-implementation of segmentation_models.pytorch 0.5 `DeepLabV3` / `DeepLabV3Plus` with a torchvision
ResNet encoder (same module tree, state_dict keys/order and init; its decoders were checked
bit-identical, init, keys and forward, against smp v0.5.0's and master's own decoder.py).
float32, torch.set_num_threads(2), batch 2 everywhere.

DeepLabV3 cases (options not listed take smp's defaults: encoder_name resnet34, encoder_depth 5,
encoder_output_stride 8, decoder_channels 256, decoder_atrous_rates [12, 24, 36],
decoder_aspp_separable false, decoder_aspp_dropout 0.5 (*), in_channels 3, classes 1, activation null,
upsampling null (= the encoder's output stride), aux_params null):

  name                 encoder   depth OS ch  rates     sep  in cls act        up   aux                          input      logits
  r18_default          resnet18  5     8  256 12,24,36  no   3  1   null       null -                            2x3x64x64  64x64
  r34_os16_nonsq       resnet34  5     16 256 12,24,36  no   3  1   null       null -                            2x3x64x96  64x96
  r18_separable_rates  resnet18  5     8  256 6,12,18   yes  3  1   null       null -                            2x3x64x64  64x64
  r18_in1              resnet18  5     8  256 12,24,36  no   1  1   null       null -                            2x1x64x64  64x64
  r18_aux              resnet18  5     8  64  12,24,36  no   3  2   null       null avg, classes 3 (dropout 0.2) 2x3x64x64  64x64
  r18_c5_softmax2d     resnet18  5     8  64  12,24,36  no   3  5   softmax2d  null -                            2x3x64x64  64x64
  r18_d4_os16          resnet18  4     16 64  12,24,36  no   3  1   null       null -                            2x3x64x64  64x64 (**)
  r18_d3_up4           resnet18  3     8  64  12,24,36  no   3  1   null       4    -                            2x3x64x64  32x32 (***)
  r50_64px             resnet50  5     8  256 12,24,36  no   3  1   null       null -                            2x3x64x64  64x64 (****)

DeepLabV3Plus cases (defaults as smp: encoder_output_stride 16, decoder_aspp_separable true,
upsampling 4, the others as above):

  name                 encoder   depth OS ch  rates     sep  in cls act        up   aux                          input      logits
  r18_default          resnet18  5     16 256 12,24,36  yes  3  1   null       4    -                            2x3x64x64  64x64
  r34_os8_nonsq        resnet34  5     8  256 12,24,36  yes  3  1   null       4    -                            2x3x64x96  64x96
  r18_not_separable    resnet18  5     16 256 6,12,18   no   3  1   null       4    -                            2x3x64x64  64x64
  r18_in1              resnet18  5     16 256 12,24,36  yes  1  1   null       4    -                            2x1x64x64  64x64
  r18_aux              resnet18  5     16 64  12,24,36  yes  3  2   null       4    max, classes 3, sigmoid      2x3x64x64  64x64
  r18_c5_softmax2d     resnet18  5     16 64  12,24,36  yes  3  5   softmax2d  4    -                            2x3x64x64  64x64
  r18_d4               resnet18  4     16 64  12,24,36  yes  3  1   null       4    -                            2x3x64x64  64x64
  r18_d3_os16          resnet18  3     16 64  12,24,36  yes  3  1   null       4    -                            2x3x64x64  64x64 (**)
  r50_64px             resnet50  5     16 256 12,24,36  yes  3  1   null       4    -                            2x3x64x64  64x64 (****)

  (*)    The ASPP projection's nn.Dropout(0.5) draws from torch's RNG in train mode, which cannot be
         reproduced outside torch: the train pass runs it in eval mode (the identity), as panseg's
         tester does (it puts every Dropout in eval mode for the train pass). smp's default 0.5 stays
         in config.json; eval passes never drop. The aux head's dropout is handled the same way by
         cases_common.py.
  (**)   The encoder's output stride is min(OS, 2**depth): DeepLabV3 at depth 4 / OS 16 runs at 1/16 and
         upsamples by 16 (upsampling null); DeepLabV3Plus at depth 3 runs at 1/8 whatever the OS and so
         upsamples the ASPP output by 2 (smp: 4 only for OS 16 and depth > 3).
  (***)  An explicit upsampling replaces the output stride: logits are half the input's size.
  (****) A random ResNet-50 in train mode: PyTorch's own gradients move by a few % between 1 and 2
         threads whatever the seed (see R50_SEEDS); parity holds at the reference's 2 threads.

r18_in1: conv1 patched with smp's pretrained branch of patch_first_conv (w.sum(1, keepdim=True)), as
the other generators' in1 cases.

Per-case algorithm, files and their format: exactly pan_cases.py's (see its docstring and
cases_common.py): config.json (the smp snake_case kwargs + encoder_weights null, input_shape, seed,
smp_supported, notes), model.safetensors, io.safetensors (input, eval_logits, train_logits, upstream,
loss, grad.<param>, grad_norms, after_train.<bn>.*, and *_labels for aux cases), params.json;
<outDir>/index.json = {"cases": [...], "torch_version": str, "model_class": str}.
grad.<param>: the encoder selection of pan_cases.py; the ASPP's 1x1 branch, first and last atrous
branches (depthwise and pointwise convs when separable), pooling branch and projection; DeepLabV3's
conv/bn; DeepLabV3Plus's separable conv after the ASPP, block1 and block2; the heads.

Tolerances as pan_cases.py: outputs 1e-4, grads 1e-3 of max |grad|, BN buffers 1e-5.
"""

import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases_common as cc  # noqa: E402
import deeplab_model as dm  # noqa: E402

# smp's keyword order (= config.json's); model-specific defaults.
DEFAULTS = {
    "DeepLabV3": dict(encoder_name="resnet34", encoder_depth=5, encoder_output_stride=8,
                      decoder_channels=256, decoder_atrous_rates=[12, 24, 36],
                      decoder_aspp_separable=False, decoder_aspp_dropout=0.5, in_channels=3, classes=1,
                      activation=None, upsampling=None, aux_params=None),
    "DeepLabV3Plus": dict(encoder_name="resnet34", encoder_depth=5, encoder_output_stride=16,
                          decoder_channels=256, decoder_atrous_rates=[12, 24, 36],
                          decoder_aspp_separable=True, decoder_aspp_dropout=0.5, in_channels=3, classes=1,
                          activation=None, upsampling=4, aux_params=None),
}

# r50_64px's seeds. A random-init ResNet-50 in train mode amplifies summation-order differences block by
# block, as fpn_cases.py's r50_64px: PyTorch alone, 1 vs 2 threads (same weights), moves the eval logits by
# 5-8e-5 and the train-pass gradients by 4-30% of max |grad| (layer4.0.downsample, decoder.conv) for every
# seed tried (DeepLabV3 9 19 23 29 31 37 41 43 47 53, DeepLabV3Plus 9 19 29 39), also with atrous rates
# [1, 2, 3], at 128x128, and with the pooling branch's BatchNorm in eval mode: it is the deep random
# encoder, not the seed. The r18 cases move by < 1e-4. So, as for FPN, parity is checked at the
# reference's 2 threads (the tester sets them), where it is bit-exact; these seeds moved least
# (3.7e-2 and 3.5e-2). Measure with: deeplab_cases.py --check-threads <class> r50_64px <seeds...>
R50_SEEDS = {"DeepLabV3": 19, "DeepLabV3Plus": 19}

IN1 = "conv1 patched with smp's pretrained branch: w.sum(1, keepdim=True)"
R50 = "train-pass gradients depend on the thread count (a random ResNet-50, see R50_SEEDS): compare at 2 threads"

CASES = {
    "DeepLabV3": [
        dict(name="r18_default", seed=1, input=[2, 3, 64, 64], cfg=dict(encoder_name="resnet18")),
        dict(name="r34_os16_nonsq", seed=2, input=[2, 3, 64, 96], cfg=dict(encoder_output_stride=16)),
        dict(name="r18_separable_rates", seed=3, input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet18", decoder_aspp_separable=True, decoder_atrous_rates=[6, 12, 18])),
        dict(name="r18_in1", seed=4, input=[2, 1, 64, 64], cfg=dict(encoder_name="resnet18", in_channels=1),
             notes=IN1),
        dict(name="r18_aux", seed=5, input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet18", decoder_channels=64, classes=2,
                      aux_params=dict(classes=3, pooling="avg", dropout=0.2, activation=None))),
        dict(name="r18_c5_softmax2d", seed=6, input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet18", decoder_channels=64, classes=5, activation="softmax2d")),
        dict(name="r18_d4_os16", seed=7, input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet18", encoder_depth=4, encoder_output_stride=16, decoder_channels=64),
             notes="depth 4 at OS 16: the deepest feature is layer3's at 1/16, upsampled by 16 (upsampling null)"),
        dict(name="r18_d3_up4", seed=8, input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet18", encoder_depth=3, decoder_channels=64, upsampling=4),
             notes="depth 3: the deepest feature is layer2's at 1/8; upsampling 4 gives half-size logits"),
        dict(name="r50_64px", seed=R50_SEEDS["DeepLabV3"], input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet50"), notes=R50),
    ],
    "DeepLabV3Plus": [
        dict(name="r18_default", seed=11, input=[2, 3, 64, 64], cfg=dict(encoder_name="resnet18")),
        dict(name="r34_os8_nonsq", seed=12, input=[2, 3, 64, 96], cfg=dict(encoder_output_stride=8)),
        dict(name="r18_not_separable", seed=13, input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet18", decoder_aspp_separable=False, decoder_atrous_rates=[6, 12, 18]),
             notes="plain atrous convs in the ASPP; the conv after it and block2 stay separable (smp)"),
        # seed 14 moved PyTorch's own block2 gradients by 3e-3 of max |grad| between 1 and 2 threads; 24 by 4e-5
        dict(name="r18_in1", seed=24, input=[2, 1, 64, 64], cfg=dict(encoder_name="resnet18", in_channels=1),
             notes=IN1),
        dict(name="r18_aux", seed=15, input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet18", decoder_channels=64, classes=2,
                      aux_params=dict(classes=3, pooling="max", dropout=0.0, activation="sigmoid"))),
        dict(name="r18_c5_softmax2d", seed=16, input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet18", decoder_channels=64, classes=5, activation="softmax2d")),
        dict(name="r18_d4", seed=17, input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet18", encoder_depth=4, decoder_channels=64),
             notes="depth 4 at OS 16: layer3's 1/16 feature, upsampled by 4 to the 1/4 feature"),
        dict(name="r18_d3_os16", seed=18, input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet18", encoder_depth=3, decoder_channels=64),
             notes="depth 3: the deepest feature is at 1/8 whatever the OS, so the ASPP output is upsampled by 2"),
        dict(name="r50_64px", seed=R50_SEEDS["DeepLabV3Plus"], input=[2, 3, 64, 64],
             cfg=dict(encoder_name="resnet50"), notes=R50),
    ],
}

MODELS = {"DeepLabV3": dm.DeepLabV3, "DeepLabV3Plus": dm.DeepLabV3Plus}
# resnet34, classes 1, smp's defaults (smp's docs: 26.0M and 22.4M).
TRAINABLE = {"DeepLabV3": 26_007_105, "DeepLabV3Plus": 22_437_457}


class EvalDropout(nn.Dropout):
    """nn.Dropout that stays in eval mode (the identity) whatever train() asks: no state, no keys."""

    def train(self, mode=True):
        return super().train(False)


def aspp(model):
    return model.decoder.aspp if isinstance(model, dm.DeepLabV3) else model.decoder.aspp[0]


def grad_params(model, cfg):
    names = cc.encoder_grad_params(cfg["encoder_depth"])
    p = "decoder.aspp" if isinstance(model, dm.DeepLabV3) else "decoder.aspp.0"
    names += [f"{p}.convs.0.0.weight", f"{p}.convs.0.1.weight"]
    for b in (1, 3):
        if cfg["decoder_aspp_separable"]:
            names += [f"{p}.convs.{b}.0.0.weight", f"{p}.convs.{b}.0.1.weight"]
        else:
            names += [f"{p}.convs.{b}.0.weight"]
        names += [f"{p}.convs.{b}.1.bias"]
    names += [f"{p}.convs.4.1.weight", f"{p}.convs.4.2.weight", f"{p}.convs.4.2.bias",
              f"{p}.project.0.weight", f"{p}.project.1.weight"]
    if isinstance(model, dm.DeepLabV3):
        names += ["decoder.conv.weight", "decoder.bn.weight", "decoder.bn.bias"]
    else:
        names += ["decoder.aspp.1.0.weight", "decoder.aspp.1.1.weight", "decoder.aspp.2.weight",
                  "decoder.block1.0.weight", "decoder.block1.1.bias",
                  "decoder.block2.0.0.weight", "decoder.block2.0.1.weight", "decoder.block2.1.weight"]
    names += ["segmentation_head.0.weight", "segmentation_head.0.bias"]
    if cfg["aux_params"] is not None:
        names += ["classification_head.3.weight", "classification_head.3.bias"]
    return names


def build(cls_name, cfg):
    model = MODELS[cls_name](**cfg, encoder_weights=None)
    project = aspp(model).project
    project[3] = EvalDropout(project[3].p)
    return model


def run(cls_name):
    def run_case(case, out_dir, _prepared):
        return cc.run_case(case, out_dir, DEFAULTS[cls_name], lambda cfg, _c: build(cls_name, cfg), grad_params)

    def prepare(_out_dir):
        torch.manual_seed(0)
        n = cc.count_trainable(MODELS[cls_name]("resnet34", classes=1))
        want = TRAINABLE[cls_name]
        print(f"{cls_name}-resnet34 classes=1 trainable parameters: {n:,} "
              f"({'OK' if n == want else f'MISMATCH, expected {want:,}'})")

    return run_case, prepare


def main(cls_name, argv):
    """argv = [script, outDir, case names...]."""
    run_case, prepare = run(cls_name)
    return cc.main(argv, __doc__, CASES[cls_name], run_case, prepare=prepare,
                   index_extra={"model_class": cls_name})


def check_thread_stability(cls_name, case_name, seeds):
    """Prints, per seed, how far PyTorch's own train-pass gradients move between 1 and 2 threads
    (max over the stored gradients of max|g1 - g2| / max|g2|)."""
    import tempfile
    torch.use_deterministic_algorithms(True)
    base = next(c for c in CASES[cls_name] if c["name"] == case_name)
    run_case, _ = run(cls_name)
    for seed in seeds:
        ios = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with tempfile.TemporaryDirectory() as d:
                ios.append(run_case(dict(base, seed=seed), d, None)[1])
        worst = max(((ios[0][k] - ios[1][k]).abs().max() / ios[1][k].abs().max().clamp(min=1e-12)).item()
                    for k in ios[1] if k.startswith("grad."))
        logits = (ios[0]["train_logits"] - ios[1]["train_logits"]).abs().max().item()
        print(f"{cls_name} {case_name} seed {seed}: grads {worst:.2e} of max|grad|, train logits {logits:.2e}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--check-threads":
        # deeplab_cases.py --check-threads <class> <case> <seed>...
        check_thread_stability(sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4:]])
        sys.exit(0)
    if len(sys.argv) < 3 or sys.argv[1] not in MODELS:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[1:]))
