// Segmentation losses vs PyTorch (scripts/reference/train_ref.py) and hand computations.
// Tolerances: the reference cases run in float64 on both sides: loss and d loss / d logits within
// 1e-9 absolute (values are O(1); the two sides differ only in summation order). Hand-computed
// cases: 1e-6 absolute (float32 logits).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveTensors, type Tensor, tensor, tidy } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { auxPresenceLoss, combinedLoss, crossEntropyLoss, diceLoss, focalLoss, type CrossEntropyLossOptions, type LossFn, parseLoss } from '../../src/train/losses.js';
import { reference } from '../helpers/reference.js';

const ref = reference('train_ref.py', [], ['st.py']);
const data = loadSafetensors(join(ref, 'losses.safetensors'));
after(() => { for (const t of data.values()) t.dispose(); });
const index = JSON.parse(readFileSync(join(ref, 'losses.json'), 'utf8')) as { cases: Record<string, { loss: 'ce' | 'dice' | 'focal'; options: Record<string, never> }> };

const long = (xs: number[], shape: number[]): Tensor => tensor(xs, shape, { dtype: 'int64' });

function lossFor(kind: 'ce' | 'dice' | 'focal', o: Record<string, never>): LossFn {
  return kind === 'ce' ? crossEntropyLoss(o) : kind === 'dice' ? diceLoss(o) : focalLoss(o);
}

describe('losses vs PyTorch (float64; loss and gradient within 1e-9)', () => {
  for (const [name, c] of Object.entries(index.cases)) {
    it(name, () => {
      const live0 = liveTensors();
      const x = data.get(`${name}.logits`)!.clone().requiresGrad_(true);
      const target = data.get(`${name}.target`)!;
      const loss = lossFor(c.loss, c.options)(x, target);
      assert.deepEqual(loss.shape, []);
      const want = data.get(`${name}.loss`)!.item();
      assert.ok(Math.abs(loss.item() - want) <= 1e-9, `loss ${loss.item()} vs torch ${want}`);
      loss.backward();
      loss.dispose();
      const g = x.grad!;
      const diff = tidy(() => g.sub(data.get(`${name}.grad`)!).abs().max().item());
      assert.ok(diff <= 1e-9, `gradient differs by ${diff}`);
      g.dispose();
      x.dispose();
      assert.equal(liveTensors(), live0, 'tensors leaked');
    });
  }
});

const softmax = (xs: number[]): number[] => {
  const e = xs.map((v) => Math.exp(v));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

describe('diceLoss by hand', () => {
  // One image, 2 classes, 1x3 pixels: logits per pixel (class 0, class 1), targets 0, 1, ignored.
  const px = [[1, 2], [0.5, -1], [3, 0]];
  const logits = () => tensor([px.map((p) => p[0]), px.map((p) => p[1])].map((row) => [row]), undefined).reshape(1, 2, 1, 3);

  it('averages 1 - 2|P∩T| / (|P| + |T|) over the present classes; ignored pixels count nowhere', () => tidy(() => {
    const p = px.slice(0, 2).map(softmax); // the ignored third pixel is dropped
    const d0 = (2 * p[0][0]) / (p[0][0] + p[1][0] + 1);
    const d1 = (2 * p[1][1]) / (p[0][1] + p[1][1] + 1);
    const want = ((1 - d0) + (1 - d1)) / 2;
    const got = diceLoss()(logits(), long([0, 1, 255], [1, 1, 3])).item();
    assert.ok(Math.abs(got - want) <= 1e-6, `${got} vs ${want}`);
  }));

  it('skips classes absent from the target', () => tidy(() => {
    const p = px.slice(0, 2).map(softmax);
    const d0 = (2 * (p[0][0] + p[1][0])) / (p[0][0] + p[1][0] + 2);
    const got = diceLoss()(logits(), long([0, 0, 255], [1, 1, 3])).item();
    assert.ok(Math.abs(got - (1 - d0)) <= 1e-6, `${got} vs ${1 - d0}`);
  }));

  it('is ~0 for a confident correct prediction and 0 (not NaN) when every pixel is ignored', () => tidy(() => {
    const x = tensor([[[[20, -20]]], [[[-20, 20]]]]).reshape(1, 2, 1, 2);
    assert.ok(diceLoss()(x, long([0, 1], [1, 1, 2])).item() < 1e-6);
    assert.equal(diceLoss()(x, long([255, 255], [1, 1, 2])).item(), 0);
    assert.equal(focalLoss()(x, long([255, 255], [1, 1, 2])).item(), 0);
  }));
});

describe('focalLoss by hand', () => {
  it('is -alpha (1 - p_t)^gamma log p_t averaged over valid pixels; gamma 0, alpha 1 is cross-entropy', () => tidy(() => {
    const x = tensor([0.2, -1, 1.5, 0.3, 0.7, -0.4]).reshape(1, 2, 1, 3); // class 0: 0.2 -1 1.5; class 1: 0.3 0.7 -0.4
    const t = long([1, 0, 255], [1, 1, 3]);
    const p0 = softmax([0.2, 0.3])[1];
    const p1 = softmax([-1, 0.7])[0];
    const f = (p: number) => -0.25 * (1 - p) ** 3 * Math.log(p);
    const got = focalLoss({ gamma: 3, alpha: 0.25 })(x, t).item();
    assert.ok(Math.abs(got - (f(p0) + f(p1)) / 2) <= 1e-6);
    const ce = crossEntropyLoss()(x, t).item();
    assert.ok(Math.abs(focalLoss({ gamma: 0 })(x, t).item() - ce) <= 1e-6);
  }));
});

describe('combinedLoss and parseLoss', () => {
  it('parses loss specs', () => {
    assert.deepEqual(parseLoss('ce'), [{ name: 'ce', weight: 1 }]);
    assert.deepEqual(parseLoss('ce+dice'), [{ name: 'ce', weight: 1 }, { name: 'dice', weight: 1 }]);
    assert.deepEqual(parseLoss(' ce + 0.5 * dice+2*focal'), [{ name: 'ce', weight: 1 }, { name: 'dice', weight: 0.5 }, { name: 'focal', weight: 2 }]);
    assert.throws(() => parseLoss('ce+bogus'), /^PansegError: loss: cannot parse 'bogus' in 'ce\+bogus'; use e\.g\. 'ce', 'ce\+dice' or 'ce\+0\.5\*dice'$/);
    assert.throws(() => parseLoss('ce+'), /loss: cannot parse '' in 'ce\+'/);
  });

  it('is the weighted sum of its terms', () => tidy(() => {
    const x = data.get('ce_ignore.logits')!;
    const t = data.get('ce_ignore.target')!;
    const o: CrossEntropyLossOptions = { classWeights: [1, 2, 1, 1], labelSmoothing: 0.1 };
    const got = combinedLoss(parseLoss('ce+0.5*dice+2*focal'), o)(x, t).item();
    const want = crossEntropyLoss(o)(x, t).item() + 0.5 * diceLoss(o)(x, t).item() + 2 * focalLoss(o)(x, t).item();
    assert.ok(Math.abs(got - want) <= 1e-12, `${got} vs ${want}`);
  }));

  it('rejects empty term lists, unknown names and negative weights', () => {
    assert.throws(() => combinedLoss([]), /loss: expected at least one loss term/);
    assert.throws(() => combinedLoss([{ name: 'l1' as never }]), /loss: unknown loss 'l1'; valid: ce, dice, focal/);
    assert.throws(() => combinedLoss([{ name: 'dice', weight: -1 }]), /loss: expected finite number in \[0, Infinity\] for weight of dice but received -1/);
  });

  it('lets gradients flow to every valid logit and none to ignored pixels (float32)', () => {
    const live0 = liveTensors();
    const x = tidy(() => data.get('ce_ignore.logits')!.to('float32')).requiresGrad_(true);
    const t = data.get('ce_ignore.target')!;
    const loss = combinedLoss(parseLoss('ce+dice+focal'))(x, t);
    loss.backward();
    loss.dispose();
    const g = x.grad!;
    tidy(() => {
      assert.ok(g.isfinite().all().item() === 1, 'finite gradient');
      const ignored = t.eq(255).unsqueeze(1).expand(g.shape);
      assert.equal(g.abs().mul(ignored.to('float32')).sum().item(), 0, 'zero gradient at ignored pixels');
      const perPixel = g.abs().sum(1); // [N, H, W]
      const validNonZero = perPixel.gt(0).logicalOr(t.eq(255)).all().item();
      assert.equal(validNonZero, 1, 'every valid pixel gets a gradient');
    });
    g.dispose();
    x.dispose();
    assert.equal(liveTensors(), live0, 'tensors leaked');
  });
});

describe('auxPresenceLoss', () => {
  it('is BCE-with-logits of the presence logits against the classes present in each mask', () => tidy(() => {
    const labels = tensor([[0.5, -1, 2], [0, 1, -0.5]]);
    const target = long([0, 2, 255, 2, /* image 2 */ 1, 1, 255, 255], [2, 2, 2]);
    const presence = [[1, 0, 1], [0, 1, 0]];
    const l = labels.toNumbers();
    const bce = (z: number, y: number) => Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
    const want = presence.flat().reduce((s, y, i) => s + bce(l[i], y), 0) / 6;
    const got = auxPresenceLoss(labels, target, 3).item();
    assert.ok(Math.abs(got - want) <= 1e-6, `${got} vs ${want}`);
  }));
});
