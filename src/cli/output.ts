// Printing results as tables.
import type { SegMetrics } from '../eval/metrics.js';

const pct = (x: number) => (Number.isNaN(x) ? '   n/a' : `${(x * 100).toFixed(2).padStart(6)}`);

/** A per-class IoU/accuracy table followed by the summary metrics. */
export function printMetrics(m: SegMetrics, classes: readonly string[]): void {
  const w = Math.max(5, ...classes.map((c) => c.length));
  console.log(`${'class'.padEnd(w)}  IoU %   Acc %`);
  m.perClassIou.forEach((iou, i) => console.log(`${(classes[i] ?? `class ${i}`).padEnd(w)}  ${pct(iou)}  ${pct(m.perClassAccuracy[i])}`));
  console.log(`${'-'.repeat(w + 17)}`);
  console.log(`${'mIoU'.padEnd(w)}  ${pct(m.miou)}`);
  console.log(`${'pixel acc'.padEnd(w)}  ${pct(m.pixelAccuracy)}`);
  console.log(`${'mean acc'.padEnd(w)}  ${pct(m.meanAccuracy)}`);
  console.log(`${'fw IoU'.padEnd(w)}  ${pct(m.fwIou)}`);
}

/** The JSON form of metrics (snake_case keys as PyTorch tools print). */
export function metricsJson(m: SegMetrics, classes: readonly string[]): Record<string, unknown> {
  return {
    miou: m.miou,
    pixel_accuracy: m.pixelAccuracy,
    mean_accuracy: m.meanAccuracy,
    fw_iou: m.fwIou,
    per_class_iou: Object.fromEntries(m.perClassIou.map((v, i) => [classes[i] ?? `class_${i}`, Number.isNaN(v) ? null : v])),
    per_class_accuracy: Object.fromEntries(m.perClassAccuracy.map((v, i) => [classes[i] ?? `class_${i}`, Number.isNaN(v) ? null : v])),
  };
}
