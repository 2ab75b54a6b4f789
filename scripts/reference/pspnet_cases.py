"""PSPNet parity fixtures: PyTorch reference data for panseg's TypeScript tests.

Run with Debian's PyTorch (the `python3` on PATH has no torch):

    /usr/bin/python3 scripts/reference/pspnet_cases.py <outDir> [case names...]

No names = all cases. The model is scripts/reference/pspnet_model.py, a re-implementation of
segmentation_models.pytorch 0.5 `PSPNet` with a torchvision ResNet encoder (same module tree,
state_dict keys/order and init; its decoder was checked bit-identical, init and forward, against
smp's own decoders/pspnet/decoder.py). float32, torch.set_num_threads(2), batch 2 everywhere.

Cases (options not listed take smp's defaults: encoder_name resnet34, encoder_depth 3,
psp_out_channels 512, decoder_use_norm "batchnorm", psp_dropout 0.2 (*), in_channels 3, classes 1,
activation null, upsampling 8, aux_params null):

  name              encoder   depth out norm  in cls act        up aux                                   input      bottleneck logits
  r18_default       resnet18  3     512 bn    3  1   null       8  -                                     2x3x64x64  8x8        64x64
  r34_nonsq         resnet34  3     512 bn    3  1   null       8  -                                     2x3x72x88  9x11       72x88
  r50_64px          resnet50  3     512 bn    3  1   null       8  -                                     2x3x64x64  8x8        64x64 (**)
  r18_d4            resnet18  4     128 bn    3  1   null       8  -                                     2x3x80x112 5x7        40x56 (***)
  r18_d5_up32       resnet18  5     128 bn    3  1   null       32 -                                     2x3x64x160 2x5        64x160
  r18_no_norm       resnet18  3     128 false 3  1   null       8  -                                     2x3x56x72  7x9        56x72
  r18_in1           resnet18  3     128 bn    1  1   null       8  -                                     2x1x64x64  8x8        64x64
  r18_aux           resnet18  3     128 bn    3  2   null       8  max, classes 3, dropout 0.5, sigmoid  2x3x64x80  8x10       64x80
  r18_c5_softmax2d  resnet18  3     64  bn    3  5   softmax2d  8  -                                     2x3x64x64  8x8        64x64

Every bottleneck has a side that bins 3 or 6 do not divide, so PyTorch's adaptive average pooling
uses overlapping windows [floor(i*H/b), ceil((i+1)*H/b)); r18_d5_up32's 2x5 bottleneck is smaller
than bin 6 (windows repeat pixels).

  (*)   Dropout layers draw from torch's RNG in train mode, which cannot be reproduced outside
        torch: the decoder's Dropout2d is pinned to eval mode (the identity) for the train pass, as
        is the aux head's Dropout (cases_common.py); the TS side does the same. psp_dropout keeps
        smp's default 0.2 in config.json.
  (**)  Seed chosen so that PyTorch's own train-pass gradients do not depend on the thread count
        (see R50_SEED).
  (***) smp's upsampling 8 restores the input size at depth 3 only: at depth 4 the logits are 1/2
        of the input (reproduced); r18_d5_up32 raises upsampling to 32 to get the input size back.

r18_in1: conv1 patched with smp's pretrained branch of patch_first_conv (w.sum(1, keepdim=True)),
as pan_cases.py's r34_d3_in1 and unet_cases.py's r18_in1.

Per-case algorithm, files and their format: exactly pan_cases.py's (see its docstring and
cases_common.py): config.json (the smp snake_case kwargs above + encoder_weights null, input_shape,
seed, smp_supported, notes), model.safetensors, io.safetensors (input, eval_logits, train_logits,
upstream, loss, grad.<param>, grad_norms, after_train.<bn>.*, and *_labels for the aux case),
params.json; <outDir>/index.json = {"cases": [...], "torch_version": str}.
grad.<param>: the encoder selection of pan_cases.py, the bin-1 and bin-6 blocks' convs and norms
(or conv biases), decoder.conv, the heads.

Tolerances as pan_cases.py: outputs 1e-4, grads 1e-3 of max |grad|, BN buffers 1e-5.
"""

import os
import sys
import types

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases_common as cc  # noqa: E402
import pspnet_model as psm  # noqa: E402

DEFAULTS = dict(encoder_name="resnet34", encoder_depth=3, psp_out_channels=512,
                decoder_use_norm="batchnorm", psp_dropout=0.2, in_channels=3, classes=1,
                activation=None, upsampling=8, aux_params=None)

# r50_64px's seed: ResNet-50's 1x1 convolutions round differently with the thread count, which can
# flip ReLU/max-pool decisions in the train pass (unet_cases.py's R50_SEED). Seed 3 keeps PyTorch's own
# train logits and every stored gradient within 5e-6 (relative to max |grad|) at 1, 2 and 4 threads;
# seed 23 does not (5% on decoder.conv.0.weight between 1 and 2 threads).
R50_SEED = 3

CASES = [
    dict(name="r18_default", seed=1, input=[2, 3, 64, 64], cfg=dict(encoder_name="resnet18")),
    dict(name="r34_nonsq", seed=2, input=[2, 3, 72, 88], cfg=dict(),
         notes="bottleneck 9x11: bin 6 windows overlap in both directions, bin 3 in W"),
    dict(name="r50_64px", seed=R50_SEED, input=[2, 3, 64, 64], cfg=dict(encoder_name="resnet50"),
         notes="seed chosen so that train-pass gradients do not depend on the thread count (see R50_SEED)"),
    dict(name="r18_d4", seed=4, input=[2, 3, 80, 112],
         cfg=dict(encoder_name="resnet18", encoder_depth=4, psp_out_channels=128),
         notes="smp's upsampling 8 at depth 4 gives logits at 1/2 of the input"),
    dict(name="r18_d5_up32", seed=5, input=[2, 3, 64, 160],
         cfg=dict(encoder_name="resnet18", encoder_depth=5, psp_out_channels=128, upsampling=32),
         notes="bottleneck 2x5, smaller than bin 6: adaptive pooling windows repeat pixels"),
    dict(name="r18_no_norm", seed=6, input=[2, 3, 56, 72],
         cfg=dict(encoder_name="resnet18", psp_out_channels=128, decoder_use_norm=False),
         notes="decoder convs have biases, norms are Identity (no keys)"),
    dict(name="r18_in1", seed=7, input=[2, 1, 64, 64],
         cfg=dict(encoder_name="resnet18", psp_out_channels=128, in_channels=1),
         notes="conv1 patched with smp's pretrained branch: w.sum(1, keepdim=True)"),
    dict(name="r18_aux", seed=8, input=[2, 3, 64, 80],
         cfg=dict(encoder_name="resnet18", psp_out_channels=128, classes=2,
                  aux_params=dict(classes=3, pooling="max", dropout=0.5, activation="sigmoid"))),
    dict(name="r18_c5_softmax2d", seed=9, input=[2, 3, 64, 64],
         cfg=dict(encoder_name="resnet18", psp_out_channels=64, classes=5, activation="softmax2d")),
]


def grad_params(model, cfg):
    names = cc.encoder_grad_params(cfg["encoder_depth"])
    named = dict(model.named_parameters())
    names += ["decoder.psp.blocks.0.pool.1.0.weight", "decoder.psp.blocks.0.pool.1.0.bias"]
    for p in ("decoder.psp.blocks.3.pool.1", "decoder.conv"):
        names += [f"{p}.0.weight"]
        names += [f"{p}.1.weight", f"{p}.1.bias"] if f"{p}.1.weight" in named else [f"{p}.0.bias"]
    names += ["segmentation_head.0.weight", "segmentation_head.0.bias"]
    if cfg["aux_params"] is not None:
        names += ["classification_head.3.weight", "classification_head.3.bias"]
    return names


def pin_eval(m):
    """Keeps a dropout layer in eval mode whatever train() its parents call (see (*))."""
    m.train = types.MethodType(lambda self, mode=True: self, m)
    m.training = False


def run_case(case, out_dir, _prepared):
    def build(cfg, case):
        model = psm.PSPNet(**cfg, encoder_weights=None)
        pin_eval(model.decoder.dropout)
        return model

    return cc.run_case(case, out_dir, DEFAULTS, build, grad_params)


def prepare(_out_dir):
    torch.manual_seed(0)
    n = cc.count_trainable(psm.PSPNet("resnet34", classes=1))
    print(f"PSPNet-resnet34 classes=1 trainable parameters: {n:,} "
          f"({'OK' if n == 21_437_985 else 'MISMATCH, expected 21,437,985'})")


def main(argv):
    return cc.main(argv, __doc__, CASES, run_case, prepare=prepare)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
