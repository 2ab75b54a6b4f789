// Optimizers with PyTorch's update rules (torch.optim.SGD and AdamW): the foreach path (one native
// call per group, the default) and the same rules written with the engine's in-place ops under noGrad.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { adamwForeach, keep, noGrad, sgdForeach, type Tensor, tidy, zerosLike } from '../engine/index.js';

export interface ParamGroup {
  params: Tensor[];
  lr: number;
  weightDecay: number;
  /** The group's learning rate before schedules; schedules scale from it. */
  initialLr: number;
}

/** Per-parameter optimizer state: named buffers and a step count. */
export interface ParamState {
  step: number;
  buffers: Record<string, Tensor>;
}

/** A parameter with its gradient and state, for the foreach path. */
export interface ForeachItem {
  p: Tensor;
  grad: Tensor;
  st: ParamState;
}

export abstract class Optimizer {
  readonly groups: ParamGroup[];
  readonly state = new Map<Tensor, ParamState>();

  /**
   * `foreach` (default true): update each group's parameters in one native call, with the same
   * arithmetic: on the CPU one fused pass over each float32/float64 parameter (as torch.optim's
   * fused=True), on a GPU multi-tensor kernels (foreach=True). false: per-parameter in-place ops,
   * torch.optim's single-tensor path.
   */
  constructor(params: Tensor[] | { params: Tensor[]; lr?: number; weightDecay?: number }[], lr: number, weightDecay: number, private readonly foreach = true) {
    const op = this.constructor.name;
    v.num(op, 'lr', lr, { min: 0 });
    v.num(op, 'weightDecay', weightDecay, { min: 0 });
    const list = Array.isArray(params) && params.length && !('params' in (params[0] as object))
      ? [{ params: params as Tensor[] }] : (params as { params: Tensor[]; lr?: number; weightDecay?: number }[]);
    if (!list.length || !list.every((g) => Array.isArray(g.params))) fail(op, 'expected an array of parameters or of parameter groups');
    this.groups = list.map((g) => ({ params: g.params, lr: g.lr ?? lr, weightDecay: g.weightDecay ?? weightDecay, initialLr: g.lr ?? lr }));
  }

  /** Sets every parameter's gradient to none (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.grad = null;
  }

  /** Applies one update from the current gradients; parameters without a gradient are skipped. */
  step(): void {
    if (this.foreach) {
      noGrad(() => {
        for (const g of this.groups) {
          const items: ForeachItem[] = [];
          for (const p of g.params) {
            const grad = p.grad;
            if (grad) items.push({ p, grad, st: this.stateOf(p) });
          }
          try { if (items.length) this.updateForeach(items, g); } finally { for (const i of items) i.grad.dispose(); }
        }
      });
      return;
    }
    noGrad(() => {
      for (const g of this.groups) {
        for (const p of g.params) {
          const grad = p.grad;
          if (!grad) continue;
          const st = this.stateOf(p);
          tidy(() => this.update(p, grad, st, g));
          grad.dispose();
        }
      }
    });
  }

  private stateOf(p: Tensor): ParamState {
    let st = this.state.get(p);
    if (!st) { st = { step: 0, buffers: {} }; this.state.set(p, st); }
    return st;
  }

  protected abstract update(p: Tensor, grad: Tensor, st: ParamState, g: ParamGroup): void;
  /** The same update for all `items` of group `g` at once (advances their steps). */
  protected abstract updateForeach(items: ForeachItem[], g: ParamGroup): void;

  /** Creates a persistent state buffer (outside any tidy scope). */
  protected buffer(st: ParamState, name: string, init: () => Tensor): Tensor {
    return (st.buffers[name] ??= keep(init()));
  }

  /** Named per-parameter buffers for checkpoints: `<param index>.<buffer>` -> tensor, and steps. */
  stateTensors(): { tensors: Map<string, Tensor>; steps: Record<string, number> } {
    const tensors = new Map<string, Tensor>();
    const steps: Record<string, number> = {};
    let i = 0;
    for (const g of this.groups) for (const p of g.params) {
      const st = this.state.get(p);
      if (st) {
        steps[i] = st.step;
        for (const [n, t] of Object.entries(st.buffers)) tensors.set(`${i}.${n}`, t);
      }
      i++;
    }
    return { tensors, steps };
  }

  /** Restores state written by stateTensors() (copies; the inputs stay owned by the caller). */
  loadStateTensors(tensors: Map<string, Tensor>, steps: Record<string, number>): void {
    let i = 0;
    noGrad(() => {
      for (const g of this.groups) for (const p of g.params) {
        if (steps[i] !== undefined) {
          const st: ParamState = { step: steps[i], buffers: {} };
          for (const [k, t] of tensors) {
            const dot = k.indexOf('.');
            // a copy in the parameter's memory order, so that the fused update applies
            if (Number(k.slice(0, dot)) === i) st.buffers[k.slice(dot + 1)] = keep(zerosLike(p, { dtype: t.dtype }).copy_(t));
          }
          this.state.set(p, st);
        }
        i++;
      }
    });
  }

  dispose(): void {
    for (const st of this.state.values()) for (const t of Object.values(st.buffers)) t.dispose();
    this.state.clear();
  }
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
  /** One native call per group (default true; see Optimizer). false: per-parameter ops. */
  foreach?: boolean;
}

/** torch.optim.SGD: L2 weight decay added to the gradient, momentum buffer, optional Nesterov. */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  constructor(params: Tensor[] | { params: Tensor[]; lr?: number; weightDecay?: number }[], o: SGDOptions) {
    super(params, o.lr, o.weightDecay ?? 0, o.foreach);
    this.momentum = v.num('SGD', 'momentum', o.momentum ?? 0, { min: 0 });
    this.dampening = v.num('SGD', 'dampening', o.dampening ?? 0, { min: 0, max: 1 });
    this.nesterov = o.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) fail('SGD', 'nesterov needs momentum > 0 and dampening 0');
  }

  protected updateForeach(items: ForeachItem[], g: ParamGroup): void {
    // Parameters on their first step get new momentum buffers; the others update theirs.
    const fresh = items.filter((i) => !i.st.buffers.momentum_buffer);
    const going = items.filter((i) => i.st.buffers.momentum_buffer);
    const o = { lr: g.lr, weightDecay: g.weightDecay, momentum: this.momentum, dampening: this.dampening, nesterov: this.nesterov };
    for (const [list, bufs] of [[fresh, null], [going, going.map((i) => i.st.buffers.momentum_buffer)]] as const) {
      if (!list.length) continue;
      const made = sgdForeach(list.map((i) => i.p), list.map((i) => i.grad), bufs, o);
      list.forEach((i, k) => {
        if (made) i.st.buffers.momentum_buffer = keep(made[k]);
        i.st.step++;
      });
    }
  }

  protected update(p: Tensor, grad: Tensor, st: ParamState, g: ParamGroup): void {
    let d = g.weightDecay ? grad.add(p, g.weightDecay) : grad;
    if (this.momentum) {
      const first = !st.buffers.momentum_buffer;
      const buf = this.buffer(st, 'momentum_buffer', () => d.clone());
      if (!first) buf.mul_(this.momentum).add_(d, 1 - this.dampening);
      d = this.nesterov ? d.add(buf, this.momentum) : buf;
    }
    st.step++;
    p.add_(d, -g.lr);
  }
}

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** See SGDOptions.foreach. */
  foreach?: boolean;
}

/** torch.optim.AdamW: decoupled weight decay, bias-corrected moments (amsgrad off). */
export class AdamW extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  constructor(params: Tensor[] | { params: Tensor[]; lr?: number; weightDecay?: number }[], o: AdamWOptions = {}) {
    super(params, o.lr ?? 1e-3, o.weightDecay ?? 1e-2, o.foreach);
    this.betas = o.betas ?? [0.9, 0.999];
    this.betas.forEach((b, i) => v.num('AdamW', `betas[${i}]`, b, { min: 0, max: 1 }));
    this.eps = v.num('AdamW', 'eps', o.eps ?? 1e-8, { min: 0 });
  }
  protected update(p: Tensor, grad: Tensor, st: ParamState, g: ParamGroup): void {
    const [b1, b2] = this.betas;
    p.mul_(1 - g.lr * g.weightDecay);
    const m = this.buffer(st, 'exp_avg', () => zerosLike(p));
    const s = this.buffer(st, 'exp_avg_sq', () => zerosLike(p));
    m.lerp_(grad, 1 - b1);
    s.mul_(b2).addcmul_(grad, grad, 1 - b2);
    st.step++;
    const bc1 = 1 - b1 ** st.step;
    const bc2 = 1 - b2 ** st.step;
    const denom = s.sqrt().div_(Math.sqrt(bc2)).add_(this.eps);
    p.addcdiv_(m, denom, -g.lr / bc1);
  }

  protected updateForeach(items: ForeachItem[], g: ParamGroup): void {
    // Parameters at different steps (e.g. an encoder unfrozen later) differ in bias correction.
    const bySteps = new Map<number, ForeachItem[]>();
    for (const i of items) {
      this.buffer(i.st, 'exp_avg', () => zerosLike(i.p));
      this.buffer(i.st, 'exp_avg_sq', () => zerosLike(i.p));
      i.st.step++;
      const same = bySteps.get(i.st.step);
      if (same) same.push(i);
      else bySteps.set(i.st.step, [i]);
    }
    for (const [step, list] of bySteps) {
      adamwForeach(list.map((i) => i.p), list.map((i) => i.grad), list.map((i) => i.st.buffers.exp_avg), list.map((i) => i.st.buffers.exp_avg_sq),
        { lr: g.lr, weightDecay: g.weightDecay, betas: this.betas, eps: this.eps, step });
    }
  }
}
