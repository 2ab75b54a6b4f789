import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PansegError } from '../../src/common/errors.js';
import { toBytes } from '../../src/engine/bytes.js';
import { type Tensor, liveTensors } from '../../src/engine/index.js';
import { loadTorchCheckpoint } from '../../src/io/index.js';
import { reference } from '../helpers/reference.js';

const ref = reference('weights.py');
const tmp = mkdtempSync(join(tmpdir(), 'panseg-pth-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Expected { key: string; dtype: string; shape: number[]; bin: string }
const manifest = JSON.parse(readFileSync(join(ref, 'expected', 'manifest.json'), 'utf8')) as Record<string, Expected[]>;
const disposeAll = (m: Map<string, Tensor>): void => { for (const t of m.values()) t.dispose(); };

/** Loads `file` from the reference directory and checks it against torch's values for `like`, byte for byte. */
function assertLoadsAs(file: string, like = file): void {
  const got = loadTorchCheckpoint(join(ref, file));
  const want = manifest[like];
  try {
    assert.deepEqual([...got.keys()], want.map((e) => e.key), `${file}: keys in state_dict order`);
    for (const e of want) {
      const t = got.get(e.key)!;
      assert.equal(t.dtype, e.dtype, `${file}: ${e.key} dtype`);
      assert.deepEqual(t.shape, e.shape, `${file}: ${e.key} shape`);
      assert.deepEqual(toBytes(t), new Uint8Array(readFileSync(join(ref, 'expected', e.bin))), `${file}: ${e.key} bytes`);
    }
  } finally {
    disposeAll(got);
  }
}

const rejects = (p: string, msg: string) => assert.throws(() => loadTorchCheckpoint(p), { name: 'PansegError', message: `loadTorchCheckpoint: ${p}: ${msg}` });
const refuses = (file: string, msg: string) => rejects(join(ref, file), msg);

/**
 * A stored (uncompressed) zip in torch.save's layout; CRCs are left 0, which the reader does not check.
 * `zip64` moves sizes and offsets into zip64 extra fields and records, as writers do past 4 GiB.
 */
function torchZip(name: string, pickle: Uint8Array, records: Record<string, Uint8Array> = {}, zip64 = false): string {
  const files: [string, Uint8Array][] = [[`archive/data.pkl`, pickle], ...Object.entries(records).map(([k, v]) => [`archive/${k}`, v] as [string, Uint8Array])];
  const local: Uint8Array[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  const MAX32 = 0xffffffff;
  for (const [n, data] of files) {
    const nb = Buffer.from(n);
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0); h.writeUInt32LE(data.length, 18); h.writeUInt32LE(data.length, 22); h.writeUInt16LE(nb.length, 26);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0); c.writeUInt16LE(nb.length, 28);
    c.writeUInt32LE(zip64 ? MAX32 : data.length, 20); c.writeUInt32LE(zip64 ? MAX32 : data.length, 24); c.writeUInt32LE(zip64 ? MAX32 : offset, 42);
    const extra = Buffer.alloc(zip64 ? 28 : 0);
    if (zip64) {
      extra.writeUInt16LE(1, 0); extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(data.length), 4); extra.writeBigUInt64LE(BigInt(data.length), 12); extra.writeBigUInt64LE(BigInt(offset), 20);
      c.writeUInt16LE(28, 30);
    }
    local.push(h, nb, data);
    central.push(c, nb, extra);
    offset += 30 + nb.length + data.length;
  }
  const cd = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0); rec.writeBigUInt64LE(44n, 4);
    rec.writeBigUInt64LE(BigInt(files.length), 24); rec.writeBigUInt64LE(BigInt(files.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40); rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0); loc.writeBigUInt64LE(BigInt(offset + cd.length), 8); loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(zip64 ? 0xffff : files.length, 8); end.writeUInt16LE(zip64 ? 0xffff : files.length, 10);
  end.writeUInt32LE(zip64 ? MAX32 : cd.length, 12); end.writeUInt32LE(zip64 ? MAX32 : offset, 16);
  const p = join(tmp, name);
  writeFileSync(p, Buffer.concat([...local, cd, ...tail, end]));
  return p;
}
const pkl = (s: string): Uint8Array => Buffer.from(`\x80\x02${s}`, 'latin1');

describe('loadTorchCheckpoint', () => {
  test("a conv net's state_dict equals torch's values, including BN's int64 num_batches_tracked", () => {
    const live = liveTensors();
    assertLoadsAs('conv_net.pth');
    assert.equal(liveTensors(), live);
  });

  test('every dtype, non-contiguous views, shared storages, expand, 0-d, empty and Parameters', () => {
    assertLoadsAs('dtypes.pth');
  });

  test("unwraps {'state_dict': ...} and {'model': ...}, ignoring the other entries", () => {
    assertLoadsAs('wrapped_state_dict.pth', 'conv_net.pth');
    assertLoadsAs('wrapped_model.pth', 'conv_net.pth');
  });

  test('reads deflated (re-zipped) archives and checks a little-endian byteorder record', () => {
    assertLoadsAs('deflated.pth', 'conv_net.pth');
    const m = loadTorchCheckpoint(join(ref, 'crafted_little_endian.pth'));
    assert.deepEqual(m.get('w')!.toNumbers(), [1, 2, 3, 4]);
    assert.deepEqual(m.get('w')!.shape, [2, 2]);
    disposeAll(m);
  });

  test('refuses every global outside the allowlist, without running anything', () => {
    const why = '(only tensors, dicts and primitive containers are allowed)';
    refuses('malicious_os.pth', `refusing to load global 'os.system' ${why}`);
    refuses('malicious_posix.pth', `refusing to load global 'posix.system' ${why}`);
    refuses('malicious_eval.pth', `refusing to load global 'builtins.eval' ${why}`);
    // Refused when named, even if never called.
    rejects(torchZip('unused-global.pth', pkl('csubprocess\nPopen\n0}.')), `refusing to load global 'subprocess.Popen' ${why}`);
    rejects(torchZip('complex.pth', pkl('ctorch\nComplexFloatStorage\n.')),
      'tensors stored as torch.ComplexFloatStorage are not supported (supported: float32, float64, float16, bfloat16, int64, int32, uint8, bool)');
  });

  test('explains formats it does not read', () => {
    refuses('legacy.pth', "uses PyTorch's legacy (pre-1.6) serialization format, which is not supported; re-save it with torch.save(obj, path) in PyTorch >= 1.6");
    refuses('torchscript.pt', 'is a TorchScript archive (torch.jit.save); load it in Python and save model.state_dict() with torch.save');
    refuses('list_top.pth', 'holds a list, not a state_dict (a dict of tensors)');
    refuses('crafted_big_endian.pth', 'was written on a big-endian machine; only little-endian checkpoints are supported');
    rejects(torchZip('not-sd.pth', pkl('}(X\x01\x00\x00\x00aK\x01u.')),
      "is not a state_dict: key 'a' holds an int, not a tensor, and there is no 'state_dict' or 'model' or 'model_state_dict' entry");
    const garbage = join(tmp, 'garbage.pth');
    writeFileSync(garbage, 'hello, this is not a checkpoint');
    rejects(garbage, 'is not a PyTorch checkpoint: expected a zip archive written by torch.save');
    rejects(join(tmp, 'missing.pth'), 'no such file');
    assert.throws(() => loadTorchCheckpoint(5 as never), { message: 'loadTorchCheckpoint: expected a file path string for path but received 5 of type number' });
  });

  test('a hand-assembled pickle in a zip64 archive loads', () => {
    // {'w': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 4), 0, (4,), (1,), False, OrderedDict())}
    const p = pkl('}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n'
      + 'X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRu.');
    const data = new Uint8Array(Float32Array.from([1, -2, 3.5, 4]).buffer);
    for (const zip64 of [false, true]) {
      const m = loadTorchCheckpoint(torchZip(`hand-${zip64}.pth`, p, { 'data/0': data }, zip64));
      assert.deepEqual(m.get('w')!.toNumbers(), [1, -2, 3.5, 4]);
      disposeAll(m);
    }
  });

  test("refuses a deflated storage whose size disagrees with the pickle's claim, before inflating it", () => {
    const b = Buffer.from(readFileSync(join(ref, 'deflated.pth')));
    const name = Buffer.from('conv_net/data/0');
    let at = -1;
    for (let i = b.length - 46; i >= 0; i--) {
      if (b.readUInt32LE(i) === 0x02014b50 && b.subarray(i + 46, i + 46 + name.length).equals(name)) { at = i; break; }
    }
    assert.ok(at > 0);
    b.writeUInt32LE(0xfffffff0, at + 24);
    const p = join(tmp, 'bomb.pth');
    writeFileSync(p, b);
    rejects(p, "storage '0' holds 4294967280 bytes but its record says 216 float32 elements (864 bytes); the file is corrupt");
  });

  test('an empty state_dict loads as an empty Map', () => {
    const m = loadTorchCheckpoint(torchZip('empty.pth', pkl('}q\x00.')));
    assert.equal(m.size, 0);
  });

  test('bad tensor records: out of bounds, missing or short storages, negative strides, huge expands', () => {
    refuses('crafted_out_of_bounds.pth', "tensor 'w' (offset 2, size [3], stride [1]) needs elements up to index 4 but its storage '0' holds 4 elements");
    refuses('crafted_missing_storage.pth', "tensor 'w' uses storage '7', which is missing from the archive (no entry crafted_missing_storage/data/7)");
    refuses('crafted_short_storage.pth', "storage '0' holds 16 bytes but tensor 'w' needs 8 float32 elements (32 bytes); the file is corrupt");
    refuses('crafted_negative_stride.pth', "tensor 'w' has stride [-1]; sizes and strides must be non-negative integers");
    refuses('crafted_huge_expand.pth', "tensor 'w' of size [1048576, 1048576] needs 4398046511104 bytes but its storage holds only 16; refusing an expanded view over 1 GiB larger than its storage");
  });

  test('malformed pickles give clear errors', () => {
    rejects(torchZip('no-stop.pth', pkl('}')), 'corrupt pickle: the pickle ends without a STOP opcode at byte 3 of data.pkl');
    rejects(torchZip('memo.pth', pkl('h\x07.')), 'corrupt pickle: memo key 7 is not defined at byte 2 of data.pkl');
    rejects(torchZip('inst.pth', pkl('(i__main__\nX\n.')), "corrupt pickle: unsupported pickle opcode 0x69 'i' at byte 3 of data.pkl");
    rejects(torchZip('underflow.pth', pkl('s.')), 'corrupt pickle: stack underflow at byte 2 of data.pkl');
    rejects(torchZip('short-str.pth', pkl('X\xff\x00\x00\x00ab.')), 'corrupt pickle: truncated data at byte 2 of data.pkl');
    rejects(torchZip('pid.pth', pkl('X\x03\x00\x00\x00abcQ.')), "unsupported persistent id a str; expected a ('storage', type, key, location, numel) record");
    rejects(torchZip('call.pth', pkl('K\x01)R.')), 'corrupt pickle: call of an int, which is not callable at byte 5 of data.pkl');
  });

  test('truncated and corrupted files fail with a clear error, never a crash or a leak', () => {
    const bytes = readFileSync(join(ref, 'conv_net.pth'));
    const live = liveTensors();
    const p = join(tmp, 'damaged.pth');
    const isClear = (e: unknown) => e instanceof PansegError && e.message.startsWith(`loadTorchCheckpoint: ${p}: `);
    for (const cut of [0, 3, 4, 30, 200, 600, bytes.length >> 1, bytes.length - 100, bytes.length - 22, bytes.length - 1]) {
      writeFileSync(p, bytes.subarray(0, cut));
      assert.throws(() => loadTorchCheckpoint(p), isClear, `cut at ${cut}`);
    }
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let failed = 0;
    for (let i = 0; i < 600; i++) {
      const b = Buffer.from(bytes);
      // Half the hits land in data.pkl (the first entry) and the zip records at the end, where damage matters most.
      const at = i % 2 ? Math.floor(rnd() * 600) : bytes.length - 1 - Math.floor(rnd() * 700);
      b[at] = i % 3 ? Math.floor(rnd() * 256) : b[at] ^ 0xff;
      writeFileSync(p, b);
      try {
        disposeAll(loadTorchCheckpoint(p));
      } catch (e) {
        assert.ok(isClear(e), `byte ${at}: ${(e as Error).stack}`);
        failed++;
      }
    }
    assert.ok(failed > 100, `only ${failed} corruptions were detected`);
    assert.equal(liveTensors(), live);
  });
});
