import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PansegError } from '../../src/common/errors.js';
import { toBytes } from '../../src/engine/bytes.js';
import { type Tensor, liveTensors, tensor } from '../../src/engine/index.js';
import { loadSafetensors, readSafetensors, readSafetensorsHeader, saveSafetensors } from '../../src/io/index.js';
import { PYTHON, ROOT, reference } from '../helpers/reference.js';

const ref = reference('weights.py');
const tmp = mkdtempSync(join(tmpdir(), 'panseg-st-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Expected { key: string; dtype: string; shape: number[]; bin: string }
const manifest = JSON.parse(readFileSync(join(ref, 'expected', 'manifest.json'), 'utf8')) as Record<string, Expected[]>;

function assertMatches(got: Map<string, Tensor>, file: string): void {
  const want = manifest[file];
  assert.deepEqual([...got.keys()], want.map((e) => e.key), `${file}: keys in file order`);
  for (const e of want) {
    const t = got.get(e.key)!;
    assert.equal(t.dtype, e.dtype, `${file}: ${e.key} dtype`);
    assert.deepEqual(t.shape, e.shape, `${file}: ${e.key} shape`);
    assert.deepEqual(toBytes(t), new Uint8Array(readFileSync(join(ref, 'expected', e.bin))), `${file}: ${e.key} bytes`);
  }
}

const disposeAll = (m: Map<string, Tensor>): void => { for (const t of m.values()) t.dispose(); };

/** Every dtype, odd names (integer-like keys must keep their order), 0-d, empty and non-contiguous tensors. */
function sample(): Map<string, Tensor> {
  const base = tensor(Float32Array.from([0, 1, 2, 3, 4, 5]), [2, 3]);
  const transposed = base.transpose(0, 1);
  base.dispose();
  return new Map<string, Tensor>([
    ['z.weight', tensor(Float32Array.from([1.5, -0, Infinity, NaN, -3e38, 1e-45]), [3, 2])],
    ['10', tensor(Float64Array.from([Math.PI, -1e-300]), [2])],
    ['2', tensor(Float32Array.from([0.1, 65504, -6e-8]), [3], { dtype: 'float16' })],
    ['bf', tensor(Float32Array.from([1, -3.140625, 1e30, 0.0078125]), [2, 2], { dtype: 'bfloat16' })],
    ['i64', tensor(BigInt64Array.from([2n ** 62n + 1n, -(2n ** 63n), 0n]), [3])],
    ['i32', tensor(Int32Array.from([2 ** 31 - 1, -(2 ** 31)]), [1, 2])],
    ['u8', tensor(Uint8Array.from([0, 255, 7]), [3])],
    ['mask', tensor(Uint8Array.from([1, 0, 0, 1]), [2, 2], { dtype: 'bool' })],
    ['scalar', tensor(Float32Array.from([-2.5]), [])],
    ['empty', tensor(new Float32Array(0), [0, 4])],
    ['héllo/ünïcode', tensor(Int32Array.from([1, 2, 3]), [3])],
    ['transposed', transposed],
  ]);
}

describe('saveSafetensors / loadSafetensors', () => {
  test('round-trips every dtype with exact bytes, shapes and key order', () => {
    const live = liveTensors();
    const src = sample();
    const p = join(tmp, 'all.safetensors');
    saveSafetensors(p, src, { format: 'pt', note: 'wörld', empty: '' });
    const { tensors, metadata } = readSafetensors(p);
    assert.deepEqual([...tensors.keys()], [...src.keys()]);
    for (const [k, t] of src) {
      const u = tensors.get(k)!;
      assert.equal(u.dtype, t.dtype, k);
      assert.deepEqual(u.shape, t.shape, k);
      assert.deepEqual(toBytes(u), toBytes(t), k);
    }
    assert.deepEqual(tensors.get('transposed')!.toNumbers(), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(metadata, { format: 'pt', note: 'wörld', empty: '' });
    const header = readSafetensorsHeader(p);
    assert.deepEqual(header.tensors.map((e) => e.name), [...src.keys()]);
    assert.deepEqual(header.tensors[0], { name: 'z.weight', dtype: 'float32', shape: [3, 2], dataOffsets: [0, 24] });
    disposeAll(src);
    disposeAll(tensors);
    assert.equal(liveTensors(), live);
  });

  test('writes a spec-conformant file: padded header, data tiling, no temp files left', () => {
    const dir = join(tmp, 'atomic');
    mkdirSync(dir);
    const p = join(dir, 'w.safetensors');
    const a = tensor(Float32Array.from([1, 2, 3]), [3]);
    saveSafetensors(p, { a }, { k: 'v' });
    const bytes = readFileSync(p);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0);
    const header = bytes.subarray(8, 8 + n).toString('utf8');
    assert.equal(header.trimEnd(), '{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}');
    assert.match(header, /^\{.*\} *$/);
    assert.equal(bytes.length, 8 + n + 12);
    // Overwriting replaces the file in one rename.
    const b = tensor(Int32Array.from([7]), [1]);
    saveSafetensors(p, new Map([['b', b]]));
    assert.deepEqual(readdirSync(dir), ['w.safetensors']);
    const back = loadSafetensors(p);
    assert.deepEqual([...back.keys()], ['b']);
    assert.deepEqual(readSafetensors(p).metadata, {});
    a.dispose(); b.dispose(); disposeAll(back);
  });

  test("Python's strict hand reader reads panseg's file with the same values", () => {
    const src = sample();
    const p = join(tmp, 'for-python.safetensors');
    saveSafetensors(p, src, { format: 'pt' });
    const out = JSON.parse(execFileSync(PYTHON, [join(ROOT, 'scripts', 'reference', 'weights.py'), '--read', p], { encoding: 'utf8' })) as {
      header_len: number; metadata: Record<string, string>; tensors: { name: string; dtype: string; shape: number[]; values: (number | string | boolean)[] }[];
    };
    assert.equal((8 + out.header_len) % 8, 0);
    assert.deepEqual(out.metadata, { format: 'pt' });
    assert.deepEqual(out.tensors.map((t) => t.name), [...src.keys()]);
    const stName: Record<string, string> = { float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', uint8: 'U8', bool: 'BOOL' };
    for (const py of out.tensors) {
      const t = src.get(py.name)!;
      assert.equal(py.dtype, stName[t.dtype], py.name);
      assert.deepEqual(py.shape, t.shape, py.name);
      const ours = t.dtype === 'int64' ? Array.from(t.toArray() as BigInt64Array, String)
        : t.dtype === 'bool' ? t.toNumbers().map((x) => x === 1)
          : t.toNumbers().map((x) => (Number.isNaN(x) ? 'nan' : x === Infinity ? 'inf' : x === -Infinity ? '-inf' : x));
      assert.deepEqual(py.values, ours, py.name);
    }
    disposeAll(src);
  });

  test('loads files written by hand in Python, exactly', () => {
    const { tensors, metadata } = readSafetensors(join(ref, 'all.safetensors'));
    assert.deepEqual(metadata, { format: 'pt', note: 'héllo' });
    assertMatches(tensors, 'all.safetensors');
    disposeAll(tensors);
    const small = loadSafetensors(join(ref, 'nometa.safetensors'));
    assertMatches(small, 'nometa.safetensors');
    disposeAll(small);
  });

  test('saveSafetensors validates its arguments', () => {
    const t = tensor(Float32Array.from([1]), [1]);
    const p = join(tmp, 'bad.safetensors');
    assert.throws(() => saveSafetensors('', { t }), { message: "saveSafetensors: expected a file path string for path but received '' of type string" });
    assert.throws(() => saveSafetensors(p, [t] as never), { message: 'saveSafetensors: expected a Map or an object of tensors for tensors but received [an object of type Tensor]' });
    assert.throws(() => saveSafetensors(p, { t, x: [1] as never }), { message: "saveSafetensors: expected a Tensor for tensors['x'] but received [1]" });
    assert.throws(() => saveSafetensors(p, { __metadata__: t }), { message: "saveSafetensors: '__metadata__' is reserved for metadata and cannot name a tensor" });
    assert.throws(() => saveSafetensors(p, { t }, { n: 1 as never }), { message: "saveSafetensors: expected a string for metadata['n'] but received 1 of type number" });
    assert.throws(() => saveSafetensors(join(tmp, 'no', 'such', 'dir.safetensors'), { t }), (e: Error) => e instanceof PansegError && /^saveSafetensors: .*dir\.safetensors: cannot write the file: no such file$/.test(e.message));
    const d = tensor(Float32Array.from([1]), [1]);
    d.dispose();
    assert.throws(() => saveSafetensors(p, { d }), { message: "saveSafetensors: tensor 'd' was disposed" });
    t.dispose();
  });
});

describe('loadSafetensors on corrupt and hostile files', () => {
  let n = 0;
  /** Writes an 8-byte length (default: the header's byte length), the header text and the data. */
  function file(header: string | Buffer | object, data: Uint8Array = new Uint8Array(0), length?: bigint): string {
    const h = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(length ?? BigInt(h.length));
    const p = join(tmp, `bad-${n++}.safetensors`);
    writeFileSync(p, Buffer.concat([len, h, data]));
    return p;
  }
  const f32 = (k: string, shape: number[], offsets: number[]) => ({ [k]: { dtype: 'F32', shape, data_offsets: offsets } });
  const rejects = (p: string, msg: string) => assert.throws(() => loadSafetensors(p), { name: 'PansegError', message: `loadSafetensors: ${p}: ${msg}` });

  test('names the path and the tensor for each kind of damage', () => {
    const live = liveTensors();
    const p0 = join(tmp, 'short.safetensors');
    writeFileSync(p0, Buffer.from([1, 2, 3]));
    rejects(p0, 'is 3 bytes, too short for a safetensors header length (8 bytes); the file is truncated or not a safetensors file');
    rejects(file('{}', undefined, 2n ** 40n), 'declares a 1099511627776-byte header, over the 100000000-byte limit; the file is corrupt or not a safetensors file');
    rejects(file('{}', undefined, 1000n), 'declares a 1000-byte header but only 2 bytes follow the length; the file is truncated or not a safetensors file');
    rejects(file('{"a": '), 'has a header that is not valid JSON (unexpected end of the header at byte 6)');
    rejects(file('[1, 2]'), "has a header that does not start with '{'; the file is corrupt or not a safetensors file");
    rejects(file(Buffer.from([0x7b, 0xff, 0x7d])), 'has a header that is not valid JSON (unexpected byte 0xff at byte 1)');
    rejects(file(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])), 'has a header that is not valid UTF-8; the file is corrupt or not a safetensors file');
    rejects(file({ a: { dtype: 'I16', shape: [1], data_offsets: [0, 2] } }, new Uint8Array(2)),
      "tensor 'a' has dtype 'I16', which panseg does not support (supported: F32, F64, F16, BF16, I64, I32, U8, BOOL)");
    rejects(file(f32('a', [-1, 2], [0, 8]), new Uint8Array(8)), "tensor 'a' has shape [-1, 2]; expected an array of non-negative integers");
    rejects(file(f32('a', [1.5], [0, 8]), new Uint8Array(8)), "tensor 'a' has shape [1.5]; expected an array of non-negative integers");
    rejects(file(f32('a', [2], [8, 0]), new Uint8Array(8)), "tensor 'a' has data_offsets [8, 0]; expected [begin, end] with 0 <= begin <= end");
    rejects(file(f32('a', [2], [0]), new Uint8Array(8)), "tensor 'a' has data_offsets [0]; expected [begin, end] with 0 <= begin <= end");
    rejects(file(f32('a.weight', [2, 3], [0, 10]), new Uint8Array(10)), "tensor 'a.weight' has data_offsets [0, 10] but shape [2, 3] of F32 needs 24 bytes");
    rejects(file(f32('a', [2 ** 40, 2 ** 40], [0, 0])), "tensor 'a' has data_offsets [0, 0] but shape [1099511627776, 1099511627776] of F32 needs 4835703278458516698824704 bytes");
    rejects(file(f32('a', [4], [0, 16]), new Uint8Array(12)), "tensor 'a' has data_offsets [0, 16] but the data section holds 12 bytes; the file is truncated or corrupt");
    rejects(file({ ...f32('a', [2], [0, 8]), ...f32('b', [2], [4, 12]) }, new Uint8Array(12)), "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
    rejects(file({ ...f32('a', [1], [0, 4]), ...f32('b', [1], [8, 12]) }, new Uint8Array(12)), "has 4 unused bytes in the data section before tensor 'b' [8, 12]; the file is corrupt");
    rejects(file(f32('a', [1], [0, 4]), new Uint8Array(9)), "has 5 bytes after the last tensor's data; the file is corrupt");
    rejects(file({ __metadata__: { v: 2 } }), "has __metadata__ entry 'v' that is 2, not a string");
    rejects(file({ a: 5 }), "tensor 'a' has a header entry that is not an object");
    rejects(join(tmp, 'missing.safetensors'), 'no such file');
    rejects(tmp, 'is a directory, not a file');
    assert.equal(liveTensors(), live);
  });

  test('truncation at any point is a clear error', () => {
    const src = sample();
    const good = join(tmp, 'trunc-src.safetensors');
    saveSafetensors(good, src);
    disposeAll(src);
    const bytes = readFileSync(good);
    const n = Number(bytes.readBigUInt64LE(0));
    const live = liveTensors();
    for (const cut of [0, 5, 8, 9, 8 + (n >> 1), 8 + n - 1, 8 + n, 8 + n + 3, bytes.length - 1]) {
      const p = join(tmp, `trunc-${cut}.safetensors`);
      writeFileSync(p, bytes.subarray(0, cut));
      assert.throws(() => loadSafetensors(p), (e: Error) => e instanceof PansegError && e.message.startsWith(`loadSafetensors: ${p}: `), `cut at ${cut}`);
    }
    assert.equal(liveTensors(), live);
  });

  test('random header corruption never crashes and never leaks', () => {
    const src = sample();
    const good = join(tmp, 'fuzz-src.safetensors');
    saveSafetensors(good, src);
    disposeAll(src);
    const bytes = readFileSync(good);
    const n = Number(bytes.readBigUInt64LE(0));
    const live = liveTensors();
    const p = join(tmp, 'fuzz.safetensors');
    let seed = 1;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let failed = 0;
    for (let i = 0; i < 400; i++) {
      const b = Buffer.from(bytes);
      const at = i < 8 ? i : Math.floor(rnd() * (8 + n));
      b[at] = i % 3 === 0 ? b[at] ^ (1 << (i % 8)) : Math.floor(rnd() * 256);
      writeFileSync(p, b);
      try {
        disposeAll(loadSafetensors(p));
      } catch (e) {
        assert.ok(e instanceof PansegError && e.message.startsWith(`loadSafetensors: ${p}: `), `byte ${at}: ${(e as Error).stack}`);
        failed++;
      }
    }
    assert.ok(failed > 100, `only ${failed} corruptions were detected`);
    assert.equal(liveTensors(), live);
  });
});
