// Evaluation over a dataset: confusion matrix -> mIoU and friends.
import { tidy } from '../engine/index.js';
import type { DataLoader } from '../data/index.js';
import type { SegmentationModel } from '../models/index.js';
import { type InferenceOptions, inferenceCopy, predictProbs, probsToLabels } from './inference.js';
import { ConfusionMatrix, type SegMetrics } from './metrics.js';

export interface EvaluateOptions extends InferenceOptions {
  /** Called after each batch with (done, total) images. */
  onProgress?: (done: number, total: number) => void;
  /** Compute on this device (default the model's). */
  device?: string;
}

export interface EvaluationResult extends SegMetrics {
  confusion: ConfusionMatrix;
  images: number;
  seconds: number;
}

/** Evaluates `model` on an eval-mode loader (padding is the ignore index, so it never counts). */
export async function evaluate(model: SegmentationModel, loader: DataLoader, o: EvaluateOptions = {}): Promise<EvaluationResult> {
  const ds = loader.dataset;
  const cm = new ConfusionMatrix(model.config.classes === 1 ? 2 : model.config.classes, ds.ignoreIndex);
  const t0 = performance.now();
  let images = 0;
  const device = o.device ?? model.parameters()[0].device;
  const fast = model.isOptimizedForInference ? model : inferenceCopy(model, o.precision);
  try {
    for await (const batch of loader) {
      const { images: x, masks: y } = loader.toTensors(batch, device);
      tidy(() => cm.update(probsToLabels(predictProbs(fast, x, o)), y));
      x.dispose();
      y.dispose();
      images += batch.ids.length;
      o.onProgress?.(images, ds.length);
    }
  } finally {
    if (fast !== model) fast.dispose();
  }
  return { ...cm.metrics(), confusion: cm, images, seconds: (performance.now() - t0) / 1000 };
}
