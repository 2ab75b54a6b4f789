// A bounded JSON reader for safetensors headers. The header is read from the file in chunks and
// checked while it is parsed, so a hostile header fails after a few KiB instead of after building a
// 100 MB object graph (JSON.parse on such a header took 17-20 s and 5 GB):
// - nesting stops at 3 levels, the shape of { name: { dtype, shape, data_offsets } };
// - each tensor's entry, name included, may take MAX_ENTRY_BYTES, and __metadata__ MAX_METADATA_BYTES,
//   so the whole header is capped in proportion to its tensor count;
// - a key repeated in any object is refused (JSON.parse would keep the last one silently).
import type { Fail, RandomAccessFile } from './file.js';

/** One tensor's entry, name included; real ones take about 100 bytes. */
export const MAX_ENTRY_BYTES = 16 * 1024;
/** The __metadata__ entry: string pairs, usually {"format": "pt"}; training tools store a few hundred KiB at most. */
export const MAX_METADATA_BYTES = 16 * 1024 * 1024;
const MAX_DEPTH = 3;
const CHUNK = 1 << 20;

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

class Source {
  private buf: Buffer = Buffer.alloc(0);
  private bufAt = 0;
  pos = 0;
  constructor(private readonly file: RandomAccessFile, private readonly start: number, readonly length: number) {}
  /** The byte at `pos`, or -1 at the end of the header. */
  peek(): number {
    if (this.pos >= this.length) return -1;
    if (this.pos - this.bufAt >= this.buf.length) {
      this.bufAt = this.pos;
      this.buf = this.file.read(this.start + this.pos, Math.min(CHUNK, this.length - this.pos), 'the header');
    }
    return this.buf[this.pos - this.bufAt];
  }
  next(): number { const c = this.peek(); if (c >= 0) this.pos++; return c; }
}

const isWs = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const ESCAPES: Record<number, string> = { 0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t' };

/** A growable byte buffer for the raw UTF-8 runs of a string. */
class Bytes {
  data = new Uint8Array(256);
  length = 0;
  push(c: number): void {
    if (this.length === this.data.length) {
      const d = new Uint8Array(this.data.length * 2);
      d.set(this.data);
      this.data = d;
    }
    this.data[this.length++] = c;
  }
}

/**
 * Parses the header (`length` bytes at `start`) into its top-level members in file order, failing
 * with `bad` on invalid JSON, nesting deeper than a safetensors header has, duplicate keys, or an
 * entry over its byte budget.
 */
export function parseHeaderJson(file: RandomAccessFile, start: number, length: number, bad: Fail): [string, Json][] {
  const src = new Source(file, start, length);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let budgetEnd = MAX_ENTRY_BYTES;
  let budgetWhat = 'a tensor entry';
  let budgetLimit = MAX_ENTRY_BYTES;

  const invalid = (what: string): never => bad(`has a header that is not valid JSON (${what} at byte ${src.pos})`);
  const unexpected = (): never => {
    const c = src.peek();
    if (c < 0) return invalid('unexpected end of the header');
    return invalid(`unexpected ${c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`}`);
  };
  const next = (): number => {
    if (src.pos >= budgetEnd) {
      bad(`has ${budgetWhat} in its header longer than ${budgetLimit} bytes (at byte ${src.pos}); real entries take about 100 bytes, so the header is corrupt or hostile`);
    }
    return src.next();
  };
  const ws = (): void => { while (isWs(src.peek())) next(); };
  const expect = (c: number): void => { ws(); if (src.peek() !== c) unexpected(); next(); };

  const string = (): string => {
    if (src.peek() !== 0x22) unexpected();
    next();
    let out = '';
    const raw = new Bytes();
    const flush = (): void => {
      if (!raw.length) return;
      try { out += utf8.decode(raw.data.subarray(0, raw.length)); } catch { bad('has a header that is not valid UTF-8; the file is corrupt or not a safetensors file'); }
      raw.length = 0;
    };
    for (;;) {
      const c = src.peek();
      if (c < 0) unexpected();
      if (c < 0x20) invalid('a control character in a string');
      next();
      if (c === 0x22) break;
      if (c !== 0x5c) { raw.push(c); continue; }
      flush();
      const e = src.peek();
      if (Object.hasOwn(ESCAPES, e)) { next(); out += ESCAPES[e]; continue; }
      if (e !== 0x75) { if (e < 0) unexpected(); invalid('a bad escape in a string'); }
      next();
      let code = 0;
      for (let k = 0; k < 4; k++) {
        const h = src.peek();
        const d = h >= 0x30 && h <= 0x39 ? h - 0x30 : h >= 0x61 && h <= 0x66 ? h - 0x57 : h >= 0x41 && h <= 0x46 ? h - 0x37 : -1;
        if (d < 0) invalid('a bad \\u escape in a string');
        next();
        code = code * 16 + d;
      }
      out += String.fromCharCode(code);
    }
    flush();
    return out;
  };

  const number = (): number => {
    let text = '';
    const take = (): void => { text += String.fromCharCode(next()); };
    const digits = (): void => {
      const c0 = src.peek();
      if (c0 < 0x30 || c0 > 0x39) unexpected();
      while (src.peek() >= 0x30 && src.peek() <= 0x39) take();
    };
    if (src.peek() === 0x2d) take();
    if (src.peek() === 0x30) take(); else digits();
    if (src.peek() === 0x2e) { take(); digits(); }
    if (src.peek() === 0x65 || src.peek() === 0x45) {
      take();
      if (src.peek() === 0x2b || src.peek() === 0x2d) take();
      digits();
    }
    return Number(text);
  };

  const literal = (word: string, value: Json): Json => {
    for (let k = 0; k < word.length; k++) {
      if (src.peek() !== word.charCodeAt(k)) unexpected();
      next();
    }
    return value;
  };

  const value = (depth: number, where: () => string): Json => {
    ws();
    const c = src.peek();
    if (c === 0x7b || c === 0x5b) {
      if (depth >= MAX_DEPTH) {
        bad(`has a header nested deeper than ${MAX_DEPTH} levels (${where()}, at byte ${src.pos}); a safetensors header is { name: { dtype, shape, data_offsets } }`);
      }
      return c === 0x7b ? object(depth + 1, where) : array(depth + 1, where);
    }
    if (c === 0x22) return string();
    if (c === 0x74) return literal('true', true);
    if (c === 0x66) return literal('false', false);
    if (c === 0x6e) return literal('null', null);
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return number();
    return unexpected();
  };

  const array = (depth: number, where: () => string): Json[] => {
    next();
    const out: Json[] = [];
    ws();
    if (src.peek() === 0x5d) { next(); return out; }
    for (;;) {
      out.push(value(depth, where));
      ws();
      const c = src.peek();
      if (c === 0x5d) { next(); return out; }
      if (c !== 0x2c) unexpected();
      next();
    }
  };

  const object = (depth: number, where: () => string): { [k: string]: Json } => {
    next();
    const out = Object.create(null) as { [k: string]: Json };
    ws();
    if (src.peek() === 0x7d) { next(); return out; }
    for (;;) {
      ws();
      const key = string();
      if (Object.hasOwn(out, key)) bad(`has a header whose ${where()} names the field '${key}' twice; refusing an ambiguous file`);
      expect(0x3a);
      out[key] = value(depth, where);
      ws();
      const c = src.peek();
      if (c === 0x7d) { next(); return out; }
      if (c !== 0x2c) unexpected();
      next();
    }
  };

  // The top level: members are read one at a time, each with its own byte budget.
  if (src.peek() !== 0x7b) bad("has a header that does not start with '{'; the file is corrupt or not a safetensors file");
  src.next();
  const members: [string, Json][] = [];
  const seen = new Set<string>();
  const setBudget = (what: string, limit: number, from: number): void => {
    budgetWhat = what;
    budgetLimit = limit;
    budgetEnd = from + limit;
  };
  setBudget('a tensor entry', MAX_ENTRY_BYTES, src.pos);
  ws();
  if (src.peek() === 0x7d) src.next();
  else {
    for (;;) {
      const from = src.pos;
      setBudget('a tensor entry', MAX_ENTRY_BYTES, from);
      ws();
      const key = string();
      if (key === '__metadata__') setBudget('an __metadata__ entry', MAX_METADATA_BYTES, from);
      else budgetWhat = `the entry of tensor '${key.length > 64 ? `${key.slice(0, 64)}...` : key}'`;
      if (seen.has(key)) bad(`has a header that names ${key === '__metadata__' ? '__metadata__' : `tensor '${key}'`} twice; refusing an ambiguous file`);
      seen.add(key);
      expect(0x3a);
      const where = (): string => (key === '__metadata__' ? '__metadata__' : `entry for tensor '${key}'`);
      members.push([key, value(1, where)]);
      ws();
      const c = src.peek();
      if (c === 0x7d) { src.next(); break; }
      if (c !== 0x2c) unexpected();
      next();
    }
  }
  // What follows the object may only be padding.
  setBudget('padding', MAX_ENTRY_BYTES, src.pos);
  ws();
  if (src.peek() >= 0) bad(`has ${length - src.pos} bytes after the header's JSON object that are not spaces (at byte ${src.pos}); the file is corrupt`);
  return members;
}
