// Raw-byte tensor I/O for weight files: any dtype, float16/bfloat16 included, without widening.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { BYTES, type DType, dtypeCode } from './dtype.js';
import { native } from './native.js';
import { checkArrayOut } from './alloc-check.js';
import { Tensor, relabel } from './tensor.js';

/**
 * Creates a CPU tensor from row-major little-endian bytes in the dtype's own layout (copied).
 * bool bytes other than 0 are stored as 1, so untrusted files cannot produce invalid bools.
 * @example fromBytes(new Uint8Array([0, 60, 0, 188]), [2], 'float16') // [1, -1]
 */
export function fromBytes(bytes: Uint8Array, shape: number[], dtype: DType): Tensor {
  const op = 'fromBytes';
  if (!(bytes instanceof Uint8Array)) fail(op, 'expected a Uint8Array for bytes');
  v.shape(op, 'shape', shape);
  const code = dtypeCode(op, dtype);
  const need = shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
  if (bytes.byteLength !== need) fail(op, `shape ${v.fmtShape(shape)} of ${dtype} needs ${need} bytes but received ${bytes.byteLength}`);
  let data = bytes;
  if (dtype === 'bool' && bytes.some((b) => b > 1)) data = Uint8Array.from(bytes, (b) => (b ? 1 : 0));
  try { return new Tensor(native.fromBuffer(data, shape, code, 'cpu')); } catch (e) { relabel(e, op); }
}

/** A copy of the tensor's elements as row-major bytes in its own dtype (moved to the CPU if needed). */
export function toBytes(t: Tensor): Uint8Array {
  checkArrayOut('toBytes', t.shape, t.dtype);
  try { return new Uint8Array(native.toBuffer(t.h)); } catch (e) { relabel(e, 'toBytes'); }
}
