"""A compact PyTorch re-implementation of segmentation_models.pytorch (smp) v0.5 `DeepLabV3` and
`DeepLabV3Plus` with a torchvision ResNet encoder: the oracle for panseg's DeepLab parity tests.

Neither smp nor torchvision is installed here (Debian PyTorch 1.13 only). The encoder and heads come
from pan_model.py (smp's ResNetEncoder with make_dilated, SegmentationHead, ClassificationHead); this
file adds smp's decoders/deeplabv3/{decoder,model}.py:

* the module tree and therefore every state_dict key and its order (decoder.aspp.convs.{0..4},
  decoder.aspp.project, decoder.conv/bn for DeepLabV3; decoder.aspp.{0,1,2}, decoder.block1,
  decoder.block2 for DeepLabV3Plus; SeparableConv2d = Sequential(depthwise, pointwise)),
* the construction order, and smp's *initialization*: neither class calls
  SegmentationModel.initialize() (checked in v0.4.0, v0.5.0 and master), so the decoder and both
  heads keep PyTorch's default init (Conv2d/Linear: kaiming_uniform(a=sqrt(5)) + uniform bias;
  BatchNorm 1/0), unlike every other smp architecture (xavier heads, kaiming decoders),
* the forward pass: ASPP's five branches concatenated, the pooling branch upsampled back from 1x1
  with bilinear align_corners=False, the 1x1 projection with nn.Dropout; DeepLabV3Plus upsamples
  the ASPP output with nn.Upsample(bilinear, align_corners=True) by 4 (output stride 16 and depth
  > 3) or 2, and fuses a 48-channel 1x1 projection of features[2] (the 1/4 feature).

Checked against smp v0.5.0 and master (0.5.1.dev0): decoder.py differs only in v0.5.0's
nn.UpsamplingBilinear2d(scale_factor) vs master's nn.Upsample(bilinear, align_corners=True), the
same computation; model.py only in docstrings and self.name.

smp's options reproduced (model.py):
* DeepLabV3: encoder_output_stride 8 (default) or 16; upsampling None (default) resolves to
  2**encoder_depth for depth <= 3, else encoder_output_stride (= the encoder's output stride in
  every case); decoder_atrous_rates (12, 24, 36), decoder_aspp_separable False,
  decoder_aspp_dropout 0.5, decoder_channels 256.
* DeepLabV3Plus: encoder_output_stride 16 (default) or 8; upsampling 4; decoder_aspp_separable True.
* smp's DeepLabV3.load_state_dict renames pre-0.4 keys decoder.{0,1,2}. -> decoder.{aspp,conv,bn}.
  (panseg does not: its checkpoints are 0.5's).
"""

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pan_model as pm  # noqa: E402


class SeparableConv2d(nn.Sequential):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        depthwise = nn.Conv2d(cin, cin, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=cin, bias=False)
        pointwise = nn.Conv2d(cin, cout, kernel_size=1, bias=bias)
        super().__init__(depthwise, pointwise)


class ASPPConv(nn.Sequential):
    def __init__(self, cin, cout, dilation):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class ASPPSeparableConv(nn.Sequential):
    def __init__(self, cin, cout, dilation):
        super().__init__(SeparableConv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class ASPPPooling(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, kernel_size=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x):
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin, cout, atrous_rates, separable, dropout):
        super().__init__()
        modules = [nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())]
        rate1, rate2, rate3 = tuple(atrous_rates)
        conv = ASPPSeparableConv if separable else ASPPConv
        modules.append(conv(cin, cout, rate1))
        modules.append(conv(cin, cout, rate2))
        modules.append(conv(cin, cout, rate3))
        modules.append(ASPPPooling(cin, cout))
        self.convs = nn.ModuleList(modules)
        self.project = nn.Sequential(nn.Conv2d(5 * cout, cout, kernel_size=1, bias=False),
                                     nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x):
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


class DeepLabV3Decoder(nn.Module):
    def __init__(self, cin, cout, atrous_rates, aspp_separable, aspp_dropout):
        super().__init__()
        self.aspp = ASPP(cin, cout, atrous_rates, separable=aspp_separable, dropout=aspp_dropout)
        self.conv = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, features):
        return self.relu(self.bn(self.conv(self.aspp(features[-1]))))


class DeepLabV3PlusDecoder(nn.Module):
    def __init__(self, encoder_channels, encoder_depth, cout, atrous_rates, output_stride,
                 aspp_separable, aspp_dropout):
        super().__init__()
        if encoder_depth < 3:
            raise ValueError(f"Encoder depth for DeepLabV3Plus decoder cannot be less than 3, got {encoder_depth}.")
        self.aspp = nn.Sequential(
            ASPP(encoder_channels[-1], cout, atrous_rates, separable=aspp_separable, dropout=aspp_dropout),
            SeparableConv2d(cout, cout, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )
        scale_factor = 4 if output_stride == 16 and encoder_depth > 3 else 2
        self.up = nn.Upsample(mode="bilinear", scale_factor=scale_factor, align_corners=True)
        highres_in, highres_out = encoder_channels[2], 48
        self.block1 = nn.Sequential(nn.Conv2d(highres_in, highres_out, kernel_size=1, bias=False),
                                    nn.BatchNorm2d(highres_out), nn.ReLU())
        self.block2 = nn.Sequential(
            SeparableConv2d(highres_out + cout, cout, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, features):
        aspp = self.up(self.aspp(features[-1]))
        high = self.block1(features[2])
        return self.block2(torch.cat([aspp, high], dim=1))


class DeepLabV3(pm.SegmentationModel):
    """smp.DeepLabV3(encoder_weights=None or a torchvision state dict)."""

    def __init__(self, encoder_name="resnet34", encoder_depth=5, encoder_output_stride=8,
                 decoder_channels=256, decoder_atrous_rates=(12, 24, 36), decoder_aspp_separable=False,
                 decoder_aspp_dropout=0.5, in_channels=3, classes=1, activation=None, upsampling=None,
                 aux_params=None, encoder_weights=None, patch_pretrained=True):
        super().__init__()
        if encoder_output_stride not in [8, 16]:
            raise ValueError(f"DeeplabV3 support output stride 8 or 16, got {encoder_output_stride}.")
        self.encoder = pm.get_encoder(encoder_name, in_channels=in_channels, depth=encoder_depth,
                                      output_stride=encoder_output_stride, weights=encoder_weights,
                                      patch_pretrained=patch_pretrained)
        if upsampling is None:
            scale_factor = 2 ** encoder_depth if encoder_depth <= 3 else encoder_output_stride
        else:
            scale_factor = upsampling
        self.decoder = DeepLabV3Decoder(self.encoder.out_channels[-1], decoder_channels,
                                        decoder_atrous_rates, decoder_aspp_separable, decoder_aspp_dropout)
        self.segmentation_head = pm.SegmentationHead(decoder_channels, classes, kernel_size=1,
                                                     activation=activation, upsampling=scale_factor)
        self.classification_head = (pm.ClassificationHead(self.encoder.out_channels[-1], **aux_params)
                                    if aux_params is not None else None)
        self.name = f"deeplabv3-{encoder_name}"
        # no self.initialize(): smp's DeepLabV3 keeps PyTorch's default init


class DeepLabV3Plus(pm.SegmentationModel):
    """smp.DeepLabV3Plus(encoder_weights=None or a torchvision state dict)."""

    def __init__(self, encoder_name="resnet34", encoder_depth=5, encoder_output_stride=16,
                 decoder_channels=256, decoder_atrous_rates=(12, 24, 36), decoder_aspp_separable=True,
                 decoder_aspp_dropout=0.5, in_channels=3, classes=1, activation=None, upsampling=4,
                 aux_params=None, encoder_weights=None, patch_pretrained=True):
        super().__init__()
        if encoder_output_stride not in [8, 16]:
            raise ValueError(f"DeeplabV3Plus support output stride 8 or 16, got {encoder_output_stride}.")
        self.encoder = pm.get_encoder(encoder_name, in_channels=in_channels, depth=encoder_depth,
                                      output_stride=encoder_output_stride, weights=encoder_weights,
                                      patch_pretrained=patch_pretrained)
        self.decoder = DeepLabV3PlusDecoder(self.encoder.out_channels, encoder_depth, decoder_channels,
                                            decoder_atrous_rates, encoder_output_stride,
                                            decoder_aspp_separable, decoder_aspp_dropout)
        self.segmentation_head = pm.SegmentationHead(decoder_channels, classes, kernel_size=1,
                                                     activation=activation, upsampling=upsampling)
        self.classification_head = (pm.ClassificationHead(self.encoder.out_channels[-1], **aux_params)
                                    if aux_params is not None else None)
        self.name = f"deeplabv3plus-{encoder_name}"
        # no self.initialize(): smp's DeepLabV3Plus keeps PyTorch's default init


if __name__ == "__main__":
    torch.manual_seed(0)
    for cls in (DeepLabV3, DeepLabV3Plus):
        m = cls("resnet34", classes=1)
        print(f"{cls.__name__}-resnet34 classes=1 trainable parameters: {pm.count_trainable(m):,}")
        print(m.eval()(torch.randn(1, 3, 64, 96)).shape)
