// DeepLab decoders as smp 0.5's DeepLabV3Decoder and DeepLabV3PlusDecoder (decoders/deeplabv3/decoder.py).
// Neither is re-initialized (smp's DeepLab models skip initialize()): PyTorch's default init throughout.
import { fail } from '../../common/errors.js';
import { F, type Tensor } from '../../engine/index.js';
import { BatchNorm2d, Conv2d, type Layer, Module, type OnnxEmitter, type OnnxValue, ReLU, Sequential, Upsample } from '../../nn/index.js';
import { ASPP, type ASPPOptions, ASPPConv, SeparableConv2d, SeparableConvBnRelu } from './blocks.js';

/** ASPP on the deepest feature, then 3x3 conv + BatchNorm + ReLU; children aspp, conv, bn, relu. */
export class DeepLabV3Decoder extends Module {
  /** ASPP opens with convolutions and global pooling, which take oneDNN-blocked tensors. */
  readonly acceptsBlockedFeatures = true;

  constructor(inChannels: number, readonly outChannels: number, o: ASPPOptions) {
    super();
    this.child('aspp', new ASPP(inChannels, outChannels, o));
    this.child('conv', new Conv2d(outChannels, outChannels, 3, { padding: 1, bias: false }));
    this.child('bn', new BatchNorm2d(outChannels));
    this.child('relu', new ReLU(true));
  }

  /** features: [input, 1/2, ..., deepest]; only the deepest is used. */
  forward(features: Tensor[]): Tensor {
    const c = (n: string) => this.getChild<Layer>(n);
    // conv/bn are looked up on each call: inference copies replace them by a folded conv and an Identity.
    return c('relu').forward(c('bn').forward(c('conv').forward(c('aspp').forward(features[features.length - 1]))));
  }

  emitOnnx(e: OnnxEmitter, name: string, ...features: OnnxValue[]): OnnxValue {
    const a = e.module(this.getChild('aspp'), `${name}.aspp`, features[features.length - 1]);
    return e.conv(a, this.getChild<Conv2d>('conv'), this.getChild('bn'), true, `${name}.conv`);
  }
}

/**
 * DeepLabV3+: ASPP on the deepest feature -> separable 3x3 + BatchNorm + ReLU -> bilinear upsampling
 * (alignCorners) to the 1/4 feature's size, concatenated with a 48-channel 1x1 projection of the 1/4
 * feature, -> separable 3x3 + BatchNorm + ReLU. Children aspp (Sequential), up, block1, block2.
 */
export class DeepLabV3PlusDecoder extends Module {
  readonly acceptsBlockedFeatures = true;
  /** The ASPP output's upsampling: 4 at output stride 16 (depth > 3), else 2, as smp. */
  readonly scaleFactor: number;

  /** encoderChannels: the encoder's outChannels ([input, 1/2, 1/4, ...], depth + 1 entries). */
  constructor(encoderChannels: number[], depth: number, readonly outChannels: number, outputStride: 8 | 16, o: ASPPOptions) {
    super();
    if (!Number.isInteger(depth) || depth < 3) fail('DeepLabV3PlusDecoder', `encoder depth must be at least 3 (the decoder fuses the 1/4 feature), got ${depth}`);
    this.child('aspp', new Sequential(
      new ASPP(encoderChannels[encoderChannels.length - 1], outChannels, o),
      new SeparableConv2d(outChannels, outChannels, 3, { padding: 1, bias: false }),
      new BatchNorm2d(outChannels),
      new ReLU(true),
    ));
    this.scaleFactor = outputStride === 16 && depth > 3 ? 4 : 2;
    this.child('up', new Upsample({ mode: 'bilinear', scaleFactor: this.scaleFactor, alignCorners: true }));
    const highres = 48; // as the paper
    this.child('block1', new ASPPConv(encoderChannels[2], highres, 1));
    this.child('block2', new SeparableConvBnRelu(highres + outChannels, outChannels, { padding: 1 }));
  }

  forward(features: Tensor[]): Tensor {
    const c = (n: string) => this.getChild<Layer>(n);
    const aspp = c('up').forward(c('aspp').forward(features[features.length - 1]));
    return c('block2').forward(F.cat([aspp, c('block1').forward(features[2])], 1));
  }

  emitOnnx(e: OnnxEmitter, name: string, ...features: OnnxValue[]): OnnxValue {
    const a = e.module(this.getChild('aspp'), `${name}.aspp`, features[features.length - 1]);
    const up = e.module(this.getChild('up'), `${name}.up`, a);
    const high = e.module(this.getChild('block1'), `${name}.block1`, features[2]);
    return e.module(this.getChild('block2'), `${name}.block2`, { ...e.concat([up, high], `${name}.cat`), hw: high.hw });
  }
}
