// torch.add's alpha: a + alpha * b in one op, also through autograd.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../../src/engine/index.js';

it('add(other, alpha) computes a + alpha * b and its gradients', () => {
  const a = tensor([1, 2, 3], undefined, { requiresGrad: true });
  const b = tensor([10, 20, 30], undefined, { requiresGrad: true });
  const y = a.add(b, 0.5);
  assert.deepEqual(y.toNumbers(), [6, 12, 18]);
  y.sum().backward();
  assert.deepEqual(a.grad!.toNumbers(), [1, 1, 1]);
  assert.deepEqual(b.grad!.toNumbers(), [0.5, 0.5, 0.5]);
  assert.deepEqual(a.add(2, 3).toNumbers(), [7, 8, 9]);
  assert.throws(() => a.add(b, Number.NaN), /^PansegError: add: expected number for alpha but received NaN of type number$/);
});
