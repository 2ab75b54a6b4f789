// Loss scaling for float16 mixed precision (torch.cuda.amp.GradScaler's algorithm): the loss is
// multiplied by `scale` so small fp16 gradients do not flush to zero; before the optimizer step the
// gradients are divided back, and a step with inf/NaN gradients is skipped and the scale halved.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { ampUnscale, ampUnscaleCapturable, ampUpdateScale, full, keep, noGrad, type Tensor, zeros } from '../engine/index.js';
import type { Optimizer } from './optimizers.js';

export interface GradScalerOptions {
  /** Default 2^16. */
  initScale?: number;
  /** Default 2. */
  growthFactor?: number;
  /** Default 0.5. */
  backoffFactor?: number;
  /** Steps without inf/NaN before the scale grows. Default 2000. */
  growthInterval?: number;
}

function checked(op: string, o: GradScalerOptions) {
  return {
    initScale: v.num(op, 'initScale', o.initScale ?? 2 ** 16, { min: Number.MIN_VALUE }),
    growth: v.num(op, 'growthFactor', o.growthFactor ?? 2, { min: 1 }),
    backoff: v.num(op, 'backoffFactor', o.backoffFactor ?? 0.5, { min: Number.MIN_VALUE, max: 1 }),
    interval: v.int(op, 'growthInterval', o.growthInterval ?? 2000, 1),
  };
}

/** The optimizer's parameters' gradients (new handles: the caller disposes them). */
function gradients(optimizer: Optimizer): Tensor[] {
  return optimizer.groups.flatMap((g) => g.params.map((p) => p.grad).filter((t): t is Tensor => t !== null));
}

export class GradScaler {
  scale: number;
  private goodSteps = 0;
  private readonly growth: number;
  private readonly backoff: number;
  private readonly interval: number;

  constructor(o: GradScalerOptions = {}) {
    const c = checked('GradScaler', o);
    this.scale = c.initScale;
    this.growth = c.growth;
    this.backoff = c.backoff;
    this.interval = c.interval;
  }

  /** The loss times the current scale; call backward() on the result. */
  scaleLoss(loss: Tensor): Tensor {
    return loss.mul(this.scale);
  }

  /**
   * Unscales the gradients in place and steps the optimizer unless any gradient is inf/NaN;
   * then updates the scale. Returns whether the step was taken.
   */
  step(optimizer: Optimizer): boolean {
    // One native call and one device read (on a GPU every read is a synchronization).
    const grads = gradients(optimizer);
    let finite: boolean;
    try { finite = ampUnscale(grads, 1 / this.scale); } finally { for (const t of grads) t.dispose(); }
    if (finite) optimizer.step();
    this.update(finite);
    return finite;
  }

  private update(finite: boolean): void {
    if (!finite) {
      this.scale *= this.backoff;
      this.goodSteps = 0;
    } else if (++this.goodSteps >= this.interval) {
      this.scale *= this.growth;
      this.goodSteps = 0;
    }
  }

  /** For checkpoints. */
  state(): { scale: number; goodSteps: number } {
    return { scale: this.scale, goodSteps: this.goodSteps };
  }
  loadState(s: { scale: number; goodSteps: number }): void {
    this.scale = s.scale;
    this.goodSteps = s.goodSteps;
  }
}

/**
 * GradScaler's algorithm with its state on the device, for a step recorded in a CUDA graph: the scale
 * (float32) and the count of finite steps (int32) are 1-element tensors on the gradients' device, the
 * unscale and found-inf check, the skip of the optimizer step (exact: a capturable optimizer leaves
 * parameters and state unchanged) and the scale update (torch's _amp_update_scale_) run there, and
 * nothing is read back. Needs an optimizer made with `capturable: true`. Same decisions and scale as
 * GradScaler, step for step.
 */
export class DeviceGradScaler {
  private readonly o: ReturnType<typeof checked>;
  private t: { scale: Tensor; tracker: Tensor; found: Tensor } | null = null;
  private restored: { scale: number; goodSteps: number } | null = null;

  constructor(o: GradScalerOptions = {}) {
    this.o = checked('DeviceGradScaler', o);
  }

  /** The state tensors on `device`, made on first use (before any capture). */
  private state_(device: string) {
    if (!this.t) {
      const s = this.restored ?? { scale: this.o.initScale, goodSteps: 0 };
      this.t = {
        scale: keep(full([1], s.scale, { device })),
        tracker: keep(full([1], s.goodSteps, { dtype: 'int32', device })),
        found: keep(zeros([1], { device })),
      };
    }
    return this.t;
  }

  /** The loss times the scale tensor; call backward() on the result. */
  scaleLoss(loss: Tensor): Tensor {
    return loss.mul(this.state_(loss.device).scale);
  }

  /** Unscales the gradients, steps `optimizer` unless one is not finite, and updates the scale: all on the device. */
  step(optimizer: Optimizer): void {
    if (!optimizer.capturable) fail('DeviceGradScaler', 'the optimizer must be made with capturable: true');
    const grads = gradients(optimizer);
    if (!grads.length) fail('DeviceGradScaler', 'no parameter has a gradient; call backward() on scaleLoss(loss) first');
    const t = this.state_(grads[0].device);
    try { noGrad(() => ampUnscaleCapturable(grads, t.scale, t.found)); } finally { for (const g of grads) g.dispose(); }
    optimizer.step(t.found);
    noGrad(() => ampUpdateScale(t.scale, t.tracker, t.found, { growthFactor: this.o.growth, backoffFactor: this.o.backoff, growthInterval: this.o.interval }));
  }

  /** The current scale (a device read: not during a capture). */
  get scale(): number {
    return this.t ? this.t.scale.item() : (this.restored?.scale ?? this.o.initScale);
  }

  /** Whether the last step found a non-finite gradient and was skipped (a device read). */
  lastStepSkipped(): boolean {
    return this.t ? this.t.found.item() > 0 : false;
  }

  /** For checkpoints (device reads), in GradScaler's form. */
  state(): { scale: number; goodSteps: number } {
    return this.t ? { scale: this.t.scale.item(), goodSteps: this.t.tracker.item() } : (this.restored ?? { scale: this.o.initScale, goodSteps: 0 });
  }
  loadState(s: { scale: number; goodSteps: number }): void {
    this.restored = { ...s };
    if (this.t) { this.t.scale.fill_(s.scale); this.t.tracker.fill_(s.goodSteps); }
  }

  dispose(): void {
    if (this.t) for (const x of Object.values(this.t)) x.dispose();
    this.t = null;
  }
}
