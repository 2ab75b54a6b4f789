"""Parity fixtures for the encoders beyond ResNet (MobileNetV2, ResNeXt) inside the architectures.

Run with Debian's PyTorch (the `python3` on PATH has no torch):

    /usr/bin/python3 scripts/reference/encoder_cases.py <outDir> [case names...]

No names = all cases. Each architecture's test selects its own cases by name (one architecture per
selection: tests/models/encoders.test.ts). The encoders are scripts/reference/encoders_model.py
(smp's MobileNetV2Encoder and ResNeXt ResNetEncoders), plugged into the architecture references
(pan_model.PAN, unet_model.Unet, fpn_model.FPN) through encoders_model.use_in_architectures();
options not listed take each architecture's defaults from its own generator (pan_cases.py,
unet_cases.py, fpn_cases.py). float32, torch.set_num_threads(2), batch 2.

  name                   arch  encoder          depth OS  decoder                 in cls aux                 input
  pan_mnv2_os16_aux      PAN   mobilenet_v2     5     16  channels 16             3  3   avg, 2, dropout 0   2x3x128x128
  pan_mnv2_os8           PAN   mobilenet_v2     5     8   channels 16             3  2   -                   2x3x64x64 (*)
  pan_mnv2_os32_in1      PAN   mobilenet_v2     5     32  channels 16             1  2   -                   2x1x256x256
  pan_mnv2_d3            PAN   mobilenet_v2     3     16  channels 16             3  1   -                   2x3x64x64 (**)
  pan_mnv2_tv_in4        PAN   mobilenet_v2     5     16  channels 16             4  2   -                   2x4x128x128 (***)
  unet_mnv2              Unet  mobilenet_v2     5     32  32,32,16,16,16          3  2   -                   2x3x64x64
  unet_mnv2_d4_nonsq     Unet  mobilenet_v2     4     32  32,16,16,16, scse       3  1   max, 3, dropout 0   2x3x64x96 (**)
  fpn_rx50               FPN   resnext50_32x4d  5     32  pyramid 32, seg 32      3  2   -                   2x3x64x64

  (*)   smp's PAN refuses output stride 8 (a panseg extension, as pan_cases.py's r18_os8_beyond_smp);
        the encoder is dilated by smp's make_dilated(8): features[7:14] by 2, features[14:] by 4.
  (**)  smp's MobileNetV2Encoder runs its blocks until it has one feature more than its depth: at
        depth 3 features[7..13] and at depth 4 features[14..18] run in the train pass without being
        used, so their BatchNorm running statistics (after_train.*) move; their gradients are zero.
  (***) encoder weights from <outDir>/mobilenet_v2_tv.pth (a torchvision MobileNetV2 state dict with
        its classifier, BatchNorms perturbed as below), then features.0.0 patched with smp's pretrained
        patch_first_conv branch: w'[:, i] = w[:, i % 3] * 3/4. Also written as .safetensors.

Per-case algorithm, files and their format: exactly pan_cases.py's (see its docstring and
cases_common.py). grad.<param>: a selection of encoder parameters (the stem, the first blocks, the
deepest used block), then the architecture's own decoder and head selection from its generator.
Tolerances as pan_cases.py: outputs 1e-4, grads 1e-3 of max |grad|, BN buffers 1e-5.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases_common as cc  # noqa: E402
import encoders_model as em  # noqa: E402
import fpn_cases  # noqa: E402
import fpn_model as fm  # noqa: E402
import pan_cases  # noqa: E402
import pan_model as pm  # noqa: E402
import st  # noqa: E402
import unet_cases  # noqa: E402
import unet_model as um  # noqa: E402

em.use_in_architectures()

TV_SEED = 1001
TV_NAME = "mobilenet_v2_tv"
MNV2 = "mobilenet_v2"
AUX = dict(classes=2, pooling="avg", dropout=0.0, activation=None)

ARCHS = {
    "PAN": dict(cls=pm.PAN, cases=pan_cases),
    "Unet": dict(cls=um.Unet, cases=unet_cases),
    "FPN": dict(cls=fm.FPN, cases=fpn_cases),
}

CASES = [
    dict(name="pan_mnv2_os16_aux", arch="PAN", seed=1, input=[2, 3, 128, 128],
         cfg=dict(encoder_name=MNV2, decoder_channels=16, classes=3, aux_params=AUX)),
    dict(name="pan_mnv2_os8", arch="PAN", seed=2, input=[2, 3, 64, 64], smp_supported=False,
         cfg=dict(encoder_name=MNV2, encoder_output_stride=8, decoder_channels=16, classes=2),
         notes="smp PAN raises ValueError for output stride 8; encoder uses smp make_dilated(8)"),
    dict(name="pan_mnv2_os32_in1", arch="PAN", seed=3, input=[2, 1, 256, 256],
         cfg=dict(encoder_name=MNV2, encoder_output_stride=32, decoder_channels=16, in_channels=1, classes=2),
         notes="features.0.0 patched with smp's pretrained branch: w.sum(1, keepdim=True)"),
    dict(name="pan_mnv2_d3", arch="PAN", seed=4, input=[2, 3, 64, 64],
         cfg=dict(encoder_name=MNV2, encoder_depth=3, decoder_channels=16),
         notes="features[7..13] run in the train pass (smp's loop) without being used"),
    dict(name="pan_mnv2_tv_in4", arch="PAN", seed=5, input=[2, 4, 128, 128], tv=True,
         cfg=dict(encoder_name=MNV2, decoder_channels=16, in_channels=4, classes=2),
         notes="encoder weights from mobilenet_v2_tv.pth (classifier.* dropped), then features.0.0 patched: w'[:,i]=w[:,i%3]*3/4"),
    dict(name="unet_mnv2", arch="Unet", seed=6, input=[2, 3, 64, 64],
         cfg=dict(encoder_name=MNV2, decoder_channels=[32, 32, 16, 16, 16], classes=2)),
    dict(name="unet_mnv2_d4_nonsq", arch="Unet", seed=7, input=[2, 3, 64, 96],
         cfg=dict(encoder_name=MNV2, encoder_depth=4, decoder_channels=[32, 16, 16, 16],
                  decoder_attention_type="scse",
                  aux_params=dict(classes=3, pooling="max", dropout=0.0, activation=None)),
         notes="features[14..18] run in the train pass (smp's loop) without being used"),
    dict(name="fpn_rx50", arch="FPN", seed=8, input=[2, 3, 64, 64],
         cfg=dict(encoder_name="resnext50_32x4d", decoder_pyramid_channels=32, decoder_segmentation_channels=32,
                  classes=2)),
]

_MNV2_LAST = {3: 6, 4: 13, 5: 18}


def encoder_grad_params(cfg):
    depth = cfg["encoder_depth"]
    if cfg["encoder_name"] != MNV2:
        return cc.encoder_grad_params(depth)  # ResNeXt: the ResNet selection (conv2 is the grouped one)
    last = _MNV2_LAST[depth]
    names = ["encoder.features.0.0.weight", "encoder.features.0.1.weight",
             "encoder.features.1.conv.0.0.weight", "encoder.features.1.conv.1.weight",
             "encoder.features.2.conv.0.0.weight", "encoder.features.2.conv.1.0.weight",
             "encoder.features.2.conv.3.bias"]
    if last == 18:
        return names + ["encoder.features.17.conv.1.0.weight", "encoder.features.18.0.weight",
                        "encoder.features.18.1.weight"]
    return names + [f"encoder.features.{last}.conv.1.0.weight", f"encoder.features.{last}.conv.2.weight",
                    f"encoder.features.{last}.conv.3.weight"]


def grad_params(arch):
    def names(model, cfg):
        own = [n for n in ARCHS[arch]["cases"].grad_params(model, cfg) if not n.startswith("encoder.")]
        return encoder_grad_params(cfg) + own
    return names


def make_tv_weights(out_dir):
    torch.manual_seed(TV_SEED)
    tv = em.torchvision_model(MNV2)
    cc.perturb_bn(tv, tv, torch.randn(2, 3, 64, 64))
    sd = tv.state_dict()
    torch.save(sd, os.path.join(out_dir, TV_NAME + ".pth"))
    st.save(os.path.join(out_dir, TV_NAME + ".safetensors"), sd,
            metadata={"format": "torchvision mobilenet_v2 state_dict", "seed": str(TV_SEED)})
    return sd


def run_case(case, out_dir, tv_sd):
    arch = ARCHS[case["arch"]]

    def build(cfg, case):
        weights = {k: v.clone() for k, v in tv_sd.items()} if case.get("tv") else None
        extra = dict(strict_smp=case.get("smp_supported", True)) if case["arch"] == "PAN" else {}
        model = arch["cls"](**cfg, encoder_weights=weights, **extra)
        if case["arch"] == "FPN":
            fpn_cases.perturb_gn(model)
        return model

    def check_encoder(model, cfg):
        # the encoder holds exactly the .pth tensors (features.0.0 patched when in_channels != 3)
        esd = model.encoder.state_dict()
        for k, v in tv_sd.items():
            if k.startswith("classifier."):
                continue
            if k == "features.0.0.weight" and cfg["in_channels"] != 3:
                n = cfg["in_channels"]
                v = torch.stack([v[:, i % 3] for i in range(n)], 1) * (3 / n)
            assert torch.equal(esd[k], v), k

    defaults = dict(arch["cases"].DEFAULTS)
    return cc.run_case(case, out_dir, defaults, build, grad_params(case["arch"]),
                       weights_file=TV_NAME + ".pth", check_encoder=check_encoder)


def prepare(out_dir):
    for name, want in (("mobilenet_v2", 2_223_872), ("resnext50_32x4d", 22_979_904)):
        torch.manual_seed(0)
        n = cc.count_trainable(em.get_encoder(name))
        print(f"{name} encoder trainable parameters: {n:,} ({'OK' if n == want else f'MISMATCH, expected {want:,}'})")
    return make_tv_weights(out_dir)


def main(argv):
    return cc.main(argv, __doc__, CASES, run_case, prepare=prepare, index_extra={"pth": TV_NAME + ".pth"})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
