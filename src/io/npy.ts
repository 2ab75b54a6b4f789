// NumPy .npy files (format versions 1.0, 2.0 and 3.0), read and written without NumPy.
// Files are treated as untrusted: the header is parsed (never evaluated), its length is
// bounded, and the data length is checked against the shape before anything is allocated.
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { describe, fail, PansegError } from '../common/errors.js';
import { type DType, Tensor, tensor } from '../engine/index.js';
import { RandomAccessFile } from './file.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** Headers longer than this are rejected (NumPy's own reader stops at 10,000 bytes by default). */
export const MAX_NPY_HEADER = 65536;
/** NumPy's own limit on dimensions (NPY_MAXDIMS is 64 since NumPy 2.0). */
const MAX_DIMS = 64;

const DESCR: Record<string, DType> = {
  f4: 'float32', f8: 'float64', f2: 'float16', i8: 'int64', i4: 'int32', u1: 'uint8', b1: 'bool',
};
const ITEMSIZE: Record<string, number> = { f4: 4, f8: 8, f2: 2, i8: 8, i4: 4, u1: 1, b1: 1 };

interface Header { descr: string; fortranOrder: boolean; shape: number[] }

// ---- header parsing: a Python dict literal with str keys, a str, a bool and a tuple of ints ----

function parseHeader(text: string, where: string): Header {
  const op = 'loadNpy';
  let i = 0;
  const bad = (what: string): never => fail(op, `${where} has a malformed header (${what}): ${JSON.stringify(text.slice(0, 200))}`);
  const ws = (): void => { while (i < text.length && /\s/.test(text[i])) i++; };
  const expect = (c: string): void => { ws(); if (text[i] !== c) bad(`expected '${c}' at offset ${i}`); i++; };
  const str = (): string => {
    ws();
    const q = text[i];
    if (q !== "'" && q !== '"') bad(`expected a string at offset ${i}`);
    const end = text.indexOf(q, i + 1);
    if (end < 0) bad('unterminated string');
    const s = text.slice(i + 1, end);
    i = end + 1;
    return s;
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === "'" || c === '"') return str();
    if (text.startsWith('True', i)) { i += 4; return true; }
    if (text.startsWith('False', i)) { i += 5; return false; }
    if (c === '(') {
      i++;
      const items: number[] = [];
      for (;;) {
        ws();
        if (text[i] === ')') { i++; return items; }
        const m = /^\d+/.exec(text.slice(i, i + 32));
        if (!m) bad(`expected a non-negative integer in shape at offset ${i}`);
        const n = Number(m![0]);
        if (!Number.isSafeInteger(n)) bad(`shape entry ${m![0]} is too large`);
        items.push(n);
        i += m![0].length;
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== ')') bad(`expected ',' or ')' in shape at offset ${i}`);
      }
    }
    if (c === '[') bad('structured dtypes (a list descr) are not supported');
    return bad(`unexpected value at offset ${i}`);
  };
  const out = new Map<string, unknown>();
  expect('{');
  for (;;) {
    ws();
    if (text[i] === '}') { i++; break; }
    const key = str();
    if (out.has(key)) bad(`the key '${key}' appears twice`);
    expect(':');
    out.set(key, value());
    ws();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') bad(`expected ',' or '}' at offset ${i}`);
  }
  if (text.slice(i).trim() !== '') bad('trailing characters after the dict');
  const descr = out.get('descr');
  const fortranOrder = out.get('fortran_order');
  const shape = out.get('shape');
  if (typeof descr !== 'string') bad("missing 'descr'");
  if (typeof fortranOrder !== 'boolean') bad("missing 'fortran_order'");
  if (!Array.isArray(shape)) bad("missing 'shape'");
  if ((shape as number[]).length > MAX_DIMS) bad(`a shape of ${(shape as number[]).length} dimensions, more than the ${MAX_DIMS} supported`);
  return { descr: descr as string, fortranOrder: fortranOrder as boolean, shape: shape as number[] };
}

function dtypeOfDescr(descr: string, where: string): { key: string; dtype: DType } {
  const op = 'loadNpy';
  const m = /^([<>|=])([a-zA-Z])(\d+)$/.exec(descr);
  if (!m) {
    if (/^[<>|=]?O/.test(descr)) fail(op, `${where} holds an object array (descr '${descr}'), which cannot be loaded safely; save a numeric array instead`);
    fail(op, `${where} has an unsupported dtype descr '${descr}'; supported: <f4, <f8, <f2, <i8, <i4, |u1, |b1`);
  }
  const [, order, kind, size] = m;
  const key = `${kind}${size}`;
  if (kind === 'O') fail(op, `${where} holds an object array (descr '${descr}'), which cannot be loaded safely; save a numeric array instead`);
  const dtype = DESCR[key];
  if (!dtype) fail(op, `${where} has an unsupported dtype '${descr}'; supported: <f4, <f8, <f2, <i8, <i4, |u1, |b1`);
  if (order === '>' && ITEMSIZE[key] > 1) fail(op, `${where} is big-endian ('${descr}'); convert it with arr.astype(arr.dtype.newbyteorder('<')) before saving`);
  return { key, dtype };
}

// ---- float16 <-> float32 (Node 20 has no Float16Array) ----

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** float32 -> float16 bits, rounding to nearest even (as NumPy and libtorch do). */
function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 255) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) { r = 0; e++; if (e >= 31) return sign | 0x7c00; }
  }
  return sign | (e << 10) | r;
}

function checkHost(op: string): void {
  if (endianness() !== 'LE') fail(op, 'only little-endian hosts are supported');
}

interface Layout { key: string; dtype: DType; shape: number[]; dataStart: number; nbytes: number }

/**
 * Reads the preamble and header from `read(position, length)` of a `size`-byte file and checks the
 * data length the header implies against what the file holds, before any data is read.
 */
function layout(size: number, read: (position: number, length: number) => Uint8Array, where: string): Layout {
  const op = 'loadNpy';
  const pre = read(0, Math.min(size, 12));
  if (size < 10 || MAGIC.some((b, k) => pre[k] !== b)) fail(op, `${where} is not a .npy file (bad magic bytes)`);
  const major = pre[6];
  const minor = pre[7];
  if (![1, 2, 3].includes(major) || minor !== 0) fail(op, `${where} has unsupported .npy format version ${major}.${minor}; supported: 1.0, 2.0, 3.0`);
  const lenBytes = major === 1 ? 2 : 4;
  if (size < 8 + lenBytes) fail(op, `${where} is truncated: the header length is cut off`);
  const view = new DataView(pre.buffer, pre.byteOffset, pre.byteLength);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (hlen > MAX_NPY_HEADER) fail(op, `${where} declares a ${hlen}-byte header, more than the ${MAX_NPY_HEADER} allowed`);
  const start = 8 + lenBytes;
  if (size < start + hlen) fail(op, `${where} is truncated: the header needs ${hlen} bytes but only ${size - start} follow`);
  const raw = read(start, hlen);
  const text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString(major === 3 ? 'utf8' : 'latin1');
  const header = parseHeader(text, where);
  const { key, dtype } = dtypeOfDescr(header.descr, where);
  if (header.fortranOrder) fail(op, `${where} is in Fortran order, which is not supported; save np.ascontiguousarray(arr) instead`);
  const shape = header.shape;
  // Zero-size arrays may still name huge dimensions; libtorch must be able to lay them out.
  const nonzero = shape.reduce((a, b) => a * (b || 1), 1);
  const numel = shape.reduce((a, b) => a * b, 1);
  const nbytes = numel * ITEMSIZE[key];
  const dataStart = start + hlen;
  const have = size - dataStart;
  if (!Number.isSafeInteger(nonzero * ITEMSIZE[key]) || have < nbytes) {
    fail(op, `${where} is truncated: shape (${shape.join(', ')}) of ${header.descr} needs ${numel * ITEMSIZE[key]} data bytes but only ${have} follow the header`);
  }
  if (have > nbytes) fail(op, `${where} has ${have - nbytes} unexpected bytes after the data of shape (${shape.join(', ')})`);
  return { key, dtype, shape, dataStart, nbytes };
}

/** Builds the tensor from the data bytes in `buf` (its own, aligned ArrayBuffer). */
function fromData(buf: ArrayBuffer, { key, dtype, shape }: Layout, where: string): Tensor {
  try {
    switch (key) {
      case 'f4': return tensor(new Float32Array(buf), shape);
      case 'f8': return tensor(new Float64Array(buf), shape);
      case 'i8': return tensor(new BigInt64Array(buf), shape);
      case 'i4': return tensor(new Int32Array(buf), shape);
      case 'u1': return tensor(new Uint8Array(buf), shape);
      case 'b1': return tensor(Uint8Array.from(new Uint8Array(buf), (b) => (b ? 1 : 0)), shape, { dtype: 'bool' });
      case 'f2': {
        const h = new Uint16Array(buf);
        const f = new Float32Array(h.length);
        for (let k = 0; k < h.length; k++) f[k] = halfToFloat(h[k]);
        // float16 -> float32 -> float16 is exact.
        return tensor(f, shape, { dtype: 'float16' });
      }
      default: return fail('loadNpy', `${where}: unsupported dtype ${dtype}`);
    }
  } catch (e) {
    if (e instanceof PansegError) throw e;
    return fail('loadNpy', `${where}: cannot make a tensor of shape (${shape.join(', ')}): ${(e as Error).message}`);
  }
}

/**
 * Decodes the bytes of a .npy file into a tensor. `where` names the source in error messages.
 * @example const t = decodeNpy(readFileSync('a.npy'), 'a.npy');
 */
export function decodeNpy(bytes: Uint8Array, where = 'buffer'): Tensor {
  checkHost('loadNpy');
  if (!(bytes instanceof Uint8Array)) fail('loadNpy', `expected a Uint8Array for bytes but received ${describe(bytes)}`);
  const l = layout(bytes.length, (p, n) => bytes.subarray(p, p + n), where);
  // A fresh, aligned copy: the data offset inside the file need not be a multiple of the item size.
  const buf = bytes.buffer.slice(bytes.byteOffset + l.dataStart, bytes.byteOffset + l.dataStart + l.nbytes) as ArrayBuffer;
  return fromData(buf, l, where);
}

/**
 * Reads a .npy file (format 1.0, 2.0 or 3.0; little-endian f4, f8, f2, i8, i4, u1, b1; C order)
 * into a CPU tensor of the matching dtype. The header is read and checked against the file's size
 * before the data is read, so a corrupt or hostile file fails without a large allocation.
 * @example const x = loadNpy('inputs/x.npy'); // Tensor(shape=[2, 3], dtype=float32, device=cpu)
 */
export function loadNpy(path: string): Tensor {
  const op = 'loadNpy';
  if (typeof path !== 'string' || path === '') fail(op, `expected a file path but received ${describe(path)}`);
  checkHost(op);
  const file = new RandomAccessFile(path, (msg) => fail(op, `cannot read ${path}: ${msg}`));
  try {
    const l = layout(file.size, (p, n) => file.read(p, n, 'the header'), path);
    // Buffer.allocUnsafe may hand out a slice of a shared pool; copy into an ArrayBuffer of its own.
    const data = file.read(l.dataStart, l.nbytes, 'the data');
    const buf = data.byteOffset === 0 && data.buffer.byteLength === data.length ? data.buffer as ArrayBuffer : data.buffer.slice(data.byteOffset, data.byteOffset + data.length) as ArrayBuffer;
    return fromData(buf, l, path);
  } finally {
    file.close();
  }
}

const DESCR_OF: Record<DType, string> = {
  float32: '<f4', float64: '<f8', float16: '<f2', bfloat16: '<f4', int64: '<i8', int32: '<i4', uint8: '|u1', bool: '|b1',
};

/**
 * Encodes a tensor as the bytes of a .npy file (version 1.0, or 2.0 for very long headers).
 * bfloat16 has no NumPy dtype and is written as float32 (exactly).
 */
export function encodeNpy(t: Tensor): Buffer {
  const op = 'saveNpy';
  checkHost(op);
  if (!(t instanceof Tensor)) fail(op, `expected a Tensor but received ${describe(t)}`);
  if (t.isDisposed) fail(op, 'the tensor was disposed');
  const shape = t.shape;
  const descr = DESCR_OF[t.dtype];
  let data: Uint8Array;
  if (t.dtype === 'float16') {
    const f = t.toArray() as Float32Array;
    const h = new Uint16Array(f.length);
    for (let k = 0; k < f.length; k++) h[k] = floatToHalf(f[k]);
    data = new Uint8Array(h.buffer);
  } else {
    const a = t.toArray();
    data = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  }
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  // Pad with spaces so the data starts on a 64-byte boundary; the header ends with '\n'.
  // Version 1.0 stores the header length in 16 bits; longer headers (huge ranks) need 2.0.
  const padded = (pre: number): number => Math.ceil((pre + dict.length + 1) / 64) * 64;
  const v1 = padded(10) - 10 <= 0xffff;
  const pre = v1 ? 10 : 12;
  const total = padded(pre);
  dict = dict.padEnd(total - pre - 1, ' ') + '\n';
  const head = Buffer.alloc(pre);
  Buffer.from(MAGIC).copy(head, 0);
  head[6] = v1 ? 1 : 2;
  head[7] = 0;
  if (v1) head.writeUInt16LE(dict.length, 8);
  else head.writeUInt32LE(dict.length, 8);
  return Buffer.concat([head, Buffer.from(dict, 'latin1'), data]);
}

/**
 * Writes a tensor to a .npy file atomically (a temporary file in the same folder, then a rename),
 * so readers never see a half-written file. bfloat16 is saved as float32.
 * @example saveNpy('out/logits.npy', logits);
 */
export function saveNpy(path: string, t: Tensor): void {
  if (typeof path !== 'string' || path === '') fail('saveNpy', `expected a file path but received ${describe(path)}`);
  const bytes = encodeNpy(t);
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    fail('saveNpy', `cannot write ${path}: ${(e as Error).message}`);
  }
}
