// Tensor: a typed, validated view of one libtorch tensor. Names and semantics follow PyTorch, in camelCase.
import { describe, fail, PansegError } from '../common/errors.js';
import * as v from '../common/validate.js';
import { type AnyTypedArray, type DType, DTYPES, checkDevice, dtypeCode, isFloating, typedArrayFrom } from './dtype.js';
import { checkArrayOut } from './alloc-check.js';
import { markTrackable, track, untrackNewest } from './memory.js';
import { type Handle, native } from './native.js';

const unaryIdx = new Map(native.unaryNames.map((n, i) => [n, i]));
const binaryIdx = new Map(native.binaryNames.map((n, i) => [n, i]));
const scalarIdx = new Map(native.scalarNames.map((n, i) => [n, i]));

/** Renames a native error (`binary: ...`) after the public op the user called, as a PansegError. */
export function relabel(e: unknown, op: string, ...inputs: unknown[]): never {
  if (inputs.length && !(e instanceof PansegError)) blockedLayoutError(op, inputs, 'the input is');
  if (e instanceof Error && !(e instanceof PansegError)) throw new PansegError(`${op}: ${e.message.replace(/^[A-Za-z_0-9]+: /, '')}`);
  throw e;
}

export type Scalar = number;
export type TensorOrScalar = Tensor | number;

// Tensors outside every tidy scope are watched by a FinalizationRegistry, so that the GC frees those
// nobody disposes. Registering and unregistering cost ~0.3 us, more than a small op, and most such
// tensors are disposed soon after they are made; so a tensor is registered only if it is still alive
// at the next flush: 1024 unscoped tensors later, or when the current synchronous job ends.
const collected = new FinalizationRegistry<Handle>((h) => native.dispose(h));
let pending: Tensor[] = [];
function flushPending(): void {
  const p = pending;
  pending = [];
  for (const t of p) t._watch();
}

export class Tensor {
  /** @internal */
  _h: Handle | null;
  private _watched = false;
  private _meta: [number, string, boolean, ...number[]] | null = null;
  private _mkldnn: boolean | null = null;

  /** @internal Wraps a native handle; use the creation functions instead. */
  constructor(h: Handle) {
    this._h = h;
    track(this);
  }

  /** @internal The live native handle; throws a clear error once disposed. */
  get h(): Handle {
    if (this._h === null) throw new PansegError('tensor: this tensor was disposed; keep it alive with keep() or return it from tidy()');
    return this._h;
  }

  private meta(): [number, string, boolean, ...number[]] {
    return (this._meta ??= native.meta(this.h));
  }

  get shape(): number[] { return this.meta().slice(3) as number[]; }
  get dtype(): DType { return DTYPES[this.meta()[0]]; }
  get device(): string { return this.meta()[1]; }
  get ndim(): number { return this.meta().length - 3; }
  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
  get isDisposed(): boolean { return this._h === null; }
  /**
   * 'mkldnn' for a tensor in oneDNN's blocked memory order (made by toMkldnn(); inference copies use
   * them inside), else 'strided'. A blocked tensor supports few ops: convert it back with toDense().
   */
  get layout(): 'strided' | 'mkldnn' { return this.isMkldnn ? 'mkldnn' : 'strided'; }
  get isMkldnn(): boolean { return (this._mkldnn ??= native.isMkldnn(this.h)); }
  size(d: number): number { return this.shape[v.dim('size', 'dim', d, this.ndim)]; }

  /** Frees the native memory now. Safe to call twice. */
  dispose(): void {
    if (this._h !== null) {
      if (this._watched) collected.unregister(this);
      native.dispose(this._h);
      this._h = null;
      untrackNewest(this);
    }
  }
  /** @internal See Trackable._unscoped. */
  _unscoped(): void {
    if (pending.push(this) === 1) queueMicrotask(flushPending);
    else if (pending.length >= 1024) flushPending();
  }
  /** @internal */
  _watch(): void {
    if (this._watched || this._h === null) return;
    collected.register(this, this._h, this);
    this._watched = true;
  }
  [Symbol.dispose](): void { this.dispose(); }

  // ---- data out ----
  /** A typed-array copy of the elements in row-major order (float16/bfloat16 widen to Float32Array). */
  toArray(): AnyTypedArray {
    const wide = this.dtype === 'float16' || this.dtype === 'bfloat16';
    // Checked before any copy is made: a tensor too large for an ArrayBuffer would abort V8.
    checkArrayOut('toArray', this.shape, wide ? 'float32' : this.dtype);
    if (wide) {
      const f = this.to('float32');
      try { return f.toArray(); } finally { f.dispose(); }
    }
    try { return typedArrayFrom(this.dtype, native.toBuffer(this.h)); } catch (e) { relabel(e, 'toArray'); }
  }
  /** The elements as plain numbers (int64 converted with Number()). */
  toNumbers(): number[] {
    const a = this.toArray();
    try {
      return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a as ArrayLike<number>);
    } catch (e) {
      if (e instanceof RangeError) fail('toNumbers', `${a.length} elements are more than a JS array can hold; use toArray() for a typed array`);
      throw e;
    }
  }
  item(): number {
    try { return native.item(this.h); } catch (e) { relabel(e, 'item'); }
  }
  toString(): string {
    return `Tensor(shape=${v.fmtShape(this.shape)}, dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- conversion ----
  /** Moves to a device and/or casts to a dtype: `t.to('cuda')`, `t.to('float16')`, `t.to({ device, dtype })`. */
  to(target: DType | string | { dtype?: DType; device?: string; copy?: boolean }): Tensor {
    let dtype: number | null = null;
    let device: string | null = null;
    let copy = false;
    if (typeof target === 'string') {
      if ((DTYPES as readonly string[]).includes(target)) dtype = dtypeCode('to', target);
      else device = checkDevice('to', target);
    } else if (target && typeof target === 'object') {
      if (target.dtype !== undefined) dtype = dtypeCode('to', target.dtype);
      if (target.device !== undefined) device = checkDevice('to', target.device);
      copy = target.copy === true;
    } else fail('to', `expected a dtype, a device or { dtype, device } but received ${describe(target)}`);
    if (device !== null && device.startsWith('cuda') && !native.buildInfo().cuda) {
      fail('to', 'CUDA is not available: this panseg was built against a CPU libtorch. Set LIBTORCH to a CUDA libtorch and run `npm run setup`');
    }
    try { return new Tensor(native.to(this.h, dtype, device, copy)); } catch (e) { relabel(e, 'to'); }
  }
  float(): Tensor { return this.to('float32'); }
  long(): Tensor { return this.to('int64'); }
  clone(): Tensor { return new Tensor(native.clone(this.h)); }
  detach(): Tensor { return new Tensor(native.detach(this.h)); }
  /** A contiguous copy if needed; `channelsLast` selects NHWC memory order for 4-D tensors. */
  contiguous(memoryFormat: 'contiguous' | 'channelsLast' = 'contiguous'): Tensor {
    v.oneOf('contiguous', 'memoryFormat', memoryFormat, ['contiguous', 'channelsLast']);
    if (memoryFormat === 'channelsLast' && this.ndim !== 4) fail('contiguous', `channelsLast needs a 4-D tensor, got ${v.fmtShape(this.shape)}`);
    return new Tensor(native.contiguous(this.h, memoryFormat === 'channelsLast'));
  }
  /**
   * A copy in oneDNN's blocked layout (CPU float32 or bfloat16), optionally cast on the way; a
   * blocked tensor is returned as a new handle (cast if asked).
   * @example const xb = x.toMkldnn(); ...; const y = yb.toDense();
   */
  toMkldnn(dtype?: 'float32' | 'bfloat16'): Tensor {
    if (dtype !== undefined) v.oneOf('toMkldnn', 'dtype', dtype, ['float32', 'bfloat16']);
    if (this.device !== 'cpu') fail('toMkldnn', `the blocked layout is CPU-only, got a tensor on ${this.device}`);
    if (this.dtype !== 'float32' && this.dtype !== 'bfloat16') fail('toMkldnn', `expected a float32 or bfloat16 tensor, got ${this.dtype}`);
    try { return new Tensor(native.toMkldnn(this.h, dtype === undefined ? null : dtypeCode('toMkldnn', dtype))); } catch (e) { relabel(e, 'toMkldnn'); }
  }
  /** An ordinary (strided, contiguous) tensor from a blocked one, optionally cast; a strided tensor is returned as a new handle (cast if asked). */
  toDense(dtype?: 'float32' | 'bfloat16'): Tensor {
    if (dtype !== undefined) v.oneOf('toDense', 'dtype', dtype, ['float32', 'bfloat16']);
    if (!this.isMkldnn) return dtype === undefined || dtype === this.dtype ? this.detach() : this.to(dtype);
    try { return new Tensor(native.toDense(this.h, dtype === undefined ? null : dtypeCode('toDense', dtype))); } catch (e) { relabel(e, 'toDense'); }
  }
  isContiguous(memoryFormat: 'contiguous' | 'channelsLast' = 'contiguous'): boolean {
    return native.isContiguous(this.h, memoryFormat === 'channelsLast');
  }
  strides(): number[] { return native.strides(this.h); }

  // ---- autograd ----
  // Read fresh, not from the cached meta: an in-place op with a grad-requiring operand turns it on.
  get requiresGrad(): boolean { return native.meta(this.h)[2]; }
  set requiresGrad(on: boolean) { this.requiresGrad_(on); }
  /** Sets requiresGrad in place (leaf tensors only) and returns this. */
  requiresGrad_(on = true): this {
    v.bool('requiresGrad_', 'requiresGrad', on);
    try { native.setRequiresGrad(this.h, on); } catch (e) { relabel(e, 'requiresGrad_'); }
    this._meta = null;
    return this;
  }
  /** The accumulated gradient, or null. Each read returns a new handle sharing the same memory. */
  get grad(): Tensor | null {
    const g = native.grad(this.h);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) { native.setGrad(this.h, g === null ? null : g.h); }
  get isLeaf(): boolean { return native.isLeaf(this.h); }
  retainGrad(): void { native.retainGrad(this.h); }
  /** Backpropagates from this tensor. `grad` is required unless it holds one element. */
  backward(grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    if (grad === undefined && this.numel !== 1) fail('backward', `grad can be implicitly created only for scalar outputs; pass a gradient of shape ${v.fmtShape(this.shape)}`);
    if (!this.requiresGrad) fail('backward', 'this tensor does not require grad and has no grad_fn; was it computed under noGrad() or from tensors without requiresGrad?');
    try { native.backward(this.h, grad ? grad.h : null, opts.retainGraph ?? false); } catch (e) { relabel(e, 'backward'); }
  }

  // ---- elementwise ----
  private un(op: string): Tensor {
    try { return new Tensor(native.unary(unaryIdx.get(op)!, this.h)); } catch (e) { relabel(e, op); }
  }
  private bin(op: string, other: TensorOrScalar, scalarOp = op): Tensor {
    try {
      if (other instanceof Tensor) return new Tensor(native.binary(binaryIdx.get(op)!, this.h, other.h));
      if (typeof other === 'number' || typeof other === 'boolean') return new Tensor(native.scalar(scalarIdx.get(scalarOp)!, this.h, other));
    } catch (e) { relabel(e, op); }
    fail(op, `expected a Tensor or a number for other but received ${describe(other)}`);
  }
  /** this + alpha * o (alpha as torch.add's, applied in the same pass). */
  add(o: TensorOrScalar, alpha?: number): Tensor {
    if (alpha === undefined || alpha === 1) return this.bin('add', o);
    if (!(o instanceof Tensor)) return this.bin('add', v.num('add', 'other', o, { finite: false }) * alpha);
    try { return new Tensor(native.addScaled(this.h, o.h, v.num('add', 'alpha', alpha, { finite: false }))); } catch (e) { relabel(e, 'add'); }
  }
  sub(o: TensorOrScalar): Tensor { return this.bin('sub', o); }
  mul(o: TensorOrScalar): Tensor { return this.bin('mul', o); }
  div(o: TensorOrScalar): Tensor { return this.bin('div', o); }
  pow(o: TensorOrScalar): Tensor { return this.bin('pow', o); }
  remainder(o: TensorOrScalar): Tensor { return this.bin('remainder', o); }
  /** s - this */
  rsub(s: number): Tensor { return this.bin('rsub', v.num('rsub', 'other', s, { finite: false })); }
  maximum(o: TensorOrScalar): Tensor { return this.bin('maximum', o); }
  minimum(o: TensorOrScalar): Tensor { return this.bin('minimum', o); }
  eq(o: TensorOrScalar): Tensor { return this.bin('eq', o); }
  ne(o: TensorOrScalar): Tensor { return this.bin('ne', o); }
  gt(o: TensorOrScalar): Tensor { return this.bin('gt', o); }
  ge(o: TensorOrScalar): Tensor { return this.bin('ge', o); }
  lt(o: TensorOrScalar): Tensor { return this.bin('lt', o); }
  le(o: TensorOrScalar): Tensor { return this.bin('le', o); }
  logicalAnd(o: Tensor): Tensor { return this.bin('logicalAnd', o); }
  logicalOr(o: Tensor): Tensor { return this.bin('logicalOr', o); }
  logicalNot(): Tensor { return this.un('logicalNot'); }
  neg(): Tensor { return this.un('neg'); }
  exp(): Tensor { return this.un('exp'); }
  log(): Tensor { return this.un('log'); }
  log1p(): Tensor { return this.un('log1p'); }
  sqrt(): Tensor { return this.un('sqrt'); }
  rsqrt(): Tensor { return this.un('rsqrt'); }
  abs(): Tensor { return this.un('abs'); }
  square(): Tensor { return this.un('square'); }
  reciprocal(): Tensor { return this.un('reciprocal'); }
  sign(): Tensor { return this.un('sign'); }
  floor(): Tensor { return this.un('floor'); }
  ceil(): Tensor { return this.un('ceil'); }
  round(): Tensor { return this.un('round'); }
  sin(): Tensor { return this.un('sin'); }
  cos(): Tensor { return this.un('cos'); }
  relu(): Tensor { return this.un('relu'); }
  sigmoid(): Tensor { return this.un('sigmoid'); }
  tanh(): Tensor { return this.un('tanh'); }
  gelu(): Tensor { return this.un('gelu'); }
  isnan(): Tensor { return this.un('isnan'); }
  isfinite(): Tensor { return this.un('isfinite'); }
  clamp(min: number | null = null, max: number | null = null): Tensor {
    if (min !== null) v.num('clamp', 'min', min, { finite: false });
    if (max !== null) v.num('clamp', 'max', max, { finite: false });
    if (min === null && max === null) fail('clamp', 'at least one of min or max must be given');
    return new Tensor(native.clamp(this.h, min, max));
  }
  matmul(o: Tensor): Tensor {
    if (!(o instanceof Tensor)) fail('matmul', `expected a Tensor for other but received ${describe(o)}`);
    try { return new Tensor(native.matmul(this.h, o.h)); } catch (e) { relabel(e, 'matmul'); }
  }
  softmax(dim: number): Tensor {
    const d = v.dim('softmax', 'dim', dim, this.ndim);
    try { return new Tensor(native.softmax(this.h, d)); } catch (e) { relabel(e, 'softmax'); }
  }
  logSoftmax(dim: number): Tensor {
    const d = v.dim('logSoftmax', 'dim', dim, this.ndim);
    try { return new Tensor(native.logSoftmax(this.h, d)); } catch (e) { relabel(e, 'logSoftmax'); }
  }

  // ---- reductions ----
  private red(op: string, native_op: string, dim: number | number[] | undefined, keepdim: boolean, single = false): Tensor {
    v.bool(op, 'keepdim', keepdim);
    let dims: number[] | null = null;
    if (dim !== undefined) {
      const list = Array.isArray(dim) ? dim : [dim];
      if (single && list.length !== 1) fail(op, `expected a single dim but received ${describe(dim)}`);
      dims = list.map((d) => v.dim(op, 'dim', d, this.ndim));
    }
    try { return new Tensor(native.reduce(native_op, this.h, dims, keepdim)); } catch (e) { relabel(e, op); }
  }
  sum(dim?: number | number[], keepdim = false): Tensor { return this.red('sum', 'sum', dim, keepdim); }
  mean(dim?: number | number[], keepdim = false): Tensor { return this.red('mean', 'mean', dim, keepdim); }
  /** Largest value overall, or along `dim` (values only; use argmax for indices). */
  max(dim?: number | number[], keepdim = false): Tensor { return this.red('max', 'amax', dim ?? [...this.shape.keys()], keepdim); }
  min(dim?: number | number[], keepdim = false): Tensor { return this.red('min', 'amin', dim ?? [...this.shape.keys()], keepdim); }
  argmax(dim?: number, keepdim = false): Tensor { return this.red('argmax', 'argmax', dim, keepdim, true); }
  argmin(dim?: number, keepdim = false): Tensor { return this.red('argmin', 'argmin', dim, keepdim, true); }
  /** Sample variance (unbiased, like torch.var), or the population variance with `unbiased = false`. */
  var(dim?: number | number[], keepdim = false, unbiased = true): Tensor {
    return this.red('var', unbiased ? 'var' : 'varBiased', dim, keepdim);
  }
  prod(dim?: number, keepdim = false): Tensor { return this.red('prod', 'prod', dim, keepdim, true); }
  all(dim?: number, keepdim = false): Tensor { return this.red('all', 'all', dim, keepdim, true); }
  any(dim?: number, keepdim = false): Tensor { return this.red('any', 'any', dim, keepdim, true); }
  norm(dim?: number | number[], keepdim = false): Tensor { return this.red('norm', 'norm', dim, keepdim); }
  topk(k: number, dim = -1, largest = true): [Tensor, Tensor] {
    const d = v.dim('topk', 'dim', dim, this.ndim);
    v.int('topk', 'k', k, 0, this.shape[d] ?? 1);
    const [a, b] = native.topk(this.h, k, d, largest);
    return [new Tensor(a), new Tensor(b)];
  }

  // ---- shape ----
  private resolveShape(op: string, s: number[]): number[] {
    if (!Array.isArray(s) || !s.every((x) => v.isInt(x) && x >= -1) || s.filter((x) => x === -1).length > 1) {
      fail(op, `expected a shape of non-negative integers with at most one -1 but received ${describe(s)}`);
    }
    const known = s.filter((x) => x !== -1).reduce((a, b) => a * b, 1);
    const n = this.numel;
    const ok = s.includes(-1) ? known > 0 && n % known === 0 : known === n;
    if (!ok) fail(op, `shape ${v.fmtShape(s)} is invalid for input of size ${n} (shape ${v.fmtShape(this.shape)})`);
    return s;
  }
  reshape(...s: number[] | [number[]]): Tensor {
    const shp = Array.isArray(s[0]) ? s[0] : (s as number[]);
    return new Tensor(native.reshape(this.h, this.resolveShape('reshape', shp)));
  }
  view(...s: number[] | [number[]]): Tensor {
    const shp = Array.isArray(s[0]) ? s[0] : (s as number[]);
    try { return new Tensor(native.view(this.h, this.resolveShape('view', shp))); } catch (e) { relabel(e, 'view'); }
  }
  permute(...dims: number[] | [number[]]): Tensor {
    const d = (Array.isArray(dims[0]) ? dims[0] : dims) as number[];
    if (d.length !== this.ndim) fail('permute', `expected ${this.ndim} dims for a tensor of shape ${v.fmtShape(this.shape)} but received ${describe(d)}`);
    const norm = d.map((x) => v.dim('permute', 'dims', x, this.ndim));
    if (new Set(norm).size !== norm.length) fail('permute', `dims repeat in ${describe(d)}`);
    return new Tensor(native.permute(this.h, norm));
  }
  transpose(a: number, b: number): Tensor {
    return new Tensor(native.transpose(this.h, v.dim('transpose', 'dim0', a, this.ndim), v.dim('transpose', 'dim1', b, this.ndim)));
  }
  flatten(start = 0, end = -1): Tensor {
    return new Tensor(native.flatten(this.h, v.dim('flatten', 'startDim', start, this.ndim), v.dim('flatten', 'endDim', end, this.ndim)));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(native.squeeze(this.h, dim === undefined ? null : v.dim('squeeze', 'dim', dim, this.ndim)));
  }
  unsqueeze(dim: number): Tensor { return new Tensor(native.unsqueeze(this.h, v.dim('unsqueeze', 'dim', dim, this.ndim + 1))); }
  expand(...s: number[] | [number[]]): Tensor {
    const shp = (Array.isArray(s[0]) ? s[0] : s) as number[];
    if (!shp.every((x) => v.isInt(x) && x >= -1)) fail('expand', `expected a shape of integers >= -1 but received ${describe(shp)}`);
    try { return new Tensor(native.expand(this.h, shp)); } catch (e) { relabel(e, 'expand'); }
  }
  repeat(...s: number[] | [number[]]): Tensor {
    const shp = v.shape('repeat', 'repeats', Array.isArray(s[0]) ? s[0] : s);
    try { return new Tensor(native.repeat(this.h, shp)); } catch (e) { relabel(e, 'repeat'); }
  }
  narrow(dim: number, start: number, length: number): Tensor {
    const d = v.dim('narrow', 'dim', dim, this.ndim);
    const n = this.shape[d];
    const s = v.int('narrow', 'start', start, -n, n);
    v.int('narrow', 'length', length, 0, n - (s < 0 ? s + n : s));
    return new Tensor(native.narrow(this.h, d, s, length));
  }
  /** Python's `t[..., start:end:step]` along one dim; negative bounds count from the end. */
  slice(dim: number, start = 0, end?: number, step = 1): Tensor {
    const d = v.dim('slice', 'dim', dim, this.ndim);
    v.int('slice', 'start', start);
    if (end !== undefined) v.int('slice', 'end', end);
    v.int('slice', 'step', step, 1);
    return new Tensor(native.slice(this.h, d, start, end ?? this.shape[d], step));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    try { return new Tensor(native.indexSelect(this.h, v.dim('indexSelect', 'dim', dim, this.ndim), index.h)); } catch (e) { relabel(e, 'indexSelect'); }
  }
  gather(dim: number, index: Tensor): Tensor {
    try { return new Tensor(native.gather(this.h, v.dim('gather', 'dim', dim, this.ndim), index.h)); } catch (e) { relabel(e, 'gather'); }
  }
  flip(...dims: number[] | [number[]]): Tensor {
    const d = (Array.isArray(dims[0]) ? dims[0] : dims) as number[];
    return new Tensor(native.flip(this.h, d.map((x) => v.dim('flip', 'dims', x, this.ndim))));
  }
  /** Splits into pieces of `size` (a number) or of the given sizes (an array) along `dim`. */
  split(size: number | number[], dim = 0): Tensor[] {
    const d = v.dim('split', 'dim', dim, this.ndim);
    const n = this.shape[d];
    let sizes: number[];
    if (Array.isArray(size)) {
      sizes = v.shape('split', 'sizes', size);
      if (sizes.reduce((a, b) => a + b, 0) !== n) fail('split', `sizes ${describe(size)} must sum to ${n}, the size of dim ${d}`);
    } else {
      v.int('split', 'size', size, 1);
      sizes = [];
      for (let i = 0; i < n; i += size) sizes.push(Math.min(size, n - i));
    }
    return native.split(this.h, sizes, d).map((h) => new Tensor(h));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    v.int('chunk', 'chunks', chunks, 1);
    const n = this.shape[v.dim('chunk', 'dim', dim, this.ndim)];
    return this.split(Math.max(1, Math.ceil(n / chunks)), dim);
  }

  // ---- in place (used under noGrad by optimizers and initializers) ----
  /** this += alpha * other */
  add_(other: TensorOrScalar, alpha = 1): this {
    try { native.add_(this.h, other instanceof Tensor ? other.h : v.num('add_', 'other', other, { finite: false }), alpha, !(other instanceof Tensor)); } catch (e) { relabel(e, 'add_'); }
    return this;
  }
  sub_(other: TensorOrScalar, alpha = 1): this { return this.add_(other, -alpha); }
  mul_(other: TensorOrScalar): this {
    try { native.mul_(this.h, other instanceof Tensor ? other.h : v.num('mul_', 'other', other, { finite: false }), !(other instanceof Tensor)); } catch (e) { relabel(e, 'mul_'); }
    return this;
  }
  div_(other: TensorOrScalar): this {
    try { native.div_(this.h, other instanceof Tensor ? other.h : v.num('div_', 'other', other, { finite: false }), !(other instanceof Tensor)); } catch (e) { relabel(e, 'div_'); }
    return this;
  }
  /** this += value * a * b */
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    try { native.addcmul_(this.h, a.h, b.h, value); } catch (e) { relabel(e, 'addcmul_'); }
    return this;
  }
  /** this += value * a / b */
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    try { native.addcdiv_(this.h, a.h, b.h, value); } catch (e) { relabel(e, 'addcdiv_'); }
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    try { native.lerp_(this.h, end.h, weight); } catch (e) { relabel(e, 'lerp_'); }
    return this;
  }
  zero_(): this { native.zero_(this.h); return this; }
  fill_(value: number): this {
    try { native.fill_(this.h, v.num('fill_', 'value', value, { finite: false })); } catch (e) { relabel(e, 'fill_'); }
    return this;
  }
  copy_(src: Tensor): this {
    try { native.copy_(this.h, src.h); } catch (e) { relabel(e, 'copy_'); }
    return this;
  }
  clamp_(min: number | null = null, max: number | null = null): this {
    try { native.clamp_(this.h, min, max); } catch (e) { relabel(e, 'clamp_'); }
    return this;
  }
  sqrt_(): this { native.sqrt_(this.h); return this; }
  /** In-place ReLU; autograd-safe after conv, BatchNorm and add (as torchvision's inplace ReLU). */
  relu_(): this {
    try { native.relu_(this.h); } catch (e) { relabel(e, 'relu_'); }
    return this;
  }
  uniform_(low = 0, high = 1): this {
    native.uniform_(this.h, v.num('uniform_', 'low', low), v.num('uniform_', 'high', high));
    return this;
  }
  normal_(mean = 0, std = 1): this {
    native.normal_(this.h, v.num('normal_', 'mean', mean), v.num('normal_', 'std', std, { min: 0 }));
    return this;
  }

  get isFloatingPoint(): boolean { return isFloating(this.dtype); }
}
markTrackable(Tensor.prototype);

// A method called on (or with) a disposed tensor fails naming that method, e.g.
// `add: this tensor was disposed; ...`, rather than a generic 'tensor: ...'.
const DISPOSED = 'tensor: this tensor was disposed';
const PRIVATE = new Set(['constructor', 'dispose', '_unscoped', '_watch', 'meta', 'un', 'bin', 'red', 'resolveShape']);
for (const name of Object.getOwnPropertyNames(Tensor.prototype)) {
  const d = Object.getOwnPropertyDescriptor(Tensor.prototype, name)!;
  if (PRIVATE.has(name) || typeof d.value !== 'function') continue;
  const f = d.value as (...a: unknown[]) => unknown;
  const wrapped = {
    // `arguments` rather than a rest parameter: V8 forwards it without allocating an array.
    [name](this: Tensor): unknown {
      if (this._h === null) fail(name, `${DISPOSED.slice(8)}; keep it alive with keep() or return it from tidy()`);
      try { return f.apply(this, arguments as unknown as unknown[]); } catch (e) {
        if (e instanceof PansegError && e.message.startsWith(DISPOSED)) fail(name, `an argument tensor was disposed${e.message.slice(DISPOSED.length)}`);
        const args = [this, ...(arguments as unknown as unknown[])];
        if (!MKLDNN_OPS.has(name)) blockedLayoutError(name, args);
        else if (mixesLayouts(args)) fail(name, 'mixes strided and blocked (\'mkldnn\') tensors; convert one with toDense() or toMkldnn() so the layouts match');
        throw e;
      }
    },
  }[name];
  Object.defineProperty(Tensor.prototype, name, { ...d, value: wrapped });
}

// What a blocked ('mkldnn') tensor supports besides shape queries: oneDNN kernels exist for these.
const MKLDNN_OPS = new Set(['toMkldnn', 'toDense', 'add', 'add_', 'mul', 'mul_', 'relu', 'relu_', 'clone', 'detach', 'size', 'requiresGrad_']);

/**
 * After a failed op: when a tensor involved is in the blocked layout, the op (most likely) failed
 * for that reason, and ATen's message about the 'MkldnnCPU' backend would not say what to do.
 */
export function blockedLayoutError(op: string, args: unknown[], first = 'this tensor is'): void {
  const t = args.find((a): a is Tensor => a instanceof Tensor && a._h !== null && a.isMkldnn);
  if (t) fail(op, `${args[0] === t ? first : 'an argument is'} in oneDNN's blocked layout (layout 'mkldnn'), which ${op} does not support; convert it with toDense() first`);
}

function mixesLayouts(args: unknown[]): boolean {
  const layouts = new Set(args.filter((a): a is Tensor => a instanceof Tensor && a._h !== null).map((t) => t.isMkldnn));
  return layouts.size > 1;
}

/** The native handles of engine tensors (throws if one was disposed). */
export function handles(ts: readonly Tensor[]): Handle[] {
  return ts.map((t) => t.h);
}

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}
