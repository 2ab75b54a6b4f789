// oneDNN's blocked ('mkldnn') layout for CPU inference: convolution weights reordered once into the
// format oneDNN's kernels read, and the convolution that keeps activations blocked between layers,
// so no layer pays a layout conversion. Inference only: these ops have no autograd use in panseg.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { native } from './native.js';
import { relabel, Tensor } from './tensor.js';

export interface PackedConvOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
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
 * A conv weight [O, C/groups, kH, kW] (CPU, float32 or bfloat16) reordered into oneDNN's blocked
 * weight format for the given geometry; pass it to mkldnnConv2d with the same options.
 */
export function packConv2dWeight(weight: Tensor, o: PackedConvOptions = {}): Tensor {
  const op = 'packConv2dWeight';
  if (!(weight instanceof Tensor)) fail(op, 'expected a Tensor for weight');
  if (weight.ndim !== 4) fail(op, `expected a weight of 4 dims [O, C/groups, kH, kW], got ${v.fmtShape(weight.shape)}`);
  if (weight.device !== 'cpu' || (weight.dtype !== 'float32' && weight.dtype !== 'bfloat16')) {
    fail(op, `expected a CPU float32 or bfloat16 weight, got ${weight.dtype} on ${weight.device}`);
  }
  if (!mkldnnAvailable()) fail(op, 'this libtorch was built without oneDNN (mkldnn)');
  const g = geometry(op, o);
  try { return new Tensor(native.mkldnnPackConv(weight.h, g.padding, g.stride, g.dilation, g.groups)); } catch (e) { relabel(e, op); }
}

export interface MkldnnConv2dOptions extends PackedConvOptions {
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
  try {
    return new Tensor(native.mkldnnConv2d(x.h, packedWeight.h, bias?.h ?? null, g.padding, g.stride, g.dilation, g.groups, o.blockedOutput ?? true));
  } catch (e) { relabel(e, op); }
}
