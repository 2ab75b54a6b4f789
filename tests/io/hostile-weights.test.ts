// The hostile weight files of issue 15, each as a named reproduction: before the fixes they aborted
// V8 (pickle heap bombs), took gigabytes (expanded views, a 100 MB safetensors header) or read one
// file region many times (overlapping zip entries). Each must now end in a clear PansegError, or load
// as the fixed behaviour describes, within a stated memory bound.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as zlibConstants, deflateRawSync } from 'node:zlib';
import { PansegError } from '../../src/common/errors.js';
import { type Tensor, liveTensors } from '../../src/engine/index.js';
import { loadNpy, loadSafetensors, loadTorchCheckpoint } from '../../src/io/index.js';
import { MiB } from '../helpers/fuzz.js';
import { type TensorRecord, statePickle, torchCheckpoint, zipArchive } from '../helpers/torch-zip.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-hostile-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const disposeAll = (m: Map<string, Tensor>): void => { for (const t of m.values()) t.dispose(); };

let n = 0;
function write(bytes: Uint8Array, ext: string): string {
  const p = join(tmp, `h${n++}.${ext}`);
  writeFileSync(p, bytes);
  return p;
}

/**
 * Runs `fn` and returns how far the process's peak RSS rose above the RSS before it (bytes). The peak
 * is the kernel's high-water mark, so a load that balloons and then fails still counts.
 */
function peakGrowth(fn: () => void): number {
  const before = process.memoryUsage().rss;
  const peakBefore = process.resourceUsage().maxRSS * 1024;
  fn();
  const peakAfter = process.resourceUsage().maxRSS * 1024;
  return peakAfter > peakBefore ? peakAfter - before : 0;
}

const refusesPth = (p: string, msg: string | RegExp): void => {
  assert.throws(() => loadTorchCheckpoint(p), (e: Error) => {
    assert.ok(e instanceof PansegError, e.stack);
    const want = typeof msg === 'string' ? `loadTorchCheckpoint: ${p}: ${msg}` : msg;
    if (typeof want === 'string') assert.equal(e.message, want); else assert.match(e.message, want);
    return true;
  });
};
const pickleOf = (body: Uint8Array): Buffer => Buffer.concat([Buffer.from('\x80\x02', 'latin1'), body, Buffer.from('.')]);
/**
 * The raw DEFLATE stream of a pickle made of `op` repeated `count` times, built without holding it:
 * blocks compressed apart and ended with a sync flush chain into one valid stream.
 */
function deflatedRepeat(op: string, count: number): Buffer {
  const sync = { finishFlush: zlibConstants.Z_SYNC_FLUSH };
  const mb = deflateRawSync(Buffer.alloc(1000 * 1000, op), sync);
  const parts = [deflateRawSync(Buffer.from('\x80\x02', 'latin1'), sync)];
  for (let i = 0; i < Math.floor(count / 1e6); i++) parts.push(mb);
  if (count % 1e6) parts.push(deflateRawSync(Buffer.alloc(count % 1e6, op), sync));
  parts.push(deflateRawSync(Buffer.from('.')));
  return Buffer.concat(parts);
}
const rec = (key: string, numel: number, size: number[], stride: number[], offset = 0, storage = 'FloatStorage'): TensorRecord =>
  ({ key, storage, numel, offset, size, stride });

describe('hostile .pth files: pickle heap bombs', () => {
  test("65 MB of EMPTY_DICT '}' (a 65 KB deflated file) is refused by the data.pkl size cap, before inflating", () => {
    const p = write(zipArchive([['archive/data.pkl', deflatedRepeat('}', 65 * 1000 * 1000), 2 + 65 * 1000 * 1000 + 1]]), 'pth');
    const grew = peakGrowth(() => refusesPth(p, /: has a \d+-byte data\.pkl, over the 16777216-byte limit; a state_dict's pickle takes about 150 bytes per tensor \(a few hundred KiB for real models\), so the file is corrupt or hostile$/));
    assert.ok(grew < 64 * MiB, `peak RSS grew ${grew} bytes`);
  });

  test("8 MB of '}' (under the size cap) stops at the object budget, not at V8's heap limit", () => {
    const p = write(torchCheckpoint(pickleOf(Buffer.alloc(8 * 1024 * 1024, '}')), {}, true), 'pth');
    const grew = peakGrowth(() => refusesPth(p, /: data\.pkl builds more than 134217728 bytes of objects at byte \d+; a real state_dict needs about 1 KiB per tensor, so the file is corrupt or hostile$/));
    assert.ok(grew < 320 * MiB, `peak RSS grew ${grew} bytes`);
  });

  test("200 M NONE opcodes 'N' are refused by size; 8 M stop at the stack limit", () => {
    const size = 2 + 200 * 1000 * 1000 + 1;
    const p = write(zipArchive([['archive/data.pkl', deflatedRepeat('N', 200 * 1000 * 1000), size]]), 'pth');
    refusesPth(p, `has a ${size}-byte data.pkl, over the 16777216-byte limit; a state_dict's pickle takes about 150 bytes per tensor (a few hundred KiB for real models), so the file is corrupt or hostile`);

    const q = write(torchCheckpoint(pickleOf(Buffer.alloc(8 * 1024 * 1024, 'N')), {}, true), 'pth');
    const grew = peakGrowth(() => refusesPth(q, 'data.pkl holds more than 1048576 stack entries and marks at byte 1048578; a real state_dict needs a few per tensor, so the file is corrupt or hostile'));
    assert.ok(grew < 128 * MiB, `peak RSS grew ${grew} bytes`);
  });

  test("MARK '(' repeated, and a memo filled with MEMOIZE, hit their limits too", () => {
    refusesPth(write(torchCheckpoint(pickleOf(Buffer.alloc(4 * 1024 * 1024, '(')), {}, true), 'pth'),
      /: data\.pkl holds more than 1048576 stack entries and marks at byte \d+/);
    // 'N' pushes None, MEMOIZE (0x94) stores it under the next memo key, '0' pops it.
    const memo = Buffer.alloc(3 * 1.2e6);
    for (let i = 0; i < memo.length; i += 3) { memo[i] = 0x4e; memo[i + 1] = 0x94; memo[i + 2] = 0x30; }
    refusesPth(write(torchCheckpoint(pickleOf(memo), {}, true), 'pth'), /: data\.pkl has more than 1048576 memo entries at byte \d+/);
  });
});

describe('hostile .pth files: expanded and shared storages', () => {
  test('64 views of zeros(1).expand(2**28) (a 4.9 KB file) load as expanded views of 4 bytes, as torch.load gives them', () => {
    const live = liveTensors();
    const views: [string, TensorRecord][] = Array.from({ length: 64 }, (_, i) => [`v${i}`, rec('0', 1, [2 ** 28], [0])]);
    const p = write(torchCheckpoint(statePickle(views), { 0: new Uint8Array(4) }), 'pth');
    let sd = new Map<string, Tensor>();
    const grew = peakGrowth(() => { sd = loadTorchCheckpoint(p); });
    assert.ok(grew < 64 * MiB, `peak RSS grew ${grew} bytes (each view would be 1 GiB as a copy)`);
    assert.equal(sd.size, 64);
    const t = sd.get('v63')!;
    assert.deepEqual(t.shape, [2 ** 28]);
    assert.deepEqual(t.strides(), [0]);
    const tail = t.narrow(0, 2 ** 28 - 2, 2);
    assert.deepEqual(tail.toNumbers(), [0, 0]);
    tail.dispose();
    disposeAll(sd);
    assert.equal(liveTensors(), live);
  });

  test('an expand along one dim of a real storage keeps its values: [3] -> [4, 3] with stride [0, 1]', () => {
    const p = write(torchCheckpoint(statePickle([['e', rec('0', 3, [4, 3], [0, 1])]]), { 0: new Uint8Array(Float32Array.from([1, 2, 3]).buffer) }), 'pth');
    const sd = loadTorchCheckpoint(p);
    assert.deepEqual(sd.get('e')!.toNumbers(), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
    disposeAll(sd);
  });

  test('200 full views of one 1 MiB storage are refused by the copy budget (4x the storage bytes + 1 MiB)', () => {
    const numel = 1 << 18;
    const views: [string, TensorRecord][] = Array.from({ length: 200 }, (_, i) => [`v${i}`, rec('0', numel, [numel], [1])]);
    const p = write(torchCheckpoint(statePickle(views), { 0: new Uint8Array(numel * 4) }), 'pth');
    const live = liveTensors();
    const grew = peakGrowth(() => refusesPth(p, `its tensors would take more than ${4 * numel * 4 + MiB} bytes as copies, 4 times the ${numel * 4} bytes of storage the file holds; refusing so many views of shared storages (save the tensors with .clone())`));
    assert.ok(grew < 64 * MiB, `peak RSS grew ${grew} bytes`);
    assert.equal(liveTensors(), live);
  });

  test('a view that reads its storage with overlapping strides is refused', () => {
    const p = write(torchCheckpoint(statePickle([['w', rec('0', 5, [3, 3], [1, 1])]]), { 0: new Uint8Array(20) }), 'pth');
    refusesPth(p, "tensor 'w' (size [3, 3], stride [1, 1]) reads its 5-element storage '0' with overlapping strides, which is not supported; save it with .contiguous() or .clone()");
  });

  test('one storage described with two element counts is refused', () => {
    const p = write(torchCheckpoint(statePickle([['a', rec('0', 4, [4], [1])], ['b', rec('0', 2, [2], [1])]]), { 0: new Uint8Array(16) }), 'pth');
    refusesPth(p, "storage '0' is described twice, as 4 float32 and as 2 float32 elements (tensor 'b'); the file is corrupt");
  });
});

describe('hostile .pth files: zip structure', () => {
  test('overlapping entries (two storages pointing at the same bytes) are refused', () => {
    const storage = new Uint8Array(16);
    const good = torchCheckpoint(statePickle([['a', rec('0', 4, [4], [1])], ['b', rec('1', 4, [4], [1])]]), { 0: storage, 1: storage });
    // Point the central record of data/1 at the local header of data/0.
    const b = Buffer.from(good);
    const find = (name: string, sig: number): number => {
      for (let i = b.length - 46; i >= 0; i--) if (b.readUInt32LE(i) === sig && b.subarray(i + (sig === 0x02014b50 ? 46 : 30), i + (sig === 0x02014b50 ? 46 : 30) + name.length).toString() === name) return i;
      return -1;
    };
    const local0 = find('archive/data/0', 0x04034b50);
    const central1 = find('archive/data/1', 0x02014b50);
    assert.ok(local0 > 0 && central1 > 0);
    b.writeUInt32LE(local0, central1 + 42);
    const p = write(b, 'pth');
    refusesPth(p, /: has overlapping zip entries 'archive\/data\/[01]' \(bytes \d+\.\.\d+\) and 'archive\/data\/[01]' \(from byte \d+\); the zip archive is corrupt or hostile$/);
  });

  test('deflated storages share one inflate budget: 80 MiB of zeros in a 78 KB file is refused', () => {
    const numel = 20 * MiB;
    const p = write(torchCheckpoint(statePickle([['z', rec('0', numel, [numel], [1])]]), { 0: new Uint8Array(numel * 4) }, true), 'pth');
    const grew = peakGrowth(() => refusesPth(p, /: zip entry 'archive\/data\/0' would inflate to 83886080 bytes, past the archive's budget of \d+ inflated bytes \(\d+ used\); a deflated checkpoint this compressible is a zip bomb or corrupt; re-save it with torch\.save, which stores entries uncompressed$/));
    assert.ok(grew < 64 * MiB, `peak RSS grew ${grew} bytes`);
  });

  test('a deflated storage claiming more than DEFLATE can produce is refused before inflating', () => {
    // The pickle and the zip entry agree on 4 GB; the compressed bytes could make at most ~1 MB.
    const numel = 1e9;
    const pkl = statePickle([['z', rec('0', numel, [numel], [1])]]);
    const zip = zipArchive([['archive/data.pkl', pkl], ['archive/data/0', new Uint8Array(1000)]], true);
    const b = Buffer.from(zip);
    for (let i = b.length - 46; i >= 0; i--) {
      if (b.readUInt32LE(i) === 0x02014b50 && b.subarray(i + 46, i + 46 + 14).toString() === 'archive/data/0') { b.writeUInt32LE(numel * 4, i + 24); break; }
    }
    refusesPth(write(b, 'pth'), /: zip entry 'archive\/data\/0' claims 4000000000 bytes from \d+ compressed bytes, more than DEFLATE can produce; the file is corrupt$/);
  });
});

describe('hostile safetensors headers', () => {
  /** Writes a safetensors file whose header is `chunks` (streamed, so a 100 MB header costs no test memory). */
  function st(chunks: Iterable<Buffer>, total: number, data = new Uint8Array(0)): string {
    const p = join(tmp, `h${n++}.safetensors`);
    const fd = openSync(p, 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(total));
    writeSync(fd, len);
    let wrote = 0;
    for (const c of chunks) { writeSync(fd, c); wrote += c.length; }
    writeSync(fd, data);
    closeSync(fd);
    assert.equal(wrote, total);
    return p;
  }
  const rejects = (p: string, msg: string | RegExp): void => {
    assert.throws(() => loadSafetensors(p), (e: Error) => {
      assert.ok(e instanceof PansegError, e.stack);
      if (typeof msg === 'string') assert.equal(e.message, `loadSafetensors: ${p}: ${msg}`); else assert.match(e.message, msg);
      return true;
    });
  };

  test('a 99 MB header of one huge shape fails within its entry budget, fast and small', () => {
    const total = 99 * 1000 * 1000;
    const head = Buffer.from('{"a":{"dtype":"F32","data_offsets":[0,0],"shape":[');
    function* chunks(): Generator<Buffer> {
      yield head;
      const zeros = Buffer.alloc(1 << 20, '0,');
      let left = total - head.length - 3;
      while (left > 0) { const c = zeros.subarray(0, Math.min(left, zeros.length)); left -= c.length; yield c; }
      yield Buffer.from('0]}');
    }
    // The 99 MB header would be 2 bytes per element: "0,0,0,..." written in even chunks.
    const p = st(chunks(), total);
    const t0 = performance.now();
    const grew = peakGrowth(() => rejects(p, "has the entry of tensor 'a' in its header longer than 16384 bytes (at byte 16385); real entries take about 100 bytes, so the header is corrupt or hostile"));
    assert.ok(performance.now() - t0 < 2000, 'took over 2 s');
    assert.ok(grew < 32 * MiB, `peak RSS grew ${grew} bytes`);
  });

  test('50 MB of __metadata__ is refused at its 16 MiB budget', () => {
    const total = 50 * 1000 * 1000;
    const head = Buffer.from('{"__metadata__":{"k":"');
    function* chunks(): Generator<Buffer> {
      yield head;
      const x = Buffer.alloc(1 << 20, 'x');
      let left = total - head.length - 3;
      while (left > 0) { const c = x.subarray(0, Math.min(left, x.length)); left -= c.length; yield c; }
      yield Buffer.from('"}}');
    }
    const p = st(chunks(), total);
    const grew = peakGrowth(() => rejects(p, `has an __metadata__ entry in its header longer than ${16 * MiB} bytes (at byte ${16 * MiB + 1}); real entries take about 100 bytes, so the header is corrupt or hostile`));
    assert.ok(grew < 96 * MiB, `peak RSS grew ${grew} bytes`);
  });

  test('nesting deeper than a safetensors header has is refused at the 4th level', () => {
    const deep = '{"a":{"dtype":"F32","shape":[[[[[[[[1]]]]]]]],"data_offsets":[0,4]}}';
    rejects(st([Buffer.from(deep)], deep.length, new Uint8Array(4)),
      "has a header nested deeper than 3 levels (entry for tensor 'a', at byte 29); a safetensors header is { name: { dtype, shape, data_offsets } }");
    const wide = `{${'"x":'.repeat(1)}${'['.repeat(100000)}`;
    rejects(st([Buffer.from(wide)], wide.length), /nested deeper than 3 levels/);
  });

  test('duplicate keys are refused (JSON.parse would keep the last silently)', () => {
    const e = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}';
    const dup = `{"a":${e},"a":${e}}`;
    rejects(st([Buffer.from(dup)], dup.length, new Uint8Array(4)), "has a header that names tensor 'a' twice; refusing an ambiguous file");
    const dupField = '{"a":{"dtype":"F32","shape":[1],"shape":[2],"data_offsets":[0,4]}}';
    rejects(st([Buffer.from(dupField)], dupField.length, new Uint8Array(4)), "has a header whose entry for tensor 'a' names the field 'shape' twice; refusing an ambiguous file");
    const dupMeta = '{"__metadata__":{"k":"1","k":"2"}}';
    rejects(st([Buffer.from(dupMeta)], dupMeta.length), "has a header whose __metadata__ names the field 'k' twice; refusing an ambiguous file");
  });

  test('header keys cannot reach Object.prototype', () => {
    const h = '{"__metadata__":{"__proto__":"x"},"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const sd = loadSafetensors(st([Buffer.from(h)], h.length, new Uint8Array(4)));
    assert.deepEqual([...sd.keys()], ['__proto__']);
    disposeAll(sd);
    assert.equal(({} as Record<string, unknown>).dtype, undefined);
  });
});

describe('hostile .npy files', () => {
  const npy = (header: string, data = new Uint8Array(0), version = 1): string => {
    const h = Buffer.from(header, 'latin1');
    const pre = Buffer.alloc(version === 1 ? 10 : 12);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(pre);
    if (version === 1) pre.writeUInt16LE(h.length, 8); else pre.writeUInt32LE(h.length, 8);
    return write(Buffer.concat([pre, h, data]), 'npy');
  };
  const rejects = (p: string, msg: string): void => assert.throws(() => loadNpy(p), { name: 'PansegError', message: `loadNpy: ${p} ${msg}` });

  test('a shape of 2**40 elements in a 100-byte file is refused before any allocation', () => {
    const p = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }\n");
    rejects(p, 'is truncated: shape (1099511627776) of <f4 needs 4398046511104 data bytes but only 0 follow the header');
  });

  test('a v2 header declaring 4 GB is refused by the header cap', () => {
    const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0, 0xff, 0xff, 0xff, 0xff]);
    const p = write(pre, 'npy');
    rejects(p, 'declares a 4294967295-byte header, more than the 65536 allowed');
  });

  test('repeated keys, and zero-size arrays with huge dims, are clear errors', () => {
    rejects(npy("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n", new Uint8Array(4)),
      `has a malformed header (the key 'descr' appears twice): "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\\n"`);
    const huge = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4503599627370496, 4503599627370496), }\n");
    rejects(huge, 'is truncated: shape (0, 4503599627370496, 4503599627370496) of <f4 needs 0 data bytes but only 0 follow the header');
    const deep = npy(`{'descr': '<f4', 'fortran_order': False, 'shape': (${'1, '.repeat(65)}), }\n`, new Uint8Array(4));
    assert.throws(() => loadNpy(deep), { name: 'PansegError', message: /^loadNpy: .* has a malformed header \(a shape of 65 dimensions, more than the 64 supported\)/ });
  });
});
