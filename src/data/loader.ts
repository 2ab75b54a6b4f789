// Batches from a Dataset: seeded per-epoch shuffling, decoding and augmentation on worker threads,
// a prefetch queue, bad-file skipping, and the time the consumer spent waiting for data.
import { availableParallelism } from 'node:os';
import { PansegError, fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import type { Tensor } from '../engine/index.js';
import type { Dataset } from './datasets/dataset.js';
import type { JobConfig, JobResult } from './job.js';
import { type Executor, InlineExecutor, WorkerPool } from './pool.js';
import { Rng, mixSeed, permutation } from './prng.js';
import { batchToTensors } from './tensors.js';
import { type EvalOptions, type PadInfo, type TrainOptions, evalOptions, trainOptions } from './transforms.js';

/** A sample that could not be used, as reported to `onWarning`. */
export interface BadSample {
  id: string;
  /** The reason, naming the file(s). */
  message: string;
}

/** Options of {@link DataLoader}. Augmentation options apply in 'train' mode, stride/resize in 'eval' mode. */
export interface DataLoaderOptions extends TrainOptions, EvalOptions {
  /** 'train' (random scale/crop/flip/jitter, default) or 'eval' (pad to `stride` or `resize`, no randomness). */
  mode?: 'train' | 'eval';
  /** Default 8 in train mode, 1 in eval mode. */
  batchSize?: number;
  /** Reshuffle every epoch. Default true in train mode. */
  shuffle?: boolean;
  /** Seeds shuffling and augmentation. Default 0. */
  seed?: number;
  /** Worker threads decoding and augmenting; 0 runs on the main thread. Default min(4, cores - 1). */
  workers?: number;
  /** Batches prepared ahead of the consumer. Default 2. */
  prefetch?: number;
  /** Drop the last incomplete batch. Default true in train mode. */
  dropLast?: boolean;
  /**
   * An unreadable or invalid sample: 'skip' it with a warning (default) or 'fail' the iteration.
   * Mask values outside the classes (or unknown colours) always fail: they are a dataset setting, not one bad file.
   */
  onBadFile?: 'skip' | 'fail';
  /** Receives skipped samples. Default: console.warn. */
  onWarning?: (bad: BadSample) => void;
  /**
   * Keep the epoch's length when samples are skipped: each skipped sample is made up for by one more
   * from the start of the epoch's order (augmented with another seed), so an epoch still has `length`
   * batches. Training needs this: the learning-rate schedule counts steps, and data-parallel ranks
   * must take the same number of steps. Default false.
   */
  replaceSkipped?: boolean;
  /** Keep workers between epochs (default true; idle workers never keep the process alive). False: end them after each epoch. */
  persistentWorkers?: boolean;
}

/** One batch. Images are normalized CHW float32; masks hold class indices, padding = the dataset's ignore index. */
export interface Batch {
  /** [B, 3, H, W] float32. */
  images: Float32Array;
  /** [B, H, W] uint8. */
  masks: Uint8Array;
  ids: string[];
  /** [B, 3, H, W]. */
  shape: [number, number, number, number];
  /** Per sample: original size and how it was padded or resized (see `unpad`). */
  infos: PadInfo[];
  /** Position of the batch in its epoch. */
  index: number;
  epoch: number;
  /** Milliseconds the consumer waited for this batch. */
  waitMs: number;
}

/** Counters since construction or the last `resetStats()`. */
export interface LoaderStats {
  batches: number;
  samples: number;
  skipped: number;
  /** Total milliseconds consumers waited for batches: compare to step time for "data wait %". */
  waitMs: number;
}

/**
 * Iterates a dataset in batches, one epoch per `for await`.
 * The order is a seeded shuffle of (seed, epoch); each sample's augmentation is seeded by (seed, epoch, sample index),
 * so results do not depend on how many workers run or which one finishes first.
 * The epoch advances after each complete iteration; `setEpoch(n)` sets it explicitly.
 * @example
 * const loader = new DataLoader(ds, { batchSize: 8, crop: 512, workers: 2 });
 * for await (const batch of loader) {
 *   const { images, masks } = loader.toTensors(batch, 'cuda');
 *   // ... step ...
 * }
 * await loader.close();
 */
export class DataLoader implements AsyncIterable<Batch> {
  readonly dataset: Dataset;
  readonly batchSize: number;
  private readonly cfg: JobConfig;
  private readonly opts: Required<Pick<DataLoaderOptions, 'shuffle' | 'seed' | 'workers' | 'prefetch' | 'dropLast' | 'onBadFile' | 'persistentWorkers' | 'replaceSkipped'>>;
  private readonly warn: (bad: BadSample) => void;
  private exec: Executor | null = null;
  private epoch = 0;
  private running = false;
  private _stats: LoaderStats = { batches: 0, samples: 0, skipped: 0, waitMs: 0 };

  constructor(dataset: Dataset, options: DataLoaderOptions = {}) {
    const op = 'DataLoader';
    if (!dataset || typeof dataset.load !== 'function') fail(op, 'expected a Dataset (from openDataset) for dataset');
    const mode = v.oneOf(op, 'mode', options.mode ?? 'train', ['train', 'eval'] as const);
    const train = mode === 'train';
    this.dataset = dataset;
    this.batchSize = v.int(op, 'batchSize', options.batchSize ?? (train ? 8 : 1), 1);
    this.opts = {
      shuffle: v.bool(op, 'shuffle', options.shuffle ?? train),
      seed: v.int(op, 'seed', options.seed ?? 0),
      workers: v.int(op, 'workers', options.workers ?? Math.max(0, Math.min(4, availableParallelism() - 1)), 0, 64),
      prefetch: v.int(op, 'prefetch', options.prefetch ?? 2, 1),
      dropLast: v.bool(op, 'dropLast', options.dropLast ?? train),
      onBadFile: v.oneOf(op, 'onBadFile', options.onBadFile ?? 'skip', ['skip', 'fail'] as const),
      persistentWorkers: v.bool(op, 'persistentWorkers', options.persistentWorkers ?? true),
      replaceSkipped: v.bool(op, 'replaceSkipped', options.replaceSkipped ?? false),
    };
    if (this.opts.dropLast && dataset.length < this.batchSize) {
      fail(op, `the dataset has ${dataset.length} samples, fewer than batchSize ${this.batchSize}, so dropLast would leave no batch; lower batchSize or pass dropLast: false`);
    }
    if (options.onWarning !== undefined && typeof options.onWarning !== 'function') fail(op, 'expected a function for onWarning');
    this.warn = options.onWarning ?? ((b) => console.warn(`panseg: skipping sample ${b.id}: ${b.message}`));
    const ignore = dataset.ignoreIndex;
    this.cfg = train
      ? { dataset: dataset.toJSON(), train: trainOptions(op, options, ignore) }
      : { dataset: dataset.toJSON(), eval: evalOptions(op, options, ignore) };
  }

  /** Batches per epoch when no sample is skipped. */
  get length(): number {
    const n = this.dataset.length;
    return this.opts.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The epoch the next iteration runs. */
  get currentEpoch(): number { return this.epoch; }

  /** Sets the epoch the next iteration runs (its shuffle order and augmentation seeds). */
  setEpoch(n: number): void { this.epoch = v.int('DataLoader.setEpoch', 'epoch', n, 0); }

  /** A copy of the counters. */
  get stats(): LoaderStats { return { ...this._stats }; }

  resetStats(): void { this._stats = { batches: 0, samples: 0, skipped: 0, waitMs: 0 }; }

  /**
   * Turns a batch into engine tensors: images float32 [B, 3, H, W], masks int64 [B, H, W].
   * @param device default 'cpu'
   */
  toTensors(batch: Batch, device = 'cpu'): { images: Tensor; masks: Tensor } {
    return batchToTensors(batch, device);
  }

  /** Ends the worker threads. The loader may be iterated again afterwards (new workers start). */
  async close(): Promise<void> {
    const e = this.exec;
    this.exec = null;
    if (e) await e.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    if (this.running) fail('DataLoader', 'this loader is already being iterated; finish or break out of that loop first');
    this.running = true;
    const epoch = this.epoch;
    const { seed, shuffle } = this.opts;
    const n = this.dataset.length;
    const order = shuffle ? permutation(n, new Rng(mixSeed(seed, epoch, 0x5eed))) : Array.from({ length: n }, (_, i) => i);
    const inFlightMax = Math.max(this.opts.prefetch * this.batchSize, 2 * this.opts.workers);
    this.exec ??= this.opts.workers > 0 ? new WorkerPool(this.cfg, this.opts.workers) : new InlineExecutor(this.cfg);
    const exec = this.exec;
    const results = new Map<number, Promise<JobResult>>();
    let next = 0;
    let cursor = 0;
    // Positions past n (replaceSkipped) take the order again from its start, one per skipped sample, at most n.
    let end = n;
    const fill = (): void => {
      while (next < end && next - cursor < inFlightMax) {
        const index = order[next % n];
        const p = exec.run({ index, seed: next < n ? mixSeed(seed, epoch, index) : mixSeed(seed, epoch, index, 1) });
        p.catch(() => {}); // abandoned results (early break) must not surface as unhandled rejections
        results.set(next++, p);
      }
    };
    let complete = false;
    let skipped = 0;
    let firstBad: BadSample | null = null;
    try {
      for (let b = 0; ; b++) {
        const t0 = performance.now();
        const items: Extract<JobResult, { ok: true }>[] = [];
        while (items.length < this.batchSize && cursor < end) {
          fill();
          const r = await results.get(cursor)!;
          results.delete(cursor++);
          fill();
          if (r.ok) items.push(r);
          else if (r.fatal) throw new PansegError(r.message); // wrong mask values: every later mask likely has them too
          else if (this.opts.onBadFile === 'fail') fail('DataLoader', `sample ${r.id}: ${r.message}`);
          else {
            this._stats.skipped++;
            skipped++;
            if (this.opts.replaceSkipped) end = Math.min(2 * n, n + skipped);
            firstBad ??= { id: r.id, message: r.message };
            this.warn({ id: r.id, message: r.message });
          }
        }
        if (b === 0 && !items.length && firstBad) {
          fail('DataLoader', `all ${skipped} samples of the epoch were skipped as unreadable or invalid; the first, ${firstBad.id}: ${firstBad.message}`);
        }
        if (!items.length || (this.opts.dropLast && items.length < this.batchSize)) break;
        const batch = assemble(items, this.dataset.ignoreIndex, b, epoch);
        batch.waitMs = performance.now() - t0;
        this._stats.batches++;
        this._stats.samples += items.length;
        this._stats.waitMs += batch.waitMs;
        yield batch;
      }
      complete = true;
    } catch (e) {
      if (e instanceof PansegError) throw e;
      await this.close(); // a worker died: start afresh next time
      fail('DataLoader', (e as Error).message);
    } finally {
      this.running = false;
      if (complete && this.epoch === epoch) this.epoch = epoch + 1;
      if (!this.opts.persistentWorkers) await this.close();
    }
  }
}

/** Stacks samples; differing sizes (eval mode) are padded bottom/right to the largest (image 0, mask ignore). */
function assemble(items: Extract<JobResult, { ok: true }>[], ignore: number, index: number, epoch: number): Batch {
  const B = items.length;
  const H = Math.max(...items.map((r) => r.height));
  const W = Math.max(...items.map((r) => r.width));
  const plane = H * W;
  const images = new Float32Array(B * 3 * plane);
  const masks = new Uint8Array(B * plane);
  items.forEach((r, i) => {
    if (r.height === H && r.width === W) {
      images.set(r.image, i * 3 * plane);
      masks.set(r.mask, i * plane);
      return;
    }
    masks.fill(ignore, i * plane, (i + 1) * plane);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < r.height; y++) {
        const from = c * r.height * r.width + y * r.width;
        images.set(r.image.subarray(from, from + r.width), (i * 3 + c) * plane + y * W);
      }
    }
    for (let y = 0; y < r.height; y++) masks.set(r.mask.subarray(y * r.width, (y + 1) * r.width), i * plane + y * W);
  });
  return { images, masks, ids: items.map((r) => r.id), shape: [B, 3, H, W], infos: items.map((r) => r.info), index, epoch, waitMs: 0 };
}
