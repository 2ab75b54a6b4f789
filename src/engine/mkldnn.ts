// oneDNN's blocked ('mkldnn') layout for CPU inference: convolution weights reordered once into the
// format oneDNN's kernels read, and the convolution that keeps activations blocked between layers,
// so no layer pays a layout conversion. Inference only: these ops have no autograd use in panseg.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { native } from './native.js';
import { relabel, Tensor } from './tensor.js';

export type ConvAlgorithm = 'direct' | 'winograd';

export interface PackedConvOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
  /**
   * 'winograd' (3x3, stride 1, no dilation, float32, channels multiples of 16; see winogradApplies)
   * or 'direct' (default). Pack and run with the same one.
   */
  algorithm?: ConvAlgorithm;
}

interface ConvGeometry { stride: [number, number]; padding: [number, number]; dilation: [number, number]; groups: number }

function geometry(op: string, o: PackedConvOptions): ConvGeometry {
  return {
    stride: v.pair(op, 'stride', o.stride ?? 1, 1),
    padding: v.pair(op, 'padding', o.padding ?? 0, 0),
    dilation: v.pair(op, 'dilation', o.dilation ?? 1, 1),
    groups: v.int(op, 'groups', o.groups ?? 1, 1),
  };
}

/** True when this libtorch was built with oneDNN (the blocked layout is usable). */
export function mkldnnAvailable(): boolean {
  return native.buildInfo().mkldnn;
}

/**
 * True when convolutions call oneDNN through ideep (panseg built with libideep-dev's headers against a
 * libtorch that loads the system oneDNN): Winograd and fused ReLU. Otherwise ATen's mkldnn_convolution runs.
 */
export function winogradAvailable(): boolean {
  return mkldnnAvailable() && native.mkldnnIdeep();
}

/**
 * Whether oneDNN's Winograd kernel takes this convolution: 3x3, stride 1, no dilation, one group,
 * float32, channel counts multiples of 16 (and winogradAvailable()). It does 2.25x fewer multiplications (F(4x4, 3x3)) at
 * float32 error of a few 1e-6 relative, measured against direct convolution.
 */
export function winogradApplies(weightShape: number[], o: PackedConvOptions & { dtype?: string }): boolean {
  const [out, inC, kh, kw] = weightShape;
  const g = geometry('winogradApplies', o);
  return winogradAvailable() && kh === 3 && kw === 3 && g.stride.every((s) => s === 1) && g.dilation.every((d) => d === 1) && g.groups === 1
    && (o.dtype ?? 'float32') === 'float32' && out % 16 === 0 && inC % 16 === 0;
}

/**
 * A conv weight [O, C/groups, kH, kW] (CPU, float32 or bfloat16) reordered into oneDNN's blocked
 * weight format for the given geometry and algorithm; pass it to mkldnnConv2d with the same options.
 * `inputSize` [N, C, H, W] is a typical input: oneDNN picks its kernel (and so the weight format) by it.
 */
export function packConv2dWeight(weight: Tensor, o: PackedConvOptions & { inputSize?: number[] } = {}): Tensor {
  const op = 'packConv2dWeight';
  if (!(weight instanceof Tensor)) fail(op, 'expected a Tensor for weight');
  if (weight.ndim !== 4) fail(op, `expected a weight of 4 dims [O, C/groups, kH, kW], got ${v.fmtShape(weight.shape)}`);
  if (weight.device !== 'cpu' || (weight.dtype !== 'float32' && weight.dtype !== 'bfloat16')) {
    fail(op, `expected a CPU float32 or bfloat16 weight, got ${weight.dtype} on ${weight.device}`);
  }
  if (!mkldnnAvailable()) fail(op, 'this libtorch was built without oneDNN (mkldnn)');
  const g = geometry(op, o);
  const algorithm = v.oneOf(op, 'algorithm', o.algorithm ?? 'direct', ['direct', 'winograd']);
  if (algorithm === 'winograd' && !winogradAvailable()) fail(op, 'Winograd needs panseg built with ideep\'s headers (libideep-dev) against a libtorch using the system oneDNN; use algorithm: \'direct\'');
  const inputSize = o.inputSize ?? [1, weight.shape[1] * g.groups, 64, 64];
  try { return new Tensor(native.mkldnnPackConv(weight.h, g.padding, g.stride, g.dilation, g.groups, inputSize, algorithm)); } catch (e) { relabel(e, op); }
}

export interface MkldnnConv2dOptions extends PackedConvOptions {
  /** ReLU fused into the convolution (a oneDNN post-op). Default false. */
  relu?: boolean;
  /** Return the blocked tensor (default) rather than converting it to a strided one. */
  blockedOutput?: boolean;
}

/**
 * Convolution with a weight from packConv2dWeight. `x` [N, C, H, W] may be blocked or strided
 * (converted on entry); the output is blocked unless `blockedOutput` is false.
 */
export function mkldnnConv2d(x: Tensor, packedWeight: Tensor, bias: Tensor | null = null, o: MkldnnConv2dOptions = {}): Tensor {
  const op = 'mkldnnConv2d';
  if (!(x instanceof Tensor) || !(packedWeight instanceof Tensor)) fail(op, 'expected Tensors for input and packedWeight');
  if (!packedWeight.isMkldnn) fail(op, 'packedWeight must come from packConv2dWeight (blocked layout), got a strided tensor');
  if (x.ndim !== 4) fail(op, `expected input of 4 dims [N, C, H, W], got ${v.fmtShape(x.shape)}`);
  if (x.dtype !== packedWeight.dtype) fail(op, `input is ${x.dtype} but the weight is ${packedWeight.dtype}; convert the input with toMkldnn('${packedWeight.dtype}')`);
  const g = geometry(op, o);
  const [o_, cg] = packedWeight.shape;
  if (x.shape[1] !== cg * g.groups) fail(op, `input has ${x.shape[1]} channels but the weight expects ${cg * g.groups}`);
  if (bias !== null && (bias.ndim !== 1 || bias.shape[0] !== o_)) fail(op, `expected bias of shape [${o_}], got ${v.fmtShape(bias.shape)}`);
  const algorithm = o.algorithm ?? 'direct';
  try {
    return new Tensor(native.mkldnnConv2d(x.h, packedWeight.h, bias?.h ?? null, g.padding, g.stride, g.dilation, g.groups, o.blockedOutput ?? true, algorithm, o.relu ?? false));
  } catch (e) { relabel(e, op); }
}
