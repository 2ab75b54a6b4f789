// What a trained model costs: parameters, FLOPs at a size (as `panseg info` counts them) and the
// latency of its default inference copies in float32 and bfloat16.
import { validSide } from '../common/input-size.js';
import { cudaSynchronize, noGrad, randn, tidy } from '../engine/index.js';
import type { SegmentationModel } from '../models/index.js';
import { countMacs } from '../nn/index.js';

export interface ModelCost {
  params: number;
  /** Forward GFLOPs (2 x multiply-accumulates) for one image of `size` x `size`. */
  gflops: number;
  /** The side counted at: the requested one, rounded up to a valid input size. */
  size: number;
}

/** Parameters and GFLOPs of one forward pass at `size` (rounded up to the model's valid input size). */
export function modelCost(model: SegmentationModel, size: number): ModelCost {
  const s = validSide(size, model.inputSizeRule);
  const was = model.training;
  model.eval();
  try {
    const device = model.parameters()[0].device;
    const macs = countMacs(() => noGrad(() => tidy(() => { model.forward(randn([1, model.config.inChannels, s, s], { device })); })));
    return { params: model.numParameters(), gflops: (2 * macs) / 1e9, size: s };
  } finally {
    model.train(was);
  }
}

export interface Latency {
  /** Median milliseconds per image of the float32 inference copy; null when it could not run (see `errors`). */
  fp32: number | null;
  bf16: number | null;
  size: number;
  repeats: number;
  /** Why a precision has no time, e.g. a libtorch without bfloat16 kernels for this CPU. */
  errors?: Record<string, string>;
}

/**
 * Milliseconds per image of `model`'s default inference copies (`optimizedForInference({ dtype })`: BatchNorm
 * folded, the fastest layout for the device) at `size` x `size`, batch 1: the median of `repeats` runs after one warm-up.
 */
export function inferenceLatency(model: SegmentationModel, size: number, repeats = 5): Latency {
  const s = validSide(size, model.inputSizeRule);
  const device = model.parameters()[0].device;
  const sync = device.startsWith('cuda') ? () => cudaSynchronize() : () => {};
  const x = randn([1, model.config.inChannels, s, s], { device });
  const out: Latency = { fp32: null, bf16: null, size: s, repeats };
  try {
    for (const [key, dtype] of [['fp32', 'float32'], ['bf16', 'bfloat16']] as const) {
      let copy: SegmentationModel | null = null;
      try {
        copy = model.optimizedForInference({ dtype });
        const run = (): void => { tidy(() => { copy!.predict(x); }); sync(); };
        run();
        const ts: number[] = [];
        for (let i = 0; i < repeats; i++) {
          const t = performance.now();
          run();
          ts.push(performance.now() - t);
        }
        out[key] = median(ts);
      } catch (e) {
        // A missing reduced-precision kernel leaves a gap in the table rather than losing the whole comparison.
        if (key === 'fp32') throw e;
        out.errors = { ...out.errors, [key]: (e as Error).message.split('\n')[0] };
      } finally {
        copy?.dispose();
      }
    }
  } finally {
    x.dispose();
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
