// The training loop: data -> model (any registered architecture) -> loss -> optimizer/schedule, with validation, atomic
// checkpoints and a progress bar. Exact resume is resume.ts; the metrics log, loggers and report are run-output.ts.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fail, PansegError } from '../common/errors.js';
import * as v from '../common/validate.js';
import { validSide } from '../common/input-size.js';
import { type BadSample, checkValSource, DataLoader, type Dataset, type DatasetOptions, openTrainVal, writeSplitFile } from '../data/index.js';
import { cpuFeatures, cudaAvailable, fusedKernels, getNumThreads, manualSeed, type Precision, resolvePrecision, setFusedKernels, setNumThreads, setWinogradTraining, type Tensor, tidy, winogradTraining } from '../engine/index.js';
import { evaluate, type EvaluationResult } from '../eval/evaluate.js';
import { withPrecision } from '../eval/inference.js';
import { architecture, createModel, loadModel, type OutputStride, type SegmentationModel } from '../models/index.js';
import { comparableConfig, DistributedRun, type DistributedTrainOptions, worldSuffix } from '../distributed/trainer.js';
import { ioReason } from '../io/file.js';
import { saveCheckpoint } from './checkpoint.js';
import { auxPresenceLoss, combinedLoss, parseLoss } from './losses.js';
import { AdamW, type Optimizer, SGD } from './optimizers.js';
import { DeviceGradScaler, GradScaler } from './grad-scaler.js';
import { GraphedTrainStep, graphedTrainingRefusal } from './graphed-step.js';
import { ProgressBar } from '../common/progress.js';
import { LRScheduler, type ScheduleName } from './schedules.js';
import { type LoggerName, parseLoggers } from './loggers.js';
import { hashConfig, restoreRun, type RunState } from './resume.js';
import { RunOutput } from './run-output.js';
import { trainOptions as resolveAugmentation } from '../data/transforms.js';

export interface TrainOptions {
  // data
  /** 'voc' | 'camvid' | 'cityscapes' | 'folder', or an opened Dataset. */
  dataset: string;
  dataRoot: string;
  /** Default 'train'. */
  split?: string;
  /** Default 'val'; null disables validation. For 'folder', see valRoot. Only 'val' may stand beside valFraction or splitFile. */
  valSplit?: string | null;
  /** A separate root for validation (e.g. the folder layout's val/ dir). Default dataRoot. */
  valRoot?: string;
  datasetOptions?: DatasetOptions;
  /**
   * Validate on this share of `split` (default 'all' then) instead of a val split: a seeded split by `seed`,
   * saved as `<out>/split.json` (reused by --resume and by `panseg eval --split-file`). E.g. 0.1.
   */
  valFraction?: number;
  /** Train and validate on the lists of this split.json (another run's); it is copied to `<out>/split.json`. */
  splitFile?: string;
  // model
  /** Start from an smp/panseg pretrained directory instead of a fresh model. */
  model?: string;
  /** Architecture by CLI id or smp name: 'pan' (default), 'unet', 'fpn', ... (see architectureIds()). */
  arch?: string;
  encoder?: string;
  /** Encoder output stride, for architectures with encoderOutputStride (PAN: default 16). */
  outputStride?: OutputStride;
  /** The architecture's decoderChannels (PAN: a number, default 32; Unet: one per stage). */
  decoderChannels?: number | number[];
  /** Further architecture options in smp's camelCase names, e.g. { decoderAttentionType: 'scse' }. */
  modelOptions?: Record<string, unknown>;
  /** Default: the dataset's class count. */
  classes?: number;
  /** torchvision ImageNet checkpoint for the encoder. */
  encoderWeights?: string | null;
  /** Auxiliary class-presence head weight (0 = no aux head). Default 0. */
  auxWeight?: number;
  // training
  crop?: number;
  scaleRange?: [number, number];
  colorJitter?: number;
  batchSize?: number;
  epochs?: number;
  lr?: number;
  optimizer?: 'sgd' | 'adamw';
  momentum?: number;
  weightDecay?: number;
  schedule?: ScheduleName;
  warmupIters?: number;
  /** 'ce', 'dice', 'focal' or sums like 'ce+0.5*dice'. Default 'ce'. */
  loss?: string;
  labelSmoothing?: number;
  classWeights?: number[] | null;
  /** Gradient accumulation steps. Default 1. */
  accumulate?: number;
  /** Keep the encoder frozen for the first N epochs. Default 0. */
  freezeEncoderEpochs?: number;
  /** Validate every N epochs (and after the last). Default 1. */
  valEvery?: number;
  /** 'auto' (default): bf16 mixed precision on CPUs with AMX/AVX512-BF16 and on CUDA, else fp32. */
  precision?: Precision | 'auto';
  /** Keep activations and weights in channels-last order (faster oneDNN convolutions on CPU). Default true. */
  channelsLast?: boolean;
  /**
   * float32 3x3 stride-1 convolutions on oneDNN's Winograd kernels where this build and CPU have them
   * (about half the time of the direct kernels; float32 rounding differs by ~1e-6). false: ATen's direct
   * convolutions, as PyTorch runs them. Default true. See setWinogradTraining.
   */
  winograd?: boolean;
  /**
   * The fused cross-entropy and training BatchNorm+ReLU kernels where the CPU has AVX-512 (float32 rounding
   * differs from ATen's). false: ATen's op sequences, as PyTorch runs them. Default true. See setFusedKernels.
   */
  fusedKernels?: boolean;
  device?: string;
  /**
   * Record the whole training step in a CUDA graph and replay it for each batch (train/graphed-step.ts):
   * fewer kernel launches at small batches. Needs a CUDA device; not with distributed training, gradient
   * accumulation or freezeEncoderEpochs. Default false.
   */
  cudaGraphs?: boolean;
  // run
  /** Output directory (checkpoints, metrics.jsonl, report). Required. */
  out: string;
  /** Continue from `<out>/checkpoints/last`. */
  resume?: boolean;
  threads?: number;
  seed?: number;
  workers?: number;
  /** No progress bar (still writes the log). */
  quiet?: boolean;
  /** Stop after this many optimizer steps in total (for tests and smoke runs). */
  maxSteps?: number;
  /** Receives each log record (also written to metrics.jsonl). */
  onLog?: (rec: Record<string, number | string>) => void;
  /**
   * Loggers besides `<out>/metrics.jsonl` (always written): 'csv' (`metrics.csv`) and 'tensorboard'
   * (`events.out.tfevents.*`: loss, lr, img/s, val mIoU, val loss and validation pictures). A list or a comma string.
   */
  log?: readonly LoggerName[] | string;
  /**
   * Rewrite `<out>/report.html` (atomically) after every validation (every epoch without validation),
   * so it can be watched during training and survives an interrupted run. true, or the number of
   * pictures (worst validation images) to show. Default false.
   */
  report?: boolean | number;
  /**
   * What to save as `<out>/config.json`. Default: these options. The CLI saves its flags here, so that
   * `panseg train --config <out>/config.json --out NEW` replays the run.
   */
  config?: Record<string, unknown>;
  /**
   * Data-parallel training on several processes (see src/distributed): this process's rank and
   * the rendezvous, or an initialized group. batchSize is per rank; rank 0 writes checkpoints,
   * logs and the report. Default: one process.
   */
  distributed?: DistributedTrainOptions;
}

export interface TrainResult {
  model: SegmentationModel;
  outDir: string;
  bestMiou: number;
  bestEpoch: number;
  history: Record<string, number>[];
  lastEval: EvaluationResult | null;
  /** Wall-clock seconds of this call. */
  seconds: number;
  /** Share of step time spent waiting for data. */
  dataWaitFraction: number;
  /** In a distributed run: this rank, the world size and the mean gradient-communication wait per step. */
  distributed: { rank: number; worldSize: number; commWaitMsPerStep: number } | null;
  trainDataset: Dataset;
  valDataset: Dataset | null;
  /** Every setting the run used, defaults filled in (shown in the report). */
  hyperparameters: Record<string, unknown>;
  /** Training files skipped as unreadable or invalid (over the whole run, resumed parts included); each epoch record counts its own as `skipped`. */
  skipped: string[];
}

/** 'cpu' or 'cuda[:N]', refused before any work when this build has no CUDA. */
function checkDevice(op: string, device = 'cpu'): string {
  if (typeof device !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(device)) fail(op, `expected 'cpu' or 'cuda[:N]' for device but received ${JSON.stringify(device)}`);
  if (device.startsWith('cuda') && !cudaAvailable()) fail(op, `device ${device}: this panseg was built against a CPU libtorch; set LIBTORCH to a CUDA libtorch (or install a CUDA PyTorch) and run \`npm run setup\``);
  return device;
}

function resolve(o: TrainOptions) {
  const op = 'train';
  if (!o || typeof o !== 'object') fail(op, 'expected an options object');
  if (typeof o.out !== 'string' || !o.out) fail(op, 'expected an output directory for out (--out DIR)');
  const device = checkDevice(op, o.device);
  const cudaGraphs = v.bool(op, 'cudaGraphs', o.cudaGraphs ?? false);
  const refused = cudaGraphs && graphedTrainingRefusal({ device, accumulate: o.accumulate ?? 1, freezeEncoderEpochs: o.freezeEncoderEpochs ?? 0, distributed: o.distributed !== undefined });
  if (refused) fail(op, refused);
  // Old config.json files hold --val-split's default beside --val-fraction: that 'val' stays allowed.
  checkValSource(op, o, { legacyVal: true });
  const arch = architecture(o.arch ?? 'pan');
  const defaults = arch.defaults as unknown as Record<string, unknown>;
  if (o.modelOptions !== undefined && (typeof o.modelOptions !== 'object' || o.modelOptions === null || Array.isArray(o.modelOptions))) fail(op, 'expected an object of architecture options for modelOptions');
  return {
    ...o,
    split: o.split ?? 'train',
    valSplit: o.valSplit === undefined ? 'val' : o.valSplit,
    // 'pan' stays out of the resume hash, so runs from before architectures existed still resume.
    arch: arch.id === 'pan' ? undefined : arch.id,
    modelOptions: o.modelOptions && Object.keys(o.modelOptions).length ? o.modelOptions : undefined,
    encoder: o.encoder ?? 'resnet34',
    // The architecture's own defaults (and its checks, when the model is built).
    outputStride: (o.outputStride ?? defaults.encoderOutputStride) as OutputStride | undefined,
    decoderChannels: (o.decoderChannels ?? defaults.decoderChannels) as number | number[] | undefined,
    auxWeight: v.num(op, 'auxWeight', o.auxWeight ?? 0, { min: 0 }),
    crop: v.int(op, 'crop', o.crop ?? 512, 32),
    batchSize: v.int(op, 'batchSize', o.batchSize ?? 8, 2),
    epochs: v.int(op, 'epochs', o.epochs ?? 50, 1),
    lr: v.num(op, 'lr', o.lr ?? (o.optimizer === 'adamw' ? 1e-3 : 0.01), { min: 0 }),
    optimizer: v.oneOf(op, 'optimizer', o.optimizer ?? 'sgd', ['sgd', 'adamw']),
    momentum: v.num(op, 'momentum', o.momentum ?? 0.9, { min: 0, max: 1 }),
    weightDecay: v.num(op, 'weightDecay', o.weightDecay ?? (o.optimizer === 'adamw' ? 1e-2 : 1e-4), { min: 0 }),
    schedule: v.oneOf(op, 'schedule', o.schedule ?? 'poly', ['poly', 'cosine', 'step', 'constant']),
    warmupIters: v.int(op, 'warmupIters', o.warmupIters ?? 0, 0),
    loss: o.loss ?? 'ce',
    accumulate: v.int(op, 'accumulate', o.accumulate ?? 1, 1),
    freezeEncoderEpochs: v.int(op, 'freezeEncoderEpochs', o.freezeEncoderEpochs ?? 0, 0),
    valEvery: v.int(op, 'valEvery', o.valEvery ?? 1, 1),
    precision: resolvePrecision(v.oneOf(op, 'precision', o.precision ?? 'auto', ['auto', 'fp32', 'bf16', 'fp16'] as const), device),
    channelsLast: v.bool(op, 'channelsLast', o.channelsLast ?? true),
    winograd: v.bool(op, 'winograd', o.winograd ?? true),
    fusedKernels: v.bool(op, 'fusedKernels', o.fusedKernels ?? true),
    device,
    cudaGraphs,
    seed: v.int(op, 'seed', o.seed ?? 0, 0),
    resume: o.resume ?? false,
    quiet: o.quiet ?? false,
    log: parseLoggers(op, o.log),
    report: o.report ?? false,
  };
}

/** Every setting the run uses, defaults filled in, for the report (what config.json leaves to defaults). */
function resolvedHyperparameters(c: ReturnType<typeof resolve>, r: {
  model: SegmentationModel; trainDs: Dataset; valDs: Dataset | null; classes: number; stepsPerEpoch: number; totalIters: number; optimizer: Optimizer; processes: number;
}): Record<string, unknown> {
  const aug = resolveAugmentation('train', { crop: c.crop, scaleRange: c.scaleRange, colorJitter: c.colorJitter }, r.trainDs.ignoreIndex);
  const opt = r.optimizer instanceof AdamW
    ? { name: 'adamw', lr: c.lr, betas: r.optimizer.betas, eps: r.optimizer.eps, weightDecay: c.weightDecay }
    : { name: 'sgd', lr: c.lr, momentum: c.momentum, dampening: 0, nesterov: false, weightDecay: c.weightDecay };
  const schedule = c.schedule === 'poly' ? { power: 0.9 } : c.schedule === 'step' ? { stepSize: Math.max(1, Math.floor(r.totalIters / 3)), gamma: 0.1 } : c.schedule === 'cosine' ? { minLrRatio: 0 } : {};
  return {
    model: { architecture: r.model.architecture, encoder: r.model.config.encoderName, encoderWeights: c.model ? `(from ${c.model})` : c.encoderWeights ?? null, start: c.model ?? 'new', classes: r.classes, outputStride: c.outputStride ?? null, decoderChannels: c.decoderChannels ?? null, options: c.modelOptions ?? {}, auxWeight: c.auxWeight },
    data: { dataset: c.dataset, root: c.dataRoot, split: c.split, valSplit: c.valFraction !== undefined ? `${c.valFraction} of ${c.split}` : c.valSplit, trainImages: r.trainDs.length, valImages: r.valDs?.length ?? 0, ignoreIndex: r.trainDs.ignoreIndex },
    augmentation: { crop: c.crop, scaleRange: aug.scaleRange, flip: aug.flip, colorJitter: aug.colorJitter },
    batch: { batchSize: c.batchSize, accumulate: c.accumulate, processes: r.processes, effectiveBatch: c.batchSize * c.accumulate * r.processes },
    length: { epochs: c.epochs, stepsPerEpoch: r.stepsPerEpoch, totalSteps: r.totalIters, maxSteps: c.maxSteps ?? null, valEvery: c.valEvery, freezeEncoderEpochs: c.freezeEncoderEpochs },
    optimizer: opt,
    schedule: { name: c.schedule, warmupIters: c.warmupIters, ...schedule },
    loss: { loss: c.loss, labelSmoothing: c.labelSmoothing ?? 0, classWeights: c.classWeights ?? null },
    runtime: { precision: c.precision, channelsLast: c.channelsLast, winograd: c.winograd, fusedKernels: c.fusedKernels, device: c.device, threads: getNumThreads(), workers: c.workers ?? 'default', seed: c.seed },
  };
}

/** Refuses (disposing the model) a crop that is not an input size the model takes, naming the nearest one that is. */
function checkCrop(crop: number, model: SegmentationModel): void {
  const r = model.inputSizeRule;
  if (crop >= r.min && crop % r.stride === 0) return;
  const arch = `${model.architecture}-${model.config.encoderName}`;
  model.dispose();
  const why = crop < r.min ? `smaller than the ${arch}'s minimum input of ${r.min} px` : `not a multiple of the ${arch}'s input stride ${r.stride}`;
  fail('train', `crop ${crop} is ${why}; use --crop ${validSide(crop, r)} or more`);
}

/**
 * Trains a model of any registered architecture (PAN by default). Writes `<out>/checkpoints/{last,best}` (smp save_pretrained directories with
 * optimizer/RNG state in `last`), `<out>/metrics.jsonl` and returns the trained model.
 * @example
 * const { model, bestMiou } = await train({ dataset: 'folder', dataRoot: 'data/shapes/train', valRoot: 'data/shapes/val', out: 'runs/shapes', encoder: 'resnet18', crop: 128, epochs: 10 });
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const c = resolve(options);
  const t0 = performance.now();
  if (c.threads !== undefined) setNumThreads(c.threads);
  manualSeed(c.seed);

  const splitPath = join(c.out, 'split.json'); // --val-fraction's lists, reused on --resume
  const { train: trainDs, val: valDs, file: splitFile } = openTrainVal({ ...c, split: options.split, splitFile: c.resume && (c.valFraction !== undefined || c.splitFile !== undefined) ? splitPath : c.splitFile });
  if (trainDs.length < c.batchSize) fail('train', `the training split has ${trainDs.length} samples, fewer than one batch of ${c.batchSize}`);
  const classes = c.classes ?? trainDs.numClasses;
  // [distributed] rendezvous and config check; only rank 0 talks
  const dist = options.distributed ? await DistributedRun.start(
    { backend: c.device.startsWith('cuda') ? 'nccl' : 'gloo', ...options.distributed },
    comparableConfig(c, { classes, trainSamples: trainDs.length, valSamples: valDs?.length ?? 0 }),
  ) : null;
  if (dist && !dist.isMain) c.quiet = true;
  if (dist && c.device === 'cuda') c.device = `cuda:${dist.group.localRank}`; // [distributed] one GPU per rank on each machine

  let model: SegmentationModel;
  if (c.model) {
    model = loadModel(c.model);
    if (model.config.classes !== classes) fail('train', `the model in ${c.model} predicts ${model.config.classes} classes but the dataset has ${classes}`);
    if (options.arch !== undefined && architecture(options.arch).name !== model.architecture) fail('train', `--arch ${options.arch} differs from the model in ${c.model}, a ${model.architecture}; drop --arch`);
  } else {
    model = createModel(c.arch ?? 'pan', {
      encoderName: c.encoder, classes, encoderWeights: c.encoderWeights ?? null,
      auxParams: c.auxWeight > 0 ? { classes, pooling: 'avg', dropout: 0.2 } : null,
      ...(c.outputStride !== undefined ? { encoderOutputStride: c.outputStride } : {}),
      ...(c.decoderChannels !== undefined ? { decoderChannels: c.decoderChannels } : {}),
      ...c.modelOptions,
    });
  }
  checkCrop(c.crop, model); // before any step: a crop the model cannot take fails here, not at the first forward
  if (c.device !== 'cpu') model.to({ device: c.device });
  if (c.channelsLast) model.to({ memoryFormat: 'channelsLast' });
  dist?.prepareModel(model); // [distributed] SyncBatchNorm, rank 0's weights everywhere, gradient buckets
  if (!c.quiet) {
    const f = cpuFeatures();
    const why = options.precision === undefined || options.precision === 'auto' ? ` (auto: ${f.amx ? 'AMX' : f.avx512bf16 ? 'AVX512-BF16' : 'no bf16 hardware'})` : '';
    console.error(`train: ${model.architecture}-${model.config.encoderName} on ${c.dataset} ${c.split} (${trainDs.length} images, ${classes} classes); precision ${c.precision}${why}, ${c.channelsLast ? 'channels-last' : 'NCHW'}, ${getNumThreads()} threads on ${c.device}${c.cudaGraphs ? ', CUDA graphs' : ''}`);
  }
  const pre = model.preprocessing;
  const meta = { classNames: [...trainDs.classes], colors: trainDs.colors.map((x) => [...x] as [number, number, number]), ignoreIndex: trainDs.ignoreIndex, preprocessing: pre };

  const loaderOptions = {
    mode: 'train', batchSize: c.batchSize, crop: c.crop, scaleRange: c.scaleRange, colorJitter: c.colorJitter,
    mean: pre.mean, std: pre.std, seed: c.seed, workers: c.workers, shuffle: true, dropLast: true,
    onWarning: (b: BadSample) => { epochBad.push(b); }, // one line per epoch instead of one per sample
    replaceSkipped: true, // every epoch has its steps: the schedule ends where planned, data-parallel ranks stay in step
  } as const;
  const epochBad: BadSample[] = [];
  const valOptions = { mode: 'eval', batchSize: 1, stride: model.inputSizeRule.stride, mean: pre.mean, std: pre.std, workers: c.workers } as const;
  // [distributed] each rank loads its shard of every epoch and of the validation set
  const loader = dist ? dist.trainLoader(trainDs, loaderOptions) : new DataLoader(trainDs, loaderOptions);
  const valLoader = valDs ? (dist ? dist.valLoader(valDs, valOptions) : new DataLoader(valDs, valOptions)) : null;

  const params = model.parameters();
  const optimizer: Optimizer = c.optimizer === 'sgd'
    ? new SGD(params, { lr: c.lr, momentum: c.momentum, weightDecay: c.weightDecay, capturable: c.cudaGraphs })
    : new AdamW(params, { lr: c.lr, weightDecay: c.weightDecay, capturable: c.cudaGraphs });
  const stepsPerEpoch = Math.floor(loader.length / c.accumulate);
  const totalIters = Math.max(1, stepsPerEpoch * c.epochs);
  const scheduler = new LRScheduler(optimizer, { name: c.schedule, totalIters, warmupIters: c.warmupIters, stepSize: Math.max(1, Math.floor(totalIters / 3)) });
  // float16 gradients underflow without loss scaling (bfloat16 has float32's range and needs none).
  const scaler = c.precision === 'fp16' ? (c.cudaGraphs ? new DeviceGradScaler() : new GradScaler()) : null;
  const lossFn = combinedLoss(parseLoss(c.loss), { ignoreIndex: trainDs.ignoreIndex, labelSmoothing: c.labelSmoothing, classWeights: c.classWeights ?? null });
  const forwardLoss = (x: Tensor, y: Tensor): Tensor => {
    const out = withPrecision(c.precision, c.device, () => model.forwardWithAux(x));
    const loss: Tensor = lossFn(out.masks.to('float32'), y);
    return out.labels && c.auxWeight > 0 ? loss.add(auxPresenceLoss(out.labels.to('float32'), y, classes, trainDs.ignoreIndex).mul(c.auxWeight)) : loss;
  };
  const graphed = c.cudaGraphs ? new GraphedTrainStep({ model, optimizer, scaler: scaler as DeviceGradScaler | null, forwardLoss }) : null;

  const isMain = !dist || dist.isMain; // [distributed] only rank 0 writes
  if (isMain) mkdirSync(c.out, { recursive: true });
  const ckptDir = join(c.out, 'checkpoints');
  const configHash = hashConfig(c, classes) + (dist ? worldSuffix(dist.size) : ''); // [distributed] resume needs the same world size
  let state: RunState = { epoch: 0, iter: 0, bestMiou: -1, bestEpoch: -1, history: [], configHash };
  if (c.resume && isMain) state = restoreRun(c.out, { model, optimizer, device: c.device, configHash, worldSize: dist?.size ?? 1 });
  if (c.resume && dist) state = dist.syncResume(model, optimizer, state); // [distributed] rank 0's restored state on every rank
  if (c.resume) scheduler.setIter(state.iter);
  if (c.resume && scaler && state.scaler) scaler.loadState(state.scaler);
  const skippedFiles = new Set(state.skipped ?? []);
  if (isMain && splitFile && !c.resume) writeSplitFile(splitPath, splitFile);
  const hyperparameters = resolvedHyperparameters(c, { model, trainDs, valDs, classes, stepsPerEpoch, totalIters, optimizer, processes: dist?.size ?? 1 });
  const reportSamples = c.report === true ? 6 : c.report === false ? 0 : v.int('train', 'report', c.report, 0);
  const output = isMain ? await RunOutput.open({
    out: c.out, resumed: c.resume ? state : null, config: options.config ?? { ...options, onLog: undefined, distributed: undefined, config: undefined },
    hyperparameters, loggers: c.log, reportSamples, model, shown: valDs ?? trainDs, validation: valDs !== null, precision: c.precision, onLog: options.onLog, t0,
  }) : null;

  const encoderParams = model.encoder.parameters();
  let lastEval: EvaluationResult | null = null;
  let waitMs = 0;
  let stepMs = 0;
  let stop = c.maxSteps !== undefined && state.iter >= c.maxSteps; // resumed with a maxSteps already reached
  // A run stopped mid-epoch (maxSteps) resumes exactly: the epoch's order is the same, its first batches are passed over.
  const firstEpoch = state.epoch;
  const passOver = state.epochBatches ?? 0;
  const before = { winograd: winogradTraining(), fused: fusedKernels() }; // process-wide settings: restored when the run ends
  setWinogradTraining(c.winograd);
  setFusedKernels(c.fusedKernels);
  try {
    for (let epoch = state.epoch; epoch < c.epochs && !stop; epoch++) {
      const frozen = epoch < c.freezeEncoderEpochs;
      for (const p of encoderParams) p.requiresGrad_(!frozen);
      dist?.updateTrainable(model);
      model.train();
      loader.setEpoch(epoch);
      const bar = new ProgressBar(`epoch ${epoch + 1}/${c.epochs}`, loader.length, { silent: c.quiet });
      let emaLoss = Number.NaN;
      let micro = 0;
      const tEpoch = performance.now();
      let images = 0;
      let tStep = performance.now();
      let ranToEnd = true;
      epochBad.length = 0;
      for await (const batch of loader) {
        if (epoch === firstEpoch && micro < passOver) { micro++; continue; }
        waitMs += batch.waitMs;
        const t = loader.toTensors(batch, c.device);
        const x = c.channelsLast ? t.images.contiguous('channelsLast') : t.images;
        if (x !== t.images) t.images.dispose();
        const y = t.masks;
        const syncStep = (micro + 1) % c.accumulate === 0;
        if (dist && syncStep) dist.beforeBackward(); // [distributed] this backward's gradients are averaged
        let lossValue = graphed ? graphed.run(x, y) : tidy(() => {
          const loss = forwardLoss(x, y);
          let scaled = c.accumulate > 1 ? loss.div(c.accumulate) : loss;
          if (scaler) scaled = scaler.scaleLoss(scaled);
          scaled.backward();
          return loss.item();
        });
        x.dispose();
        y.dispose();
        if (dist) { // [distributed] averaged gradients before the step; the loss is the mean over ranks
          if (syncStep) dist.afterBackward();
          lossValue = dist.mean(lossValue);
        }
        if (!Number.isFinite(lossValue)) fail('train', `the loss became ${lossValue} at epoch ${epoch + 1}, step ${state.iter}; lower --lr or use --precision fp32`);
        micro++;
        images += batch.ids.length * (dist?.size ?? 1);
        if (micro % c.accumulate === 0) {
          if (!graphed) { // a graphed step ran its optimizer and scaler itself
            if (scaler) scaler.step(optimizer);
            else optimizer.step();
            optimizer.zeroGrad();
          }
          scheduler.step();
          state.iter++;
        }
        emaLoss = Number.isNaN(emaLoss) ? lossValue : 0.9 * emaLoss + 0.1 * lossValue;
        const now = performance.now();
        stepMs += now - tStep;
        tStep = now;
        const ips = images / ((now - tEpoch) / 1000);
        bar.update(micro, { loss: emaLoss.toFixed(4), lr: scheduler.lr.toExponential(2), 'img/s': ips.toFixed(1) });
        if (micro % 10 === 0 || micro === loader.length) output?.log({ epoch: epoch + 1, iter: state.iter, loss: lossValue, lr: scheduler.lr, imgPerSec: ips });
        if (c.maxSteps !== undefined && state.iter >= c.maxSteps) { stop = true; ranToEnd = micro >= loader.length; break; }
      }
      // Gradients of a trailing partial accumulation are dropped (stepsPerEpoch counts whole steps), so they
      // neither leak into the next epoch's first step nor make a resumed run differ from an uninterrupted one.
      if (micro % c.accumulate !== 0) optimizer.zeroGrad();
      // An epoch ends complete unless maxSteps stopped it (an epoch with skipped samples has fewer
      // batches than loader.length, and is complete all the same).
      const complete = ranToEnd;
      bar.finish({ loss: emaLoss.toFixed(4) });
      const rec: Record<string, number> = { epoch: epoch + 1, iter: state.iter, loss: emaLoss, lr: scheduler.lr, imgPerSec: images / ((performance.now() - tEpoch) / 1000) };
      if (epochBad.length) {
        const files = [...new Set(epochBad.map((b) => badFile(trainDs, b)))];
        for (const f of files) skippedFiles.add(f);
        rec.skipped = files.length;
        console.warn(`panseg: epoch ${epoch + 1} skipped ${files.length} unreadable or invalid training sample${files.length > 1 ? 's' : ''}: ${files.slice(0, 3).join(', ')}${files.length > 3 ? ` and ${files.length - 3} more` : ''} (${epochBad[0].message}); fix or remove ${files.length > 1 ? 'them' : 'it'}`);
      }
      const last = epoch + 1 === c.epochs || stop;
      const validated = Boolean(valLoader && ((epoch + 1) % c.valEvery === 0 || last));
      if (valLoader && validated) {
        const vbar = new ProgressBar('  val', valLoader.dataset.length, { silent: c.quiet }); // [distributed] this rank's share
        dist?.beforeEval(model);
        const own = await evaluate(model, valLoader, { precision: c.precision, onProgress: (d) => vbar.update(d), loss: lossFn, perImage: true });
        lastEval = own;
        if (dist) { // [distributed] confusion matrices summed, the loss averaged over all images (a rank may have none); the worst images are rank 0's
          const [lossSum, lossImages] = dist.group.allreduceNumbers(own.loss !== undefined ? [own.loss * own.images, own.images] : [0, 0]);
          lastEval = { ...dist.reduceEvaluation(own), perImage: own.perImage, ...(lossImages > 0 ? { loss: lossSum / lossImages } : {}) };
        }
        vbar.finish({ mIoU: lastEval.miou.toFixed(4), 'pixel acc': lastEval.pixelAccuracy.toFixed(4), ...(lastEval.loss !== undefined ? { loss: lastEval.loss.toFixed(4) } : {}) });
        rec.valMiou = lastEval.miou;
        rec.valPixelAccuracy = lastEval.pixelAccuracy;
        if (lastEval.loss !== undefined) rec.valLoss = lastEval.loss;
        if (lastEval.miou > state.bestMiou) {
          state.bestMiou = lastEval.miou;
          state.bestEpoch = epoch + 1;
          if (isMain) {
            try { model.savePretrained(join(ckptDir, 'best'), { ...meta, epoch: epoch + 1, miou: lastEval.miou }); } catch (e) { saveFailed(join(ckptDir, 'best'), e); }
          }
        }
      }
      // Stopped mid-epoch: last/ records the batches done (resume passes over them), the log a 'stop' record at the fractional epoch.
      const partial = !complete;
      if (!partial) state.history.push(rec);
      output?.log(partial ? { ...rec, epoch: epoch + micro / loader.length, type: 'stop' } : { ...rec, type: 'epoch' });
      state.epoch = partial ? epoch : epoch + 1;
      state.epochBatches = partial ? micro : undefined;
      if (isMain) {
        if (scaler) state.scaler = scaler.state();
        state.skipped = [...skippedFiles];
        try {
          output?.syncLog(); // the log holds every record the checkpoint covers, even after a power loss
          saveCheckpoint(join(ckptDir, 'last'), model, optimizer, state, meta, c.device);
        } catch (e) { saveFailed(join(ckptDir, 'last'), e); }
      }
      if (validated || !valLoader) await output?.publish(epoch, partial || stop ? `stopped at step ${state.iter} (max steps)` : epoch + 1 === c.epochs ? 'finished' : `training: epoch ${epoch + 1} of ${c.epochs}`, { evaluation: lastEval, iter: state.iter });
    }
    await dist?.finish(); // [distributed] every rank leaves together
  } finally {
    output?.close();
    dist?.abort();
    await loader.close();
    await valLoader?.close();
    graphed?.dispose();
    if (scaler instanceof DeviceGradScaler) scaler.dispose();
    optimizer.dispose();
    setWinogradTraining(before.winograd);
    setFusedKernels(before.fused);
  }
  return {
    model, outDir: c.out, bestMiou: state.bestMiou, bestEpoch: state.bestEpoch, history: state.history, lastEval,
    seconds: (performance.now() - t0) / 1000, dataWaitFraction: stepMs > 0 ? waitMs / stepMs : 0, trainDataset: trainDs, valDataset: valDs, skipped: [...skippedFiles], hyperparameters,
    distributed: dist ? { rank: dist.rank, worldSize: dist.size, commWaitMsPerStep: dist.syncedSteps ? dist.commWaitMs / dist.syncedSteps : 0 } : null,
  };
}

/** The file a skipped sample's message names (the image or its mask), else its image. */
function badFile(ds: Dataset, bad: BadSample): string {
  const s = ds.samples.find((x) => x.id === bad.id);
  if (!s) return bad.id;
  return bad.message.includes(s.maskPath) && !bad.message.includes(s.imagePath) ? s.maskPath : s.imagePath;
}

/** A checkpoint that could not be written (a full disk, say) ends the run with one line; the previous one stays loadable. */
function saveFailed(dir: string, e: unknown): never {
  if (!(e instanceof PansegError) && (e as NodeJS.ErrnoException)?.code === undefined) throw e; // a bug, not the disk
  const why = e instanceof PansegError ? e.message.replace(/^\w+: /, '') : ioReason(e);
  fail('train', `${why.startsWith('cannot write') ? why : `cannot write ${dir}: ${why}`}; free disk space and continue with --resume`);
}
