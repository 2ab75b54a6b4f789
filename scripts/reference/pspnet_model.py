"""A compact PyTorch re-implementation of segmentation_models.pytorch (smp) v0.5 `PSPNet` with a
torchvision ResNet encoder: the oracle for panseg's PSPNet parity tests.

Neither smp nor torchvision is installed here (Debian PyTorch 1.13 only). The encoder, heads and
their initialization come from pan_model.py (smp's ResNetEncoder, SegmentationHead,
ClassificationHead), Conv2dReLU from unet_model.py (smp base/modules.py); this file adds smp's
decoders/pspnet/{decoder,model}.py:

* the module tree and therefore every state_dict key and its order
  (decoder.psp.blocks.{0..3}.pool.1.{0,1}, decoder.conv.{0,1}, segmentation_head.0, ...),
* the construction and initialization order, so that for the same torch.manual_seed this
  model's state_dict equals smp's `PSPNet(encoder_weights=None, ...)`,
* the forward pass: for each bin size b in (1, 2, 3, 6), AdaptiveAvgPool2d(b) -> 1x1 Conv2dReLU to
  C // 4 channels -> bilinear upsampling (align_corners=True) back to the deepest feature's size;
  the four maps and the feature concatenated (in that order), 1x1 Conv2dReLU to psp_out_channels,
  Dropout2d (not in place); 3x3 head conv, bilinear x upsampling (align_corners=True).

Checked against smp v0.5.0 and master (0.5.1.dev0): decoders/pspnet/{decoder,model}.py,
base/{model,modules,heads,initialization}.py. smp's decoder.py itself was run against this one
(its `modules` import stubbed with unet_model.Conv2dReLU): same keys, and bit-identical init and
forward. Master's PSPBlock adds an ONNX-export branch (F.interpolate(mode="area") instead of the
AdaptiveAvgPool2d module: the same arithmetic) and a TorchScript branch; neither changes results.

Behaviours of smp worth knowing (reproduced, not fixed):
* defaults differ from the other architectures: encoder_depth 3 (the 1/8 feature is the pyramid's
  input), upsampling 8 (back to the input size at depth 3 only: at depth 4 and 5 the logits are
  1/2 and 1/4 of the input unless upsampling is raised to 16 or 32), psp_out_channels 512, and
  decoder_use_norm "batchnorm" (0.5's name; smp <= 0.4 called it psp_use_batchnorm and 0.5 still
  maps that keyword to decoder_use_norm with a DeprecationWarning);
* the bin-1 block never has a norm: smp forces use_norm="identity" for pool_size 1 ("PyTorch does
  not support BatchNorm for 1x1 shape": a train-mode BatchNorm over a batch of 1x1 maps fails at
  batch 1), so its 1x1 conv has a bias and no BatchNorm keys, whatever decoder_use_norm says;
* the blocks' width is in_channels // 4 and decoder.conv expects 2 * in_channels, which holds for
  every ResNet (channel counts divisible by 4);
* input sizes must be divisible by the encoder's output stride min(32, 2 ** depth) (smp's
  requires_divisible_input_shape = True), 8 at the default depth 3;
* a classification head is built when aux_params is truthy (`if aux_params:`), not `is not None`.
"""

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pan_model as pm  # noqa: E402
import unet_model as um  # noqa: E402

SIZES = (1, 2, 3, 6)


class PSPBlock(nn.Module):
    def __init__(self, cin, cout, pool_size, use_norm="batchnorm"):
        super().__init__()
        if pool_size == 1:
            use_norm = "identity"  # smp: "PyTorch does not support BatchNorm for 1x1 shape"
        self.pool_size = pool_size
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(output_size=(pool_size, pool_size)),
                                  um.Conv2dReLU(cin, cout, kernel_size=1, use_norm=use_norm))

    def forward(self, x):
        h, w = x.shape[2:]
        x = self.pool(x)
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=True)


class PSPModule(nn.Module):
    def __init__(self, cin, sizes=SIZES, use_norm="batchnorm"):
        super().__init__()
        self.blocks = nn.ModuleList([PSPBlock(cin, cin // len(sizes), s, use_norm=use_norm) for s in sizes])

    def forward(self, x):
        return torch.cat([b(x) for b in self.blocks] + [x], dim=1)


class PSPDecoder(nn.Module):
    def __init__(self, encoder_channels, use_norm="batchnorm", out_channels=512, dropout=0.2):
        super().__init__()
        c = encoder_channels[-1]
        self.psp = PSPModule(c, sizes=SIZES, use_norm=use_norm)
        self.conv = um.Conv2dReLU(c * 2, out_channels, kernel_size=1, use_norm=use_norm)
        self.dropout = nn.Dropout2d(p=dropout)

    def forward(self, features):
        return self.dropout(self.conv(self.psp(features[-1])))


class PSPNet(pm.SegmentationModel):
    """smp.PSPNet(encoder_weights=None or a torchvision state dict)."""

    def __init__(self, encoder_name="resnet34", encoder_depth=3, psp_out_channels=512,
                 decoder_use_norm="batchnorm", psp_dropout=0.2, in_channels=3, classes=1,
                 activation=None, upsampling=8, aux_params=None, encoder_weights=None,
                 patch_pretrained=True):
        super().__init__()
        self.encoder = pm.get_encoder(encoder_name, in_channels=in_channels, depth=encoder_depth,
                                      weights=encoder_weights, patch_pretrained=patch_pretrained)
        self.decoder = PSPDecoder(self.encoder.out_channels, use_norm=decoder_use_norm,
                                  out_channels=psp_out_channels, dropout=psp_dropout)
        self.segmentation_head = pm.SegmentationHead(psp_out_channels, classes, kernel_size=3,
                                                     activation=activation, upsampling=upsampling)
        if aux_params:
            self.classification_head = pm.ClassificationHead(self.encoder.out_channels[-1], **aux_params)
        else:
            self.classification_head = None
        self.name = f"psp-{encoder_name}"
        self.initialize()


if __name__ == "__main__":
    torch.manual_seed(0)
    m = PSPNet("resnet34", classes=1)
    print(f"PSPNet-resnet34 classes=1 trainable parameters: {pm.count_trainable(m):,}")
    print(m(torch.randn(2, 3, 64, 64)).shape)
