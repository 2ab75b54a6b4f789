// PAN's blocks as in smp: Feature Pyramid Attention and Global Attention Upsample.
import { F, type Tensor } from '../../engine/index.js';
import { AdaptiveAvgPool2d, Layer, MaxPool2d, Module, type OnnxEmitter, type OnnxValue, Sequential, Sigmoid } from '../../nn/index.js';
import { ConvBnRelu } from '../base/blocks.js';

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
  /** As forward; offers the attention map as the 'attention' tap. */
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    const c = (n: string, input: OnnxValue) => e.module(this.getChild(n), `${name}.${n}`, input);
    // branch1 is [N, C, 1, 1]: PyTorch's align_corners upsampling of a 1x1 map is a broadcast, so Add broadcasts instead.
    const b1 = c('branch1', x);
    const mid = c('mid', x);
    const x1 = c('down1', x);
    const x2 = c('down2', x1);
    const x3 = e.resize(c('down3', x2), e.scaled(x, 4, 'Div'), 'bilinear', `${name}.up3`, true);
    let y = e.add(c('conv2', x2), x3, `${name}.add2`);
    y = e.resize(y, e.scaled(x, 2, 'Div'), 'bilinear', `${name}.up2`, true);
    y = e.add(y, c('conv1', x1), `${name}.add1`);
    const attention = e.resize(y, e.sizeOf(x), 'bilinear', `${name}.attention`, true);
    e.tap('attention', attention);
    return { ...e.add(e.mul(attention, mid, `${name}.mul`), b1, `${name}.out`), hw: x.hw };
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
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue, y: OnnxValue): OnnxValue {
    const yUp = e.resize(y, e.sizeOf(x), this.mode, `${name}.up`, this.mode === 'bilinear' || this.mode === 'bicubic');
    const weights = e.module(this.getChild('conv1'), `${name}.conv1`, y);
    const low = e.module(this.getChild('conv2'), `${name}.conv2`, x);
    return { ...e.add(yUp, e.mul(low, weights, `${name}.mul`), `${name}.out`), hw: x.hw };
  }
}
