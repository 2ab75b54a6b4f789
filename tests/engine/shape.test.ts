// Shape and layout ops against PyTorch: joins, splits, views, slicing, padding and channels-last.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { F, type Tensor, arange, tensor, tidy } from '../../src/engine/index.js';
import { checkCase, EXACT, refCase, refCases, type RefCase } from './ref-cases.js';

// Data movement is exact, values and gradients (a gradient here is a scatter or a sum of at most a few terms).
const MOVE = { atol: 1e-6, rtol: 1e-6 };

const runs: Record<string, (i: Record<string, Tensor>, p: Record<string, any>) => Tensor | Tensor[]> = {
  'shape/cat': ({ a, b }, p) => F.cat([a, b], p.dim),
  'shape/cat_neg': ({ a, b }, p) => F.cat([a, b], p.dim),
  'shape/stack0': ({ a, b }, p) => F.stack([a, b], p.dim),
  'shape/stack_last': ({ a, b }, p) => F.stack([a, b], p.dim),
  'shape/reshape': ({ x }, p) => x.reshape(p.shape),
  'shape/reshape_noncontig': ({ x }, p) => x.transpose(0, 2).reshape(p.shape),
  'shape/view': ({ x }, p) => x.view(...(p.shape as number[])),
  'shape/permute': ({ x }, p) => x.permute(p.dims),
  'shape/transpose': ({ x }, p) => x.transpose(p.a, p.b),
  'shape/contiguous': ({ x }) => x.permute(1, 2, 0).contiguous(),
  'shape/flatten': ({ x }, p) => x.flatten(p.start, p.end),
  'shape/flatten_mid': ({ x }, p) => x.flatten(p.start, p.end),
  'shape/squeeze_all': ({ x }) => x.squeeze(),
  'shape/squeeze_dim': ({ x }, p) => x.squeeze(p.dim),
  'shape/squeeze_noop': ({ x }, p) => x.squeeze(p.dim),
  'shape/unsqueeze': ({ x }, p) => x.unsqueeze(p.dim),
  'shape/unsqueeze_end': ({ x }, p) => x.unsqueeze(p.dim),
  'shape/expand': ({ x }, p) => x.expand(p.shape),
  'shape/expand_keep': ({ x }, p) => x.expand(...(p.shape as number[])),
  'shape/narrow': ({ x }, p) => x.narrow(p.dim, p.start, p.length),
  'shape/narrow_neg': ({ x }, p) => x.narrow(p.dim, p.start, p.length),
  'shape/indexSelect': ({ x, i }, p) => x.indexSelect(p.dim, i),
  'shape/indexSelect1': ({ x, i }, p) => x.indexSelect(p.dim, i),
  'shape/flip': ({ x }, p) => x.flip(p.dims),
  'shape/flip_neg': ({ x }, p) => x.flip(...(p.dims as number[])),
  'shape/repeat': ({ x }, p) => x.repeat(p.repeats),
  'shape/gather': ({ x, i }, p) => x.gather(p.dim, i),
};

function run(prefix: string, f?: (c: RefCase) => (i: Record<string, Tensor>, p: Record<string, any>) => Tensor | Tensor[]): void {
  for (const c of refCases(prefix)) {
    it(c.name, () => {
      const fn = f ? f(c) : runs[c.name];
      assert.ok(fn, `no TypeScript call for ${c.name}`);
      checkCase(c, fn, MOVE);
    });
  }
}

describe('shape ops', () => run('shape/'));
describe('split and chunk', () => {
  run('split/', () => ({ x }, p) => x.split(p.size, p.dim));
  run('chunk/', () => ({ x }, p) => x.chunk(p.chunks, p.dim));
  // Gradients flow back through the pieces (concatenated in reverse order).
  run('splitGrad/', () => ({ x }, p) => F.cat((p.chunks ? x.chunk(p.chunks, p.dim) : x.split(p.size, p.dim)).reverse(), p.dim));
});
describe('slice (Python t[a:b:s])', () => run('slice/', () => ({ x }, p) => x.slice(p.dim, p.start, p.end ?? undefined, p.step)));
describe('pad', () => run('pad/', () => ({ x }, p) => F.pad(x, p.pads, { mode: p.mode, value: p.value })));

describe('memory layout', () => {
  it('contiguous() of a permuted tensor has row-major strides', () => tidy(() => {
    const c = refCase('shape/contiguous');
    const p = c.input('x').permute(1, 2, 0);
    assert.deepEqual(p.strides(), c.meta.permutedStrides);
    assert.equal(p.isContiguous(), false);
    const q = p.contiguous();
    assert.deepEqual(q.strides(), c.meta.strides);
    assert.equal(q.isContiguous(), true);
  }));
  it('channelsLast: same values, NHWC strides', () => {
    const c = refCase('channelsLast/contiguous');
    checkCase(c, ({ x }) => {
      const y = x.contiguous('channelsLast');
      assert.deepEqual(y.strides(), c.meta.strides);
      assert.equal(y.isContiguous('channelsLast'), c.meta.isChannelsLast);
      assert.equal(y.isContiguous(), false);
      return y;
    }, EXACT);
  });
  it('conv2d on a channels-last input: same values and gradients, channels-last output', () => {
    const c = refCase('channelsLast/conv2d');
    checkCase(c, ({ x, w }) => {
      const y = F.conv2d(x.contiguous('channelsLast'), w, null, { padding: 1 });
      assert.equal(y.isContiguous('channelsLast'), c.meta.outChannelsLast);
      assert.deepEqual(y.strides(), c.meta.outStrides);
      return y;
    }, { atol: 1e-5, rtol: 1e-5 });
  });
  it('views share memory with their base', () => tidy(() => {
    const x = arange(6, undefined, 1, { dtype: 'float32' });
    const v = x.view(2, 3).transpose(0, 1);
    v.narrow(0, 0, 1).fill_(-1);
    assert.deepEqual(x.toNumbers(), [-1, 1, 2, -1, 4, 5]);
  }));
  it('toArray of a non-contiguous view is row-major in the view order', () => tidy(() => {
    assert.deepEqual(tensor([[1, 2, 3], [4, 5, 6]]).transpose(0, 1).toNumbers(), [1, 4, 2, 5, 3, 6]);
  }));
});
