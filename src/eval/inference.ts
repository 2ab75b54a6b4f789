// The libtorch engine's inference entry points, over the shared Segmenter (segmenter.ts).
import type { Precision, Tensor } from '../engine/index.js';
import type { SegmentationModel } from '../models/index.js';
import { type InferenceOptions, modelSource, probsSync } from './segmenter.js';

export type { Precision };
export { inferenceCopy, type InferenceOptions, probsToLabels, withPrecision } from './segmenter.js';

/**
 * Class probabilities [N, classes, H, W] (softmax; sigmoid for a single class; a model's own output
 * activation is not applied twice) for normalized images of any size: each scale is padded to a
 * valid size and cropped back, flips are averaged; `tile` blends overlapping windows and `resizeLong` infers
 * at a set scale (see InferenceOptions). Probabilities stay on the model's device. For large images, where the
 * whole [N, classes, H, W] is itself too big, segmentImage with `tile` keeps only the labels.
 */
export function predictProbs(model: SegmentationModel, x: Tensor, o: InferenceOptions = {}): Tensor {
  return probsSync(modelSource(model, o.precision ?? 'auto'), x, o);
}
