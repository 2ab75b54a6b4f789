// PAN's blocks as in smp: ConvBnRelu, Feature Pyramid Attention and Global Attention Upsample.
import { F, type Tensor } from '../../engine/index.js';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Layer, MaxPool2d, Module, Sequential, Sigmoid, init } from '../../nn/index.js';

/** Conv2d (with bias) -> BatchNorm2d -> optional ReLU; children `conv` and `bn`. */
export class ConvBnRelu extends Layer {
  constructor(inC: number, outC: number, kernel: number, readonly addRelu = true) {
    super();
    this.child('conv', new Conv2d(inC, outC, kernel, { padding: Math.floor(kernel / 2) }));
    this.child('bn', new BatchNorm2d(outC));
  }
  forward(x: Tensor): Tensor {
    const y = this.getChild<Layer>('bn').forward(this.getChild<Layer>('conv').forward(x));
    return this.addRelu ? y.relu_() : y;
  }
}

const up = (x: Tensor, h: number, w: number) => F.interpolate(x, { size: [h, w], mode: 'bilinear', alignCorners: true });

/** What FPA computes on the way, for the attention visualizations. */
export interface FPATrace {
  /** The 1-channel spatial attention map that multiplies the mid branch, at bottleneck size. */
  attention: Tensor;
  /** The pyramid levels at 1/2, 1/4 and 1/8 of the bottleneck (after their convs). */
  levels: [Tensor, Tensor, Tensor];
  /** The global-pool branch, broadcast to the bottleneck size. */
  globalBranch: Tensor;
  /** The mid branch (1x1 projection, C channels) that the attention map multiplies. */
  mid?: Tensor;
}

/** Feature Pyramid Attention on the deepest feature: a 3-level 1-channel attention pyramid times a 1x1 projection, plus global pooling. */
export class FPABlock extends Module {
  constructor(inC: number, outC: number) {
    super();
    this.child('branch1', new Sequential(new AdaptiveAvgPool2d(1), new ConvBnRelu(inC, outC, 1)));
    this.child('mid', new Sequential(new ConvBnRelu(inC, outC, 1)));
    this.child('down1', new Sequential(new MaxPool2d(2, { stride: 2 }), new ConvBnRelu(inC, 1, 7)));
    this.child('down2', new Sequential(new MaxPool2d(2, { stride: 2 }), new ConvBnRelu(1, 1, 5)));
    this.child('down3', new Sequential(new MaxPool2d(2, { stride: 2 }), new ConvBnRelu(1, 1, 3), new ConvBnRelu(1, 1, 3)));
    this.child('conv2', new ConvBnRelu(1, 1, 5));
    this.child('conv1', new ConvBnRelu(1, 1, 7));
  }
  forward(x: Tensor, trace?: (t: FPATrace) => void): Tensor {
    const c = (n: string) => this.getChild<Layer>(n);
    const [h, w] = [x.shape[2], x.shape[3]];
    const b1 = up(c('branch1').forward(x), h, w);
    const mid = c('mid').forward(x);
    const x1 = c('down1').forward(x);
    const x2 = c('down2').forward(x1);
    const x3 = up(c('down3').forward(x2), Math.floor(h / 4), Math.floor(w / 4));
    const c2 = c('conv2').forward(x2);
    let y = up(c2.add(x3), Math.floor(h / 2), Math.floor(w / 2));
    const c1 = c('conv1').forward(x1);
    y = up(y.add(c1), h, w);
    trace?.({ attention: y, levels: [c1, c2, x3], globalBranch: b1, mid });
    return y.mul(mid).add(b1);
  }
}

/** What a GAU computes on the way besides its channel weights, for the attention visualizations. */
export interface GAUTrace {
  /** The deeper feature y, whose global average pool feeds the channel gate. */
  deep: Tensor;
  /** conv2(x): the low-level feature before gating [N, C, h, w]. */
  lowLevel: Tensor;
  /** y upsampled to x's size: the path the gated low-level feature is added to. */
  upsampled: Tensor;
}

/** Global Attention Upsample: the deep feature's pooled context gates the shallow one's channels. */
export class GAUBlock extends Module {
  constructor(inC: number, outC: number, readonly mode: 'bilinear' | 'nearest' | 'bicubic' | 'nearest-exact' = 'bilinear') {
    super();
    this.child('conv1', new Sequential(new AdaptiveAvgPool2d(1), new ConvBnRelu(outC, outC, 1, false), new Sigmoid()));
    this.child('conv2', new ConvBnRelu(inC, outC, 3));
  }
  /** x: the shallow (low-level) feature, y: the deeper one. `trace` receives the channel weights [N, C, 1, 1] and the parts. */
  forward(x: Tensor, y: Tensor, trace?: (weights: Tensor, parts: GAUTrace) => void): Tensor {
    const opts = this.mode === 'bilinear' || this.mode === 'bicubic' ? { alignCorners: true } : {};
    const yUp = F.interpolate(y, { size: [x.shape[2], x.shape[3]], mode: this.mode, ...opts });
    const weights = this.getChild<Layer>('conv1').forward(y);
    const low = this.getChild<Layer>('conv2').forward(x);
    trace?.(weights, { deep: y, lowLevel: low, upsampled: yUp });
    return yUp.add(low.mul(weights));
  }
}

/** smp's decoder init: kaiming uniform (fan_in, relu) convs with zero bias; BatchNorm 1/0. */
export function initDecoder(m: Module): void {
  for (const [, l] of m.namedModules()) {
    if (l instanceof Conv2d) {
      init.kaimingUniform_(l.weight, { mode: 'fan_in', nonlinearity: 'relu' });
      if (l.bias) init.zeros_(l.bias);
    } else if (l instanceof BatchNorm2d) {
      if (l.weight) init.ones_(l.weight);
      if (l.bias) init.zeros_(l.bias);
    }
  }
}
