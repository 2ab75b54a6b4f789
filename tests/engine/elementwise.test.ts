// Elementwise math, comparisons, softmax, matmul, where and in-place updates against PyTorch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { F, type Tensor, tensor, tidy } from '../../src/engine/index.js';
import { ACCUM, checkCase, ELEMENTWISE, refCases } from './ref-cases.js';

type Method = (this: Tensor, ...a: unknown[]) => Tensor;
const call = (t: Tensor, op: string, ...args: unknown[]): Tensor => ((t as unknown as Record<string, Method>)[op]).apply(t, args);

describe('unary ops (float32, 1e-5 relative)', () => {
  for (const c of refCases('unary/')) {
    it(c.name, () => checkCase(c, ({ x }, p) => call(x, p.op), ELEMENTWISE));
  }
  it('F.relu/sigmoid/tanh/gelu equal the methods', () => tidy(() => {
    const x = tensor([-2, -0.5, 0, 0.5, 2]);
    for (const op of ['relu', 'sigmoid', 'tanh', 'gelu'] as const) assert.deepEqual(F[op](x).toArray(), call(x, op).toArray());
  }));
});

describe('binary ops with broadcasting', () => {
  for (const c of refCases('binary/')) {
    // Gradients of a broadcast operand are sums over the broadcast dims.
    it(c.name, () => checkCase(c, ({ a, b }, p) => call(a, p.op, b), ELEMENTWISE, ACCUM));
  }
});

describe('ops with a scalar', () => {
  for (const c of refCases('scalar/')) {
    it(c.name, () => checkCase(c, ({ x }, p) => (p.op === 'rsub' ? x.rsub(p.s) : call(x, p.op, p.s)), ELEMENTWISE));
  }
});

describe('clamp', () => {
  for (const c of refCases('clamp/')) it(c.name, () => checkCase(c, ({ x }, p) => x.clamp(p.min, p.max), ELEMENTWISE));
});

describe('comparisons (bool results, exact)', () => {
  for (const c of refCases('compare/')) {
    it(c.name, () => checkCase(c, ({ a, b }, p) => call(a, p.op, p.s ?? b), ELEMENTWISE));
  }
});

describe('softmax and logSoftmax', () => {
  for (const c of refCases('softmax/')) it(c.name, () => checkCase(c, ({ x }, p) => F.softmax(x, p.dim), ELEMENTWISE, ACCUM));
  for (const c of refCases('logSoftmax/')) it(c.name, () => checkCase(c, ({ x }, p) => x.logSoftmax(p.dim), ELEMENTWISE, ACCUM));
});

describe('matmul (accumulates: atol 1e-5 + rtol 1e-5)', () => {
  for (const c of refCases('matmul/')) it(c.name, () => checkCase(c, ({ a, b }) => a.matmul(b), ACCUM));
});

describe('where', () => {
  for (const c of refCases('where/')) it(c.name, () => checkCase(c, ({ c: cond, a, b }) => F.where(cond, a, b), ELEMENTWISE, ACCUM));
});

describe('in-place updates (on clones, as optimizers use them)', () => {
  const runs: Record<string, (ins: Record<string, Tensor>, p: Record<string, number>) => Tensor> = {
    'inplace/add_': ({ x, o }, p) => x.clone().add_(o, p.alpha),
    'inplace/add_scalar': ({ x }, p) => x.clone().add_(p.s),
    'inplace/sub_': ({ x, o }, p) => x.clone().sub_(o, p.alpha),
    'inplace/mul_': ({ x, o }) => x.clone().mul_(o),
    'inplace/mul_scalar': ({ x }, p) => x.clone().mul_(p.s),
    'inplace/div_': ({ x, o }) => x.clone().div_(o),
    'inplace/addcmul_': ({ x, a, b }, p) => x.clone().addcmul_(a, b, p.value),
    'inplace/addcdiv_': ({ x, a, b }, p) => x.clone().addcdiv_(a, b, p.value),
    'inplace/zero_': ({ x }) => x.clone().zero_(),
    'inplace/copy_': ({ x, o }) => x.clone().copy_(o),
    'inplace/clamp_': ({ x }, p) => x.clone().clamp_(p.min, p.max),
    'inplace/lerp_': ({ x, o }, p) => x.clone().lerp_(o, p.weight),
    'inplace/fill_': ({ x }, p) => x.clone().fill_(p.value),
    'inplace/sqrt_': ({ x }) => x.clone().sqrt_(),
  };
  for (const c of refCases('inplace/')) {
    it(c.name, () => {
      assert.ok(runs[c.name], `no TypeScript call for ${c.name}`);
      checkCase(c, runs[c.name], ELEMENTWISE);
    });
  }
  it('returns this and writes through views', () => tidy(() => {
    const x = tensor([[1, 2], [3, 4]]);
    const row = x.narrow(0, 1, 1);
    assert.equal(row.mul_(10), row);
    assert.deepEqual(x.toNumbers(), [1, 2, 30, 40]);
  }));
});
