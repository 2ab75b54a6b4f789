// DistributedSampler: which samples each rank trains on in an epoch, as torch's
// DistributedSampler: one seeded shuffle per epoch, shared by every rank, padded by repeating
// its head to a multiple of the world size, and dealt out rank, rank + W, rank + 2W, ...
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { Dataset, Rng, mixSeed, permutation } from '../data/index.js';

export interface DistributedSamplerOptions {
  /** World size. */
  numReplicas: number;
  rank: number;
  /** Default true. */
  shuffle?: boolean;
  /** Must be equal on every rank. Default 0. */
  seed?: number;
  /** Drop the tail instead of padding, so no sample repeats. Default false. */
  dropLast?: boolean;
}

/**
 * Shards `length` samples across ranks without overlap; every rank gets `numSamples` indices.
 * The shuffle is the DataLoader's for the same (seed, epoch), so one process and W processes
 * visit the same global order.
 * @example
 * const s = new DistributedSampler(10, { numReplicas: 4, rank: 1, seed: 0 });
 * s.indices(0); // 3 indices; with the other ranks' they cover 0..9 once, plus 2 repeats as padding
 */
export class DistributedSampler {
  readonly length: number;
  readonly numReplicas: number;
  readonly rank: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  /** Indices per rank per epoch. */
  readonly numSamples: number;
  /** numSamples * numReplicas. */
  readonly totalSize: number;
  private epoch = 0;

  constructor(length: number, o: DistributedSamplerOptions) {
    const op = 'DistributedSampler';
    this.length = v.int(op, 'length', length, 0);
    this.numReplicas = v.int(op, 'numReplicas', o.numReplicas, 1);
    this.rank = v.int(op, 'rank', o.rank, 0, this.numReplicas - 1);
    this.shuffle = v.bool(op, 'shuffle', o.shuffle ?? true);
    this.seed = v.int(op, 'seed', o.seed ?? 0, 0);
    this.dropLast = v.bool(op, 'dropLast', o.dropLast ?? false);
    this.numSamples = this.dropLast ? Math.floor(length / this.numReplicas) : Math.ceil(length / this.numReplicas);
    this.totalSize = this.numSamples * this.numReplicas;
    if (!this.dropLast && length === 0) fail(op, 'cannot pad an empty dataset; pass dropLast: true or a non-empty dataset');
  }

  setEpoch(epoch: number): void { this.epoch = v.int('DistributedSampler.setEpoch', 'epoch', epoch, 0); }

  /** This rank's dataset indices for `epoch` (default: the one set by setEpoch). */
  indices(epoch = this.epoch): number[] {
    const n = this.length;
    let order = this.shuffle ? permutation(n, new Rng(mixSeed(this.seed, epoch, 0x5eed))) : Array.from({ length: n }, (_, i) => i);
    if (this.totalSize > n) {
      const pad: number[] = [];
      while (pad.length < this.totalSize - n) pad.push(...order.slice(0, this.totalSize - n - pad.length));
      order = order.concat(pad);
    } else order = order.slice(0, this.totalSize);
    const out: number[] = [];
    for (let i = this.rank; i < this.totalSize; i += this.numReplicas) out.push(order[i]);
    return out;
  }
}

/** The dataset restricted to `indices` (in that order; repeats allowed), for a DataLoader. */
export function subsetDataset(ds: Dataset, indices: number[]): Dataset {
  return new Dataset({ ...ds.spec, samples: indices.map((i) => ds.samples[i]) });
}

/** The evaluation shard: every W-th sample from `rank`, without padding (nothing is counted twice). */
export function evalShard(length: number, rank: number, worldSize: number): number[] {
  const out: number[] = [];
  for (let i = rank; i < length; i += worldSize) out.push(i);
  return out;
}
