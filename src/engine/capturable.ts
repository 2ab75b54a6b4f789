// Capture-safe optimizer and loss-scaler steps (native/capturable.cc): the learning rate, step count,
// loss scale and found-inf flag are small tensors on the parameters' device, so a step reads nothing
// back to the host and can be recorded in a CUDA graph. On the CPU the same calls run eagerly.
import { fail } from '../common/errors.js';
import { native } from './native.js';
import { handles, type Tensor } from './tensor.js';

export interface CapturableSgdOptions {
  /** 0-dim tensor on the parameters' device. */
  lr: Tensor;
  /** 0-dim tensor counting the group's steps (0 before the first); incremented on the device. */
  step: Tensor;
  weightDecay: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

/**
 * One torch.optim.SGD step in place. `bufs` (momentum > 0) start as zeros. `found` (a 1-element
 * float tensor, 1 = a gradient was not finite): the step is skipped on the device, parameters,
 * buffers and step count left bit-identical.
 */
export function sgdCapturable(params: Tensor[], grads: Tensor[], bufs: Tensor[] | null, o: CapturableSgdOptions, found: Tensor | null = null): void {
  if (grads.length !== params.length || (o.momentum !== 0 && bufs?.length !== params.length)) fail('sgdCapturable', 'params, grads and momentum buffers must have the same length');
  native.sgdCapturable(handles(params), handles(grads), bufs && handles(bufs), o.lr.h, o.step.h, o.weightDecay, o.momentum, o.dampening, o.nesterov, found?.h ?? null);
}

export interface CapturableAdamwOptions {
  lr: Tensor;
  step: Tensor;
  weightDecay: number;
  betas: [number, number];
  eps: number;
}

/** One torch.optim.AdamW step in place (bias corrections from the step tensor); `found` as in sgdCapturable. */
export function adamwCapturable(params: Tensor[], grads: Tensor[], expAvg: Tensor[], expAvgSq: Tensor[], o: CapturableAdamwOptions, found: Tensor | null = null): void {
  if ([grads, expAvg, expAvgSq].some((l) => l.length !== params.length)) fail('adamwCapturable', 'params, grads and both moment lists must have the same length');
  native.adamwCapturable(handles(params), handles(grads), handles(expAvg), handles(expAvgSq), o.lr.h, o.step.h, o.weightDecay, o.betas[0], o.betas[1], o.eps, found?.h ?? null);
}

/** Gradients times 1/scale in place; `found` set to 1 if any is not finite, else 0 (all on the device). */
export function ampUnscaleCapturable(grads: Tensor[], scale: Tensor, found: Tensor): void {
  native.ampUnscaleCapturable(handles(grads), scale.h, found.h);
}

/** torch's _amp_update_scale_ on the device: back off after a non-finite step, grow after `growthInterval` finite ones. */
export function ampUpdateScale(scale: Tensor, growthTracker: Tensor, found: Tensor, o: { growthFactor: number; backoffFactor: number; growthInterval: number }): void {
  native.ampUpdateScale(scale.h, growthTracker.h, found.h, o.growthFactor, o.backoffFactor, o.growthInterval);
}
