// Optimizers with PyTorch's update rules (torch.optim.SGD and AdamW), written with the engine's
// in-place ops under noGrad; SGD also has the foreach path (one native call per group).
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { keep, noGrad, sgdForeach, type Tensor, tidy, zerosLike } from '../engine/index.js';

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

export abstract class Optimizer {
  readonly groups: ParamGroup[];
  readonly state = new Map<Tensor, ParamState>();

  constructor(params: Tensor[] | { params: Tensor[]; lr?: number; weightDecay?: number }[], lr: number, weightDecay: number) {
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
    noGrad(() => {
      for (const g of this.groups) {
        for (const p of g.params) {
          const grad = p.grad;
          if (!grad) continue;
          let st = this.state.get(p);
          if (!st) { st = { step: 0, buffers: {} }; this.state.set(p, st); }
          tidy(() => this.update(p, grad, st!, g));
          grad.dispose();
        }
      }
    });
  }

  protected abstract update(p: Tensor, grad: Tensor, st: ParamState, g: ParamGroup): void;

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
            if (Number(k.slice(0, dot)) === i) st.buffers[k.slice(dot + 1)] = keep(t.clone());
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
  /**
   * Update all parameters of a group in one native call (torch.optim's foreach=True): the same
   * arithmetic, with multi-tensor kernels on a GPU. Default: on for parameters on a GPU, as PyTorch.
   */
  foreach?: boolean;
}

/** torch.optim.SGD: L2 weight decay added to the gradient, momentum buffer, optional Nesterov. */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  constructor(params: Tensor[] | { params: Tensor[]; lr?: number; weightDecay?: number }[], o: SGDOptions) {
    super(params, o.lr, o.weightDecay ?? 0);
    this.momentum = v.num('SGD', 'momentum', o.momentum ?? 0, { min: 0 });
    this.dampening = v.num('SGD', 'dampening', o.dampening ?? 0, { min: 0, max: 1 });
    this.nesterov = o.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) fail('SGD', 'nesterov needs momentum > 0 and dampening 0');
    this.foreach = o.foreach;
  }
  private readonly foreach: boolean | undefined;

  override step(): void {
    const first = this.groups.find((g) => g.params.length)?.params[0];
    if (!(this.foreach ?? first?.device.startsWith('cuda'))) { super.step(); return; }
    noGrad(() => {
      for (const g of this.groups) {
        // Parameters on their first step get new momentum buffers; the others update theirs.
        const fresh: { p: Tensor; grad: Tensor; st: ParamState }[] = [];
        const going: typeof fresh = [];
        for (const p of g.params) {
          const grad = p.grad;
          if (!grad) continue;
          let st = this.state.get(p);
          if (!st) { st = { step: 0, buffers: {} }; this.state.set(p, st); }
          (st.buffers.momentum_buffer ? going : fresh).push({ p, grad, st });
        }
        const o = { lr: g.lr, weightDecay: g.weightDecay, momentum: this.momentum, dampening: this.dampening, nesterov: this.nesterov };
        for (const [items, bufs] of [[fresh, null], [going, going.map((i) => i.st.buffers.momentum_buffer)]] as const) {
          if (!items.length) continue;
          const made = sgdForeach(items.map((i) => i.p), items.map((i) => i.grad), bufs, o);
          items.forEach((i, k) => {
            if (made) i.st.buffers.momentum_buffer = keep(made[k]);
            i.st.step++;
            i.grad.dispose();
          });
        }
      }
    });
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
}

/** torch.optim.AdamW: decoupled weight decay, bias-corrected moments (amsgrad off). */
export class AdamW extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  constructor(params: Tensor[] | { params: Tensor[]; lr?: number; weightDecay?: number }[], o: AdamWOptions = {}) {
    super(params, o.lr ?? 1e-3, o.weightDecay ?? 1e-2);
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
}
