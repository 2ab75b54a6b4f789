// Autograd behaviour: accumulation, retained graphs, grad modes, leaves, detach, in-place tracking.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  enableGrad, inferenceMode, isGradEnabled, noGrad, ones, randn, tensor, tidy, zeros,
} from '../../src/engine/index.js';

const arr = (t: { toNumbers(): number[] } | null): number[] => (t ? t.toNumbers() : []);

describe('autograd', () => {
  it('computes the chain rule: d/dx sum(exp(2x)) = 2 exp(2x)', () => tidy(() => {
    const x = tensor([0, 0.5, -1]).requiresGrad_();
    x.mul(2).exp().sum().backward();
    const want = [0, 0.5, -1].map((v) => 2 * Math.exp(2 * v));
    arr(x.grad).forEach((g, i) => assert.ok(Math.abs(g - want[i]) < 1e-5 * want[i]));
  }));
  it('accumulates gradients over backward calls until grad is set to null', () => tidy(() => {
    const w = ones([2]).requiresGrad_();
    w.mul(3).sum().backward();
    w.mul(3).sum().backward();
    assert.deepEqual(arr(w.grad), [6, 6]);
    w.grad = null;
    assert.equal(w.grad, null);
    w.sum().backward();
    assert.deepEqual(arr(w.grad), [1, 1]);
  }));
  it('grad shares memory with the stored gradient (optimizers update it in place)', () => tidy(() => {
    const w = ones([2]).requiresGrad_();
    w.sum().backward();
    noGrad(() => w.grad!.mul_(5));
    assert.deepEqual(arr(w.grad), [5, 5]);
  }));
  it('a second backward through a freed graph fails unless retainGraph', () => tidy(() => {
    const x = ones([2]).requiresGrad_();
    const y = x.exp().sum();
    y.backward(undefined, { retainGraph: true });
    y.backward();
    assert.throws(() => y.backward(), /^PansegError: backward: Trying to backward through the graph a second time/);
  }));
  it('backward of a non-scalar needs an explicit gradient', () => tidy(() => {
    const x = ones([2, 2]).requiresGrad_();
    const y = x.mul(2);
    assert.throws(() => y.backward(), { message: 'backward: grad can be implicitly created only for scalar outputs; pass a gradient of shape [2, 2]' });
    y.backward(tensor([[1, 2], [3, 4]]));
    assert.deepEqual(arr(x.grad), [2, 4, 6, 8]);
  }));
  it('leaves, intermediate grads and retainGrad', () => tidy(() => {
    const x = randn([3]).requiresGrad_();
    const h = x.mul(2);
    const k = x.mul(3);
    h.retainGrad();
    assert.equal(x.isLeaf, true);
    assert.equal(h.isLeaf, false);
    h.add(k).sum().backward();
    assert.deepEqual(arr(h.grad), [1, 1, 1]);
    assert.equal(k.grad, null);
    assert.throws(() => h.requiresGrad_(false), /^PansegError: requiresGrad_: /);
  }));
  it('noGrad stops recording, enableGrad resumes it, both restore the previous mode', () => tidy(() => {
    const x = ones([2]).requiresGrad_();
    assert.equal(isGradEnabled(), true);
    const y = noGrad(() => {
      assert.equal(isGradEnabled(), false);
      const inner = enableGrad(() => x.mul(2));
      assert.equal(inner.requiresGrad, true);
      return x.mul(2);
    });
    assert.equal(y.requiresGrad, false);
    assert.equal(isGradEnabled(), true);
    assert.throws(() => noGrad(() => { throw new Error('boom'); }), /boom/);
    assert.equal(isGradEnabled(), true, 'restored after a throw');
    assert.throws(() => y.sum().backward(), /^PansegError: backward: this tensor does not require grad/);
  }));
  it('inferenceMode makes tensors that never require grad, and nests', () => tidy(() => {
    const x = ones([2]).requiresGrad_();
    const y = inferenceMode(() => inferenceMode(() => x.mul(2)).add(1));
    assert.equal(y.requiresGrad, false);
    assert.deepEqual(arr(y), [3, 3]);
    assert.equal(isGradEnabled(), true);
    assert.equal(x.mul(2).requiresGrad, true, 'grad mode is back after the scope');
  }));
  it('detach cuts the graph and shares memory', () => tidy(() => {
    const x = ones([2]).requiresGrad_();
    const d = x.mul(2).detach();
    assert.equal(d.requiresGrad, false);
    const xd = x.detach();
    noGrad(() => xd.add_(1));
    assert.deepEqual(arr(x), [2, 2]);
  }));
  it('requiresGrad follows in-place ops with grad-requiring operands (as PyTorch)', () => tidy(() => {
    const w = randn([3]).requiresGrad_();
    const acc = zeros([3]);
    assert.equal(acc.requiresGrad, false);
    acc.add_(w);
    assert.equal(acc.requiresGrad, true);
    acc.sum().backward();
    assert.deepEqual(arr(w.grad), [1, 1, 1]);
  }));
  it('an in-place op on a leaf that requires grad is refused outside noGrad', () => tidy(() => {
    const w = ones([2]).requiresGrad_();
    assert.throws(() => w.add_(1), { message: 'add_: a leaf Variable that requires grad is being used in an in-place operation.' });
    noGrad(() => w.add_(1));
    assert.deepEqual(arr(w), [2, 2]);
  }));
  it('integer tensors cannot require grad', () => tidy(() => {
    assert.throws(() => tensor([1, 2], undefined, { dtype: 'int64' }).requiresGrad_(), /^PansegError: requiresGrad_: Only Tensors of floating point and complex dtype can require gradients$/);
  }));
});
