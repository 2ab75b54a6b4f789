// Explicit memory management: tensors hold native memory the JS GC cannot see or weigh.
// tidy() scopes free everything created inside except what the callback returns.
import { fail } from '../common/errors.js';
import { native } from './native.js';

export interface Trackable {
  dispose(): void;
  readonly isDisposed: boolean;
  /**
   * @internal Called once the object belongs to no tidy scope (made outside one, kept, or returned
   * from the outermost): from then on the garbage collector frees it if nobody disposes it. Inside
   * a scope it needs no such watch, since the scope disposes it.
   */
  _unscoped?(): void;
}

const TRACKABLE = Symbol.for('panseg.trackable');
export function markTrackable(proto: object): void {
  Object.defineProperty(proto, TRACKABLE, { value: true });
}
function isTrackable(v: unknown): v is Trackable {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[TRACKABLE] === true;
}

// Arrays, not Sets: pushing is several times cheaper, and small ops make tensors at ~1 per us.
const scopes: Trackable[][] = [];

/** Called by every new tensor: it belongs to the innermost tidy scope, if any. */
export function track(t: Trackable): void {
  if (scopes.length) scopes[scopes.length - 1].push(t);
  else t._unscoped?.();
}

/**
 * Called by dispose(): a tensor disposed right after it was made (the newest in the innermost scope)
 * leaves the scope at once, so a loop of made-and-disposed tensors inside tidy() neither grows the
 * scope nor keeps its dead wrappers alive until the scope ends (they die young, as the GC prefers).
 */
export function untrackNewest(t: Trackable): void {
  const n = scopes.length;
  if (n === 0) return; // (an index of -1 would take V8's slow property lookup)
  const s = scopes[n - 1];
  if (s[s.length - 1] === t) s.pop();
}

/** Removes `t` from every open tidy scope, so it outlives them. Returns `t`. */
export function keep<T extends Trackable>(t: T): T {
  let scoped = false;
  for (const s of scopes) {
    const i = s.lastIndexOf(t); // kept tensors are usually the newest
    if (i < 0) continue;
    s[i] = s[s.length - 1];
    s.pop();
    scoped = true;
  }
  if (scoped) t._unscoped?.();
  return t;
}

function collect(v: unknown, out: Set<Trackable>, depth = 0): void {
  if (depth > 4 || v === null || typeof v !== 'object') return;
  if (isTrackable(v)) { out.add(v); return; }
  if (Array.isArray(v)) { for (const x of v) collect(x, out, depth + 1); return; }
  if (v instanceof Map) { for (const x of v.values()) collect(x, out, depth + 1); return; }
  if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out, depth + 1);
}

/**
 * Runs `fn` and disposes every tensor created inside it, except those it returns
 * (found in the result, in arrays, Maps and plain objects up to 4 levels deep) and those passed to `keep`.
 * @example const loss = tidy(() => model.forward(x).sub(y).square().mean());
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') fail('tidy', 'expected a function');
  const scope: Trackable[] = [];
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    fail('tidy', 'the callback returned a Promise; tidy only scopes synchronous code, dispose tensors of async work explicitly');
  }
  const kept = new Set<Trackable>();
  collect(result, kept);
  for (const t of scope) {
    if (kept.has(t)) track(t); // hand over to the enclosing scope
    else t.dispose();
  }
  return result;
}

/** Disposes tensors found in `v` (a tensor, array, Map or plain object). */
export function dispose(v: unknown): void {
  const all = new Set<Trackable>();
  collect(v, all);
  for (const t of all) t.dispose();
}

/** Number of live native tensors (handles not yet disposed or collected). */
export function liveTensors(): number {
  return native.liveTensors();
}
