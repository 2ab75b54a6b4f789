// Argument checks shared by every public entry. Messages follow one form:
// `op: expected <what> for <name> but received <value>`.
import { describe, fail } from './errors.js';

export function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

export function int(op: string, name: string, v: unknown, min = -Infinity, max = Infinity): number {
  if (!isInt(v) || v < min || v > max) {
    const range = min === 0 && max === Infinity ? 'non-negative integer' : min === 1 && max === Infinity ? 'positive integer'
      : max === Infinity ? (min === -Infinity ? 'integer' : `integer >= ${min}`) : `integer in [${min}, ${max}]`;
    fail(op, `expected ${range} for ${name} but received ${describe(v)}`);
  }
  return v;
}

export function num(op: string, name: string, v: unknown, opts: { min?: number; max?: number; finite?: boolean } = {}): number {
  const { min = -Infinity, max = Infinity, finite = true } = opts;
  if (typeof v !== 'number' || Number.isNaN(v) || (finite && !Number.isFinite(v)) || v < min || v > max) {
    const range = min > -Infinity || max < Infinity ? ` in [${min}, ${max}]` : '';
    fail(op, `expected ${finite ? 'finite ' : ''}number${range} for ${name} but received ${describe(v)}`);
  }
  return v;
}

export function bool(op: string, name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') fail(op, `expected boolean for ${name} but received ${describe(v)}`);
  return v;
}

export function oneOf<T extends string>(op: string, name: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    fail(op, `expected one of ${allowed.map((a) => `'${a}'`).join(', ')} for ${name} but received ${describe(v)}`);
  }
  return v as T;
}

/** A size or shape: an array of non-negative integers. */
export function shape(op: string, name: string, v: unknown): number[] {
  if (!Array.isArray(v) || !v.every((x) => isInt(x) && x >= 0)) {
    fail(op, `expected an array of non-negative integers for ${name} but received ${describe(v)}`);
  }
  return v as number[];
}

/** An int or a pair of ints, as PyTorch's `_pair` accepts for kernel sizes, strides and paddings. */
export function pair(op: string, name: string, v: unknown, min = 0): [number, number] {
  if (isInt(v) && v >= min) return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => isInt(x) && x >= min)) return [v[0], v[1]];
  fail(op, `expected an integer >= ${min} or a pair of them for ${name} but received ${describe(v)}`);
}

/** A dimension index, negative counting from the end, normalized to [0, rank). */
export function dim(op: string, name: string, v: unknown, rank: number): number {
  const r = Math.max(rank, 1);
  if (!isInt(v) || v < -r || v >= r) fail(op, `expected ${name} in [${-r}, ${r - 1}] for a tensor of ${rank} dims but received ${describe(v)}`);
  return v < 0 ? v + r : v;
}

export function fmtShape(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}
