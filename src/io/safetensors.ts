// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length,
// a JSON header { name: { dtype, shape, data_offsets }, __metadata__?: { str: str } }, then the raw
// row-major little-endian bytes. Files are untrusted: every field is checked before any allocation.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, fail, PansegError } from '../common/errors.js';
import { fromBytes, toBytes } from '../engine/bytes.js';
import { BYTES, type DType } from '../engine/dtype.js';
import { type Tensor, isTensor } from '../engine/tensor.js';
import { type Fail, RandomAccessFile, beforeDurableWrite, ioReason, syncDir } from './file.js';
import { parseHeaderJson } from './safetensors-header.js';

const FROM_ST: Record<string, DType> = {
  F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', U8: 'uint8', BOOL: 'bool',
};
const TO_ST = Object.fromEntries(Object.entries(FROM_ST).map(([k, v]) => [v, k])) as Record<DType, string>;
/**
 * The reference implementation's limit: a larger header is a corrupt or hostile file. Within it, each
 * tensor's entry may take 16 KiB and __metadata__ 16 MiB (see safetensors-header.ts), checked while parsing.
 */
export const MAX_SAFETENSORS_HEADER = 100 * 1000 * 1000;
/** More dimensions than any model uses (NumPy allows 64 too). */
const MAX_DIMS = 64;

/** One tensor's record in a safetensors header. */
export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Byte range inside the data section (after the header). */
  dataOffsets: [number, number];
}

/** A parsed, validated safetensors header: tensors in file (data) order, and the string metadata. */
export interface SafetensorsHeader {
  tensors: SafetensorsEntry[];
  metadata: Record<string, string>;
}

const fmt = (a: readonly unknown[]): string => `[${a.map((x) => (typeof x === 'string' ? JSON.stringify(x) : String(x))).join(', ')}]`;
const isPlainObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x) && (Object.getPrototypeOf(x) === Object.prototype || Object.getPrototypeOf(x) === null);

function parseHeader(file: RandomAccessFile, bad: Fail): SafetensorsHeader & { dataStart: number } {
  if (file.size < 8) bad(`is ${file.size} bytes, too short for a safetensors header length (8 bytes); the file is truncated or not a safetensors file`);
  const n = file.read(0, 8, 'the header length').readBigUInt64LE(0);
  if (n > BigInt(MAX_SAFETENSORS_HEADER)) bad(`declares a ${n}-byte header, over the ${MAX_SAFETENSORS_HEADER}-byte limit; the file is corrupt or not a safetensors file`);
  const headerLen = Number(n);
  if (headerLen > file.size - 8) bad(`declares a ${headerLen}-byte header but only ${file.size - 8} bytes follow the length; the file is truncated or not a safetensors file`);
  if (headerLen < 2) bad(`declares a ${headerLen}-byte header, too short for a JSON object; the file is corrupt`);
  const members: [string, unknown][] = parseHeaderJson(file, 8, headerLen, bad);
  const dataStart = 8 + headerLen;
  const dataSize = file.size - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsEntry[] = [];
  for (const [name, e] of members) {
    if (name === '__metadata__') {
      if (!isPlainObject(e)) bad('has __metadata__ that is not an object of strings');
      for (const [k, val] of Object.entries(e)) {
        if (typeof val !== 'string') bad(`has __metadata__ entry '${k}' that is ${JSON.stringify(val) ?? typeof val}, not a string`);
        Object.defineProperty(metadata, k, { value: val, enumerable: true, writable: true, configurable: true }); // '__proto__' too
      }
      continue;
    }
    const t = `tensor '${name}'`;
    if (!isPlainObject(e)) bad(`${t} has a header entry that is not an object`);
    const { dtype: stDtype, shape, data_offsets: offsets } = e;
    if (typeof stDtype !== 'string') bad(`${t} has no dtype string`);
    const dtype = Object.hasOwn(FROM_ST, stDtype) ? FROM_ST[stDtype] : bad(`${t} has dtype '${stDtype}', which panseg does not support (supported: ${Object.keys(FROM_ST).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      bad(`${t} has shape ${Array.isArray(shape) ? fmt(shape) : JSON.stringify(shape) ?? 'undefined'}; expected an array of non-negative integers`);
    }
    if (shape.length > MAX_DIMS) bad(`${t} has a shape of ${shape.length} dimensions, more than the ${MAX_DIMS} supported`);
    const extra = Object.keys(e).find((k) => k !== 'dtype' && k !== 'shape' && k !== 'data_offsets');
    if (extra !== undefined) bad(`${t} has an unknown field '${extra}' in its header entry (expected dtype, shape and data_offsets)`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0) || offsets[0] > offsets[1]) {
      bad(`${t} has data_offsets ${Array.isArray(offsets) ? fmt(offsets) : JSON.stringify(offsets) ?? 'undefined'}; expected [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataSize) bad(`${t} has data_offsets [${begin}, ${end}] but the data section holds ${dataSize} bytes; the file is truncated or corrupt`);
    // Multiply in BigInt: a hostile shape must not overflow into a matching byte count.
    const need = (shape as number[]).reduce((a, d) => a * BigInt(d), 1n) * BigInt(BYTES[dtype]);
    if (need !== BigInt(end - begin)) bad(`${t} has data_offsets [${begin}, ${end}] but shape ${fmt(shape)} of ${stDtype} needs ${need} bytes`);
    tensors.push({ name, dtype, shape: shape as number[], dataOffsets: [begin, end] });
  }
  // The format requires the tensors to tile the data section exactly: no overlaps, no gaps.
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0]);
  let at = 0;
  let prev: SafetensorsEntry | null = null;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    if (begin < at) bad(`tensors '${prev!.name}' ${fmt(prev!.dataOffsets)} and '${t.name}' ${fmt(t.dataOffsets)} overlap`);
    if (begin > at) bad(`has ${begin - at} unused bytes in the data section before tensor '${t.name}' ${fmt(t.dataOffsets)}; the file is corrupt`);
    at = end;
    prev = t;
  }
  if (at !== dataSize) bad(`has ${dataSize - at} bytes after the last tensor's data; the file is corrupt`);
  return { tensors, metadata, dataStart };
}

function checkPath(op: string, path: unknown): asserts path is string {
  if (typeof path !== 'string' || path === '') fail(op, `expected a file path string for path but received ${describe(path)}`);
}

function read(op: string, path: string, withData: boolean): { header: SafetensorsHeader; tensors: Map<string, Tensor> } {
  checkPath(op, path);
  const bad: Fail = (msg) => fail(op, `${path}: ${msg}`);
  const file = new RandomAccessFile(path, bad);
  const tensors = new Map<string, Tensor>();
  try {
    const { dataStart, ...header } = parseHeader(file, bad);
    if (withData) {
      for (const e of header.tensors) {
        const [begin, end] = e.dataOffsets;
        tensors.set(e.name, fromBytes(file.read(dataStart + begin, end - begin, `tensor '${e.name}'`), e.shape, e.dtype));
      }
    }
    return { header, tensors };
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  } finally {
    file.close();
  }
}

/**
 * Loads every tensor of a safetensors file onto the CPU, keyed by name, in the order of their
 * data in the file (the order `saveSafetensors` wrote them). Supports F32, F64, F16, BF16, I64,
 * I32, U8 and BOOL. The file is validated first (header size, JSON, dtypes, shapes, and offsets
 * that tile the data section exactly), so a corrupt or hostile file fails with a message naming
 * the path and the tensor, before anything large is allocated.
 * @example
 * const weights = loadSafetensors('model.safetensors');
 * weights.get('decoder.head.weight')?.shape; // [21, 32, 1, 1]
 */
export function loadSafetensors(path: string): Map<string, Tensor> {
  return read('loadSafetensors', path, true).tensors;
}

/**
 * Like {@link loadSafetensors}, and also returns the file's `__metadata__` (string to string; `{}` if none).
 * @example const { tensors, metadata } = readSafetensors('model.safetensors'); metadata.format // 'pt'
 */
export function readSafetensors(path: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const { header, tensors } = read('readSafetensors', path, true);
  return { tensors, metadata: header.metadata };
}

/**
 * Reads and validates only the header: names, dtypes, shapes and metadata, without loading any data.
 * @example readSafetensorsHeader('model.safetensors').tensors.map((t) => `${t.name} ${t.shape}`)
 */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  return read('readSafetensorsHeader', path, false).header;
}

/**
 * Writes tensors to a safetensors file, in the Map's (or object's) key order, as contiguous
 * row-major little-endian data in each tensor's own dtype; tensors on a GPU are copied to the CPU.
 * The header is padded with spaces to a multiple of 8 bytes. The file is written to a temporary
 * file in the same directory and renamed into place, so readers never see a half-written file.
 * @param metadata optional string-to-string pairs stored as `__metadata__`
 * @example saveSafetensors('model.safetensors', model.stateDict(), { format: 'pt' });
 */
export function saveSafetensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, metadata?: Record<string, string>): void {
  const op = 'saveSafetensors';
  checkPath(op, path);
  let entries: [string, Tensor][];
  if (tensors instanceof Map) entries = [...tensors];
  else if (isPlainObject(tensors)) entries = Object.entries(tensors) as [string, Tensor][];
  else fail(op, `expected a Map or an object of tensors for tensors but received ${describe(tensors)}`);
  for (const [name, t] of entries) {
    if (typeof name !== 'string') fail(op, `expected string keys for tensors but received ${describe(name)}`);
    if (name === '__metadata__') fail(op, "'__metadata__' is reserved for metadata and cannot name a tensor");
    if (!isTensor(t)) fail(op, `expected a Tensor for tensors['${name}'] but received ${describe(t)}`);
    if (t.isDisposed) fail(op, `tensor '${name}' was disposed`);
  }
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) fail(op, `expected an object of strings for metadata but received ${describe(metadata)}`);
    for (const [k, val] of Object.entries(metadata)) if (typeof val !== 'string') fail(op, `expected a string for metadata['${k}'] but received ${describe(val)}`);
  }

  // Build the header text by hand: JSON.stringify of an object would move integer-like names first.
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const [name, t] of entries) {
    const nbytes = t.numel * BYTES[t.dtype];
    parts.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [offset, offset + nbytes] })}`);
    offset += nbytes;
  }
  let header = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const pad = (8 - ((8 + header.length) % 8)) % 8;
  if (pad) header = Buffer.concat([header, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));

  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'wx');
    beforeDurableWrite(path, 8 + header.length + offset);
    writeAll(fd, len);
    writeAll(fd, header);
    for (const [name, t] of entries) {
      const bytes = toBytes(t);
      if (bytes.byteLength !== t.numel * BYTES[t.dtype]) fail(op, `tensor '${name}' produced ${bytes.byteLength} bytes, expected ${t.numel * BYTES[t.dtype]}`);
      writeAll(fd, bytes);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
    syncDir(dirname(path)); // the rename itself survives a power loss
  } catch (e) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    if (e instanceof PansegError) throw e;
    fail(op, `${path}: cannot write the file: ${ioReason(e)}`);
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  const CHUNK = 1 << 30;
  for (let done = 0; done < data.byteLength;) {
    done += writeSync(fd, data, done, Math.min(CHUNK, data.byteLength - done));
  }
}
