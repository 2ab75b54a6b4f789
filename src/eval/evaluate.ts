// Evaluation over a dataset: confusion matrix -> mIoU and friends.
import { tidy } from '../engine/index.js';
import type { DataLoader } from '../data/index.js';
import { type InferenceOptions, openSource, probs, probsToLabels, type Segmentable } from './segmenter.js';
import { ConfusionMatrix, type SegMetrics } from './metrics.js';

export interface EvaluateOptions extends InferenceOptions {
  /** Called after each batch with (done, total) images. */
  onProgress?: (done: number, total: number) => void;
  /** Where batches are loaded (default 'cpu'; a model takes them to its own device). */
  device?: string;
}

export interface EvaluationResult extends SegMetrics {
  confusion: ConfusionMatrix;
  images: number;
  seconds: number;
}

/**
 * Evaluates a model (run as an inference copy) or an OnnxSegmenter on an eval-mode loader (padding is
 * the ignore index, so it never counts).
 */
export async function evaluate(m: Segmentable, loader: DataLoader, o: EvaluateOptions = {}): Promise<EvaluationResult> {
  const ds = loader.dataset;
  const t0 = performance.now();
  let images = 0;
  const { src, close } = openSource(m, o.precision);
  const cm = new ConfusionMatrix(src.numClasses === 1 ? 2 : src.numClasses, ds.ignoreIndex);
  try {
    for await (const batch of loader) {
      const { images: x, masks: y } = loader.toTensors(batch, o.device ?? 'cpu');
      const p = await probs(src, x, o);
      tidy(() => cm.update(probsToLabels(p), y.device === p.device ? y : y.to(p.device)));
      for (const t of [x, y, p]) t.dispose();
      images += batch.ids.length;
      o.onProgress?.(images, ds.length);
    }
  } finally {
    close();
  }
  return { ...cm.metrics(), confusion: cm, images, seconds: (performance.now() - t0) / 1000 };
}
