// Loss scaling for float16 mixed precision (torch.cuda.amp.GradScaler's algorithm): the loss is
// multiplied by `scale` so small fp16 gradients do not flush to zero; before the optimizer step the
// gradients are divided back, and a step with inf/NaN gradients is skipped and the scale halved.
import * as v from '../common/validate.js';
import { ampUnscale, type Tensor } from '../engine/index.js';
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

export class GradScaler {
  scale: number;
  private goodSteps = 0;
  private readonly growth: number;
  private readonly backoff: number;
  private readonly interval: number;

  constructor(o: GradScalerOptions = {}) {
    this.scale = v.num('GradScaler', 'initScale', o.initScale ?? 2 ** 16, { min: Number.MIN_VALUE });
    this.growth = v.num('GradScaler', 'growthFactor', o.growthFactor ?? 2, { min: 1 });
    this.backoff = v.num('GradScaler', 'backoffFactor', o.backoffFactor ?? 0.5, { min: Number.MIN_VALUE, max: 1 });
    this.interval = v.int('GradScaler', 'growthInterval', o.growthInterval ?? 2000, 1);
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
    const grads = optimizer.groups.flatMap((g) => g.params.map((p) => p.grad).filter((t): t is Tensor => t !== null));
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
