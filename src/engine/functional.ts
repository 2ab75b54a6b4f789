// Functional ops, like torch.nn.functional plus torch.cat/stack/where. Exported as `F`.
import { describe, fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { checkAlloc } from './alloc-check.js';
import { native } from './native.js';
import { relabel, Tensor } from './tensor.js';

function tensorArg(op: string, name: string, t: unknown): Tensor {
  if (!(t instanceof Tensor)) fail(op, `expected a Tensor for ${name} but received ${describe(t)}`);
  if (t.isDisposed) fail(op, `${name} was disposed`);
  return t;
}

function rank(op: string, name: string, t: Tensor, n: number, layout: string): void {
  if (t.ndim !== n) fail(op, `expected ${name} of ${n} dims ${layout}, got ${v.fmtShape(t.shape)}`);
}

function floatArg(op: string, name: string, t: Tensor): void {
  if (!t.isFloatingPoint) fail(op, `expected a floating-point ${name}, got ${t.dtype}`);
}

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

/** 2-D convolution of x [N, C, H, W] with weight [O, C/groups, kH, kW]. */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  tensorArg(op, 'input', x); tensorArg(op, 'weight', weight);
  rank(op, 'input', x, 4, '[N, C, H, W]');
  rank(op, 'weight', weight, 4, '[O, C/groups, kH, kW]');
  floatArg(op, 'input', x);
  const stride = v.pair(op, 'stride', opts.stride ?? 1, 1);
  const padding = v.pair(op, 'padding', opts.padding ?? 0, 0);
  const dilation = v.pair(op, 'dilation', opts.dilation ?? 1, 1);
  const groups = v.int(op, 'groups', opts.groups ?? 1, 1);
  const [, c, h, w] = x.shape;
  const [o, cg, kh, kw] = weight.shape;
  if (c !== cg * groups) fail(op, `input has ${c} channels but weight expects ${cg * groups} (${cg} per group x ${groups} groups)`);
  if (o % groups !== 0) fail(op, `out channels ${o} are not divisible by groups ${groups}`);
  if (bias !== null) {
    tensorArg(op, 'bias', bias);
    if (bias.ndim !== 1 || bias.shape[0] !== o) fail(op, `expected bias of shape [${o}], got ${v.fmtShape(bias.shape)}`);
  }
  const eh = dilation[0] * (kh - 1) + 1;
  const ew = dilation[1] * (kw - 1) + 1;
  if (h + 2 * padding[0] < eh || w + 2 * padding[1] < ew) {
    fail(op, `input ${h}x${w} (padded ${h + 2 * padding[0]}x${w + 2 * padding[1]}) is smaller than the dilated kernel ${eh}x${ew}`);
  }
  try {
    return new Tensor(native.conv2d(x.h, weight.h, bias?.h ?? null, stride, padding, dilation, groups));
  } catch (e) { relabel(e, op, x); }
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  /** Use batch statistics and update the running ones (PyTorch's training mode). */
  training?: boolean;
  momentum?: number;
  eps?: number;
  /** Followed by ReLU: fused in training where the kernel applies (see setFusedKernels), else relu_ on the result. */
  relu?: boolean;
}

/** Batch normalization over [N, C, ...]; in training mode runningMean/runningVar are updated in place. */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, opts: BatchNormOptions = {}): Tensor {
  const op = 'batchNorm';
  tensorArg(op, 'input', x);
  if (x.ndim < 2) fail(op, `expected input of at least 2 dims [N, C, ...], got ${v.fmtShape(x.shape)}`);
  const training = opts.training ?? false;
  const c = x.shape[1];
  for (const [name, t] of [['runningMean', runningMean], ['runningVar', runningVar], ['weight', opts.weight ?? null], ['bias', opts.bias ?? null]] as const) {
    if (t !== null) {
      tensorArg(op, name, t);
      if (t.ndim !== 1 || t.shape[0] !== c) fail(op, `expected ${name} of shape [${c}], got ${v.fmtShape(t.shape)}`);
    }
  }
  if (!training && (runningMean === null || runningVar === null)) fail(op, 'running statistics are required in eval mode');
  if (training) {
    const perChannel = x.numel / c;
    if (perChannel <= 1) fail(op, `expected more than 1 value per channel when training, got input ${v.fmtShape(x.shape)}; use a batch size > 1 or eval mode`);
  }
  const momentum = v.num(op, 'momentum', opts.momentum ?? 0.1, { min: 0, max: 1 });
  const eps = v.num(op, 'eps', opts.eps ?? 1e-5, { min: 0 });
  try {
    return new Tensor(native.batchNorm(x.h, opts.weight?.h ?? null, opts.bias?.h ?? null, runningMean?.h ?? null, runningVar?.h ?? null, training, momentum, eps,
      v.bool(op, 'relu', opts.relu ?? false)));
  } catch (e) { relabel(e, op, x); }
}

export interface GroupNormOptions {
  /** Per-channel scale [C]; null = 1. */
  weight?: Tensor | null;
  /** Per-channel shift [C]; null = 0. */
  bias?: Tensor | null;
  /** Default 1e-5. */
  eps?: number;
}

/**
 * Group normalization of x [N, C, ...]: the C channels are split into numGroups groups and each
 * (sample, group) is normalized by its own mean and biased variance, then scaled per channel
 * (torch.nn.functional.group_norm). The same in training and eval: there are no running statistics.
 */
export function groupNorm(x: Tensor, numGroups: number, opts: GroupNormOptions = {}): Tensor {
  const op = 'groupNorm';
  tensorArg(op, 'input', x);
  if (x.ndim < 2) fail(op, `expected input of at least 2 dims [N, C, ...], got ${v.fmtShape(x.shape)}`);
  floatArg(op, 'input', x);
  const g = v.int(op, 'numGroups', numGroups, 1);
  const c = x.shape[1];
  if (c % g !== 0) fail(op, `input has ${c} channels, which are not divisible by numGroups ${g}`);
  for (const [name, t] of [['weight', opts.weight ?? null], ['bias', opts.bias ?? null]] as const) {
    if (t !== null) {
      tensorArg(op, name, t);
      if (t.ndim !== 1 || t.shape[0] !== c) fail(op, `expected ${name} of shape [${c}], got ${v.fmtShape(t.shape)}`);
    }
  }
  const eps = v.num(op, 'eps', opts.eps ?? 1e-5, { min: 0 });
  try {
    return new Tensor(native.groupNorm(x.h, g, opts.weight?.h ?? null, opts.bias?.h ?? null, eps));
  } catch (e) { relabel(e, op, x); }
}

export interface PoolOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  ceilMode?: boolean;
}

function poolArgs(op: string, x: Tensor, kernel: number | [number, number], opts: PoolOptions) {
  tensorArg(op, 'input', x);
  rank(op, 'input', x, 4, '[N, C, H, W]');
  const k = v.pair(op, 'kernelSize', kernel, 1);
  const s = v.pair(op, 'stride', opts.stride ?? k, 1);
  const p = v.pair(op, 'padding', opts.padding ?? 0, 0);
  if (p[0] * 2 > k[0] || p[1] * 2 > k[1]) fail(op, `padding ${describe(p)} should be at most half of kernelSize ${describe(k)}`);
  const [, , h, w] = x.shape;
  if (h + 2 * p[0] < k[0] || w + 2 * p[1] < k[1]) fail(op, `input ${h}x${w} is smaller than the kernel ${k[0]}x${k[1]}`);
  return { k, s, p, ceil: v.bool(op, 'ceilMode', opts.ceilMode ?? false) };
}

export function maxPool2d(x: Tensor, kernelSize: number | [number, number], opts: PoolOptions = {}): Tensor {
  const { k, s, p, ceil } = poolArgs('maxPool2d', x, kernelSize, opts);
  const d = v.pair('maxPool2d', 'dilation', opts.dilation ?? 1, 1);
  try { return new Tensor(native.maxPool2d(x.h, k, s, p, d, ceil)); } catch (e) { relabel(e, 'maxPool2d'); }
}

export function avgPool2d(x: Tensor, kernelSize: number | [number, number], opts: PoolOptions & { countIncludePad?: boolean } = {}): Tensor {
  const { k, s, p, ceil } = poolArgs('avgPool2d', x, kernelSize, opts);
  try { return new Tensor(native.avgPool2d(x.h, k, s, p, ceil, opts.countIncludePad ?? true)); } catch (e) { relabel(e, 'avgPool2d', x); }
}

export function adaptiveAvgPool2d(x: Tensor, outputSize: number | [number, number]): Tensor {
  tensorArg('adaptiveAvgPool2d', 'input', x);
  rank('adaptiveAvgPool2d', 'input', x, 4, '[N, C, H, W]');
  return new Tensor(native.adaptiveAvgPool2d(x.h, v.pair('adaptiveAvgPool2d', 'outputSize', outputSize, 1)));
}

export function adaptiveMaxPool2d(x: Tensor, outputSize: number | [number, number]): Tensor {
  tensorArg('adaptiveMaxPool2d', 'input', x);
  rank('adaptiveMaxPool2d', 'input', x, 4, '[N, C, H, W]');
  return new Tensor(native.adaptiveMaxPool2d(x.h, v.pair('adaptiveMaxPool2d', 'outputSize', outputSize, 1)));
}

export type InterpolateMode = 'nearest' | 'bilinear' | 'bicubic' | 'nearest-exact';
export interface InterpolateOptions {
  size?: number | [number, number];
  scaleFactor?: number | [number, number];
  mode?: InterpolateMode;
  /** Only for bilinear/bicubic; default false as in PyTorch. */
  alignCorners?: boolean;
}

/** Resamples x [N, C, H, W] to `size` or by `scaleFactor`, with torch.nn.functional.interpolate's semantics. */
export function interpolate(x: Tensor, opts: InterpolateOptions): Tensor {
  const op = 'interpolate';
  tensorArg(op, 'input', x);
  rank(op, 'input', x, 4, '[N, C, H, W]');
  const mode = v.oneOf(op, 'mode', opts.mode ?? 'nearest', ['nearest', 'bilinear', 'bicubic', 'nearest-exact']);
  if ((opts.size === undefined) === (opts.scaleFactor === undefined)) fail(op, 'expected exactly one of size or scaleFactor');
  if (opts.alignCorners !== undefined && (mode === 'nearest' || mode === 'nearest-exact')) {
    fail(op, `alignCorners only applies to bilinear and bicubic modes, not '${mode}'`);
  }
  const align = opts.alignCorners ?? false;
  let size: [number, number] | null = null;
  let scales: [number, number] | null = null;
  if (opts.size !== undefined) size = v.pair(op, 'size', opts.size, 1);
  else {
    const sf = opts.scaleFactor!;
    scales = typeof sf === 'number' ? [sf, sf] : sf;
    if (!Array.isArray(scales) || scales.length !== 2 || !scales.every((s) => typeof s === 'number' && Number.isFinite(s) && s > 0)) {
      fail(op, `expected a positive finite number or pair for scaleFactor but received ${describe(sf)}`);
    }
  }
  const [n, c, h, w] = x.shape;
  const out = size ?? [Math.floor(h * scales![0]), Math.floor(w * scales![1])];
  checkAlloc(op, `an output of [${n}, ${c}, ${out[0]}, ${out[1]}]`, n * c * out[0] * out[1], x.dtype, x.device);
  try { return new Tensor(native.interpolate(x.h, mode, size, scales, align)); } catch (e) { relabel(e, op, x); }
}

/** y = x W^T + b */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  tensorArg('linear', 'input', x); tensorArg('linear', 'weight', weight);
  rank('linear', 'weight', weight, 2, '[out, in]');
  if (x.shape[x.ndim - 1] !== weight.shape[1]) fail('linear', `input's last dim is ${x.shape[x.ndim - 1]} but weight expects ${weight.shape[1]}`);
  try { return new Tensor(native.linear(x.h, weight.h, bias?.h ?? null)); } catch (e) { relabel(e, 'linear', x); }
}

export type Reduction = 'mean' | 'sum' | 'none';
export interface CrossEntropyOptions {
  weight?: Tensor | null;
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
}

function lossTarget(op: string, x: Tensor, target: Tensor): void {
  tensorArg(op, 'input', x); tensorArg(op, 'target', target);
  if (target.dtype !== 'int64') fail(op, `expected target of dtype int64 (class indices), got ${target.dtype}; convert it with .to('int64')`);
  const want = [x.shape[0], ...x.shape.slice(2)];
  if (target.ndim !== want.length || target.shape.some((s, i) => s !== want[i])) {
    fail(op, `expected target of shape ${v.fmtShape(want)} for input ${v.fmtShape(x.shape)}, got ${v.fmtShape(target.shape)}`);
  }
}

/** Cross-entropy of logits [N, C, ...] against class indices [N, ...] (int64). */
export function crossEntropy(x: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  lossTarget(op, x, target);
  const reduction = v.oneOf(op, 'reduction', opts.reduction ?? 'mean', ['mean', 'sum', 'none']);
  const ignore = v.int(op, 'ignoreIndex', opts.ignoreIndex ?? -100);
  const ls = v.num(op, 'labelSmoothing', opts.labelSmoothing ?? 0, { min: 0, max: 1 });
  if (opts.weight) {
    tensorArg(op, 'weight', opts.weight);
    if (opts.weight.ndim !== 1 || opts.weight.shape[0] !== x.shape[1]) fail(op, `expected weight of shape [${x.shape[1]}], got ${v.fmtShape(opts.weight.shape)}`);
  }
  try { return new Tensor(native.crossEntropy(x.h, target.h, opts.weight?.h ?? null, reduction, ignore, ls)); } catch (e) { relabel(e, op, x); }
}

/** Negative log-likelihood of log-probabilities [N, C, ...] against class indices. */
export function nllLoss(x: Tensor, target: Tensor, opts: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor {
  const op = 'nllLoss';
  lossTarget(op, x, target);
  const reduction = v.oneOf(op, 'reduction', opts.reduction ?? 'mean', ['mean', 'sum', 'none']);
  try { return new Tensor(native.nllLoss(x.h, target.h, opts.weight?.h ?? null, reduction, v.int(op, 'ignoreIndex', opts.ignoreIndex ?? -100))); } catch (e) { relabel(e, op, x); }
}

/** Binary cross-entropy on logits, as torch.nn.functional.binary_cross_entropy_with_logits. */
export function binaryCrossEntropyWithLogits(x: Tensor, target: Tensor, opts: { weight?: Tensor; posWeight?: Tensor; reduction?: Reduction } = {}): Tensor {
  const op = 'binaryCrossEntropyWithLogits';
  tensorArg(op, 'input', x); tensorArg(op, 'target', target);
  const reduction = v.oneOf(op, 'reduction', opts.reduction ?? 'mean', ['mean', 'sum', 'none']);
  try { return new Tensor(native.bceWithLogits(x.h, target.h, opts.weight?.h ?? null, opts.posWeight?.h ?? null, reduction)); } catch (e) { relabel(e, op, x); }
}

/** Zeroes elements with probability p and scales the rest by 1/(1-p) when training. */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  tensorArg('dropout', 'input', x);
  return new Tensor(native.dropout(x.h, v.num('dropout', 'p', p, { min: 0, max: 1 }), v.bool('dropout', 'training', training)));
}

/**
 * Channel dropout (torch.nn.functional.dropout2d on [N, C, H, W]): when training, each whole
 * channel of each sample is zeroed with probability p and the others scaled by 1/(1-p).
 */
export function dropout2d(x: Tensor, p = 0.5, training = true): Tensor {
  const op = 'dropout2d';
  tensorArg(op, 'input', x);
  rank(op, 'input', x, 4, '[N, C, H, W]');
  try {
    return new Tensor(native.featureDropout(x.h, v.num(op, 'p', p, { min: 0, max: 1 }), v.bool(op, 'training', training)));
  } catch (e) { relabel(e, op, x); }
}

/** Pads the last dims: `pads` = [left, right, top, bottom, ...] as in torch.nn.functional.pad. */
export function pad(x: Tensor, pads: number[], opts: { mode?: 'constant' | 'reflect' | 'replicate' | 'circular'; value?: number } = {}): Tensor {
  const op = 'pad';
  tensorArg(op, 'input', x);
  if (!Array.isArray(pads) || pads.length % 2 !== 0 || pads.length / 2 > x.ndim || !pads.every((p) => v.isInt(p))) {
    fail(op, `expected an even number of integer pads (at most ${2 * x.ndim}) but received ${describe(pads)}`);
  }
  const mode = v.oneOf(op, 'mode', opts.mode ?? 'constant', ['constant', 'reflect', 'replicate', 'circular']);
  // libtorch pads 1-3 trailing dims in these modes, of an input with one or two leading dims.
  const k = pads.length / 2;
  if (mode !== 'constant' && (k < 1 || k > 3 || (x.ndim !== k + 1 && x.ndim !== k + 2))) {
    fail(op, `mode '${mode}' with ${pads.length} pads needs an input of ${k + 1} or ${k + 2} dims, got ${v.fmtShape(x.shape)}; for [N, C, H, W] give 4 pads [left, right, top, bottom]`);
  }
  const out = x.shape.slice();
  for (let i = 0; i < k; i++) out[out.length - 1 - i] += pads[2 * i] + pads[2 * i + 1];
  checkAlloc(op, `an output of ${v.fmtShape(out)}`, out.reduce((a, b) => a * Math.max(b, 0), 1), x.dtype, x.device);
  try { return new Tensor(native.pad(x.h, pads, mode, v.num(op, 'value', opts.value ?? 0, { finite: false }))); } catch (e) { relabel(e, op, x); }
}

/** One-hot encoding of int64 class indices; numClasses -1 infers it from the data. */
export function oneHot(x: Tensor, numClasses = -1): Tensor {
  tensorArg('oneHot', 'input', x);
  if (x.dtype !== 'int64') fail('oneHot', `expected an int64 tensor of class indices, got ${x.dtype}`);
  const n = v.int('oneHot', 'numClasses', numClasses, -1);
  // The output is numel x classes int64s: a stray huge class count must not become a huge allocation.
  let classes = n;
  if (n === -1 && x.numel > 0) {
    const m = x.max();
    try { classes = m.item() + 1; } finally { m.dispose(); }
  }
  if (classes > MAX_ONE_HOT_CLASSES) {
    fail('oneHot', `${n === -1 ? `the largest index ${classes - 1} asks for` : `numClasses ${classes} asks for`} ${classes} classes, which would allocate ${x.numel * classes * 8} bytes of int64 for ${x.numel} indices; expected at most ${MAX_ONE_HOT_CLASSES} classes`);
  }
  checkAlloc('oneHot', `a one-hot of ${x.numel} indices x ${classes} classes`, x.numel * classes, 'int64', x.device);
  try { return new Tensor(native.oneHot(x.h, n)); } catch (e) { relabel(e, 'oneHot', x); }
}

/** More classes than any segmentation task has; a larger count is a bug (e.g. an ignore index used as a class). */
const MAX_ONE_HOT_CLASSES = 1 << 20;

export const relu = (x: Tensor): Tensor => tensorArg('relu', 'input', x).relu();
export const sigmoid = (x: Tensor): Tensor => tensorArg('sigmoid', 'input', x).sigmoid();
export const tanh = (x: Tensor): Tensor => tensorArg('tanh', 'input', x).tanh();
export const gelu = (x: Tensor): Tensor => tensorArg('gelu', 'input', x).gelu();
export const softmax = (x: Tensor, dim: number): Tensor => tensorArg('softmax', 'input', x).softmax(dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => tensorArg('logSoftmax', 'input', x).logSoftmax(dim);

function tensorList(op: string, ts: unknown): Tensor[] {
  if (!Array.isArray(ts) || ts.length === 0) fail(op, `expected a non-empty array of tensors but received ${describe(ts)}`);
  ts.forEach((t, i) => tensorArg(op, `tensors[${i}]`, t));
  return ts as Tensor[];
}

/** Concatenates along an existing dim. */
export function cat(ts: Tensor[], dim = 0): Tensor {
  const list = tensorList('cat', ts);
  const d = v.dim('cat', 'dim', dim, list[0].ndim);
  try { return new Tensor(native.cat(list.map((t) => t.h), d)); } catch (e) { relabel(e, 'cat', ...ts); }
}

/** Stacks along a new dim. */
export function stack(ts: Tensor[], dim = 0): Tensor {
  const list = tensorList('stack', ts);
  const d = v.dim('stack', 'dim', dim, list[0].ndim + 1);
  try { return new Tensor(native.stack(list.map((t) => t.h), d)); } catch (e) { relabel(e, 'stack', ...ts); }
}

/** Elementwise `cond ? a : b` with broadcasting. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  tensorArg('where', 'condition', cond); tensorArg('where', 'input', a); tensorArg('where', 'other', b);
  if (cond.dtype !== 'bool') fail('where', `expected a bool condition, got ${cond.dtype}`);
  try { return new Tensor(native.where(cond.h, a.h, b.h)); } catch (e) { relabel(e, 'where'); }
}

/** Counts of each non-negative int in a 1-D int64 tensor. */
export function bincount(x: Tensor, minlength = 0): Tensor {
  tensorArg('bincount', 'input', x);
  if (x.ndim !== 1) fail('bincount', `expected a 1-D input, got ${v.fmtShape(x.shape)}`);
  checkAlloc('bincount', `minlength ${minlength}`, v.int('bincount', 'minlength', minlength, 0), 'int64', x.device);
  try { return new Tensor(native.bincount(x.h, minlength)); } catch (e) { relabel(e, 'bincount', x); }
}

/** Samples 0/1 with the given probabilities. */
export function bernoulli(p: Tensor): Tensor {
  tensorArg('bernoulli', 'p', p);
  return new Tensor(native.bernoulli(p.h));
}
