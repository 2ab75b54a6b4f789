// GradScaler follows torch.cuda.amp.GradScaler: unscale, skip steps with inf/NaN, back off, grow.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad, tensor } from '../../src/engine/index.js';
import { GradScaler } from '../../src/train/grad-scaler.js';
import { SGD } from '../../src/train/optimizers.js';

describe('GradScaler', () => {
  it('unscales gradients before the step, so the update equals an unscaled one', () => {
    const p = tensor([1, 2], undefined, { requiresGrad: true });
    const opt = new SGD([p], { lr: 0.1 });
    const s = new GradScaler({ initScale: 1024 });
    const loss = p.mul(tensor([3, 4])).sum();
    s.scaleLoss(loss).backward();
    assert.deepEqual(p.grad!.toNumbers(), [3 * 1024, 4 * 1024]);
    assert.equal(s.step(opt), true);
    assert.deepEqual(p.toNumbers().map((x) => Math.round(x * 1e6) / 1e6), [0.7, 1.6]);
    assert.equal(s.scale, 1024);
  });

  it('skips a step with an inf gradient and halves the scale; grows after growthInterval good steps', () => {
    const p = tensor([1], undefined, { requiresGrad: true });
    const opt = new SGD([p], { lr: 0.1 });
    const s = new GradScaler({ initScale: 8, growthInterval: 2 });
    noGrad(() => { p.grad = tensor([Number.POSITIVE_INFINITY]); });
    assert.equal(s.step(opt), false);
    assert.equal(p.item(), 1, 'parameter untouched');
    assert.equal(s.scale, 4);
    for (let i = 0; i < 2; i++) {
      opt.zeroGrad();
      noGrad(() => { p.grad = tensor([4]); });
      assert.equal(s.step(opt), true);
    }
    assert.equal(s.scale, 8, 'doubled after 2 finite steps');
    assert.ok(Math.abs(p.item() - (1 - 0.1 * 1 - 0.1 * 1)) < 1e-6);
  });
});
