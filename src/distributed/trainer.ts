// What train() does differently on several ranks, gathered here so the training loop only gains
// a few calls: rendezvous with a config check, SyncBatchNorm and the same initial weights,
// sharded loaders, gradient averaging, global metrics, sharded evaluation and resume state.
import { fail } from '../common/errors.js';
import { type Batch, DataLoader, type DataLoaderOptions, type Dataset, batchToTensors, mixSeed } from '../data/index.js';
import type { Tensor } from '../engine/index.js';
import type { EvaluationResult } from '../eval/evaluate.js';
import { ConfusionMatrix } from '../eval/metrics.js';
import type { Module } from '../nn/index.js';
import type { TrainerState } from '../train/checkpoint.js';
import type { Optimizer } from '../train/optimizers.js';
import { broadcastBuffers, broadcastModule, GradientSync } from './grad-sync.js';
import { ProcessGroup, type ProcessGroupOptions } from './process-group.js';
import { configHash, DistributedError } from './rendezvous.js';
import { DistributedSampler, evalShard, subsetDataset } from './sampler.js';
import { convertSyncBatchNorm } from './sync-bn.js';

/** `train({ distributed })`: where this process sits in the job, and how to synchronize. */
export interface DistributedTrainOptions extends Partial<ProcessGroupOptions> {
  /** Replace BatchNorm2d with SyncBatchNorm2d (statistics over the global batch). Default false. */
  syncBatchNorm?: boolean;
  /** Gradient bucket size in MiB. Default 25. */
  bucketMB?: number;
  /** An initialized group to train on (train() then leaves it open); otherwise one is created from rank/worldSize/masterAddr/masterPort. */
  group?: ProcessGroup;
}

/**
 * Options whose values may legitimately differ between ranks (paths, threads, logging; `config` is
 * the command line saved to config.json, with --out and --node-rank: the options it sets are compared themselves).
 */
const LOCAL_KEYS = new Set(['out', 'dataRoot', 'valRoot', 'model', 'encoderWeights', 'threads', 'workers', 'quiet', 'onLog', 'distributed', 'config']);

/** The part of the training options every rank must agree on, plus facts about the data. */
export function comparableConfig(options: object, facts: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(options)) if (!LOCAL_KEYS.has(k) && typeof val !== 'function' && val !== undefined) out[k] = val;
  return { ...out, ...facts };
}

/** Appended to a distributed run's checkpoint config hash, so a resume can name the world size it needs. */
export function worldSuffix(worldSize: number): string {
  return worldSize > 1 ? `/world${worldSize}` : '';
}

/** Fails a resume whose world size differs from the one that wrote the checkpoint (the data order and steps would not continue). */
export function checkResumeWorld(savedHash: string, worldSize: number): void {
  const saved = Number(/\/world(\d+)$/.exec(savedHash)?.[1] ?? 1);
  if (saved !== worldSize) {
    fail('train', `--resume: the checkpoint was written by a run of ${saved} process${saved > 1 ? 'es' : ''} and this run has ${worldSize}; resume with the same world size (--nproc-per-node x --nnodes = ${saved}) or use a new --out`);
  }
}

/** Iterates this rank's shard of each epoch: a DataLoader over the DistributedSampler's indices, rebuilt per epoch. */
export class ShardedLoader implements AsyncIterable<Batch> {
  readonly sampler: DistributedSampler;
  private loader: DataLoader | null = null;
  private loaderEpoch = -1;
  private epoch = 0;

  constructor(readonly dataset: Dataset, private readonly opts: DataLoaderOptions & { batchSize: number; seed: number }, rank: number, worldSize: number) {
    this.sampler = new DistributedSampler(dataset.length, { numReplicas: worldSize, rank, seed: opts.seed, shuffle: opts.shuffle ?? true });
    if (this.sampler.numSamples < opts.batchSize) {
      fail('train', `each of the ${worldSize} ranks gets ${this.sampler.numSamples} of the ${dataset.length} training samples per epoch, fewer than one batch of ${opts.batchSize}; lower --batch-size (it is per rank) or use fewer processes`);
    }
  }

  /** Batches per epoch on each rank. */
  get length(): number { return Math.floor(this.sampler.numSamples / this.opts.batchSize); }
  setEpoch(n: number): void { this.epoch = n; }
  toTensors(batch: Batch, device = 'cpu'): { images: Tensor; masks: Tensor } { return batchToTensors(batch, device); }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    if (this.loaderEpoch !== this.epoch || !this.loader) {
      await this.loader?.close();
      const shard = subsetDataset(this.dataset, this.sampler.indices(this.epoch));
      // The sampler already shuffled; each rank's augmentation draws from its own seed.
      this.loader = new DataLoader(shard, { ...this.opts, shuffle: false, dropLast: true, seed: mixSeed(this.opts.seed, this.sampler.rank, 0xd15) });
      this.loader.setEpoch(this.epoch);
      this.loaderEpoch = this.epoch;
    }
    yield* this.loader;
  }

  async close(): Promise<void> {
    await this.loader?.close();
    this.loader = null;
  }
}

/** One rank's part in a distributed train() run. */
export class DistributedRun {
  private sync: GradientSync | null = null;
  private trainableKey = '';
  /** Milliseconds waited for gradient communication after backward, summed over steps. */
  commWaitMs = 0;
  syncedSteps = 0;

  private constructor(readonly group: ProcessGroup, private readonly owned: boolean, private readonly syncBN: boolean, private readonly bucketMB: number) {}

  /** Joins (or creates) the group and checks that every rank runs the same configuration. */
  static async start(o: DistributedTrainOptions, config: Record<string, unknown>): Promise<DistributedRun> {
    if (!o || typeof o !== 'object') fail('train', 'expected an object for distributed ({ rank, worldSize, masterAddr, masterPort } or { group })');
    const full = { ...config, worldSize: o.group?.size ?? o.worldSize, syncBatchNorm: o.syncBatchNorm ?? false };
    let group = o.group;
    if (group) {
      const mine = configHash(full);
      const ref = group.broadcastObject(group.rank === 0 ? mine : null);
      const bad = group.allreduceNumbers([ref === mine ? 0 : 1]);
      if (bad[0] > 0) throw new DistributedError(`the configuration differs across ranks (${bad[0]} rank(s) differ from rank 0's hash ${ref}); every rank must run the same options`);
    } else {
      if (o.rank === undefined || o.worldSize === undefined) fail('train', 'distributed needs rank and worldSize (or an initialized group)');
      group = await ProcessGroup.init({ ...o, rank: o.rank, worldSize: o.worldSize, config: full });
    }
    return new DistributedRun(group, !o.group, o.syncBatchNorm ?? false, o.bucketMB ?? 25);
  }

  get rank(): number { return this.group.rank; }
  get size(): number { return this.group.size; }
  /** Rank 0 writes checkpoints, logs and the report. */
  get isMain(): boolean { return this.group.rank === 0; }

  /** SyncBatchNorm (if asked), then rank 0's weights and buffers on every rank, then the gradient hooks. */
  prepareModel(model: Module): void {
    if (this.syncBN) convertSyncBatchNorm(model, this.group);
    broadcastModule(this.group, model);
    this.updateTrainable(model);
  }

  /** Rebuilds the gradient buckets when the set of trainable parameters changed (encoder freezing). */
  updateTrainable(model: Module): void {
    const named = [...model.namedParameters()].filter(([, t]) => t.requiresGrad);
    const key = named.map(([n]) => n).join(',');
    if (this.sync && key === this.trainableKey) return;
    this.sync?.dispose();
    this.sync = new GradientSync(this.group, named.map(([, t]) => t), { bucketMB: this.bucketMB });
    this.trainableKey = key;
  }

  /** Call before the backward of the last micro-step of an optimizer step. */
  beforeBackward(): void { this.sync?.prepare(); }

  /** Call after that backward, before optimizer.step(): gradients become the average over ranks. */
  afterBackward(): void {
    if (!this.sync) return;
    this.commWaitMs += this.sync.finish().waitMs;
    this.syncedSteps++;
  }

  /** The mean of a number over ranks. */
  mean(x: number): number { return this.group.allreduceNumbers([x], 'avg')[0]; }

  trainLoader(ds: Dataset, opts: DataLoaderOptions & { batchSize: number; seed: number }): ShardedLoader {
    return new ShardedLoader(ds, opts, this.rank, this.size);
  }

  /** This rank's share of the validation set (every W-th image, no padding). */
  valLoader(ds: Dataset, opts: DataLoaderOptions): DataLoader {
    return new DataLoader(subsetDataset(ds, evalShard(ds.length, this.rank, this.size)), opts);
  }

  /** Before evaluating: rank 0's BatchNorm running statistics everywhere (SyncBatchNorm keeps them equal anyway). */
  beforeEval(model: Module): void {
    if (!this.syncBN) broadcastBuffers(this.group, model);
  }

  /** Sums the ranks' confusion matrices and recomputes the metrics from the total. */
  reduceEvaluation(r: EvaluationResult): EvaluationResult {
    const c = r.confusion;
    const sums = this.group.allreduceNumbers([...c.counts, r.images]);
    const [seconds] = this.group.allreduceNumbers([r.seconds], 'max');
    const cm = new ConfusionMatrix(c.numClasses, c.ignoreIndex);
    cm.counts.set(sums.slice(0, c.counts.length));
    return { ...cm.metrics(), confusion: cm, images: sums[c.counts.length], seconds };
  }

  /**
   * After rank 0 restored a checkpoint: its trainer state, optimizer state and weights on every
   * rank (only rank 0 needs to see the checkpoint directory).
   */
  syncResume(model: Module, optimizer: Optimizer, state: TrainerState): TrainerState {
    type Meta = { state: TrainerState; steps: Record<string, number>; entries: { key: string; shape: number[]; dtype: Tensor['dtype'] }[] };
    const own = this.isMain ? optimizer.stateTensors() : null;
    const meta = this.group.broadcastObject<Meta>(own ? {
      state, steps: own.steps, entries: [...own.tensors].map(([key, t]) => ({ key, shape: t.shape, dtype: t.dtype })),
    } : null);
    const tensors = own ? [...own.tensors.values()] : ProcessGroup.empties(meta.entries);
    this.group.broadcast(tensors);
    if (!own) {
      optimizer.loadStateTensors(new Map(meta.entries.map((e, i) => [e.key, tensors[i]])), meta.steps);
      for (const t of tensors) t.dispose();
    }
    broadcastModule(this.group, model);
    return meta.state;
  }

  /** A clean end: every rank leaves together (the group is destroyed if train() created it). */
  async finish(): Promise<void> {
    this.sync?.dispose();
    this.sync = null;
    if (this.owned) await this.group.destroy();
  }

  /** After a failure: stop the heartbeat so the other ranks see this one go. */
  abort(): void {
    this.sync?.dispose();
    this.sync = null;
    if (this.owned) this.group.abort();
  }
}
