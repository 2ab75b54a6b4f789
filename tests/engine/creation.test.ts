// Creating tensors: from JS data, filled, ranges, and random streams equal to PyTorch's for a seed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DTYPES, arange, empty, full, manualSeed, ones, onesLike, rand, randint, randn, randperm, tensor, tidy, zeros, zerosLike,
} from '../../src/engine/index.js';
import { ELEMENTWISE, EXACT, assertClose, refCase } from './ref-cases.js';

describe('random streams equal torch for the same seed', () => {
  it('rand, randn, randint, randperm in sequence, then a reseed', () => {
    const c = refCase('random/streams');
    tidy(() => {
      manualSeed(c.params.seed);
      // Same order of draws as ops.py.
      const got = {
        rand: rand([3, 4]), randn: randn([5]), randint: randint(0, 10, [6]),
        randBig: rand([100]), randnBig: randn([37, 3]), randintBig: randint(-3, 1000, [50]),
        randperm: randperm(12), randn64: randn([9], { dtype: 'float64' }),
      };
      manualSeed(7);
      const all = { ...got, reseed: rand([5]) };
      for (const [k, t] of Object.entries(all)) {
        assert.equal(t.dtype, c.dtype(k), `${k} dtype`);
        // Same generator and kernels: bit-identical.
        assertClose(t, c.output(k), EXACT, k);
      }
    });
  });
  it('the same seed gives the same numbers, another seed different ones', () => tidy(() => {
    manualSeed(11); const a = randn([8]).toArray();
    manualSeed(11); const b = randn([8]).toArray();
    manualSeed(12); const d = randn([8]).toArray();
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, d);
  }));
  it('randint stays in [low, high) and rand in [0, 1)', () => tidy(() => {
    manualSeed(1);
    const r = randint(-2, 3, [1000]).toNumbers();
    assert.ok(r.every((v) => v >= -2 && v < 3 && Number.isInteger(v)));
    assert.equal(new Set(r).size, 5);
    const u = rand([1000]).toNumbers();
    assert.ok(u.every((v) => v >= 0 && v < 1));
  }));
});

describe('ranges and fills', () => {
  it('arange with a float step (float32, as torch.arange(0, 1, 0.1))', () => {
    const c = refCase('creation/arange_float');
    tidy(() => {
      const t = arange(c.params.start, c.params.end, c.params.step);
      assert.equal(t.dtype, 'float32');
      assertClose(t, c.output('y'), ELEMENTWISE, 'arange');
    });
  });
  it('arange with integers (int64), negative step, one argument', () => tidy(() => {
    const c = refCase('creation/arange_int');
    const t = arange(c.params.start, c.params.end, c.params.step);
    assert.equal(t.dtype, 'int64');
    assertClose(t, c.output('y'), EXACT, 'arange int');
    assertClose(arange(5), refCase('creation/arange_one').output('y'), EXACT, 'arange(5)');
  }));
  it('full, zeros, ones, empty and the *Like variants', () => tidy(() => {
    const c = refCase('creation/full');
    assertClose(full(c.params.shape, c.params.value), c.output('y'), EXACT, 'full');
    assert.deepEqual(zeros([2, 2]).toNumbers(), [0, 0, 0, 0]);
    assert.deepEqual(ones([3], { dtype: 'int32' }).toNumbers(), [1, 1, 1]);
    assert.deepEqual(empty([2, 0, 3]).shape, [2, 0, 3]);
    const b = ones([2, 3], { dtype: 'float64' });
    assert.equal(zerosLike(b).dtype, 'float64');
    assert.deepEqual(onesLike(b, { dtype: 'int64' }).toNumbers(), [1, 1, 1, 1, 1, 1]);
    assert.deepEqual(zeros([]).shape, []);
    // as torch.zeros_like: the memory order of the input (optimizer state follows a channels-last weight)
    const cl = ones([4, 3, 2, 2]).contiguous('channelsLast');
    for (const made of [zerosLike(cl), onesLike(cl, { dtype: 'float64' })]) {
      assert.deepEqual(made.strides(), [12, 1, 6, 3]);
      assert.ok(made.isContiguous('channelsLast'));
    }
    assert.deepEqual(zerosLike(ones([4, 3, 2, 2])).strides(), [12, 4, 2, 1]);
  }));
  it('every dtype can be created and read back', () => tidy(() => {
    for (const d of DTYPES) {
      const t = full([2, 2], 1, { dtype: d });
      assert.equal(t.dtype, d);
      assert.deepEqual(t.toNumbers(), [1, 1, 1, 1], d);
    }
  }));
});

describe('tensor() from JS data', () => {
  it('nested arrays infer the shape; float32 by default, bool for booleans', () => tidy(() => {
    const t = tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.dtype, 'float32');
    assert.equal(tensor([true, false]).dtype, 'bool');
    assert.deepEqual(tensor(3.5).shape, []);
    assert.equal(tensor(3.5).item(), 3.5);
  }));
  it('typed arrays keep their dtype and take a shape', () => tidy(() => {
    assert.equal(tensor(new Float64Array(6), [2, 3]).dtype, 'float64');
    assert.equal(tensor(new Int32Array([1, 2])).dtype, 'int32');
    assert.equal(tensor(new BigInt64Array([1n, -2n])).dtype, 'int64');
    assert.deepEqual(tensor(new BigInt64Array([1n, -2n])).toNumbers(), [1, -2]);
    assert.equal(tensor(new Uint8Array([0, 1]), undefined, { dtype: 'bool' }).dtype, 'bool');
  }));
  // Expected values from torch.tensor([...]).half() / .bfloat16() (round to nearest even).
  it('float16 and bfloat16 round like PyTorch and read back as float32', () => tidy(() => {
    const h = tensor([1 / 3, 65504, 1e-8], undefined, { dtype: 'float16' });
    assert.equal(h.dtype, 'float16');
    assert.deepEqual(h.toNumbers(), [0.333251953125, 65504, 0]);
    const b = tensor([1 / 3, 3e38], undefined, { dtype: 'bfloat16' });
    assert.deepEqual(b.toNumbers(), [0.333984375, 3.00405527047391e+38]);
  }));
  it('copies the data: later writes to the source do not show', () => tidy(() => {
    const src = new Float32Array([1, 2]);
    const t = tensor(src);
    src[0] = 9;
    assert.deepEqual(t.toNumbers(), [1, 2]);
  }));
  it('requiresGrad option makes a leaf that requires grad', () => tidy(() => {
    const t = randn([2], { requiresGrad: true });
    assert.equal(t.requiresGrad, true);
    assert.equal(t.isLeaf, true);
  }));
});
