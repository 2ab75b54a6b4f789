// Evaluation over a dataset: confusion matrix -> mIoU and friends.
import { type Tensor, tidy } from '../engine/index.js';
import type { DataLoader } from '../data/index.js';
import { type InferenceOptions, openSource, probs, probsToLabels, type Segmentable } from './segmenter.js';
import { ConfusionMatrix, type SegMetrics } from './metrics.js';

export interface EvaluateOptions extends InferenceOptions {
  /** Called after each batch with (done, total) images. */
  onProgress?: (done: number, total: number) => void;
  /** Where batches are loaded (default 'cpu'; a model takes them to its own device). */
  device?: string;
  /**
   * Also measure a loss (the result's `loss`, the mean over images). Called per batch with the
   * log-probabilities [N, C, H, W] float32 in place of logits (softmax, log-softmax and hence
   * cross-entropy, Dice and focal losses give the same values on them as on the logits) and the
   * int64 targets [N, H, W] (padding = the ignore index). Skipped for single-channel (sigmoid) models.
   */
  loss?: (logProbs: Tensor, target: Tensor) => Tensor;
  /** Record every image's mIoU and pixel accuracy in the result's `perImage`. Default false. */
  perImage?: boolean;
}

/** One image's scores (see {@link EvaluateOptions.perImage}). */
export interface ImageScore {
  id: string;
  miou: number;
  pixelAccuracy: number;
}

export interface EvaluationResult extends SegMetrics {
  confusion: ConfusionMatrix;
  images: number;
  seconds: number;
  /** Mean loss over images, when `loss` was given (and the model has several classes). */
  loss?: number;
  /** Per-image scores, in loader order, when `perImage` was set. */
  perImage?: ImageScore[];
}

/**
 * Evaluates a model (run as an inference copy) or an OnnxSegmenter on an eval-mode loader (padding is
 * the ignore index, so it never counts).
 */
export async function evaluate(m: Segmentable, loader: DataLoader, o: EvaluateOptions = {}): Promise<EvaluationResult> {
  const ds = loader.dataset;
  const t0 = performance.now();
  let images = 0;
  const { src, close } = openSource(m, o.precision, o.cudaGraphs);
  const cm = new ConfusionMatrix(src.numClasses === 1 ? 2 : src.numClasses, ds.ignoreIndex);
  let lossSum = 0;
  let lossImages = 0;
  const perImage: ImageScore[] | undefined = o.perImage ? [] : undefined;
  try {
    for await (const batch of loader) {
      const { images: x, masks: y } = loader.toTensors(batch, o.device ?? 'cpu');
      const p = await probs(src, x, o);
      tidy(() => {
        const yy = y.device === p.device ? y : y.to(p.device);
        const labels = probsToLabels(p);
        cm.update(labels, yy);
        if (o.loss && p.shape[1] > 1) {
          lossSum += o.loss(p.to('float32').clamp(1e-12, 1).log(), yy).item() * batch.ids.length;
          lossImages += batch.ids.length;
        }
        if (perImage) {
          batch.ids.forEach((id, i) => {
            const one = new ConfusionMatrix(cm.numClasses, ds.ignoreIndex);
            one.update(labels.narrow(0, i, 1), yy.narrow(0, i, 1));
            const m = one.metrics();
            perImage.push({ id, miou: m.miou, pixelAccuracy: m.pixelAccuracy });
          });
        }
      });
      for (const t of [x, y, p]) t.dispose();
      images += batch.ids.length;
      o.onProgress?.(images, ds.length);
    }
  } finally {
    close();
  }
  return {
    ...cm.metrics(), confusion: cm, images, seconds: (performance.now() - t0) / 1000,
    ...(lossImages ? { loss: lossSum / lossImages } : {}), ...(perImage ? { perImage } : {}),
  };
}
