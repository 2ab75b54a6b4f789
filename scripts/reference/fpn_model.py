"""A compact PyTorch re-implementation of segmentation_models.pytorch (smp) v0.5 `FPN` with a
torchvision ResNet encoder: the oracle for panseg's FPN parity tests.

Neither smp nor torchvision is installed here (Debian PyTorch 1.13 only). The encoder, heads and
their initialization come from pan_model.py (smp's ResNetEncoder, SegmentationHead,
ClassificationHead); this file adds smp's decoders/fpn/{decoder,model}.py:

* the module tree and therefore every state_dict key and its order
  (decoder.p5, decoder.p{4,3,2}.skip_conv, decoder.seg_blocks.{0..3}.block.{i}.block.{0,1}, ...),
* the construction and initialization order, so that for the same torch.manual_seed this
  model's state_dict equals smp's `FPN(encoder_weights=None, ...)`,
* the forward pass (nearest/bilinear pyramid upsampling by scale_factor 2, bilinear
  align_corners=True upsampling in the segmentation blocks, stack+sum merge, Dropout2d).

Checked against smp master (0.5.1.dev0; decoders/fpn is unchanged since v0.5.0 apart from
docstrings): decoders/fpn/{decoder,model}.py, base/{model,heads,initialization}.py.

Behaviours of smp worth knowing (reproduced, not fixed):
* encoder_depth 3 and 4 keep the decoder's four levels by taking the four last features, so the
  finest level is the input itself (depth 3) or the 1/2 feature (depth 4); with the default
  upsampling=4 the logits are then 4x (depth 3) or 2x (depth 4) the input size.
* the head is a 1x1 conv (kernel_size=1), unlike PAN's 3x3.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

import pan_model as pm


class Conv3x3GNReLU(nn.Module):
    def __init__(self, cin, cout, upsample=False):
        super().__init__()
        self.upsample = upsample
        self.block = nn.Sequential(nn.Conv2d(cin, cout, (3, 3), stride=1, padding=1, bias=False),
                                   nn.GroupNorm(32, cout), nn.ReLU(inplace=True))

    def forward(self, x):
        x = self.block(x)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        return x


class FPNBlock(nn.Module):
    def __init__(self, pyramid_channels, skip_channels, interpolation_mode="nearest"):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_channels, pyramid_channels, kernel_size=1)
        self.interpolation_mode = interpolation_mode

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2.0, mode=self.interpolation_mode)
        return x + self.skip_conv(skip)


class SegmentationBlock(nn.Module):
    def __init__(self, cin, cout, n_upsamples=0):
        super().__init__()
        blocks = [Conv3x3GNReLU(cin, cout, upsample=bool(n_upsamples))]
        for _ in range(1, n_upsamples):
            blocks.append(Conv3x3GNReLU(cout, cout, upsample=True))
        self.block = nn.Sequential(*blocks)

    def forward(self, x):
        return self.block(x)


class MergeBlock(nn.Module):
    def __init__(self, policy):
        super().__init__()
        if policy not in ["add", "cat"]:
            raise ValueError(f"`merge_policy` must be one of: ['add', 'cat'], got {policy}")
        self.policy = policy

    def forward(self, x):
        if self.policy == "add":
            return torch.stack(x).sum(dim=0)
        return torch.cat(x, dim=1)


class FPNDecoder(nn.Module):
    def __init__(self, encoder_channels, encoder_depth=5, pyramid_channels=256,
                 segmentation_channels=128, dropout=0.2, merge_policy="add",
                 interpolation_mode="nearest"):
        super().__init__()
        self.out_channels = segmentation_channels if merge_policy == "add" else segmentation_channels * 4
        if encoder_depth < 3:
            raise ValueError(f"Encoder depth for FPN decoder cannot be less than 3, got {encoder_depth}.")
        ch = list(encoder_channels)[::-1][: encoder_depth + 1]
        self.p5 = nn.Conv2d(ch[0], pyramid_channels, kernel_size=1)
        self.p4 = FPNBlock(pyramid_channels, ch[1], interpolation_mode)
        self.p3 = FPNBlock(pyramid_channels, ch[2], interpolation_mode)
        self.p2 = FPNBlock(pyramid_channels, ch[3], interpolation_mode)
        self.seg_blocks = nn.ModuleList([SegmentationBlock(pyramid_channels, segmentation_channels, n)
                                         for n in [3, 2, 1, 0]])
        self.merge = MergeBlock(merge_policy)
        self.dropout = nn.Dropout2d(p=dropout, inplace=True)

    def forward(self, features):
        c2, c3, c4, c5 = features[-4:]
        p5 = self.p5(c5)
        p4 = self.p4(p5, c4)
        p3 = self.p3(p4, c3)
        p2 = self.p2(p3, c2)
        pyramid = [blk(p) for blk, p in zip(self.seg_blocks, [p5, p4, p3, p2])]
        return self.dropout(self.merge(pyramid))


class FPN(pm.SegmentationModel):
    """smp.FPN(encoder_weights=None or a torchvision state dict)."""

    def __init__(self, encoder_name="resnet34", encoder_depth=5, decoder_pyramid_channels=256,
                 decoder_segmentation_channels=128, decoder_merge_policy="add", decoder_dropout=0.2,
                 decoder_interpolation="nearest", in_channels=3, classes=1, activation=None,
                 upsampling=4, aux_params=None, encoder_weights=None, patch_pretrained=True):
        super().__init__()
        # patch_pretrained: which branch of smp's patch_first_conv serves in_channels != 3 (see
        # pan_model.get_encoder); smp takes the pretrained one only when weights were loaded.
        self.encoder = pm.get_encoder(encoder_name, in_channels=in_channels, depth=encoder_depth,
                                      output_stride=32, weights=encoder_weights,
                                      patch_pretrained=patch_pretrained)
        self.decoder = FPNDecoder(self.encoder.out_channels, encoder_depth, decoder_pyramid_channels,
                                  decoder_segmentation_channels, decoder_dropout, decoder_merge_policy,
                                  decoder_interpolation)
        self.segmentation_head = pm.SegmentationHead(self.decoder.out_channels, classes, kernel_size=1,
                                                     activation=activation, upsampling=upsampling)
        if aux_params is not None:
            self.classification_head = pm.ClassificationHead(self.encoder.out_channels[-1], **aux_params)
        else:
            self.classification_head = None
        self.name = f"fpn-{encoder_name}"
        self.initialize()


if __name__ == "__main__":
    torch.manual_seed(0)
    m = FPN("resnet34", classes=1)
    print(f"FPN-resnet34 classes=1 trainable parameters: {pm.count_trainable(m):,}")
