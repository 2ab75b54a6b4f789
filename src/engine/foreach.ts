// Optimizer arithmetic over lists of tensors in one native call (PyTorch's foreach paths):
// on a GPU, multi-tensor kernels instead of several launches per parameter.
import { fail } from '../common/errors.js';
import { native } from './native.js';
import { handles, Tensor } from './tensor.js';

export interface SgdForeachOptions {
  lr: number;
  weightDecay: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

/**
 * One torch.optim.SGD step for `params` in place. `bufs` are their momentum buffers, or null on
 * their first step: then the new buffers are returned (when momentum > 0).
 */
export function sgdForeach(params: Tensor[], grads: Tensor[], bufs: Tensor[] | null, o: SgdForeachOptions): Tensor[] | undefined {
  if (grads.length !== params.length || (bufs && bufs.length !== params.length)) fail('sgdForeach', 'params, grads and buffers must have the same length');
  const made = native.sgdForeach(handles(params), handles(grads), bufs && handles(bufs), o.lr, o.weightDecay, o.momentum, o.dampening, o.nesterov);
  return made?.map((x) => new Tensor(x));
}

export interface AdamwForeachOptions {
  lr: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  /** The step every one of these parameters reaches now (1 on the first). */
  step: number;
}

/** One torch.optim.AdamW step for `params` in place, with their first and second moments. */
export function adamwForeach(params: Tensor[], grads: Tensor[], expAvg: Tensor[], expAvgSq: Tensor[], o: AdamwForeachOptions): void {
  if ([grads, expAvg, expAvgSq].some((l) => l.length !== params.length)) fail('adamwForeach', 'params, grads and both moment lists must have the same length');
  native.adamwForeach(handles(params), handles(grads), handles(expAvg), handles(expAvgSq), o.lr, o.weightDecay, o.betas[0], o.betas[1], o.eps, o.step);
}

/** Multiplies every gradient by `invScale` in place; true when all are finite (one device read on CUDA). */
export function ampUnscale(grads: Tensor[], invScale: number): boolean {
  return native.ampUnscale(handles(grads), invScale);
}
