"""smp's encoders beyond ResNet, re-implemented for panseg's parity tests: torchvision's MobileNetV2
as smp's `MobileNetV2Encoder`, and torchvision's ResNeXts as smp's `ResNetEncoder` with grouped
bottlenecks. The ResNets themselves stay in pan_model.py.

Neither smp nor torchvision is installed here (Debian PyTorch 1.13 only), so this file rebuilds what
they construct: the module tree (state_dict keys and order), the construction and initialisation
order (for the same torch.manual_seed, the encoder's state_dict equals smp's `get_encoder(name)`),
and the forward pass. Checked against smp master (0.5.1.dev0) encoders/{mobilenet,resnet,_base,
_utils,__init__}.py and torchvision 0.14+ models/{mobilenetv2,resnet}.py, ops/misc.py
(Conv2dNormActivation).

smp behaviours reproduced:
* MobileNetV2Encoder returns features after features[1, 3, 6, 13, 18] (channels 16, 24, 32, 96,
  1280); its forward runs the modules until it has *more* features than its depth, so at depth 3
  features[7..13] run too (their BatchNorm running statistics move in train mode), and at depth 4
  all of them;
* get_stages: {16: features[7:14], 32: features[14:]}; make_dilated makes every conv of those
  stride 1 with dilation 2 (16) or 2 and 4 (8), padding (k // 2) * dilation. InvertedResidual's
  use_res_connect is fixed at construction, so the first block of a dilated stage stays without its
  residual;
* ResNeXt: torchvision's Bottleneck with width = int(planes * width_per_group / 64) * groups on
  conv1/conv2/conv3 and groups on the 3x3 conv2; everything else is the ResNet encoder's;
* get_encoder order: build -> load weights -> set_in_channels (patch_first_conv: the first Conv2d
  with 3 input channels) -> make_dilated.

`use_in_architectures()` points pan_model.get_encoder (which every architecture reference calls)
at this module's get_encoder, which builds every family; pan_model.py itself is unchanged, so the
ResNet fixtures of the other generators are unaffected.
"""

import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pan_model as pm  # noqa: E402

_resnet_get_encoder = pm.get_encoder


EncoderMixin = pm.EncoderMixin


# --------------------------------------------------------------------------------------
# torchvision MobileNetV2 (width_mult 1: every channel count is already a multiple of 8, so
# _make_divisible is the identity and is left out)
# --------------------------------------------------------------------------------------


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.misc.Conv2dNormActivation with BatchNorm2d and ReLU6 (keys .0 conv, .1 bn)."""

    def __init__(self, cin, cout, kernel_size=3, stride=1, groups=1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, padding, dilation=1, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        self.stride = stride
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, kernel_size=1))
        layers.extend([
            Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ])
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


# t (expansion), c (channels), n (blocks), s (stride of the first block)
MOBILENET_V2_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                        [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]


class TorchvisionMobileNetV2(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.2):
        super().__init__()
        input_channel, last_channel = 32, 1280
        features = [Conv2dNormActivation(3, input_channel, stride=2)]
        for t, c, n, s in MOBILENET_V2_SETTING:
            for i in range(n):
                features.append(InvertedResidual(input_channel, c, s if i == 0 else 1, expand_ratio=t))
                input_channel = c
        features.append(Conv2dNormActivation(input_channel, last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


class MobileNetV2Encoder(TorchvisionMobileNetV2, EncoderMixin):
    """smp encoders/mobilenet.py::MobileNetV2Encoder."""

    def __init__(self, out_channels, depth=5, output_stride=32):
        if depth > 5 or depth < 1:
            raise ValueError(f"MobileNetV2Encoder depth should be in range [1, 5], got {depth}")
        super().__init__()
        self._depth = depth
        self._in_channels = 3
        self._out_channels = list(out_channels)
        self._output_stride = output_stride
        self._out_indexes = [1, 3, 6, 13, len(self.features) - 1]
        del self.classifier

    def get_stages(self):
        return {16: [self.features[7:14]], 32: [self.features[14:]]}

    def forward(self, x):
        features = [x]
        depth = 0
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self._out_indexes:
                features.append(x)
                depth += 1
            if depth > self._depth:
                break
        return features[: self._depth + 1]

    def load_state_dict(self, state_dict, **kwargs):
        state_dict = dict(state_dict)
        state_dict.pop("classifier.1.bias", None)
        state_dict.pop("classifier.1.weight", None)
        return super().load_state_dict(state_dict, **kwargs)


# --------------------------------------------------------------------------------------
# torchvision ResNeXt: Bottleneck with groups and width_per_group
# --------------------------------------------------------------------------------------


def resnext_bottleneck(groups, width_per_group):
    class ResNeXtBottleneck(pm.Bottleneck):
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            nn.Module.__init__(self)
            width = int(planes * (width_per_group / 64.0)) * groups
            self.conv1 = pm._conv1x1(inplanes, width)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = pm._conv3x3(width, width, stride, groups)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = pm._conv1x1(width, planes * self.expansion)
            self.bn3 = nn.BatchNorm2d(planes * self.expansion)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample
            self.stride = stride

    return ResNeXtBottleneck


WIDE = [3, 64, 256, 512, 1024, 2048]
RESNEXTS = {
    "resnext50_32x4d": dict(block=resnext_bottleneck(32, 4), layers=[3, 4, 6, 3], out_channels=WIDE),
    "resnext101_32x4d": dict(block=resnext_bottleneck(32, 4), layers=[3, 4, 23, 3], out_channels=WIDE),
    "resnext101_32x8d": dict(block=resnext_bottleneck(32, 8), layers=[3, 4, 23, 3], out_channels=WIDE),
}
MOBILENETS = {"mobilenet_v2": dict(out_channels=[3, 16, 24, 32, 96, 1280])}


def torchvision_model(name):
    """The ImageNet classifier whose state_dict is the torchvision checkpoint layout (fc.* / classifier.*)."""
    if name in RESNEXTS:
        return pm.TorchvisionResNet(RESNEXTS[name]["block"], RESNEXTS[name]["layers"])
    if name in MOBILENETS:
        return TorchvisionMobileNetV2()
    return pm.torchvision_resnet(name)


def get_encoder(name, in_channels=3, depth=5, output_stride=32, weights=None, patch_pretrained=True):
    """smp encoders/__init__.py::get_encoder for every family here (ResNets: pan_model's)."""
    if name in pm.RESNETS:
        return _resnet_get_encoder(name, in_channels=in_channels, depth=depth, output_stride=output_stride,
                                   weights=weights, patch_pretrained=patch_pretrained)
    if name in RESNEXTS:
        p = RESNEXTS[name]
        enc = pm.ResNetEncoder(p["out_channels"], p["block"], p["layers"], depth=depth, output_stride=output_stride)
    elif name in MOBILENETS:
        enc = MobileNetV2Encoder(MOBILENETS[name]["out_channels"], depth=depth, output_stride=output_stride)
    else:
        raise KeyError(f"Wrong encoder name `{name}`, supported encoders: "
                       f"{list(pm.RESNETS) + list(RESNEXTS) + list(MOBILENETS)}")
    if weights is not None:
        enc.load_state_dict(weights)
    enc.set_in_channels(in_channels, pretrained=patch_pretrained)
    if output_stride != 32:
        enc.make_dilated(output_stride)
    return enc


def use_in_architectures():
    """Makes every architecture reference (they call pan_model.get_encoder) build these encoders too."""
    pm.get_encoder = get_encoder


def describe(out_dir, names=("mobilenet_v2", "resnext50_32x4d", "resnext101_32x4d", "resnext101_32x8d"),
             forward=("mobilenet_v2", "resnext50_32x4d")):
    """Writes <out_dir>/encoders.json: per encoder (seed 0, random weights) its out_channels, trainable
    parameter count, state_dict keys and shapes in order, and per output stride 32/16/8 every conv's
    [stride, padding, dilation] and, for the encoders in `forward`, the eval-mode feature shapes of a
    2x3x64x64 input. Output strides 16 and 8 are applied in turn to one encoder (make_dilated sets
    absolute values, so 16 then 8 equals 8 alone)."""
    import json
    out = {}
    for name in names:
        torch.manual_seed(0)
        enc = get_encoder(name).eval()
        info = dict(out_channels=enc.out_channels, trainable=pm.count_trainable(enc),
                    keys=[[k, list(v.shape)] for k, v in enc.state_dict().items()], strides={})
        for os_ in (32, 16, 8):
            if os_ != 32:
                enc._output_stride = os_
                enc.make_dilated(os_)
            convs = {n: [list(m.stride), list(m.padding), list(m.dilation)]
                     for n, m in enc.named_modules() if isinstance(m, nn.Conv2d)}
            entry = dict(convs=convs)
            if name in forward:
                with torch.no_grad():
                    entry["features"] = [list(f.shape) for f in enc(torch.randn(2, 3, 64, 64))]
            info["strides"][str(os_)] = entry
        out[name] = info
        print(f"{name}: {info['trainable']:,} parameters, out_channels {info['out_channels']}")
    with open(os.path.join(out_dir, "encoders.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: encoders_model.py <outDir>  (writes encoders.json, see describe())")
        sys.exit(2)
    torch.set_num_threads(2)
    describe(sys.argv[1])
