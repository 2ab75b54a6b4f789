// Module: a tree of named parameters, buffers and children whose dotted paths equal
// PyTorch's state_dict keys, so checkpoints move between the two unchanged.
import { fail, PansegError } from '../common/errors.js';
import { type DType, keep, noGrad, type Tensor } from '../engine/index.js';

export interface LoadResult {
  missing: string[];
  unexpected: string[];
  /** Keys present on both sides whose shapes differ: `key: expected [..], got [..]`. */
  mismatched: string[];
}

export abstract class Module {
  training = true;
  /** @internal */ readonly _params = new Map<string, Tensor>();
  /** @internal */ readonly _buffers = new Map<string, Tensor>();
  /** @internal */ readonly _children = new Map<string, Module>();

  /** Registers a trainable parameter (a leaf tensor with requiresGrad) under `name`. */
  protected param(name: string, t: Tensor): Tensor {
    keep(t);
    if (!t.requiresGrad) t.requiresGrad_(true);
    this._params.set(name, t);
    return t;
  }
  protected buffer(name: string, t: Tensor): Tensor {
    keep(t);
    this._buffers.set(name, t);
    return t;
  }
  /** Registers a child module under `name`; its parameters appear as `name.<param>`. */
  protected child<M extends Module>(name: string, m: M): M {
    this._children.set(name, m);
    return m;
  }

  /** Replaces a registered parameter or buffer tensor (disposing the old one). */
  protected replace(name: string, t: Tensor): void {
    const map = this._params.has(name) ? this._params : this._buffers.has(name) ? this._buffers : null;
    if (!map) fail('Module', `no parameter or buffer named '${name}'`);
    const old = map.get(name)!;
    keep(t);
    map.set(name, t);
    if (old !== t) old.dispose();
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [n, c] of this._children) yield* c.namedModules(prefix ? `${prefix}.${n}` : n);
  }
  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    for (const [p, m] of this.namedModules(prefix)) for (const [n, t] of m._params) yield [p ? `${p}.${n}` : n, t];
  }
  *namedBuffers(prefix = ''): Generator<[string, Tensor]> {
    for (const [p, m] of this.namedModules(prefix)) for (const [n, t] of m._buffers) yield [p ? `${p}.${n}` : n, t];
  }
  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, t]) => t);
  }

  /** Parameter count; `trainableOnly` counts those with requiresGrad. */
  numParameters(trainableOnly = false): number {
    let n = 0;
    for (const [, t] of this.namedParameters()) if (!trainableOnly || t.requiresGrad) n += t.numel;
    return n;
  }

  /** Parameters and buffers in PyTorch's state_dict order (a module's own params, its buffers, then children). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const walk = (m: Module, prefix: string): void => {
      for (const [n, t] of m._params) out.set(prefix + n, t);
      for (const [n, t] of m._buffers) out.set(prefix + n, t);
      for (const [n, c] of m._children) walk(c, `${prefix}${n}.`);
    };
    walk(this, '');
    return out;
  }

  /**
   * Copies values from `sd` into this module's tensors (casting dtype as needed).
   * With `strict` (default) any missing, unexpected or mis-shaped key throws, listing them all;
   * otherwise they are returned and matching keys are loaded.
   */
  loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, opts: { strict?: boolean } = {}): LoadResult {
    const strict = opts.strict ?? true;
    const src = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const res: LoadResult = { missing: [], unexpected: [], mismatched: [] };
    for (const k of own.keys()) if (!src.has(k)) res.missing.push(k);
    for (const k of src.keys()) if (!own.has(k)) res.unexpected.push(k);
    for (const [k, t] of own) {
      const s = src.get(k);
      if (s && (s.ndim !== t.ndim || s.shape.some((d, i) => d !== t.shape[i]))) {
        res.mismatched.push(`${k}: expected [${t.shape.join(', ')}], got [${s.shape.join(', ')}]`);
      }
    }
    if (strict && (res.missing.length || res.unexpected.length || res.mismatched.length)) {
      const parts: string[] = [];
      const list = (xs: string[]) => (xs.length > 8 ? `${xs.slice(0, 8).join(', ')} and ${xs.length - 8} more` : xs.join(', '));
      if (res.missing.length) parts.push(`missing keys: ${list(res.missing)}`);
      if (res.unexpected.length) parts.push(`unexpected keys: ${list(res.unexpected)}`);
      if (res.mismatched.length) parts.push(`mis-shaped keys: ${list(res.mismatched)}`);
      throw new PansegError(`loadStateDict: ${parts.join('; ')}`);
    }
    const bad = new Set(res.mismatched.map((m) => m.slice(0, m.indexOf(':'))));
    noGrad(() => {
      for (const [k, t] of own) {
        const s = src.get(k);
        if (s && !bad.has(k)) t.copy_(s);
      }
    });
    return res;
  }

  /** Sets training mode here and below (BatchNorm uses batch statistics, Dropout drops). */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Stops (or resumes) gradient computation for every parameter. */
  freeze(): this {
    for (const [, t] of this.namedParameters()) t.requiresGrad_(false);
    return this;
  }
  unfreeze(): this {
    for (const [, t] of this.namedParameters()) t.requiresGrad_(true);
    return this;
  }

  /**
   * Moves or casts every parameter and buffer (floating tensors only for a dtype cast),
   * or converts 4-D tensors to channels-last memory order.
   */
  to(target: { device?: string; dtype?: DType; memoryFormat?: 'contiguous' | 'channelsLast' }): this {
    noGrad(() => {
      for (const [, m] of this.namedModules()) {
        for (const map of [m._params, m._buffers]) {
          for (const [n, t] of map) {
            let u = t;
            if (target.device && target.device !== t.device) u = u.to(target.device);
            if (target.dtype && t.isFloatingPoint && target.dtype !== t.dtype) { const c = u.to(target.dtype); if (u !== t) u.dispose(); u = c; }
            if (target.memoryFormat && t.ndim === 4) { const c = u.contiguous(target.memoryFormat); if (u !== t) u.dispose(); u = c; }
            if (u !== t) {
              if (map === m._params) u.requiresGrad_(t.requiresGrad);
              keep(u);
              map.set(n, u);
              t.dispose();
            }
          }
        }
      }
    });
    return this;
  }

  /** Frees every parameter and buffer. The module cannot be used afterwards. */
  dispose(): void {
    for (const [, t] of this.namedParameters()) t.dispose();
    for (const [, t] of this.namedBuffers()) t.dispose();
  }

  /** The module's own parameter by name (e.g. `weight`). */
  getParam(name: string): Tensor {
    const t = this._params.get(name);
    if (!t) fail('Module', `no parameter named '${name}'`);
    return t;
  }
  getBuffer(name: string): Tensor {
    const t = this._buffers.get(name);
    if (!t) fail('Module', `no buffer named '${name}'`);
    return t;
  }
  getChild<M extends Module = Module>(name: string): M {
    const c = this._children.get(name);
    if (!c) fail('Module', `no child module named '${name}'`);
    return c as M;
  }
}

/** A module mapping one tensor to one tensor; Sequential composes these. */
export abstract class Layer extends Module {
  abstract forward(x: Tensor): Tensor;
}
