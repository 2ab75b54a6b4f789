// A restricted unpickler: it builds only data (None, bools, numbers, strings, bytes, lists, tuples,
// dicts, sets) and asks the caller for every global and persistent id. Nothing is ever executed:
// a global the caller does not allow is refused the moment it is named, whether or not it is called.
import type { Fail } from './file.js';

/** A Python callable the caller chose to allow, implemented in TS. */
export class PyCallable {
  constructor(readonly qualname: string, readonly call: (args: readonly unknown[]) => unknown) {}
}

export interface UnpickleOptions {
  /** Returns the allowed object for `module.name`, or fails. */
  findGlobal(module: string, name: string): unknown;
  /** Resolves a BINPERSID id (torch.save's storage records). */
  persistentLoad(pid: unknown): unknown;
  bad: Fail;
  /** Defaults to {@link PICKLE_LIMITS}. */
  limits?: Partial<PickleLimits>;
}

/** Tuples are frozen arrays; lists are ordinary arrays. */
export const isTuple = (x: unknown): x is readonly unknown[] => Array.isArray(x) && Object.isFrozen(x);
const tuple = (items: unknown[]): readonly unknown[] => Object.freeze(items);

/** Describes an unpickled value for messages: "a dict", "an int". */
export function pyDescribe(x: unknown): string {
  if (x === null) return 'None';
  if (typeof x === 'boolean') return 'a bool';
  if (typeof x === 'bigint' || (typeof x === 'number' && Number.isInteger(x))) return 'an int';
  if (typeof x === 'number') return 'a float';
  if (typeof x === 'string') return 'a str';
  if (x instanceof Uint8Array) return 'bytes';
  if (isTuple(x)) return 'a tuple';
  if (Array.isArray(x)) return 'a list';
  if (x instanceof Map) return 'a dict';
  if (x instanceof Set) return 'a set';
  if (x instanceof PyCallable) return `the global ${x.qualname}`;
  return `an object of type ${(x as object)?.constructor?.name ?? typeof x}`;
}

const MARK = Symbol('mark');
const MAX_LONG_BYTES = 1024;

/**
 * Bounds on what one pickle may build. torch.save's data.pkl for a state_dict takes about 150 bytes,
 * 10 objects and 10 memo entries per tensor, so these allow state_dicts of over 100,000 tensors while
 * a hostile pickle (a repeated EMPTY_DICT or NONE opcode) stops long before it can exhaust the heap.
 */
export interface PickleLimits {
  /** Entries on the stack plus open MARKs. */
  maxStack: number;
  /** Memo entries. */
  maxMemo: number;
  /** Containers, strings and bytes objects created. */
  maxObjects: number;
  /** Estimated heap bytes of everything created (a dict counts 256 bytes, a list slot 8, a string its length + 32). */
  maxHeapBytes: number;
}
export const PICKLE_LIMITS: PickleLimits = {
  maxStack: 1 << 20,
  maxMemo: 1 << 20,
  maxObjects: 1 << 20,
  maxHeapBytes: 128 * 1024 * 1024,
};

function isHashable(x: unknown): boolean {
  return !(Array.isArray(x) && !Object.isFrozen(x)) && !(x instanceof Map) && !(x instanceof Set);
}

/** Unpickles `data` (protocols 2 to 4). Fails with a message naming the opcode and offset on anything unexpected. */
export function unpickle(data: Uint8Array, opts: UnpickleOptions): unknown {
  const { bad } = opts;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const limits = { ...PICKLE_LIMITS, ...opts.limits };
  let pos = 0;
  let opAt = 0;
  let objects = 0;
  let heap = 0;

  const err: Fail = (msg) => bad(`corrupt pickle: ${msg} at byte ${opAt} of data.pkl`);
  const over = (what: string, perTensor: string): never =>
    bad(`data.pkl ${what} at byte ${opAt}; a real state_dict needs ${perTensor} per tensor, so the file is corrupt or hostile`);
  /** Counts a new object (`isNew`) of about `bytes` heap bytes, or the growth of an existing one. */
  const charge = (bytes: number, isNew = true): void => {
    if (isNew && ++objects > limits.maxObjects) over(`creates more than ${limits.maxObjects} objects`, 'about 10');
    heap += bytes;
    if (heap > limits.maxHeapBytes) over(`builds more than ${limits.maxHeapBytes} bytes of objects`, 'about 1 KiB');
  };
  const room = (): void => {
    if (stack.length + marks.length >= limits.maxStack) over(`holds more than ${limits.maxStack} stack entries and marks`, 'a few');
  };
  const push = (x: unknown): void => { room(); stack.push(x); };
  /** Pushes a newly built value, charging the heap for it. */
  const made = (x: unknown): void => {
    if (typeof x === 'string') charge(32 + x.length);
    else if (x instanceof Uint8Array) charge(64 + x.byteLength);
    else if (Array.isArray(x)) charge(32 + 8 * x.length);
    else if (x instanceof Map || x instanceof Set) charge(256 + 32 * x.size);
    else if (typeof x === 'bigint') charge(32 + MAX_LONG_BYTES / 8);
    else if (typeof x === 'object' && x !== null) charge(64);
    push(x);
  };
  const need = (n: number): number => {
    if (n < 0 || pos + n > data.length) err('truncated data');
    const p = pos; pos += n; return p;
  };
  const u8 = (): number => data[need(1)];
  const u16 = (): number => view.getUint16(need(2), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const n = view.getBigUint64(need(8), true);
    if (n > BigInt(data.length)) err(`length ${n} is larger than the pickle`);
    return Number(n);
  };
  const bytes = (n: number): Uint8Array => { const p = need(n); return data.subarray(p, p + n); };
  const str = (n: number): string => {
    const b = bytes(n);
    try { return utf8.decode(b); } catch { return err('a string is not valid UTF-8'); }
  };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) err('truncated data');
    const s = latin1.decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) err('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) err('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) err('MARK expected');
    return stack.splice(m);
  };
  const long = (n: number): number | bigint => {
    if (n > MAX_LONG_BYTES) err(`integer of ${n} bytes is too large`);
    const b = bytes(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const put = (i: number): void => {
    if (!memo.has(i) && memo.size >= limits.maxMemo) over(`has more than ${limits.maxMemo} memo entries`, 'about 10');
    memo.set(i, top());
  };
  const get = (i: number): void => {
    if (!memo.has(i)) err(`memo key ${i} is not defined`);
    push(memo.get(i));
  };
  const setItems = (d: unknown, kv: unknown[]): void => {
    if (!(d instanceof Map)) err(`SETITEM(S) on ${pyDescribe(d)}, not a dict`);
    if (kv.length % 2) err('SETITEMS with an odd number of items');
    for (let i = 0; i < kv.length; i += 2) {
      if (!isHashable(kv[i])) err(`unhashable dict key (${pyDescribe(kv[i])})`);
      d.set(kv[i], kv[i + 1]);
    }
    charge(32 * (kv.length / 2), false);
  };
  const append = (l: unknown, items: unknown[]): void => {
    if (!Array.isArray(l) || Object.isFrozen(l)) err(`APPEND(S) on ${pyDescribe(l)}, not a list`);
    for (const x of items) l.push(x);
    charge(8 * items.length, false);
  };
  const addItems = (s: unknown, items: unknown[]): void => {
    if (!(s instanceof Set)) err(`ADDITEMS on ${pyDescribe(s)}, not a set`);
    for (const x of items) {
      if (!isHashable(x)) err(`unhashable set item (${pyDescribe(x)})`);
      s.add(x);
    }
    charge(32 * items.length, false);
  };
  const call = (f: unknown, args: unknown): unknown => {
    if (!(f instanceof PyCallable)) err(`call of ${pyDescribe(f)}, which is not callable`);
    if (!isTuple(args)) err(`call of ${f.qualname} with ${pyDescribe(args)} instead of an argument tuple`);
    return f.call(args);
  };
  const global = (module: string, name: string): unknown => opts.findGlobal(module, name);

  while (true) {
    opAt = pos;
    if (pos >= data.length) err('the pickle ends without a STOP opcode');
    const op = data[pos++];
    switch (op) {
      case 0x80: { const v = u8(); if (v > 5) err(`unsupported pickle protocol ${v}`); break; } // PROTO
      case 0x95: u64(); break; // FRAME: framing is only a hint for buffered readers
      case 0x2e: return pop(); // STOP
      case 0x28: room(); marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4a: push(view.getInt32(need(4), true)); break; // BININT
      case 0x4b: push(u8()); break; // BININT1
      case 0x4d: push(u16()); break; // BININT2
      case 0x8a: made(long(u8())); break; // LONG1
      case 0x8b: { const n = view.getInt32(need(4), true); if (n < 0) err('negative LONG4 length'); made(long(n)); break; }
      case 0x47: push(view.getFloat64(need(8), false)); break; // BINFLOAT
      case 0x58: made(str(u32())); break; // BINUNICODE
      case 0x8c: made(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: made(str(u64())); break; // BINUNICODE8
      case 0x54: { const n = view.getInt32(need(4), true); if (n < 0) err('negative BINSTRING length'); made(latin1.decode(bytes(n))); break; }
      case 0x55: made(latin1.decode(bytes(u8()))); break; // SHORT_BINSTRING
      case 0x42: made(bytes(u32()).slice()); break; // BINBYTES
      case 0x43: made(bytes(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: made(bytes(u64()).slice()); break; // BINBYTES8
      case 0x7d: made(new Map()); break; // EMPTY_DICT
      case 0x5d: made([]); break; // EMPTY_LIST
      case 0x29: made(tuple([])); break; // EMPTY_TUPLE
      case 0x8f: made(new Set()); break; // EMPTY_SET
      case 0x64: { const d = new Map(); setItems(d, popMark()); made(d); break; } // DICT
      case 0x6c: made(popMark()); break; // LIST
      case 0x74: made(tuple(popMark())); break; // TUPLE
      case 0x85: { const a = pop(); made(tuple([a])); break; } // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); made(tuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); made(tuple([a, b, c])); break; } // TUPLE3
      case 0x91: { const s = new Set(); addItems(s, popMark()); made(s); break; } // FROZENSET
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x61: { const x = pop(); append(top(), [x]); break; } // APPEND
      case 0x65: { const xs = popMark(); append(top(), xs); break; } // APPENDS
      case 0x90: { const xs = popMark(); addItems(top(), xs); break; } // ADDITEMS
      case 0x71: put(u8()); break; // BINPUT
      case 0x72: put(u32()); break; // LONG_BINPUT
      case 0x94: put(memo.size); break; // MEMOIZE
      case 0x68: get(u8()); break; // BINGET
      case 0x6a: get(u32()); break; // LONG_BINGET
      case 0x63: { const module = line(); const name = line(); made(global(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop(); const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') err('STACK_GLOBAL needs two strings');
        made(global(module, name));
        break;
      }
      case 0x52: { const args = pop(); const f = pop(); made(call(f, args)); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); made(call(cls, args)); break; } // NEWOBJ
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop(); const args = pop(); const cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size) err('NEWOBJ_EX with keyword arguments is not supported');
        made(call(cls, args));
        break;
      }
      case 0x62: { // BUILD: only dict attributes (state_dict's _metadata), which carry no weights
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map)) err(`BUILD on ${pyDescribe(obj)} is not supported`);
        void state;
        break;
      }
      case 0x51: { const pid = pop(); made(opts.persistentLoad(pid)); break; } // BINPERSID
      default: {
        const c = op >= 0x20 && op < 0x7f ? ` '${String.fromCharCode(op)}'` : '';
        err(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}${c}`);
      }
    }
  }
}
