"""A compact PyTorch re-implementation of segmentation_models.pytorch (smp) v0.5 `PAN`
with a torchvision ResNet encoder, used as the oracle for panseg's parity tests.

Neither smp nor torchvision is installed here (Debian PyTorch 1.13 only), so this file
rebuilds exactly what they construct:

* the module tree and therefore every state_dict key and its order,
* the order in which modules are created and initialised, so that, for the same
  torch.manual_seed and in_channels=3, this model's state_dict equals smp's
  `PAN(encoder_weights=None, ...)`,
* the forward pass (interpolation modes, align_corners, in-place ReLUs, ...).

Checked against smp master (0.5.1.dev0): decoders/pan/{decoder,model}.py,
encoders/{resnet,_base,_utils,__init__}.py, base/{model,heads,modules,initialization}.py,
and torchvision/models/resnet.py.

Deviations / choices (all documented in pan_cases.py too):
* `encoder_output_stride=8` is accepted only with `strict_smp=False` (smp's PAN raises
  ValueError("PAN support output stride 16 or 32, got 8")); the encoder side then does
  exactly smp's make_dilated(8).
* in_channels != 3 follows smp's *pretrained* branch of patch_first_conv (the existing
  conv1 weight is patched) unless `patch_pretrained=False`, which follows smp's
  random-weights branch (conv1.reset_parameters()).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------------------
# torchvision ResNet (v1.5: the stride sits on the 3x3 conv of Bottleneck)
# --------------------------------------------------------------------------------------


def _conv3x3(cin, cout, stride=1, groups=1, dilation=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, groups=groups,
                     bias=False, dilation=dilation)


def _conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        # attribute order == registration order == state_dict order
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        width = planes  # groups=1, base_width=64
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TorchvisionResNet(nn.Module):
    """torchvision.models.resnet.ResNet (groups=1, width 64, no dilation, BatchNorm2d)."""

    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        # torchvision init (zero_init_residual=False); fc keeps nn.Linear's default init
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        mods = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            mods.append(block(self.inplanes, planes))
        return nn.Sequential(*mods)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


RESNETS = {
    "resnet18": dict(block=BasicBlock, layers=[2, 2, 2, 2], out_channels=[3, 64, 64, 128, 256, 512]),
    "resnet34": dict(block=BasicBlock, layers=[3, 4, 6, 3], out_channels=[3, 64, 64, 128, 256, 512]),
    "resnet50": dict(block=Bottleneck, layers=[3, 4, 6, 3], out_channels=[3, 64, 256, 512, 1024, 2048]),
    "resnet101": dict(block=Bottleneck, layers=[3, 4, 23, 3], out_channels=[3, 64, 256, 512, 1024, 2048]),
    "resnet152": dict(block=Bottleneck, layers=[3, 8, 36, 3], out_channels=[3, 64, 256, 512, 1024, 2048]),
}


def torchvision_resnet(name, num_classes=1000):
    p = RESNETS[name]
    return TorchvisionResNet(p["block"], p["layers"], num_classes)


# --------------------------------------------------------------------------------------
# smp encoder utilities (encoders/_utils.py, encoders/_base.py)
# --------------------------------------------------------------------------------------


def patch_first_conv(model, new_in_channels, default_in_channels=3, pretrained=True):
    """smp encoders/_utils.py::patch_first_conv.

    pretrained=True (smp's path when encoder weights were loaded):
      new_in_channels == 1: w' = w.sum(dim=1, keepdim=True)
      otherwise:            w'[:, i] = w[:, i % 3] for i < n, then w' *= 3 / n
    pretrained=False (smp's path for encoder_weights=None): conv.reset_parameters()
      (nn.Conv2d default init, kaiming_uniform a=sqrt(5)) on the new shape.
    The first Conv2d whose in_channels == 3 (in modules() order) is patched.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == default_in_channels:
            break
    weight = module.weight.detach()
    module.in_channels = new_in_channels
    if not pretrained:
        module.weight = nn.Parameter(torch.empty(
            module.out_channels, new_in_channels // module.groups, *module.kernel_size))
        module.reset_parameters()
    elif new_in_channels == 1:
        module.weight = nn.Parameter(weight.sum(1, keepdim=True))
    else:
        new_weight = torch.empty(
            module.out_channels, new_in_channels // module.groups, *module.kernel_size)
        for i in range(new_in_channels):
            new_weight[:, i] = weight[:, i % default_in_channels]
        new_weight = new_weight * (default_in_channels / new_in_channels)
        module.weight = nn.Parameter(new_weight)


def replace_strides_with_dilation(module, rate):
    """smp encoders/_utils.py: EVERY Conv2d inside `module` (incl. the 1x1 downsample)
    gets stride 1, dilation `rate`, padding (k//2)*rate (so 0 for 1x1 convs)."""
    for mod in module.modules():
        if isinstance(mod, nn.Conv2d):
            mod.stride = (1, 1)
            mod.dilation = (rate, rate)
            kh, kw = mod.kernel_size
            # smp uses kh for both sides; all ResNet convs are square anyway
            mod.padding = ((kh // 2) * rate, (kh // 2) * rate)


class EncoderMixin:
    """smp encoders/_base.py::EncoderMixin (out_channels, output_stride, set_in_channels, make_dilated)."""

    @property
    def out_channels(self):
        return self._out_channels[: self._depth + 1]

    @property
    def output_stride(self):
        return min(self._output_stride, 2 ** self._depth)

    def set_in_channels(self, in_channels, pretrained=True):
        if in_channels == 3:
            return
        self._in_channels = in_channels
        if self._out_channels[0] == 3:
            self._out_channels = [in_channels] + self._out_channels[1:]
        patch_first_conv(self, in_channels, pretrained=pretrained)

    def make_dilated(self, output_stride):
        if output_stride not in [8, 16]:
            raise ValueError(f"Output stride should be 16 or 8, got {output_stride}.")
        for stage_stride, modules in self.get_stages().items():
            if stage_stride <= output_stride:
                continue
            for m in modules:
                replace_strides_with_dilation(m, stage_stride // output_stride)


class ResNetEncoder(TorchvisionResNet, EncoderMixin):
    """smp encoders/resnet.py::ResNetEncoder (a torchvision ResNet minus fc/avgpool)."""

    def __init__(self, out_channels, block, layers, depth=5, output_stride=32):
        if depth > 5 or depth < 1:
            raise ValueError(f"ResNetEncoder depth should be in range [1, 5], got {depth}")
        super().__init__(block, layers)
        self._depth = depth
        self._in_channels = 3
        self._out_channels = list(out_channels)
        self._output_stride = output_stride
        del self.fc
        del self.avgpool

    def get_stages(self):
        # OS16: layer4 dilation 2.  OS8: layer3 dilation 2, layer4 dilation 4.
        return {16: [self.layer3], 32: [self.layer4]}

    def forward(self, x):
        features = [x]
        if self._depth >= 1:
            x = self.relu(self.bn1(self.conv1(x)))
            features.append(x)
        if self._depth >= 2:
            x = self.layer1(self.maxpool(x))
            features.append(x)
        if self._depth >= 3:
            x = self.layer2(x)
            features.append(x)
        if self._depth >= 4:
            x = self.layer3(x)
            features.append(x)
        if self._depth >= 5:
            x = self.layer4(x)
            features.append(x)
        return features

    def load_state_dict(self, state_dict, **kwargs):
        state_dict = dict(state_dict)
        state_dict.pop("fc.bias", None)
        state_dict.pop("fc.weight", None)
        return super().load_state_dict(state_dict, **kwargs)


def get_encoder(name, in_channels=3, depth=5, output_stride=32, weights=None,
                patch_pretrained=True):
    """smp encoders/__init__.py::get_encoder for ResNets.

    weights: None, or a torchvision-format state dict (fc.* allowed) to load (strict).
    Order as in smp: build -> load weights -> set_in_channels -> make_dilated.
    patch_pretrained: which patch_first_conv branch to use for in_channels != 3; smp uses
    `weights is not None`; our reference defaults to the pretrained (patching) branch.
    """
    if name not in RESNETS:
        raise KeyError(f"Wrong encoder name `{name}`, supported encoders: {list(RESNETS)}")
    p = RESNETS[name]
    enc = ResNetEncoder(p["out_channels"], p["block"], p["layers"], depth=depth,
                        output_stride=output_stride)
    if weights is not None:
        enc.load_state_dict(weights)
    enc.set_in_channels(in_channels, pretrained=patch_pretrained)
    if output_stride != 32:
        enc.make_dilated(output_stride)
    return enc


# --------------------------------------------------------------------------------------
# PAN decoder (decoders/pan/decoder.py)
# --------------------------------------------------------------------------------------


class ConvBnRelu(nn.Module):
    """Conv2d(bias=True) -> BN -> optional ReLU. Registration order conv, activation, bn
    (as smp), so keys are `.conv.weight, .conv.bias, .bn.*`."""

    def __init__(self, cin, cout, kernel_size, padding=0, add_relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=1, padding=padding, bias=True)
        self.activation = nn.ReLU(inplace=True)
        self.bn = nn.BatchNorm2d(cout)
        self.add_relu = add_relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.add_relu:
            x = self.activation(x)
        return x


class FPABlock(nn.Module):
    """Feature Pyramid Attention. NB: smp's PANDecoder does NOT pass the decoder
    interpolation mode here, so FPA always upsamples bilinearly with align_corners=True."""

    def __init__(self, cin, cout, upscale_mode="bilinear"):
        super().__init__()
        self.upscale_mode = upscale_mode
        self.align_corners = True if upscale_mode == "bilinear" else False
        self.branch1 = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBnRelu(cin, cout, 1))
        self.mid = nn.Sequential(ConvBnRelu(cin, cout, 1))
        self.down1 = nn.Sequential(nn.MaxPool2d(2, 2), ConvBnRelu(cin, 1, 7, padding=3))
        self.down2 = nn.Sequential(nn.MaxPool2d(2, 2), ConvBnRelu(1, 1, 5, padding=2))
        self.down3 = nn.Sequential(nn.MaxPool2d(2, 2), ConvBnRelu(1, 1, 3, padding=1),
                                   ConvBnRelu(1, 1, 3, padding=1))
        self.conv2 = ConvBnRelu(1, 1, 5, padding=2)
        self.conv1 = ConvBnRelu(1, 1, 7, padding=3)

    def _up(self, x, size):
        return F.interpolate(x, size=size, mode=self.upscale_mode, align_corners=self.align_corners)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        b1 = self._up(self.branch1(x), (h, w))
        m = self.mid(x)
        x1 = self.down1(x)
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        x3 = self._up(x3, (h // 4, w // 4))
        y = self.conv2(x2) + x3
        y = self._up(y, (h // 2, w // 2))
        y = y + self.conv1(x1)
        y = self._up(y, (h, w))
        return y * m + b1


class GAUBlock(nn.Module):
    def __init__(self, cin, cout, interpolation_mode="bilinear"):
        super().__init__()
        self.interpolation_mode = interpolation_mode
        self.align_corners = True if interpolation_mode == "bilinear" else None
        self.conv1 = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                   ConvBnRelu(cout, cout, 1, add_relu=False),
                                   nn.Sigmoid())
        self.conv2 = ConvBnRelu(cin, cout, 3, padding=1)

    def forward(self, x, y):
        """x: low-level feature, y: high-level feature."""
        y_up = F.interpolate(y, size=x.shape[2:], mode=self.interpolation_mode,
                             align_corners=self.align_corners)
        return y_up + self.conv2(x) * self.conv1(y)


class PANDecoder(nn.Module):
    def __init__(self, encoder_channels, encoder_depth, decoder_channels,
                 interpolation_mode="bilinear"):
        super().__init__()
        if encoder_depth < 3:
            raise ValueError(
                f"Encoder depth for PAN decoder cannot be less than 3, got {encoder_depth}.")
        ch = list(encoder_channels)[2:]
        self.fpa = FPABlock(ch[-1], decoder_channels)  # always bilinear (see FPABlock)
        self.gaus = []  # names of the GAUs in forward order (explicit, no hasattr)
        if encoder_depth == 5:
            self.gau3 = GAUBlock(ch[2], decoder_channels, interpolation_mode)
            self.gaus.append(("gau3", 2))
        if encoder_depth >= 4:
            self.gau2 = GAUBlock(ch[1], decoder_channels, interpolation_mode)
            self.gaus.append(("gau2", 1))
        self.gau1 = GAUBlock(ch[0], decoder_channels, interpolation_mode)
        self.gaus.append(("gau1", 0))

    def forward(self, features):
        features = features[2:]
        out = self.fpa(features[-1])
        for name, idx in self.gaus:
            out = getattr(self, name)(features[idx], out)
        return out


# --------------------------------------------------------------------------------------
# heads, init, model (base/heads.py, base/modules.py, base/initialization.py, base/model.py)
# --------------------------------------------------------------------------------------


class Activation(nn.Module):
    def __init__(self, name):
        super().__init__()
        if name is None or name == "identity":
            self.activation = nn.Identity()
        elif name == "sigmoid":
            self.activation = nn.Sigmoid()
        elif name == "softmax2d":
            self.activation = nn.Softmax(dim=1)
        elif name == "softmax":
            self.activation = nn.Softmax()  # implicit dim: 1 for 2-D/4-D input
        elif name == "logsoftmax":
            self.activation = nn.LogSoftmax()
        elif name == "tanh":
            self.activation = nn.Tanh()
        else:
            raise ValueError(f"unsupported activation {name!r}")

    def forward(self, x):
        return self.activation(x)


class SegmentationHead(nn.Sequential):
    def __init__(self, cin, cout, kernel_size=3, activation=None, upsampling=1):
        conv = nn.Conv2d(cin, cout, kernel_size=kernel_size, padding=kernel_size // 2)
        up = (nn.Upsample(mode="bilinear", scale_factor=upsampling, align_corners=True)
              if upsampling > 1 else nn.Identity())
        super().__init__(conv, up, Activation(activation))


class ClassificationHead(nn.Sequential):
    def __init__(self, cin, classes, pooling="avg", dropout=0.2, activation=None):
        if pooling not in ("max", "avg"):
            raise ValueError(f"Pooling should be one of ('max', 'avg'), got {pooling}.")
        pool = nn.AdaptiveAvgPool2d(1) if pooling == "avg" else nn.AdaptiveMaxPool2d(1)
        drop = nn.Dropout(p=dropout, inplace=True) if dropout else nn.Identity()
        super().__init__(pool, nn.Flatten(), drop, nn.Linear(cin, classes, bias=True),
                         Activation(activation))


def initialize_decoder(module):
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):  # GroupNorm (FPN): its defaults, no random draws
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)


def initialize_head(module):
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)


class SegmentationModel(nn.Module):
    """smp's base/model.py: encoder -> decoder -> segmentation head (+ classification head)."""

    requires_divisible_input_shape = True

    def initialize(self):
        initialize_decoder(self.decoder)
        initialize_head(self.segmentation_head)
        if self.classification_head is not None:
            initialize_head(self.classification_head)

    def check_input_shape(self, x):
        h, w = x.shape[-2:]
        s = self.encoder.output_stride
        if h % s or w % s:
            raise RuntimeError(f"Wrong input shape height={h}, width={w}. Expected image height "
                               f"and width divisible by {s}.")

    def forward(self, x):
        if self.requires_divisible_input_shape:
            self.check_input_shape(x)
        features = self.encoder(x)
        masks = self.segmentation_head(self.decoder(features))
        if self.classification_head is not None:
            return masks, self.classification_head(features[-1])
        return masks


class PAN(SegmentationModel):
    """smp.PAN(encoder_weights=None or a torchvision state dict)."""

    def __init__(self, encoder_name="resnet34", encoder_depth=5, encoder_output_stride=16,
                 decoder_channels=32, decoder_interpolation="bilinear", in_channels=3,
                 classes=1, activation=None, upsampling=4, aux_params=None,
                 encoder_weights=None, patch_pretrained=True, strict_smp=True):
        super().__init__()
        allowed = [16, 32] if strict_smp else [8, 16, 32]
        if encoder_output_stride not in allowed:
            raise ValueError(f"PAN support output stride 16 or 32, got {encoder_output_stride}")
        self.encoder = get_encoder(encoder_name, in_channels=in_channels, depth=encoder_depth,
                                   output_stride=encoder_output_stride, weights=encoder_weights,
                                   patch_pretrained=patch_pretrained)
        self.decoder = PANDecoder(self.encoder.out_channels, encoder_depth, decoder_channels,
                                  decoder_interpolation)
        self.segmentation_head = SegmentationHead(decoder_channels, classes, kernel_size=3,
                                                  activation=activation, upsampling=upsampling)
        if aux_params is not None:
            self.classification_head = ClassificationHead(self.encoder.out_channels[-1],
                                                          **aux_params)
        else:
            self.classification_head = None
        self.name = f"pan-{encoder_name}"
        self.initialize()


def count_trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":
    torch.manual_seed(0)
    m = PAN("resnet34", classes=1)
    n = count_trainable(m)
    print(f"PAN-resnet34 classes=1 trainable parameters: {n:,}")
    assert n == 21_475_816, n
