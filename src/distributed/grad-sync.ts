// Gradient averaging for data-parallel training, as PyTorch's DistributedDataParallel does it:
// bucketed all-reduce launched from autograd hooks while backward is still running.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { type Module } from '../nn/index.js';
import { noGrad, type Tensor } from '../engine/index.js';
import { c10d, type DistHandle, handles } from '../engine/c10d.js';
import type { ProcessGroup } from './process-group.js';

export interface GradientSyncOptions {
  /** Bucket size in MiB. Default 25 (DDP's bucket_cap_mb). 0: one bucket per parameter. */
  bucketMB?: number;
  /** The first bucket (the last layers' gradients, ready first) in MiB, so communication starts early. Default 1. */
  firstBucketMB?: number;
  /** Launch each bucket's all-reduce as soon as it fills during backward (true, default) or all after backward. */
  overlap?: boolean;
}

/** What the last synchronized step cost. */
export interface GradSyncStats {
  buckets: number;
  /** Buckets whose all-reduce started while backward was still running. */
  launchedEarly: number;
  /** Milliseconds finish() waited for communication after backward ended. */
  waitMs: number;
  /** Milliseconds spent copying gradients into and out of the flat bucket buffers. */
  copyMs: number;
}

/**
 * Averages the gradients of `params` across the group's ranks.
 * Call `prepare()` before the backward whose gradients should be averaged (skip it for the
 * accumulation micro-steps, as DDP's no_sync()), and `finish()` after it, before the optimizer step.
 * Parameters must keep their tensors: after `module.to(...)` or a change of which parameters
 * require grad, dispose this and build a new one.
 * @example
 * const sync = new GradientSync(pg, model.parameters());
 * sync.prepare(); loss.backward(); sync.finish(); optimizer.step();
 */
export class GradientSync {
  private h: DistHandle | null;
  readonly params: Tensor[];

  constructor(readonly group: ProcessGroup, params: Tensor[], o: GradientSyncOptions = {}) {
    const op = 'GradientSync';
    const mb = v.num(op, 'bucketMB', o.bucketMB ?? 25, { min: 0 });
    const first = v.num(op, 'firstBucketMB', o.firstBucketMB ?? Math.min(1, mb), { min: 0 });
    const overlap = v.bool(op, 'overlap', o.overlap ?? true);
    this.params = params.filter((p) => p.requiresGrad);
    this.h = c10d.gradSyncCreate(group.h, handles(this.params), Math.round(mb * 2 ** 20), Math.round(first * 2 ** 20), overlap);
  }

  private get handle(): DistHandle {
    if (!this.h) fail('GradientSync', 'this GradientSync was disposed; build a new one');
    return this.h;
  }

  /** Arms the hooks: the next backward's gradients are all-reduced as they become ready. */
  prepare(): void {
    c10d.gradSyncPrepare(this.handle);
  }

  /** Waits for every bucket, divides by the world size and writes the averages into `.grad`. */
  finish(): GradSyncStats {
    try {
      return c10d.gradSyncFinish(this.handle);
    } catch (e) {
      throw this.group.diagnose('gradient all-reduce', e as Error);
    }
  }

  /** Parameter indices (into `params`) of each bucket, in launch order. */
  get buckets(): number[][] {
    return c10d.gradSyncBuckets(this.handle);
  }

  /** Removes the hooks. */
  dispose(): void {
    if (this.h) c10d.gradSyncDestroy(this.h);
    this.h = null;
  }
}

/**
 * The baseline GradientSync is measured against: after backward, one blocking all-reduce per
 * parameter gradient, then divide. Returns milliseconds spent.
 */
export function allreducePerParameter(group: ProcessGroup, params: Tensor[]): number {
  const t0 = performance.now();
  for (const p of params) {
    const g = p.grad;
    if (!g) continue;
    try {
      group.allreduce([g], 'sum');
      noGrad(() => g.div_(group.size));
    } finally { g.dispose(); }
  }
  return performance.now() - t0;
}

/** Copies every parameter and buffer of `module` from `root` to all ranks (the same initial weights everywhere). */
export function broadcastModule(group: ProcessGroup, module: Module, root = 0): void {
  group.broadcast([...module.stateDict().values()], root);
}

/** Copies only the buffers (BatchNorm running statistics) from `root`, as DDP's broadcast_buffers. */
export function broadcastBuffers(group: ProcessGroup, module: Module, root = 0): void {
  group.broadcast([...module.namedBuffers()].map(([, t]) => t), root);
}
