// Running a trained model on normalized image tensors: padding to valid sizes, optional
// test-time augmentation, and autocast for reduced precision.
import { autocast, F, inferenceMode, type Precision, resolvePrecision, type Tensor, tidy } from '../engine/index.js';

export type { Precision };
import type { SegmentationModel } from '../models/index.js';


export interface InferenceOptions {
  /** Average with the horizontally flipped input. Default false. */
  flip?: boolean;
  /** Input scales to average (e.g. [0.75, 1, 1.25]); default [1]. */
  scales?: number[];
  /**
   * Compute precision. 'auto' (default) is bf16 on CPUs with AMX or AVX512-BF16 and fp32 elsewhere;
   * bf16/fp16 run convolutions under autocast (or in a model copy made by inferenceCopy).
   */
  precision?: Precision | 'auto';
}

/** Runs `fn` under autocast for bf16/fp16, or plainly for fp32. */
export function withPrecision<T>(precision: Precision | 'auto', device: string, fn: () => T): T {
  precision = resolvePrecision(precision, device);
  if (precision === 'fp32') return fn();
  return autocast(fn, { deviceType: device.startsWith('cuda') ? 'cuda' : 'cpu', dtype: precision === 'bf16' ? 'bfloat16' : 'float16' });
}

/** Pads [N, C, H, W] bottom/right to the model's valid input size; returns the padded tensor. */
function padForModel(model: SegmentationModel, x: Tensor): Tensor {
  const s = model.outputStride;
  const min = model.minInputSize;
  const [h, w] = [x.shape[2], x.shape[3]];
  const ph = Math.max(min, Math.ceil(h / s) * s);
  const pw = Math.max(min, Math.ceil(w / s) * s);
  return ph === h && pw === w ? x : F.pad(x, [0, pw - w, 0, ph - h]);
}

/**
 * Class probabilities [N, classes, H, W] (softmax; sigmoid for a single class; a model's own output
 * activation is not applied twice) for normalized images of any size: each scale is padded to a
 * valid size and cropped back, flips are averaged.
 */
export function predictProbs(model: SegmentationModel, x: Tensor, o: InferenceOptions = {}): Tensor {
  const was = model.training;
  model.eval();
  // Inputs go to the model's device (images are decoded on the CPU); probabilities stay there.
  const device = model.parameters()[0].device;
  try {
    return inferenceMode(() => tidy(() => averagedProbs(model, x.device === device ? x : x.to(device), o)));
  } finally {
    model.train(was);
  }
}

/**
 * A BatchNorm-folded copy of `model` in the given precision and its fastest layout (see
 * PAN.optimizedForInference), for repeated inference (evaluation, prediction, serving). Dispose it when done.
 */
export function inferenceCopy(model: SegmentationModel, precision: Precision | 'auto' = 'auto'): SegmentationModel {
  const p = resolvePrecision(precision, model.parameters()[0].device);
  return model.optimizedForInference({ dtype: p === 'bf16' ? 'bfloat16' : p === 'fp16' ? 'float16' : 'float32' });
}

function averagedProbs(model: SegmentationModel, x: Tensor, o: InferenceOptions): Tensor {
  // An optimized copy already holds its precision in its weights.
  const precision = model.isOptimizedForInference ? 'fp32' : o.precision ?? 'auto';
  const [h, w] = [x.shape[2], x.shape[3]];
  let acc: Tensor | null = null;
  let n = 0;
  for (const s of o.scales ?? [1]) {
    const xs = s === 1 ? x : F.interpolate(x, { size: [Math.max(1, Math.round(h * s)), Math.max(1, Math.round(w * s))], mode: 'bilinear', alignCorners: false });
    for (const flipped of o.flip ? [false, true] : [false]) {
      const v = flipped ? xs.flip(3) : xs;
      const logits = withPrecision(precision, x.device, () => model.forward(padForModel(model, v))).to('float32');
      let p = toProbs(model, logits.narrow(2, 0, v.shape[2]).narrow(3, 0, v.shape[3]));
      if (flipped) p = p.flip(3);
      if (s !== 1) p = F.interpolate(p, { size: [h, w], mode: 'bilinear', alignCorners: false });
      acc = acc ? acc.add(p) : p;
      n++;
    }
  }
  return acc!.div(n);
}

/**
 * Probabilities from the model's output: logits get softmax (sigmoid for a single class); a model built
 * with an output activation already gives probabilities (or log-probabilities, or tanh scores).
 */
function toProbs(model: SegmentationModel, out: Tensor): Tensor {
  switch (model.config.activation) {
    case 'sigmoid': case 'softmax': case 'softmax2d': return out;
    case 'logsoftmax': return out.exp();
    case 'tanh': return out.add(1).div(2); // = sigmoid(2x): same ranking, 0.5 still means logit 0
    default: return model.config.classes === 1 ? out.sigmoid() : out.softmax(1);
  }
}

/** Class indices [N, H, W] (int64) from probabilities; a single-class model thresholds at 0.5. */
export function probsToLabels(probs: Tensor): Tensor {
  return tidy(() => (probs.shape[1] === 1 ? probs.squeeze(1).gt(0.5).to('int64') : probs.argmax(1)));
}
