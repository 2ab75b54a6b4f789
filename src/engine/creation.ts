// Creating tensors: from JS data, filled, ranges and random.
import { describe, fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { type DType, checkDevice, dtypeCode, dtypeOfTypedArray, typedArrayOf } from './dtype.js';
import { checkAlloc } from './alloc-check.js';
import { native } from './native.js';
import { Tensor } from './tensor.js';

const numelOf = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

export interface TensorOptions {
  /** Default float32 (int64 for randint and arange over integers, the typed array's own type for typed arrays). */
  dtype?: DType;
  /** 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: string;
  requiresGrad?: boolean;
}

type Nested = number | boolean | Nested[];

function flattenNested(op: string, data: Nested[], out: (number | boolean)[]): number[] {
  const shape: number[] = [data.length];
  const walk = (arr: Nested[], depth: number): void => {
    if (shape[depth] !== arr.length) fail(op, `nested arrays are ragged at depth ${depth}: expected length ${shape[depth]}, got ${arr.length}`);
    for (const x of arr) {
      if (Array.isArray(x)) {
        if (shape.length === depth + 1) {
          if (out.length) fail(op, `nested arrays mix numbers and arrays at depth ${depth + 1}`);
          shape.push(x.length);
        }
        walk(x, depth + 1);
      } else {
        if (shape.length !== depth + 1) fail(op, `nested arrays mix numbers and arrays at depth ${depth + 1}`);
        if (typeof x !== 'number' && typeof x !== 'boolean') fail(op, `expected numbers in data but received ${describe(x)}`);
        out.push(x);
      }
    }
  };
  walk(data, 0);
  return shape;
}

function finish(t: Tensor, opts: TensorOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

function device(op: string, opts: TensorOptions): string {
  const d = checkDevice(op, opts.device ?? 'cpu');
  if (d.startsWith('cuda') && !native.buildInfo().cuda) {
    fail(op, 'CUDA is not available: this panseg was built against a CPU libtorch. Set LIBTORCH to a CUDA libtorch and run `npm run setup`');
  }
  return d;
}

/**
 * Creates a tensor from a typed array, a flat array with a shape, or nested arrays.
 * @example tensor([[1, 2], [3, 4]]); tensor(new Float32Array(6), [2, 3]); tensor([1, 2, 3], undefined, { dtype: 'int64' })
 */
export function tensor(data: ArrayBufferView | Nested, shape?: number[], opts: TensorOptions = {}): Tensor {
  const op = 'tensor';
  let flat: ArrayBufferView;
  let inferred: number[];
  let dtype: DType;
  if (ArrayBuffer.isView(data)) {
    const own = dtypeOfTypedArray(data);
    if (!own) fail(op, `unsupported typed array ${data.constructor.name}; use Float32Array, Float64Array, BigInt64Array, Int32Array or Uint8Array`);
    dtype = opts.dtype ?? own;
    flat = own === dtype || (own === 'uint8' && dtype === 'bool') ? data : typedArrayOf(dtype, Array.from(data as unknown as ArrayLike<number>, Number));
    inferred = [(data as unknown as ArrayLike<number>).length];
  } else if (Array.isArray(data)) {
    const values: (number | boolean)[] = [];
    inferred = flattenNested(op, data, values);
    dtype = opts.dtype ?? (values.length && values.every((x) => typeof x === 'boolean') ? 'bool' : 'float32');
    dtypeCode(op, dtype);
    flat = typedArrayOf(dtype, values);
  } else if (typeof data === 'number' || typeof data === 'boolean') {
    dtype = opts.dtype ?? (typeof data === 'boolean' ? 'bool' : 'float32');
    dtypeCode(op, dtype);
    flat = typedArrayOf(dtype, [data]);
    inferred = [];
  } else {
    fail(op, `expected a typed array, a number array or a number but received ${describe(data)}`);
  }
  const numel = (flat as unknown as ArrayLike<number>).length;
  let s = inferred;
  if (shape !== undefined) {
    s = v.shape(op, 'shape', shape);
    const n = s.reduce((a, b) => a * b, 1);
    if (n !== numel) fail(op, `shape ${v.fmtShape(s)} needs ${n} elements but data has ${numel}`);
  }
  let raw = flat;
  if (dtype === 'float16' || dtype === 'bfloat16') raw = Float32Array.from(flat as unknown as ArrayLike<number>);
  const code = dtypeCode(op, raw === flat ? dtype : 'float32');
  let t = new Tensor(native.fromBuffer(raw, s, code, device(op, opts)));
  if (raw !== flat) { const c = t.to(dtype); t.dispose(); t = c; }
  return finish(t, opts);
}

function make(op: string, f: (shape: number[], dtype: number, dev: string) => ReturnType<typeof native.zeros>, shape: number[], opts: TensorOptions): Tensor {
  v.shape(op, 'shape', shape);
  const dtype = opts.dtype ?? 'float32';
  const code = dtypeCode(op, dtype);
  const dev = device(op, opts);
  checkAlloc(op, `shape ${v.fmtShape(shape)}`, numelOf(shape), dtype, dev);
  return finish(new Tensor(f(shape, code, dev)), opts);
}

export const zeros = (shape: number[], opts: TensorOptions = {}): Tensor => make('zeros', native.zeros, shape, opts);
export const ones = (shape: number[], opts: TensorOptions = {}): Tensor => make('ones', native.ones, shape, opts);
/** Uninitialized memory: contents are arbitrary. */
export const empty = (shape: number[], opts: TensorOptions = {}): Tensor => make('empty', native.empty, shape, opts);
/** Uniform in [0, 1), from the same generator stream as torch.rand after manualSeed. */
export const rand = (shape: number[], opts: TensorOptions = {}): Tensor => make('rand', native.rand, shape, opts);
/** Standard normal, from the same generator stream as torch.randn after manualSeed. */
export const randn = (shape: number[], opts: TensorOptions = {}): Tensor => make('randn', native.randn, shape, opts);

export function full(shape: number[], value: number, opts: TensorOptions = {}): Tensor {
  v.shape('full', 'shape', shape);
  v.num('full', 'value', value, { finite: false });
  const dtype = opts.dtype ?? 'float32';
  const code = dtypeCode('full', dtype);
  const dev = device('full', opts);
  checkAlloc('full', `shape ${v.fmtShape(shape)}`, numelOf(shape), dtype, dev);
  return finish(new Tensor(native.full(shape, value, code, dev)), opts);
}

/** Values in [start, end) with `step`; `arange(5)` is 0..4. Integer arguments give int64 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) { end = start; start = 0; }
  v.num('arange', 'start', start); v.num('arange', 'end', end); v.num('arange', 'step', step);
  if (step === 0) fail('arange', 'step must be non-zero');
  const ints = [start, end, step].every(Number.isInteger);
  const dtype = opts.dtype ?? (ints ? 'int64' : 'float32');
  const code = dtypeCode('arange', dtype);
  const dev = device('arange', opts);
  checkAlloc('arange', `arange(${start}, ${end}, ${step})`, Math.max(0, Math.ceil((end - start) / step)), dtype, dev);
  return finish(new Tensor(native.arange(start, end, step, code, dev)), opts);
}

/** Integers uniform in [low, high). */
export function randint(low: number, high: number, shape: number[], opts: TensorOptions = {}): Tensor {
  v.int('randint', 'low', low); v.int('randint', 'high', high, low + 1);
  v.shape('randint', 'shape', shape);
  const dtype = opts.dtype ?? 'int64';
  const code = dtypeCode('randint', dtype);
  const dev = device('randint', opts);
  checkAlloc('randint', `shape ${v.fmtShape(shape)}`, numelOf(shape), dtype, dev);
  return finish(new Tensor(native.randint(low, high, shape, code, dev)), opts);
}

/** A random permutation of 0..n-1 (int64). */
export function randperm(n: number): Tensor {
  checkAlloc('randperm', `randperm(${n})`, v.int('randperm', 'n', n, 0), 'int64');
  return new Tensor(native.randperm(n));
}

/** Zeros shaped as `t`, in its memory order (channels-last stays channels-last, as torch.zeros_like). */
export function zerosLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return sameOrder(t, zeros(t.shape, { dtype: t.dtype, device: t.device, ...opts }));
}
/** Ones shaped as `t`, in its memory order. */
export function onesLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return sameOrder(t, ones(t.shape, { dtype: t.dtype, device: t.device, ...opts }));
}
// Optimizer state made with these then runs in the parameter's own memory order, elementwise with
// its gradient rather than through a strided copy each step.
function sameOrder(t: Tensor, made: Tensor): Tensor {
  if (t.ndim !== 4 || t.isMkldnn || t.isContiguous() || !t.isContiguous('channelsLast')) return made;
  try { return made.contiguous('channelsLast'); } finally { made.dispose(); }
}
