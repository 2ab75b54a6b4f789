// Learning-rate schedules as pure functions of the iteration, with optional linear warmup.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import type { Optimizer } from './optimizers.js';

export type ScheduleName = 'poly' | 'cosine' | 'step' | 'constant';

export interface ScheduleOptions {
  name: ScheduleName;
  /** Total iterations (optimizer steps) of the run. */
  totalIters: number;
  /** poly: exponent (default 0.9, the PAN/DeepLab recipe). */
  power?: number;
  /** cosine: the final lr as a fraction of the base (default 0). */
  minLrRatio?: number;
  /** step: decay every `stepSize` iterations by `gamma` (default 0.1). */
  stepSize?: number;
  gamma?: number;
  /** Linear warmup over the first iterations, from `warmupRatio` x lr (default 0.001). */
  warmupIters?: number;
  warmupRatio?: number;
}

/** The multiplier of the base lr at iteration `it` (0-based): lr(it) = base * factor(it). */
export function lrFactor(o: ScheduleOptions, it: number): number {
  const op = 'schedule';
  v.int(op, 'totalIters', o.totalIters, 1);
  const t = Math.min(it, o.totalIters);
  let f: number;
  switch (o.name) {
    case 'poly': f = (1 - t / o.totalIters) ** (o.power ?? 0.9); break;
    case 'cosine': { const m = o.minLrRatio ?? 0; f = m + (1 - m) * 0.5 * (1 + Math.cos((Math.PI * t) / o.totalIters)); break; }
    case 'step': f = (o.gamma ?? 0.1) ** Math.floor(t / v.int(op, 'stepSize', o.stepSize, 1)); break;
    case 'constant': f = 1; break;
    default: fail(op, `unknown schedule '${String(o.name)}'; valid: poly, cosine, step, constant`);
  }
  const w = o.warmupIters ?? 0;
  if (w > 0 && it < w) {
    const r = o.warmupRatio ?? 0.001;
    f *= r + (1 - r) * (it / w);
  }
  return f;
}

/** Sets each group's lr for iteration `it` from its initial lr. */
export class LRScheduler {
  iter = 0;
  constructor(readonly optimizer: Optimizer, readonly options: ScheduleOptions) {
    lrFactor(options, 0);
    this.apply();
  }
  private apply(): void {
    const f = lrFactor(this.options, this.iter);
    for (const g of this.optimizer.groups) g.lr = g.initialLr * f;
  }
  /** Advances one optimizer step. */
  step(): void {
    this.iter++;
    this.apply();
  }
  get lr(): number { return this.optimizer.groups[0].lr; }
  /** Restores the position (for resume). */
  setIter(it: number): void {
    this.iter = it;
    this.apply();
  }
}
