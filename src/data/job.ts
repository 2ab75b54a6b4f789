// One unit of loader work: decode sample `index` and transform it. Runs in a worker thread
// (worker.ts) or, with `workers: 0`, on the main thread; both use this same function.
import { Dataset, type DatasetSpec } from './datasets/dataset.js';
import { MaskValueError } from './decode.js';
import { Rng } from './prng.js';
import { type EvalTransform, type PadInfo, type TrainTransform, evalTransform, trainTransform } from './transforms.js';

/** What a worker needs to know, sent once at start. Plain data. */
export interface JobConfig {
  dataset: DatasetSpec;
  /** Exactly one of the two is set. */
  train?: TrainTransform;
  eval?: EvalTransform;
}

/** One request: `pos` is the position in the epoch order, `seed` the sample's augmentation seed. */
export interface JobRequest {
  key: number;
  index: number;
  seed: number;
}

/** A finished sample, or the reason it could not be made. */
export type JobResult =
  | { key: number; ok: true; id: string; image: Float32Array; mask: Uint8Array; height: number; width: number; info: PadInfo }
  /** `fatal`: a mask value problem (MaskValueError) that stops the loader instead of being skipped. */
  | { key: number; ok: false; id: string; message: string; fatal?: boolean };

/** Builds the job function for a config. */
export function makeJob(cfg: JobConfig): (req: JobRequest) => Promise<JobResult> {
  const ds = new Dataset(cfg.dataset);
  return async (req) => {
    try {
      const s = await ds.load(req.index);
      const t = cfg.train
        ? trainTransform(s.image, s.mask, cfg.train, new Rng(req.seed))
        : evalTransform(s.image, s.mask, cfg.eval!);
      return { key: req.key, ok: true, id: s.id, image: t.image, mask: t.mask!, height: t.height, width: t.width, info: t.info };
    } catch (e) {
      return { key: req.key, ok: false, id: ds.samples[req.index]?.id ?? String(req.index), message: (e as Error).message ?? String(e), fatal: e instanceof MaskValueError };
    }
  };
}
