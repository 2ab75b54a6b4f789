// Reductions against PyTorch: sum/mean/max/min/var with dims and keepdim, argmax/argmin, integer sums.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { F, type Tensor, tensor, tidy } from '../../src/engine/index.js';
import { ACCUM, EXACT, checkCase, refCases } from './ref-cases.js';

type Reducer = (this: Tensor, dim?: number | number[], keepdim?: boolean) => Tensor;

describe('reductions (accumulate: atol 1e-5 + rtol 1e-5)', () => {
  for (const c of refCases('reduce/')) {
    it(c.name, () => checkCase(c, ({ x }, p) => {
      const f = (x as unknown as Record<string, Reducer>)[p.op];
      return p.dim === undefined ? f.call(x) : f.call(x, p.dim, p.keepdim);
    }, ACCUM));
  }
});

describe('topk (values and int64 indices)', () => {
  for (const c of refCases('topk/')) it(c.name, () => checkCase(c, ({ x }, p) => x.topk(p.k, p.dim, p.largest), EXACT));
});

describe('bincount', () => {
  for (const c of refCases('bincount/')) it(c.name, () => checkCase(c, ({ x }, p) => F.bincount(x, p.minlength), EXACT));
});

describe('reduction semantics', () => {
  it('max/min over everything give a 0-d tensor; with keepdim every dim stays as 1', () => tidy(() => {
    const x = tensor([[1, 5], [-2, 3]]);
    assert.deepEqual(x.max().shape, []);
    assert.equal(x.max().item(), 5);
    assert.equal(x.min().item(), -2);
    assert.deepEqual(x.sum(undefined, false).shape, []);
    assert.deepEqual(x.max([0, 1], true).shape, [1, 1]);
  }));
  it('argmax returns int64 indices (first of ties, like PyTorch)', () => tidy(() => {
    const x = tensor([[1, 7, 7], [4, 0, 4]]);
    const a = x.argmax(1);
    assert.equal(a.dtype, 'int64');
    assert.deepEqual(a.toNumbers(), [1, 0]);
    assert.equal(x.argmax().item(), 1);
  }));
  it('mean of an integer tensor is an error naming the op', () => tidy(() => {
    assert.throws(() => tensor([1, 2], undefined, { dtype: 'int64' }).mean(), /^PansegError: mean: /);
  }));
});
