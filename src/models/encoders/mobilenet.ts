// MobileNetV2 (Sandler et al. 2018) as smp's MobileNetV2Encoder: torchvision's module tree
// (features.0 .. features.18, state_dict keys features.N...), features after blocks 1, 3, 6, 13 and 18,
// stages features[7:14] (1/16) and features[14:] (1/32), the classifier dropped.
import type { Tensor } from '../../engine/index.js';
import { BatchNorm2d, Conv2d, init, Layer, type Module, type OnnxEmitter, type OnnxValue, ReLU6, Sequential } from '../../nn/index.js';
import { EncoderBase } from './base.js';
import type { EncoderOptions } from './types.js';

/** No options: smp builds torchvision's default (width 1.0). */
export type MobileNetV2Spec = Record<string, never>;

/** torchvision's Conv2dNormActivation: conv (no bias, padding (k - 1) / 2), BatchNorm, ReLU6 (keys .0, .1). */
function convBnReLU6(inC: number, outC: number, kernelSize = 3, stride = 1, groups = 1): Sequential {
  return new Sequential(
    new Conv2d(inC, outC, kernelSize, { stride, padding: (kernelSize - 1) / 2, groups, bias: false }),
    new BatchNorm2d(outC),
    new ReLU6(true),
  );
}

/**
 * torchvision's InvertedResidual: 1x1 expansion (absent for ratio 1), 3x3 depthwise, 1x1 linear
 * projection, all in child `conv`; the residual when stride 1 and in == out channels. That test is
 * made at construction, as torchvision's, so dilation (stride 1 afterwards) does not add a residual.
 */
class InvertedResidual extends Layer {
  readonly useResConnect: boolean;
  constructor(inp: number, oup: number, stride: number, expandRatio: number) {
    super();
    const hidden = Math.round(inp * expandRatio);
    this.useResConnect = stride === 1 && inp === oup;
    const layers: Layer[] = [];
    if (expandRatio !== 1) layers.push(convBnReLU6(inp, hidden, 1));
    layers.push(convBnReLU6(hidden, hidden, 3, stride, hidden), new Conv2d(hidden, oup, 1, { bias: false }), new BatchNorm2d(oup));
    this.child('conv', new Sequential(...layers));
  }
  forward(x: Tensor): Tensor {
    const y = this.getChild<Sequential>('conv').forward(x);
    return this.useResConnect ? y.add_(x) : y;
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    const y = e.module(this.getChild('conv'), `${name}.conv`, x);
    return this.useResConnect ? e.add(y, x, `${name}.add`) : y;
  }
}

/** [expansion t, channels c, blocks n, first stride s] per group of blocks (torchvision). */
const SETTING: readonly [number, number, number, number][] = [
  [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1],
];
/** features[i] whose outputs are the 1/2 .. 1/32 features (smp's _out_indexes). */
const OUT_INDEXES = [1, 3, 6, 13, 18];

export class MobileNetV2Encoder extends EncoderBase {
  protected readonly classifierKeys = ['classifier.'];
  /** PAN-mobilenet_v2 at 512x512, fp32, 2 threads: blocked copy 75 ms (18 of them converting around ReLU6), channels-last 57 ms. */
  readonly prefersBlockedLayout = false;

  constructor(readonly spec: MobileNetV2Spec, outChannels: readonly number[], opts: EncoderOptions = {}) {
    super('MobileNetV2Encoder', outChannels, opts);
    let inC = 32;
    const blocks: Layer[] = [convBnReLU6(3, inC, 3, 2)];
    for (const [t, c, n, s] of SETTING) {
      for (let i = 0; i < n; i++) {
        blocks.push(new InvertedResidual(inC, c, i === 0 ? s : 1, t));
        inC = c;
      }
    }
    blocks.push(convBnReLU6(inC, 1280, 1));
    this.child('features', new Sequential(...blocks));
    // torchvision's init: kaiming normal (fan_out; leaky_relu with a = 0, i.e. relu's gain) for convs,
    // BatchNorm 1/0 (the default). torchvision also builds and initializes the classifier that smp
    // deletes; panseg never builds it, so seeded weights equal smp's only up to that point.
    for (const [, m] of this.namedModules()) if (m instanceof Conv2d) init.kaimingNormal_(m.weight, { mode: 'fan_out' });
    this.finishConstruction();
  }

  private get blocks(): Layer[] { return this.getChild<Sequential>('features').layers; }

  stages(): Map<16 | 32, Module[]> {
    return new Map([[16, this.blocks.slice(7, 14)], [32, this.blocks.slice(14)]]);
  }

  /**
   * In training mode the blocks run as far as smp's loop runs them (up to features[13] at depth 3, to
   * the end at depth 4): their outputs are unused, but their BatchNorm statistics move as in PyTorch.
   * In eval mode the pass stops at the last feature used.
   */
  features(x: Tensor): Tensor[] {
    const last = this.training ? OUT_INDEXES[Math.min(this.depth, 4)] : OUT_INDEXES[this.depth - 1];
    const feats = [x];
    let y = x;
    this.blocks.slice(0, last + 1).forEach((b, i) => {
      y = b.forward(y);
      if (OUT_INDEXES.indexOf(i) >= 0 && feats.length <= this.depth) feats.push(y);
    });
    return feats;
  }

  emitOnnxFeatures(e: OnnxEmitter, x: OnnxValue, name: string): OnnxValue[] {
    const feats = [x];
    let y = x;
    this.blocks.slice(0, OUT_INDEXES[this.depth - 1] + 1).forEach((b, i) => {
      y = e.module(b, `${name}.features.${i}`, y);
      if (OUT_INDEXES.includes(i)) feats.push(y);
    });
    return feats;
  }
}
