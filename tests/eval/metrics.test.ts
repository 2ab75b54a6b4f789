// ConfusionMatrix and metricsFromConfusion against hand-computed matrices.
// Tolerance: 1e-12 absolute (counts are exact integers; only the final divisions round).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors, tensor } from '../../src/engine/index.js';
import { ConfusionMatrix, metricsFromConfusion, type SegMetrics } from '../../src/eval/metrics.js';

const long = (xs: number[], shape = [xs.length]) => tensor(xs, shape, { dtype: 'int64' });

function close(a: number, b: number, label: string): void {
  if (Number.isNaN(b)) assert.ok(Number.isNaN(a), `${label}: expected NaN, got ${a}`);
  else assert.ok(Math.abs(a - b) <= 1e-12, `${label}: ${a} vs ${b}`);
}
function closeAll(m: SegMetrics, want: SegMetrics): void {
  for (const k of ['miou', 'pixelAccuracy', 'meanAccuracy', 'fwIou'] as const) close(m[k], want[k], k);
  assert.equal(m.perClassIou.length, want.perClassIou.length);
  want.perClassIou.forEach((v, i) => close(m.perClassIou[i], v, `perClassIou[${i}]`));
  want.perClassAccuracy.forEach((v, i) => close(m.perClassAccuracy[i], v, `perClassAccuracy[${i}]`));
}

describe('ConfusionMatrix', () => {
  // 4 classes; class 3 appears only under ignored targets, so it is absent (NaN) and skipped.
  //   gt:   0 0 0 1 1 2 2 255 255
  //   pred: 0 0 1 1 2 2 0 3   1
  // rows = gt, cols = pred:  [2 1 0 0] [0 1 1 0] [1 0 1 0] [0 0 0 0]
  const gt = [0, 0, 0, 1, 1, 2, 2, 255, 255];
  const pred = [0, 0, 1, 1, 2, 2, 0, 3, 1];
  const want: SegMetrics = {
    perClassIou: [2 / 4, 1 / 3, 1 / 3, Number.NaN], // tp / (gt + pred - tp)
    perClassAccuracy: [2 / 3, 1 / 2, 1 / 2, Number.NaN],
    miou: (1 / 2 + 1 / 3 + 1 / 3) / 3,
    pixelAccuracy: 4 / 7,
    meanAccuracy: (2 / 3 + 1 / 2 + 1 / 2) / 3,
    fwIou: (3 / 7) * (1 / 2) + (2 / 7) * (1 / 3) + (2 / 7) * (1 / 3),
  };

  it('counts rows = ground truth, columns = prediction, skipping the ignore index', () => {
    const live0 = liveTensors();
    const cm = new ConfusionMatrix(4);
    const p = long(pred, [1, 3, 3]);
    const t = long(gt, [1, 3, 3]);
    cm.update(p, t);
    p.dispose(); t.dispose();
    assert.deepEqual([...cm.counts], [2, 1, 0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0]);
    assert.equal(cm.at(2, 0), 1);
    closeAll(cm.metrics(), want);
    assert.equal(liveTensors(), live0, 'tensors leaked');
  });

  it('accumulates over updates, merges, resets, and takes any ignore index', () => {
    const a = new ConfusionMatrix(4);
    const p1 = long(pred.slice(0, 4));
    const t1 = long(gt.slice(0, 4));
    const p2 = long(pred.slice(4));
    const t2 = long(gt.slice(4));
    a.update(p1, t1);
    const b = new ConfusionMatrix(4);
    b.update(p2, t2);
    a.merge(b);
    closeAll(a.metrics(), want);
    a.reset();
    assert.ok(a.counts.every((c) => c === 0));
    for (const t of [p1, t1, p2, t2]) t.dispose();

    const c = new ConfusionMatrix(2, 0); // ignore index 0: only the class-1 pixel counts
    const p = long([1, 0, 1]);
    const t = long([0, 0, 1]);
    c.update(p, t);
    assert.deepEqual([...c.counts], [0, 0, 0, 1]);
    p.dispose(); t.dispose();
  });

  it('skips targets outside [0, classes) and uint8 targets work', () => {
    const cm = new ConfusionMatrix(3);
    const p = long([0, 1, 2, 2]);
    const t = tensor(new Uint8Array([0, 7, 2, 200]));
    cm.update(p, t);
    assert.deepEqual([...cm.counts], [1, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.dispose(); t.dispose();
  });

  it('rejects mismatched shapes and a bad class count', () => {
    const cm = new ConfusionMatrix(3);
    const p = long([0, 1, 2, 2], [2, 2]);
    const t = long([0, 1, 2, 2]);
    assert.throws(() => cm.update(p, t), /^PansegError: ConfusionMatrix: prediction \[2, 2\] and target \[4\] differ in shape$/);
    p.dispose(); t.dispose();
    assert.throws(() => new ConfusionMatrix(0), /ConfusionMatrix: expected positive integer for numClasses but received 0 of type number/);
  });
});

describe('metricsFromConfusion', () => {
  it('a class only predicted (never in the ground truth) has IoU 0 and accuracy NaN', () => {
    // gt: 0 0 0 0; pred: 0 0 1 1 -> [[2, 2], [0, 0]]
    closeAll(metricsFromConfusion([2, 2, 0, 0], 2), {
      perClassIou: [2 / 4, 0], perClassAccuracy: [2 / 4, Number.NaN],
      miou: 1 / 4, pixelAccuracy: 2 / 4, meanAccuracy: 2 / 4, fwIou: 1 * (2 / 4),
    });
  });

  it('a perfect prediction scores 1 everywhere; fwIoU weights by ground-truth frequency', () => {
    closeAll(metricsFromConfusion([3, 0, 0, 0, 1, 0, 0, 0, 0], 3), {
      perClassIou: [1, 1, Number.NaN], perClassAccuracy: [1, 1, Number.NaN], miou: 1, pixelAccuracy: 1, meanAccuracy: 1, fwIou: 1,
    });
    // [[5, 1], [3, 1]]: IoU0 = 5/9, IoU1 = 1/5; gt frequencies 6/10 and 4/10.
    const m = metricsFromConfusion([5, 1, 3, 1], 2);
    close(m.fwIou, 0.6 * (5 / 9) + 0.4 * (1 / 5), 'fwIou');
    close(m.miou, (5 / 9 + 1 / 5) / 2, 'miou');
    close(m.meanAccuracy, (5 / 6 + 1 / 4) / 2, 'meanAccuracy');
  });

  it('an empty matrix has NaN mIoU, accuracies and per-class values', () => {
    const m = metricsFromConfusion(new Float64Array(4), 2);
    assert.ok(Number.isNaN(m.miou) && Number.isNaN(m.pixelAccuracy) && Number.isNaN(m.meanAccuracy));
    assert.ok(m.perClassIou.every(Number.isNaN));
  });
});
