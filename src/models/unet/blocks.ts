// Unet's blocks as in smp 0.5 (decoders/unet/decoder.py, base/modules.py): the decoder block, the
// center block (vgg encoders only) and the scSE attention.
import { fail } from '../../common/errors.js';
import { F, type Tensor } from '../../engine/index.js';
import {
  AdaptiveAvgPool2d, Conv2d, Identity, Layer, Module, type OnnxEmitter, type OnnxValue, ReLU, Sequential, Sigmoid,
} from '../../nn/index.js';
import { Conv2dReLU, type NormOption } from '../base/conv2d-relu.js';

/** smp's decoder_interpolation values: F.interpolate's modes ('area' = adaptive average pooling). */
export const UNET_INTERPOLATIONS = ['nearest', 'bilinear', 'bicubic', 'area', 'nearest-exact'] as const;
export type UnetInterpolation = (typeof UNET_INTERPOLATIONS)[number];

export const UNET_ATTENTIONS = ['scse'] as const;
export type UnetAttention = (typeof UNET_ATTENTIONS)[number];

/** Resamples x to `size` as smp's block does: F.interpolate(x, size, mode) without align_corners (false). */
export function resample(x: Tensor, size: [number, number], mode: UnetInterpolation): Tensor {
  return mode === 'area' ? F.adaptiveAvgPool2d(x, size) : F.interpolate(x, { size, mode });
}

/** The adaptive-average-pooling matrix [to, from] (PyTorch's windows: floor(i*from/to) .. ceil((i+1)*from/to)), transposed on request. */
function areaMatrix(from: number, to: number, transpose: boolean): Float32Array {
  const m = new Float32Array(from * to);
  for (let i = 0; i < to; i++) {
    const start = Math.floor((i * from) / to);
    const end = Math.ceil(((i + 1) * from) / to);
    for (let k = start; k < end; k++) m[transpose ? k * to + i : i * from + k] = 1 / (end - start);
  }
  return m;
}

/** resample() in an ONNX graph, to `target`'s size. 'area' becomes two MatMuls with constant pooling matrices (fixed sizes only). */
export function emitResample(e: OnnxEmitter, x: OnnxValue, target: OnnxValue, mode: UnetInterpolation, name: string): OnnxValue {
  if (mode !== 'area') return e.resize(x, e.sizeOf(target), mode, name);
  if (!x.hw || !target.hw) return fail('exportOnnx', `${name}: decoderInterpolation 'area' (adaptive average pooling) exports only at a fixed input size; export without dynamicSize, or use another decoderInterpolation`);
  const [h, w] = x.hw;
  const [th, tw] = target.hw;
  let y = x;
  if (w !== tw) y = e.op('MatMul', [y.name, e.weight(`${name}.area_w`, areaMatrix(w, tw, true), [w, tw])], [h, tw], `${name}.w`);
  if (h !== th) y = e.op('MatMul', [e.weight(`${name}.area_h`, areaMatrix(h, th, false), [th, h]), y.name], [th, tw], `${name}.h`);
  return y;
}

/** Concurrent spatial and channel squeeze & excitation (Roy et al. 2018): x * cSE(x) + x * sSE(x). */
export class SCSEModule extends Layer {
  constructor(inChannels: number, reduction = 16) {
    super();
    const squeezed = Math.floor(inChannels / reduction);
    if (squeezed < 1) fail('SCSEModule', `${inChannels} channels cannot be squeezed by ${reduction}: scSE needs at least ${reduction} channels`);
    this.child('cSE', new Sequential(
      new AdaptiveAvgPool2d(1), new Conv2d(inChannels, squeezed, 1), new ReLU(true), new Conv2d(squeezed, inChannels, 1), new Sigmoid(),
    ));
    this.child('sSE', new Sequential(new Conv2d(inChannels, 1, 1), new Sigmoid()));
  }
  forward(x: Tensor): Tensor {
    const c = this.getChild<Layer>('cSE').forward(x);
    const s = this.getChild<Layer>('sSE').forward(x);
    return x.mul(c).add(x.mul(s));
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    const c = e.module(this.getChild('cSE'), `${name}.cSE`, x);
    const s = e.module(this.getChild('sSE'), `${name}.sSE`, x);
    return { ...e.add(e.mul(x, c, `${name}.mul_c`), e.mul(x, s, `${name}.mul_s`), `${name}.out`), hw: x.hw };
  }
}

/** smp's Attention: a wrapper whose child `attention` is an Identity (no keys) or an SCSEModule. */
export class Attention extends Layer {
  constructor(type: UnetAttention | null, inChannels: number) {
    super();
    this.child('attention', type === 'scse' ? new SCSEModule(inChannels) : new Identity());
  }
  forward(x: Tensor): Tensor { return this.getChild<Layer>('attention').forward(x); }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    return e.module(this.getChild('attention'), `${name}.attention`, x);
  }
}

export interface UnetBlockOptions {
  useNorm: NormOption;
  attention: UnetAttention | null;
  interpolation: UnetInterpolation;
}

/**
 * Resample to the skip's size, concatenate the skip (then attention1), conv1, conv2, attention2.
 * The last block has no skip (skipChannels 0): it resamples to the input's size and its attention1,
 * built anyway as in smp, stays unused.
 */
export class UnetDecoderBlock extends Module {
  readonly interpolation: UnetInterpolation;

  constructor(inChannels: number, skipChannels: number, outChannels: number, o: UnetBlockOptions) {
    super();
    this.interpolation = o.interpolation;
    // Registration order = smp's state_dict order: conv1, attention1, conv2, attention2.
    this.child('conv1', new Conv2dReLU(inChannels + skipChannels, outChannels, 3, { padding: 1, useNorm: o.useNorm }));
    this.child('attention1', new Attention(o.attention, inChannels + skipChannels));
    this.child('conv2', new Conv2dReLU(outChannels, outChannels, 3, { padding: 1, useNorm: o.useNorm }));
    this.child('attention2', new Attention(o.attention, outChannels));
  }

  forward(x: Tensor, size: [number, number], skip?: Tensor): Tensor {
    const c = (n: string) => this.getChild<Layer>(n);
    let y = resample(x, size, this.interpolation);
    if (skip) y = c('attention1').forward(F.cat([y, skip], 1));
    return c('attention2').forward(c('conv2').forward(c('conv1').forward(y)));
  }

  /** `target` carries the size to resample to: the skip itself, or the input for the last block. */
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue, target: OnnxValue, skip?: OnnxValue): OnnxValue {
    const m = (n: string, v: OnnxValue) => e.module(this.getChild(n), `${name}.${n}`, v);
    let y = emitResample(e, x, target, this.interpolation, `${name}.up`);
    if (skip) y = m('attention1', e.concat([y, skip], `${name}.cat`));
    return m('attention2', m('conv2', m('conv1', y)));
  }
}

/** Two Conv2dReLU on the deepest feature; smp adds it for vgg encoders only (keys `center.0.*`, `center.1.*`). */
export class UnetCenterBlock extends Sequential {
  constructor(inChannels: number, outChannels: number, useNorm: NormOption) {
    super(
      new Conv2dReLU(inChannels, outChannels, 3, { padding: 1, useNorm }),
      new Conv2dReLU(outChannels, outChannels, 3, { padding: 1, useNorm }),
    );
  }
}
