// Optimizers with PyTorch's update rules (torch.optim.SGD and AdamW): the foreach path (one native
// call per group, the default), the same rules written with the engine's in-place ops under noGrad, and
// a capturable path (lr and step count in device tensors) that a CUDA graph can record.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { adamwCapturable, adamwForeach, full, isCapturing, keep, noGrad, sgdCapturable, sgdForeach, type Tensor, tidy, zerosLike } from '../engine/index.js';

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

/** A group's per-step numbers on its parameters' device, for the capturable path. */
export interface DeviceScalars {
  /** 0-dim float64: the group's lr, written from the host before each step (see writeScalars). */
  lr: Tensor;
  /** 0-dim float64: the group's step count, advanced on the device. */
  step: Tensor;
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
  /** See SGDOptions.capturable. */
  readonly capturable: boolean;
  private readonly scalars = new Map<ParamGroup, DeviceScalars>();
  private restoredSteps = new Map<ParamGroup, number>();

  /**
   * `foreach` (default true): update each group's parameters in one native call, with the same
   * arithmetic: on the CPU one fused pass over each float32/float64 parameter (as torch.optim's
   * fused=True), on a GPU multi-tensor kernels (foreach=True). false: per-parameter in-place ops,
   * torch.optim's single-tensor path.
   */
  constructor(params: Tensor[] | { params: Tensor[]; lr?: number; weightDecay?: number }[], lr: number, weightDecay: number, private readonly foreach = true, capturable = false) {
    const op = this.constructor.name;
    this.capturable = v.bool(op, 'capturable', capturable);
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

  /**
   * Applies one update from the current gradients; parameters without a gradient are skipped.
   * `found` (capturable only): a 1-element device tensor, 1 when a gradient was not finite; the update is
   * then skipped on the device, leaving parameters and state unchanged (GradScaler's skip, captured).
   */
  step(found: Tensor | null = null): void {
    if (this.capturable) { this.stepCapturable(found); return; }
    if (found) fail(this.constructor.name, 'step(found) needs capturable: true');
    if (this.foreach) {
      noGrad(() => {
        for (const g of this.groups) {
          const items = this.withGrads(g);
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

  /**
   * Copies each group's lr into its device tensor. step() does this itself except during a CUDA graph
   * capture, where the value would be recorded; a graphed step calls it before every replay.
   */
  writeScalars(): void {
    for (const [g, s] of this.scalars) s.lr.fill_(g.lr);
  }

  private stepCapturable(found: Tensor | null): void {
    noGrad(() => {
      for (const g of this.groups) {
        const items = this.withGrads(g);
        try {
          if (!items.length) continue;
          const s = this.scalarsOf(g, items[0].p.device);
          if (!isCapturing()) s.lr.fill_(g.lr);
          this.updateCapturable(items, g, s, found);
        } finally { for (const i of items) i.grad.dispose(); }
      }
    });
  }

  /** The group's parameters that have a gradient, with it (the caller disposes the gradients) and their state. */
  private withGrads(g: ParamGroup): ForeachItem[] {
    const items: ForeachItem[] = [];
    for (const p of g.params) {
      const grad = p.grad;
      if (grad) items.push({ p, grad, st: this.stateOf(p) });
    }
    return items;
  }

  private scalarsOf(g: ParamGroup, device: string): DeviceScalars {
    let s = this.scalars.get(g);
    if (!s) {
      if (isCapturing()) fail(this.constructor.name, 'the first capturable step cannot be captured (it makes the optimizer state); run one step before capturing');
      s = { lr: keep(full([], g.lr, { dtype: 'float64', device })), step: keep(full([], this.restoredSteps.get(g) ?? 0, { dtype: 'float64', device })) };
      this.scalars.set(g, s);
    }
    return s;
  }

  /** The capturable update of `items` of group `g`; `found` skips it on the device. */
  protected abstract updateCapturable(items: ForeachItem[], g: ParamGroup, s: DeviceScalars, found: Tensor | null): void;

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
    const have = st.buffers[name];
    if (have) return have;
    // Made during a capture, the buffer would be re-initialized by every replay.
    if (isCapturing()) fail(this.constructor.name, 'optimizer state would be made during a CUDA graph capture; run one step before capturing');
    return (st.buffers[name] = keep(init()));
  }

  /** Named per-parameter buffers for checkpoints: `<param index>.<buffer>` -> tensor, and steps. */
  stateTensors(): { tensors: Map<string, Tensor>; steps: Record<string, number> } {
    const tensors = new Map<string, Tensor>();
    const steps: Record<string, number> = {};
    let i = 0;
    for (const g of this.groups) {
      // A capturable group counts its steps on the device (one host read per group, at checkpoint time).
      const groupStep = this.scalars.get(g)?.step.item();
      for (const p of g.params) {
        const st = this.state.get(p);
        if (st) {
          steps[i] = groupStep ?? st.step;
          for (const [n, t] of Object.entries(st.buffers)) tensors.set(`${i}.${n}`, t);
        }
        i++;
      }
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
          if (!this.restoredSteps.has(g)) this.restoredSteps.set(g, steps[i]);
        }
        i++;
      }
    });
    for (const [g, s] of this.scalars) s.step.fill_(this.restoredSteps.get(g) ?? 0);
  }

  dispose(): void {
    for (const st of this.state.values()) for (const t of Object.values(st.buffers)) t.dispose();
    this.state.clear();
    for (const s of this.scalars.values()) { s.lr.dispose(); s.step.dispose(); }
    this.scalars.clear();
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
  /**
   * Capture-safe steps (default false): the lr and step count live in 0-dim tensors on the parameters'
   * device and nothing is read back, so a CUDA graph can record step() (see train/graphed-step.ts). Every
   * parameter of a group with a gradient steps together (one step count per group). Same results as
   * the default path to float rounding.
   */
  capturable?: boolean;
}

/** torch.optim.SGD: L2 weight decay added to the gradient, momentum buffer, optional Nesterov. */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  constructor(params: Tensor[] | { params: Tensor[]; lr?: number; weightDecay?: number }[], o: SGDOptions) {
    super(params, o.lr, o.weightDecay ?? 0, o.foreach, o.capturable);
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

  protected updateCapturable(items: ForeachItem[], g: ParamGroup, s: DeviceScalars, found: Tensor | null): void {
    // Buffers start as zeros: the device picks torch's first-step rule from the step count.
    const bufs = this.momentum ? items.map((i) => this.buffer(i.st, 'momentum_buffer', () => zerosLike(i.p))) : null;
    sgdCapturable(items.map((i) => i.p), items.map((i) => i.grad), bufs,
      { lr: s.lr, step: s.step, weightDecay: g.weightDecay, momentum: this.momentum, dampening: this.dampening, nesterov: this.nesterov }, found);
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
  /** See SGDOptions.capturable (the bias corrections then come from the step count on the device, as torch's capturable=True). */
  capturable?: boolean;
}

/** torch.optim.AdamW: decoupled weight decay, bias-corrected moments (amsgrad off). */
export class AdamW extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  constructor(params: Tensor[] | { params: Tensor[]; lr?: number; weightDecay?: number }[], o: AdamWOptions = {}) {
    super(params, o.lr ?? 1e-3, o.weightDecay ?? 1e-2, o.foreach, o.capturable);
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

  protected updateCapturable(items: ForeachItem[], g: ParamGroup, s: DeviceScalars, found: Tensor | null): void {
    const m = items.map((i) => this.buffer(i.st, 'exp_avg', () => zerosLike(i.p)));
    const sq = items.map((i) => this.buffer(i.st, 'exp_avg_sq', () => zerosLike(i.p)));
    adamwCapturable(items.map((i) => i.p), items.map((i) => i.grad), m, sq, { lr: s.lr, step: s.step, weightDecay: g.weightDecay, betas: this.betas, eps: this.eps }, found);
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
