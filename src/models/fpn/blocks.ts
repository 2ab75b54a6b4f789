// FPN's blocks as in smp's decoders/fpn/decoder.py: the top-down pyramid step, the segmentation
// branches (conv3x3 + GroupNorm(32) + ReLU, upsampled x2 each) and the merge of the four branches.
import * as v from '../../common/validate.js';
import { F, type Tensor, tidy } from '../../engine/index.js';
import { Conv2d, GroupNorm, Layer, Module, type OnnxEmitter, type OnnxValue, ReLU, Sequential } from '../../nn/index.js';

/** How the pyramid upsamples a level x2 before adding the next skip (F.interpolate's modes). */
export type FPNInterpolation = 'nearest' | 'bilinear' | 'bicubic' | 'area' | 'nearest-exact';
export const FPN_INTERPOLATIONS: readonly FPNInterpolation[] = ['nearest', 'bilinear', 'bicubic', 'area', 'nearest-exact'];

export type MergePolicy = 'add' | 'cat';

/** F.interpolate(x, scale_factor=2, mode) as smp calls it (align_corners left at its default, false). */
function upsample2(x: Tensor, mode: FPNInterpolation): Tensor {
  // PyTorch's 'area' is adaptive average pooling to the target size; for x2 each output takes one input pixel.
  if (mode === 'area') return F.adaptiveAvgPool2d(x, [2 * x.shape[2], 2 * x.shape[3]]);
  return F.interpolate(x, { scaleFactor: 2, mode });
}

/** 3x3 conv (no bias) -> GroupNorm(32) -> ReLU, then bilinear x2 (alignCorners) when `upsample`; child `block`. */
export class Conv3x3GNReLU extends Layer {
  constructor(inChannels: number, outChannels: number, readonly upsample = false) {
    super();
    this.child('block', new Sequential(
      new Conv2d(inChannels, outChannels, 3, { padding: 1, bias: false }),
      new GroupNorm(32, outChannels),
      new ReLU(true),
    ));
  }
  forward(x: Tensor): Tensor {
    const y = this.getChild<Sequential>('block').forward(x);
    return this.upsample ? F.interpolate(y, { scaleFactor: 2, mode: 'bilinear', alignCorners: true }) : y;
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    const y = e.module(this.getChild('block'), `${name}.block`, x);
    return this.upsample ? e.resize(y, e.scaled(y, 2, 'Mul'), 'bilinear', `${name}.up`, true) : y;
  }
}

/** One pyramid level to a segmentation branch: nUpsamples Conv3x3GNReLU steps up to the finest level (at least one conv). */
export class SegmentationBlock extends Layer {
  constructor(inChannels: number, outChannels: number, readonly nUpsamples = 0) {
    super();
    const blocks = [new Conv3x3GNReLU(inChannels, outChannels, nUpsamples > 0)];
    for (let i = 1; i < nUpsamples; i++) blocks.push(new Conv3x3GNReLU(outChannels, outChannels, true));
    this.child('block', new Sequential(...blocks));
  }
  forward(x: Tensor): Tensor { return this.getChild<Sequential>('block').forward(x); }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    return e.module(this.getChild('block'), `${name}.block`, x);
  }
}

/** Top-down step: the coarser level upsampled x2 plus a 1x1 projection of the encoder's skip feature; child `skip_conv`. */
export class FPNBlock extends Module {
  constructor(pyramidChannels: number, skipChannels: number, readonly mode: FPNInterpolation = 'nearest') {
    super();
    this.child('skip_conv', new Conv2d(skipChannels, pyramidChannels, 1));
  }
  forward(x: Tensor, skip: Tensor): Tensor {
    return upsample2(x, this.mode).add(this.getChild<Conv2d>('skip_conv').forward(skip));
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue, skip: OnnxValue): OnnxValue {
    // Area upsampling by 2 copies each pixel to a 2x2 block: exactly nearest.
    const up = e.resize(x, e.scaled(x, 2, 'Mul'), this.mode === 'area' ? 'nearest' : this.mode, `${name}.up`);
    return e.add(up, e.conv(skip, this.getChild<Conv2d>('skip_conv'), null, false, `${name}.skip_conv`), name);
  }
}

/** Merges the four branches: 'add' sums them (as smp, stack then sum), 'cat' concatenates channels. */
export class MergeBlock extends Module {
  readonly policy: MergePolicy;
  constructor(policy: MergePolicy) {
    super();
    this.policy = v.oneOf('MergeBlock', 'policy', policy, ['add', 'cat']);
  }
  forward(xs: Tensor[]): Tensor {
    if (this.policy === 'cat') return F.cat(xs, 1);
    return tidy(() => F.stack(xs, 0).sum(0));
  }
  emitOnnx(e: OnnxEmitter, name: string, ...xs: OnnxValue[]): OnnxValue {
    return this.policy === 'cat' ? e.concat(xs, name) : e.op('Sum', xs.map((x) => x.name), xs[0].hw, name);
  }
}
