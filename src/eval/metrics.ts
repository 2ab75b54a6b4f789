// Segmentation metrics from a confusion matrix (rows = ground truth, columns = prediction).
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { F, type Tensor, tidy } from '../engine/index.js';

export interface SegMetrics {
  /** Mean IoU over classes that occur in the ground truth or the predictions (NaN classes skipped). */
  miou: number;
  pixelAccuracy: number;
  meanAccuracy: number;
  /** Frequency-weighted IoU. */
  fwIou: number;
  /** Per-class IoU; NaN where the class appears in neither ground truth nor prediction. */
  perClassIou: number[];
  perClassAccuracy: number[];
}

export class ConfusionMatrix {
  readonly counts: Float64Array;

  constructor(readonly numClasses: number, readonly ignoreIndex = 255) {
    v.int('ConfusionMatrix', 'numClasses', numClasses, 1);
    this.counts = new Float64Array(numClasses * numClasses);
  }

  /** Adds predictions (int64 class indices) against targets of the same shape; ignored pixels are skipped. */
  update(pred: Tensor, target: Tensor): void {
    const c = this.numClasses;
    if (pred.shape.join() !== target.shape.join()) fail('ConfusionMatrix', `prediction [${pred.shape.join(', ')}] and target [${target.shape.join(', ')}] differ in shape`);
    const bins = tidy(() => {
      const t = target.flatten().to('int64');
      const p = pred.flatten().to('int64');
      const valid = t.ne(this.ignoreIndex).logicalAnd(t.ge(0)).logicalAnd(t.lt(c));
      const idx = F.where(valid, t.mul(c).add(p), t.mul(0).add(c * c)); // invalid -> an overflow bin
      return F.bincount(idx, c * c + 1);
    });
    const arr = bins.toNumbers();
    bins.dispose();
    for (let i = 0; i < c * c; i++) this.counts[i] += arr[i];
  }

  /** Adds another matrix (e.g. from another worker). */
  merge(other: ConfusionMatrix): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i];
  }

  reset(): void { this.counts.fill(0); }

  at(gt: number, pred: number): number { return this.counts[gt * this.numClasses + pred]; }

  metrics(): SegMetrics {
    return metricsFromConfusion(this.counts, this.numClasses);
  }
}

const nanmean = (xs: number[]) => {
  const ok = xs.filter((x) => !Number.isNaN(x));
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : Number.NaN;
};

export function metricsFromConfusion(counts: ArrayLike<number>, c: number): SegMetrics {
  const tp: number[] = [];
  const gt: number[] = [];
  const pr: number[] = [];
  let total = 0;
  for (let i = 0; i < c; i++) {
    let row = 0; let col = 0;
    for (let j = 0; j < c; j++) { row += counts[i * c + j]; col += counts[j * c + i]; }
    tp.push(counts[i * c + i]); gt.push(row); pr.push(col); total += row;
  }
  const iou = tp.map((t, i) => (gt[i] + pr[i] - t > 0 ? t / (gt[i] + pr[i] - t) : Number.NaN));
  const acc = tp.map((t, i) => (gt[i] > 0 ? t / gt[i] : Number.NaN));
  const correct = tp.reduce((a, b) => a + b, 0);
  let fw = 0;
  for (let i = 0; i < c; i++) if (!Number.isNaN(iou[i]) && total > 0) fw += (gt[i] / total) * iou[i];
  return {
    miou: nanmean(iou),
    pixelAccuracy: total > 0 ? correct / total : Number.NaN,
    meanAccuracy: nanmean(acc),
    fwIou: fw,
    perClassIou: iou,
    perClassAccuracy: acc,
  };
}
