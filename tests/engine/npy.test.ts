// .npy reading and writing against NumPy: every supported dtype both ways, format versions 1-3,
// and clear refusals of files panseg cannot or should not load (the files are untrusted).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type DType, arange, ones, randn, tensor, tidy } from '../../src/engine/index.js';
import { MAX_NPY_HEADER, decodeNpy, encodeNpy, loadNpy, saveNpy } from '../../src/io/npy.js';
import { PYTHON, reference } from '../helpers/reference.js';

const dir = reference('ops_npy.py');
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
  files: Record<string, { file: string; descr: string; shape: number[]; values: (string | number)[] | null }>;
};
const fixture = (name: string): string => join(dir, manifest.files[name].file);
const tmp = mkdtempSync(join(tmpdir(), 'panseg-npy-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const DTYPE_OF: Record<string, DType> = { '<f4': 'float32', '<f8': 'float64', '<f2': 'float16', '<i8': 'int64', '<i4': 'int32', '|u1': 'uint8', '|b1': 'bool' };

describe('loadNpy reads what NumPy wrote', () => {
  for (const name of ['f4', 'f4_special', 'f8', 'f8_special', 'f2', 'i8', 'i4', 'u1', 'b1', 'scalar', 'empty', 'v2', 'v3']) {
    it(name, () => tidy(() => {
      const m = manifest.files[name];
      const t = loadNpy(fixture(name));
      assert.equal(t.dtype, DTYPE_OF[m.descr]);
      assert.deepEqual(t.shape, m.shape);
      const want = m.values!.map(Number);
      const got = t.toNumbers();
      // Float32/float16 values arrive widened to float64 in JS; compare after rounding both alike.
      const round = t.dtype === 'float32' || t.dtype === 'float16' ? Math.fround : (v: number) => v;
      assert.deepEqual(got.map(round).map(String), want.map(round).map(String));
      // -0 survives.
      if (name.endsWith('special')) assert.ok(Object.is(got[1], -0));
    }));
  }
});

describe('loadNpy refuses unsupported and malformed files, naming the path', () => {
  const refuse: [string, RegExp][] = [
    ['fortran', /^loadNpy: .*fortran\.npy is in Fortran order, which is not supported; save np\.ascontiguousarray\(arr\) instead$/],
    ['bigendian', /^loadNpy: .*bigendian\.npy is big-endian \('>f4'\); convert it with/],
    ['object', /^loadNpy: .*object\.npy holds an object array \(descr '\|O'\), which cannot be loaded safely; save a numeric array instead$/],
    ['structured', /^loadNpy: .*structured\.npy has a malformed header \(structured dtypes \(a list descr\) are not supported\)/],
    ['complex', /^loadNpy: .*complex\.npy has an unsupported dtype '<c8'; supported: <f4, <f8, <f2, <i8, <i4, \|u1, \|b1$/],
    ['u2', /^loadNpy: .*u2\.npy has an unsupported dtype '<u2'/],
  ];
  for (const [name, re] of refuse) it(name, () => assert.throws(() => loadNpy(fixture(name)), { message: re }));

  const good = readFileSync(fixture('f4'));
  const headerEnd = 10 + good.readUInt16LE(8);
  const cases: [string, Uint8Array, RegExp][] = [
    ['truncated data', good.subarray(0, good.length - 5), /^loadNpy: x\.npy is truncated: shape \(2, 3, 4\) of <f4 needs 96 data bytes but only 91 follow the header$/],
    ['truncated header', good.subarray(0, 40), /^loadNpy: x\.npy is truncated: the header needs \d+ bytes but only 30 follow$/],
    ['cut inside the header length', good.subarray(0, 9), /^loadNpy: x\.npy is not a \.npy file \(bad magic bytes\)$/],
    ['empty file', new Uint8Array(0), /^loadNpy: x\.npy is not a \.npy file \(bad magic bytes\)$/],
    ['bad magic', Buffer.concat([Buffer.from('NUMPYX'), good.subarray(6)]), /^loadNpy: x\.npy is not a \.npy file \(bad magic bytes\)$/],
    ['version 4.0', Buffer.concat([good.subarray(0, 6), Buffer.from([4, 0]), good.subarray(8)]), /^loadNpy: x\.npy has unsupported \.npy format version 4\.0; supported: 1\.0, 2\.0, 3\.0$/],
    ['trailing bytes', Buffer.concat([good, Buffer.from([1, 2, 3])]), /^loadNpy: x\.npy has 3 unexpected bytes after the data of shape \(2, 3, 4\)$/],
    ['header length over the limit', (() => {
      const b = Buffer.alloc(12 + 16);
      good.copy(b, 0, 0, 6); b[6] = 2; b[7] = 0; b.writeUInt32LE(2 ** 31, 8);
      return b;
    })(), new RegExp(`^loadNpy: x\\.npy declares a 2147483648-byte header, more than the ${MAX_NPY_HEADER} allowed$`)],
  ];
  const withHeader = (h: string): Buffer => {
    const head = Buffer.alloc(10);
    good.copy(head, 0, 0, 8);
    head.writeUInt16LE(h.length, 8);
    return Buffer.concat([head, Buffer.from(h, 'latin1'), Buffer.alloc(8)]);
  };
  cases.push(
    ['unterminated shape', withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, }\n"), /^loadNpy: x\.npy has a malformed header \(expected a non-negative integer in shape/],
    ['missing shape', withHeader("{'descr': '<f4', 'fortran_order': False}\n"), /^loadNpy: x\.npy has a malformed header \(missing 'shape'\)/],
    ['code in the header', withHeader("{'descr': __import__('os'), 'fortran_order': False, 'shape': (2,)}\n"), /^loadNpy: x\.npy has a malformed header \(unexpected value at offset 10\)/],
    ['negative dim', withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}\n"), /^loadNpy: x\.npy has a malformed header \(expected a non-negative integer in shape/],
    ['huge shape', withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 100000000000)}\n"),
      /^loadNpy: x\.npy is truncated: shape \(100000000000, 100000000000\) of <f4 needs 4e\+22 data bytes but only 8 follow the header$/],
    ['fewer bytes than the shape', withHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (3,)}\n"), /^loadNpy: x\.npy is truncated: shape \(3\) of <f8 needs 24 data bytes but only 8 follow/],
  );
  for (const [name, bytes, re] of cases) {
    it(name, () => assert.throws(() => decodeNpy(bytes, 'x.npy'), { message: re }));
  }
  it('every prefix of a valid file is refused cleanly', () => {
    for (let n = 0; n < good.length; n++) assert.throws(() => decodeNpy(good.subarray(0, n), 'x.npy'), { message: /^loadNpy: x\.npy / });
    assert.ok(headerEnd < good.length);
  });
  it('a missing file', () => assert.throws(() => loadNpy(join(tmp, 'nope.npy')), { message: /^loadNpy: cannot read .*nope\.npy: no such file$/ }));
  it('a path that is not a string', () => assert.throws(() => loadNpy(3 as never), { message: 'loadNpy: expected a file path but received 3 of type number' }));
});

describe('saveNpy writes what NumPy reads', () => {
  const made: Record<string, { dtype: DType; shape: number[]; values: number[] }> = {};
  it('every dtype, saved and read back by NumPy and by loadNpy', () => tidy(() => {
    const ts: Record<string, ReturnType<typeof randn>> = {
      float32: randn([2, 3]),
      float64: randn([4], { dtype: 'float64' }),
      float16: tensor([0, -0, 1 / 3, 65504, 6e-8, Infinity, -Infinity, NaN], undefined, { dtype: 'float16' }),
      bfloat16: tensor([1 / 3, -2.5, 1e30], undefined, { dtype: 'bfloat16' }),
      int64: tensor(new BigInt64Array([0n, -1n, 2n ** 53n - 1n]), [3, 1]),
      int32: tensor(new Int32Array([-(2 ** 31), 5])),
      uint8: tensor(new Uint8Array([0, 200, 255])),
      bool: tensor([true, false, true]),
      scalar: tensor(2.5),
      empty: randn([0, 4]),
      permuted: arange(6, undefined, 1, { dtype: 'float32' }).reshape(2, 3).transpose(0, 1),
    };
    for (const [k, t] of Object.entries(ts)) {
      const path = join(tmp, `${k}.npy`);
      saveNpy(path, t);
      made[k] = { dtype: t.dtype, shape: t.shape, values: t.toNumbers() };
      const back = loadNpy(path);
      assert.equal(back.dtype, t.dtype === 'bfloat16' ? 'float32' : t.dtype, k);
      assert.deepEqual(back.shape, t.shape, k);
      assert.deepEqual(back.toNumbers().map(String), t.toNumbers().map(String), k);
    }
    const script = [
      'import json, sys, numpy as np',
      'out = {}',
      'for p in sys.argv[1:]:',
      '    a = np.load(p, allow_pickle=False)',
      "    out[p.split('/')[-1][:-4]] = {'descr': np.lib.format.dtype_to_descr(a.dtype), 'shape': list(a.shape), 'fortran': bool(a.flags.f_contiguous and a.ndim > 1), 'values': [repr(float(v)) for v in a.reshape(-1)]}",
      'print(json.dumps(out))',
    ].join('\n');
    const seen = JSON.parse(execFileSync(PYTHON, ['-c', script, ...Object.keys(ts).map((k) => join(tmp, `${k}.npy`))], { encoding: 'utf8' }));
    for (const [k, m] of Object.entries(made)) {
      const np = seen[k];
      const descr = { float32: '<f4', float64: '<f8', float16: '<f2', bfloat16: '<f4', int64: '<i8', int32: '<i4', uint8: '|u1', bool: '|b1' }[m.dtype];
      assert.equal(np.descr, descr, k);
      assert.deepEqual(np.shape, m.shape, k);
      assert.deepEqual(np.values.map((s: string) => Number(s.replace('nan', 'NaN').replace('inf', 'Infinity'))).map(String), m.values.map(String), k);
    }
  }));
  it('headers are padded so the data starts on a 64-byte boundary', () => tidy(() => {
    for (const shape of [[1], [2, 3], [7, 1, 1, 1, 1, 1, 1, 1]]) {
      const b = encodeNpy(ones(shape));
      assert.equal((10 + b.readUInt16LE(8)) % 64, 0);
      assert.equal(b[10 + b.readUInt16LE(8) - 1], 0x0a);
    }
  }));
  it('writes atomically: overwrites in place and leaves no temporary file', () => tidy(() => {
    const sub = mkdtempSync(join(tmp, 'atomic-'));
    const path = join(sub, 'a.npy');
    saveNpy(path, ones([3]));
    saveNpy(path, ones([5]));
    assert.deepEqual(loadNpy(path).shape, [5]);
    assert.deepEqual(readdirSync(sub), ['a.npy']);
  }));
  it('a folder that does not exist gives a clear error and no stray file', () => tidy(() => {
    const path = join(tmp, 'no', 'such', 'dir', 'a.npy');
    assert.throws(() => saveNpy(path, ones([2])), { message: /^saveNpy: cannot write .*a\.npy: ENOENT/ });
    assert.equal(existsSync(join(tmp, 'no')), false);
  }));
  it('refuses disposed tensors and non-tensors', () => {
    const t = ones([2]);
    t.dispose();
    assert.throws(() => saveNpy(join(tmp, 'd.npy'), t), { message: 'saveNpy: the tensor was disposed' });
    assert.throws(() => saveNpy(join(tmp, 'd.npy'), [1, 2] as never), { message: 'saveNpy: expected a Tensor but received [1, 2]' });
    assert.equal(existsSync(join(tmp, 'd.npy')), false);
  });
  it('a file written by hand with a v2 header loads', () => tidy(() => {
    const dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
    const head = Buffer.alloc(12);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]).copy(head);
    const body = dict.padEnd(64 - 12 - 1) + '\n';
    head.writeUInt32LE(body.length, 8);
    const path = join(tmp, 'v2.npy');
    writeFileSync(path, Buffer.concat([head, Buffer.from(body), Buffer.from(new Int32Array([7, -8]).buffer)]));
    assert.deepEqual(loadNpy(path).toNumbers(), [7, -8]);
  }));
});
