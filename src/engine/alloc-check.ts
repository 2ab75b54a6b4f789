// Sanity checks on sizes before memory is allocated, so an absurd size is a PansegError naming the
// bytes instead of a V8 abort (ArrayBuffer allocation failures are fatal in V8) or, on Linux with
// memory overcommit, an allocation that succeeds and then gets the process OOM-killed when touched.
import { constants } from 'node:buffer';
import { totalmem } from 'node:os';
import { fail } from '../common/errors.js';
import { BYTES, type DType } from './dtype.js';

/** The largest ArrayBuffer / typed array this Node allows (4 GiB on Node 20, 2^53 - 1 bytes from Node 22). */
export const MAX_ARRAY_BYTES = constants.MAX_LENGTH;

/** Exact below 2^53, else rounded (a float's digits past that would be noise). */
const fmtBytes = (bytes: number): string => (Number.isSafeInteger(bytes) ? String(bytes) : `about ${bytes.toPrecision(4)}`);
const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 3 : 1)} GiB`;
const fmtShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * Refuses to copy a tensor of `shape` out into JS memory as `dtype` (its own, or float32 for the
 * 16-bit floats) when that is over the ArrayBuffer limit or this machine's memory.
 */
export function checkArrayOut(op: string, shape: readonly number[], dtype: DType): void {
  const bytes = shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
  const limit = Math.min(MAX_ARRAY_BYTES, totalmem());
  if (bytes > limit) {
    fail(op, `a tensor of shape ${fmtShape(shape)} as ${dtype} is ${fmtBytes(bytes)} bytes (${gib(bytes)}), more than ${bytes > MAX_ARRAY_BYTES ? `the largest ArrayBuffer Node allows (${MAX_ARRAY_BYTES} bytes)` : `this machine's memory (${totalmem()} bytes)`}; copy it out in pieces with narrow() or slice()`);
  }
}

/**
 * Refuses a new CPU tensor of `numel` elements of `dtype` larger than this machine's memory, naming
 * the bytes. (On a GPU, libtorch reports out-of-memory as a catchable error by itself.)
 */
export function checkAlloc(op: string, what: string, numel: number, dtype: DType, device = 'cpu'): void {
  if (device !== 'cpu') return;
  const bytes = numel * BYTES[dtype];
  if (!(bytes <= totalmem())) {
    fail(op, `${what} would allocate ${fmtBytes(bytes)} bytes (${gib(bytes)}) of ${dtype}, more than this machine's memory (${totalmem()} bytes)`);
  }
}
