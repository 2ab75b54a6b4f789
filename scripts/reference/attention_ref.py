"""PAN attention fixtures: what PyTorch says PAN's attention is, for panseg's explain tests.

Run with Debian's PyTorch (the `python3` on PATH has no torch):

    /usr/bin/python3 scripts/reference/attention_ref.py <outDir>

The model is scripts/reference/pan_model.py (smp 0.5 `PAN`, same module tree and state_dict keys).
Nothing in pan_model is changed: the attention is read with forward hooks on the FPA and GAU
sub-modules, and the FPA map (the 1-channel tensor that multiplies `mid`) is rebuilt from the hooked
outputs of conv1, conv2 and down3 exactly as FPABlock.forward combines them. As a self-check, the
rebuilt `attention * mid + global` must equal the hooked FPA output.

Cases (float32, CPU, torch.set_num_threads(2), batch 1):
  name          encoder   depth OS C   interp   classes image (H x W)  bottleneck
  r18_d5        resnet18  5     16 32  bilinear 3       128 x 160      8 x 10
  r18_d4_c16    resnet18  4     16 16  nearest  2       128 x 128      8 x 8

Per case: torch.manual_seed(seed); build PAN; perturb every BatchNorm2d so eval is not trivial
(weight 1 + 0.1 randn, bias 0.1 randn, running stats = batch stats of one calibration forward on
4 normalized random uint8 images (momentum 1), then running_var *= U(0.8, 1.2) (>= 0.05), running_mean += 0.1 randn sqrt(var));
save the state dict; image = uint8 randint [H, W, 3]; input = ImageNet-normalized image, computed as
panseg does ((u * (1/255)) in float32, then (v - mean) * (1/std) in float64, stored float32);
model.eval() forward under no_grad with hooks.

Files in <outDir>/<case>/:
  config.json        smp kwargs + seed + image [H, W]
  model.safetensors  the state dict
  io.safetensors     image            U8  [H, W, 3]
                     input            F32 [1, 3, H, W]
                     logits           F32 [1, classes, H, W]
                     fpa.attention    F32 [1, 1, h, w]     the map multiplied with mid (h, w: bottleneck)
                     fpa.conv1        F32 [1, 1, h/2, w/2] conv1(x1)
                     fpa.conv2        F32 [1, 1, h/4, w/4] conv2(x2)
                     fpa.down3        F32 [1, 1, h/4, w/4] down3(x2) upsampled to (h//4, w//4)
                     fpa.global       F32 [C]              branch1 output (before broadcasting)
                     fpa.mid_norm     F32 [h, w]           L2 norm over channels of mid(x)
                     fpa.global_share F32 []               |global| / (mean_px |attention * mid| + |global|)
                     fpa.out          F32 [1, C, h, w]     FPA output
                     <gau>.weights    F32 [1, C, 1, 1]     sigmoid output of gau.conv1
                     <gau>.low_mean   F32 [C]              mean |conv2(x)| per channel
                     <gau>.gated_mean F32 [C]              mean |conv2(x) * weights| per channel
                     <gau>.up_mean    F32 [C]              mean |interpolate(y)| per channel
                     <gau>.context    F32 []               L2 norm of mean_hw(y)
<outDir>/index.json: {"cases": [...], "torch_version": str}
"""

import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pan_model as pm  # noqa: E402
import st  # noqa: E402

DEFAULTS = dict(encoder_name="resnet34", encoder_depth=5, encoder_output_stride=16,
                decoder_channels=32, decoder_interpolation="bilinear", in_channels=3,
                classes=1, activation=None, upsampling=4, aux_params=None)

CASES = [
    dict(name="r18_d5", seed=11, image=[128, 160], cfg=dict(encoder_name="resnet18", classes=3)),
    dict(name="r18_d4_c16", seed=12, image=[128, 128],
         cfg=dict(encoder_name="resnet18", encoder_depth=4, decoder_channels=16,
                  decoder_interpolation="nearest", classes=2)),
]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@torch.no_grad()
def perturb_bn(model, calib):
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.weight.copy_(1 + 0.1 * torch.randn(m.num_features))
        m.bias.copy_(0.1 * torch.randn(m.num_features))
    model.eval()
    for m in bns:
        m.momentum = 1.0
        m.train()
    model(calib)
    for m in bns:
        n = m.num_features
        m.momentum = 0.1
        m.running_var.mul_(0.8 + 0.4 * torch.rand(n)).clamp_(min=0.05)
        m.running_mean.add_(0.1 * torch.randn(n) * m.running_var.sqrt())
    model.eval()


def normalize(img):
    v = (img.permute(2, 0, 1).double() * (1.0 / 255)).float().double()
    mean = torch.tensor(MEAN, dtype=torch.float64).view(3, 1, 1)
    inv = 1.0 / torch.tensor(STD, dtype=torch.float64).view(3, 1, 1)
    return ((v - mean) * inv).float().unsqueeze(0)


def run_case(case, out_dir):
    cfg = dict(DEFAULTS, **case["cfg"])
    d = os.path.join(out_dir, case["name"])
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(case["seed"])
    model = pm.PAN(**cfg)
    h, w = case["image"]
    # Calibrate on images like the test image, so that the GAU gates (BN over 1x1 pooled maps) stay
    # in the sigmoid's working range instead of saturating to exactly 0 or 1 in float32.
    perturb_bn(model, torch.cat([normalize(torch.randint(0, 256, (h, w, 3), dtype=torch.uint8)) for _ in range(4)]))
    st.save(os.path.join(d, "model.safetensors"), model.state_dict())
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(cfg, seed=case["seed"], image=[h, w]), f, indent=1)

    img = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8)
    x = normalize(img)

    got = {}

    def hook(name):
        def fn(_m, inputs, output):
            got[name] = output.detach().clone()
            got[name + ".in"] = tuple(i.detach().clone() for i in inputs)
        return fn

    fpa = model.decoder.fpa
    for n in ("branch1", "mid", "down1", "down2", "down3", "conv1", "conv2"):
        getattr(fpa, n).register_forward_hook(hook("fpa." + n))
    fpa.register_forward_hook(hook("fpa"))
    gaus = [n for n, _ in model.decoder.gaus]
    for g in gaus:
        blk = getattr(model.decoder, g)
        blk.register_forward_hook(hook(g))
        blk.conv1.register_forward_hook(hook(g + ".conv1"))
        blk.conv2.register_forward_hook(hook(g + ".conv2"))

    with torch.no_grad():
        logits = model(x)

        # The FPA map, combined from the hooked pieces exactly as FPABlock.forward does.
        bh, bw = got["fpa.in"][0].shape[2:]
        up = lambda t, size: F.interpolate(t, size=size, mode="bilinear", align_corners=True)  # noqa: E731
        x3 = up(got["fpa.down3"], (bh // 4, bw // 4))
        y = up(got["fpa.conv2"] + x3, (bh // 2, bw // 2))
        y = up(y + got["fpa.conv1"], (bh, bw))
        b1 = got["fpa.branch1"]
        mid = got["fpa.mid"]
        rebuilt = y * mid + up(b1, (bh, bw))
        diff = (rebuilt - got["fpa"]).abs().max().item()
        assert diff <= 1e-5, f"{case['name']}: rebuilt FPA output differs from the hooked one by {diff}"
        g_norm = b1[0, :, 0, 0].norm()
        attended = (y * mid)[0].norm(dim=0).mean()

        io = {
            "image": img, "input": x, "logits": logits,
            "fpa.attention": y, "fpa.conv1": got["fpa.conv1"], "fpa.conv2": got["fpa.conv2"], "fpa.down3": x3,
            "fpa.global": b1[0, :, 0, 0].contiguous(), "fpa.mid_norm": mid[0].norm(dim=0),
            "fpa.global_share": (g_norm / (g_norm + attended)).reshape(()), "fpa.out": got["fpa"],
        }
        for g in gaus:
            blk = getattr(model.decoder, g)
            xin, yin = got[g + ".in"]
            wts = got[g + ".conv1"]
            assert wts.shape[2:] == (1, 1) and wts.min() > 0 and wts.max() < 1
            low = got[g + ".conv2"]
            y_up = F.interpolate(yin, size=xin.shape[2:], mode=blk.interpolation_mode, align_corners=blk.align_corners)
            diff = (y_up + low * wts - got[g]).abs().max().item()
            assert diff <= 1e-5, f"{case['name']}: rebuilt {g} output differs by {diff}"
            io[g + ".weights"] = wts
            io[g + ".low_mean"] = low[0].abs().mean(dim=(1, 2))
            io[g + ".gated_mean"] = (low * wts)[0].abs().mean(dim=(1, 2))
            io[g + ".up_mean"] = y_up[0].abs().mean(dim=(1, 2))
            io[g + ".context"] = yin[0].mean(dim=(1, 2)).norm().reshape(())
    io = {k: v.contiguous() for k, v in io.items()}
    st.save(os.path.join(d, "io.safetensors"), io, metadata={"case": case["name"], "torch_version": torch.__version__})
    print(f"{case['name']}: bottleneck {bh}x{bw}, gaus {gaus}, attention in [{y.min().item():.3g}, {y.max().item():.3g}]")


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    out_dir = argv[1]
    torch.set_num_threads(2)
    os.makedirs(out_dir, exist_ok=True)
    for case in CASES:
        run_case(case, out_dir)
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump({"cases": [c["name"] for c in CASES], "torch_version": torch.__version__}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
