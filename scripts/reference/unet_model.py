"""A compact PyTorch re-implementation of segmentation_models.pytorch (smp) v0.5 `Unet` with a
torchvision ResNet encoder, used as the oracle for panseg's Unet parity tests.

The encoder, heads and initializers come from pan_model.py (smp's ResNetEncoder, SegmentationHead,
ClassificationHead, initialize_decoder/initialize_head); this file adds smp's Unet decoder and
base/modules.py pieces (Conv2dReLU, SCSEModule, Attention) with the same module tree (state_dict
keys and order), creation order (so seeded weights equal smp's) and forward.

Checked against smp v0.5.0 and master (0.5.1.dev0; decoders/unet and base/modules.py are the same
in both): decoders/unet/{decoder,model}.py, base/{model,modules,heads,initialization}.py.
The behaviour reproduced is smp >= 0.5.0's ("Enable any resolution for Unet", smp PR #1029):
* each decoder block resamples to the spatial size of the next skip (or of the input for the last
  block) with F.interpolate(size=..., mode=decoder_interpolation) and no align_corners argument;
  smp <= 0.4 used scale_factor=2 with nearest only, which differs for sizes not divisible by 2**depth;
* `requires_divisible_input_shape = False`: any input size is accepted (no check_input_shape);
* decoder_use_norm (0.5's replacement for decoder_use_batchnorm): True/"batchnorm" -> BatchNorm2d,
  False/"identity" -> Identity (and the conv gets a bias). smp's "layernorm", "instancenorm",
  "inplace" and dict forms are not reproduced (panseg refuses them);
* the center block exists only for vgg encoders (add_center_block = encoder_name.startswith("vgg")),
  so for ResNets decoder.center is an Identity and holds no keys.

Choices shared with pan_model.py: in_channels != 3 patches conv1 with smp's *pretrained* branch of
patch_first_conv unless patch_pretrained=False; encoder_weights is None or a torchvision state dict.
"""

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pan_model as pm  # noqa: E402

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "nearest-exact")


def norm_layer(use_norm, out_channels):
    """smp base/modules.py::get_norm_layer, for the forms panseg supports."""
    if use_norm is True or (isinstance(use_norm, str) and use_norm.lower() == "batchnorm"):
        return nn.BatchNorm2d(out_channels)
    if use_norm is False or (isinstance(use_norm, str) and use_norm.lower() == "identity"):
        return nn.Identity()
    raise ValueError(f"use_norm {use_norm!r} is not reproduced here (True/False/'batchnorm'/'identity')")


class Conv2dReLU(nn.Sequential):
    """smp Conv2dReLU: Conv2d (bias only without a norm) -> norm -> ReLU(inplace); keys .0 and .1."""

    def __init__(self, cin, cout, kernel_size, padding=0, stride=1, use_norm="batchnorm"):
        norm = norm_layer(use_norm, cout)
        conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding,
                         bias=isinstance(norm, nn.Identity))
        super().__init__(conv, norm, nn.ReLU(inplace=True))


class SCSEModule(nn.Module):
    """Concurrent spatial and channel squeeze & excitation: x * cSE(x) + x * sSE(x)."""

    def __init__(self, in_channels, reduction=16):
        super().__init__()
        self.cSE = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, in_channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels // reduction, in_channels, 1),
            nn.Sigmoid(),
        )
        self.sSE = nn.Sequential(nn.Conv2d(in_channels, 1, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.cSE(x) + x * self.sSE(x)


class Attention(nn.Module):
    """smp Attention: a wrapper whose child is named `attention` (keys `...attention.cSE.1.weight`)."""

    def __init__(self, name, **params):
        super().__init__()
        if name is None:
            self.attention = nn.Identity()
        elif name == "scse":
            self.attention = SCSEModule(**params)
        else:
            raise ValueError(f"Attention {name} is not implemented")

    def forward(self, x):
        return self.attention(x)


class UnetDecoderBlock(nn.Module):
    def __init__(self, cin, skip, cout, use_norm="batchnorm", attention_type=None,
                 interpolation_mode="nearest"):
        super().__init__()
        self.interpolation_mode = interpolation_mode
        # registration order conv1, attention1, conv2, attention2 (= state_dict order)
        self.conv1 = Conv2dReLU(cin + skip, cout, 3, padding=1, use_norm=use_norm)
        self.attention1 = Attention(attention_type, in_channels=cin + skip)
        self.conv2 = Conv2dReLU(cout, cout, 3, padding=1, use_norm=use_norm)
        self.attention2 = Attention(attention_type, in_channels=cout)

    def forward(self, x, height, width, skip=None):
        x = F.interpolate(x, size=(height, width), mode=self.interpolation_mode)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
            x = self.attention1(x)  # attention1 runs only with a skip (unused in the last block)
        x = self.conv1(x)
        x = self.conv2(x)
        return self.attention2(x)


class UnetCenterBlock(nn.Sequential):
    def __init__(self, cin, cout, use_norm="batchnorm"):
        super().__init__(Conv2dReLU(cin, cout, 3, padding=1, use_norm=use_norm),
                         Conv2dReLU(cout, cout, 3, padding=1, use_norm=use_norm))


class UnetDecoder(nn.Module):
    def __init__(self, encoder_channels, decoder_channels, n_blocks=5, use_norm="batchnorm",
                 attention_type=None, add_center_block=False, interpolation_mode="nearest"):
        super().__init__()
        if n_blocks != len(decoder_channels):
            raise ValueError(f"Model depth is {n_blocks}, but you provide `decoder_channels` for "
                             f"{len(decoder_channels)} blocks.")
        enc = list(encoder_channels)[1:][::-1]  # drop the input itself, deepest first
        head = enc[0]
        ins = [head] + list(decoder_channels[:-1])
        skips = enc[1:] + [0]
        self.center = (UnetCenterBlock(head, head, use_norm=use_norm) if add_center_block
                       else nn.Identity())
        self.blocks = nn.ModuleList([
            UnetDecoderBlock(i, s, o, use_norm, attention_type, interpolation_mode)
            for i, s, o in zip(ins, skips, decoder_channels)])

    def forward(self, features):
        sizes = [f.shape[2:] for f in features][::-1]  # deepest first, ends with the input's size
        feats = features[1:][::-1]
        skips = feats[1:]
        x = self.center(feats[0])
        for i, block in enumerate(self.blocks):
            h, w = sizes[i + 1]
            x = block(x, h, w, skip=skips[i] if i < len(skips) else None)
        return x


class Unet(pm.SegmentationModel):
    """smp.Unet(encoder_weights=None or a torchvision state dict)."""

    requires_divisible_input_shape = False

    def __init__(self, encoder_name="resnet34", encoder_depth=5, decoder_use_norm="batchnorm",
                 decoder_channels=(256, 128, 64, 32, 16), decoder_attention_type=None,
                 decoder_interpolation="nearest", in_channels=3, classes=1, activation=None,
                 aux_params=None, encoder_weights=None, patch_pretrained=True):
        super().__init__()
        self.encoder = pm.get_encoder(encoder_name, in_channels=in_channels, depth=encoder_depth,
                                      weights=encoder_weights, patch_pretrained=patch_pretrained)
        self.decoder = UnetDecoder(self.encoder.out_channels, decoder_channels,
                                   n_blocks=encoder_depth, use_norm=decoder_use_norm,
                                   add_center_block=encoder_name.startswith("vgg"),
                                   attention_type=decoder_attention_type,
                                   interpolation_mode=decoder_interpolation)
        self.segmentation_head = pm.SegmentationHead(decoder_channels[-1], classes, kernel_size=3,
                                                     activation=activation)
        if aux_params is not None:
            self.classification_head = pm.ClassificationHead(self.encoder.out_channels[-1],
                                                             **aux_params)
        else:
            self.classification_head = None
        self.name = f"u-{encoder_name}"
        self.initialize()

    # smp 0.5: each decoder block resamples to its skip's size, so any input size works.
    requires_divisible_input_shape = False


if __name__ == "__main__":
    torch.manual_seed(0)
    m = Unet("resnet34", classes=1)
    print(f"Unet-resnet34 classes=1 trainable parameters: {pm.count_trainable(m):,}")
    print(m(torch.randn(1, 3, 50, 70)).shape)
