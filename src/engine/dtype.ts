// Data types and devices, with the codes shared with native/addon.cc.
import { describe, fail } from '../common/errors.js';

export const DTYPES = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool'] as const;
export type DType = (typeof DTYPES)[number];

export function dtypeCode(op: string, d: unknown): number {
  const i = DTYPES.indexOf(d as DType);
  if (i < 0) fail(op, `expected dtype one of ${DTYPES.join(', ')} but received ${describe(d)}`);
  return i;
}

export function isFloating(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}

export const BYTES: Record<DType, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, uint8: 1, bool: 1,
};

/** The typed array `toArray()` returns for each dtype. float16/bfloat16 widen to Float32Array. */
export type TypedArrayFor<D extends DType> = D extends 'float64' ? Float64Array
  : D extends 'int64' ? BigInt64Array
  : D extends 'int32' ? Int32Array
  : D extends 'uint8' | 'bool' ? Uint8Array
  : Float32Array;

export type AnyTypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

export function dtypeOfTypedArray(a: ArrayBufferView): DType | undefined {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint8Array) return 'uint8';
  return undefined;
}

export function typedArrayFrom(dtype: DType, buf: ArrayBuffer): AnyTypedArray {
  switch (dtype) {
    case 'float64': return new Float64Array(buf);
    case 'int64': return new BigInt64Array(buf);
    case 'int32': return new Int32Array(buf);
    case 'uint8': case 'bool': return new Uint8Array(buf);
    case 'float16': case 'bfloat16': return new Uint16Array(buf);
    default: return new Float32Array(buf);
  }
}

/** Builds a typed array of `dtype` from plain numbers (bool and uint8 as 0/1 bytes). */
export function typedArrayOf(dtype: DType, values: ArrayLike<number | boolean>): AnyTypedArray {
  const n = values.length;
  switch (dtype) {
    case 'float64': return Float64Array.from(values as ArrayLike<number>);
    case 'int64': { const a = new BigInt64Array(n); for (let i = 0; i < n; i++) a[i] = BigInt(Math.trunc(Number(values[i]))); return a; }
    case 'int32': return Int32Array.from(values as ArrayLike<number>);
    case 'uint8': case 'bool': return Uint8Array.from(values as ArrayLike<number>, (v) => Number(v));
    default: return Float32Array.from(values as ArrayLike<number>);
  }
}

export type Device = string;
const DEVICE_RE = /^(cpu|cuda(:\d+)?)$/;
export function checkDevice(op: string, d: unknown): string {
  if (typeof d !== 'string' || !DEVICE_RE.test(d)) fail(op, `expected device 'cpu', 'cuda' or 'cuda:N' but received ${describe(d)}`);
  return d;
}
/** libtorch's index of a checked device: -1 for 'cpu', N for 'cuda:N' ('cuda' is 0). */
export function deviceIndex(op: string, d: unknown): number {
  const dev = checkDevice(op, d);
  return dev === 'cpu' ? -1 : Number(dev.slice(5) || 0);
}
