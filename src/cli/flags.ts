// Flag groups shared by several subcommands.
import { architectures } from '../models/index.js';
import { type Flag, required, UsageError } from './args.js';
import { trainDataFromFlags } from './data-flags.js';

/** Choosing and shaping a new model: train and info. */
export const MODEL_FLAGS: Flag[] = [
  { name: 'arch', type: 'string', desc: `architecture: ${architectures().map((a) => `${a.id} (${a.name})`).join(', ')}`, choices: architectures().map((a) => a.id), default: 'pan' },
  { name: 'output-stride', type: 'int', desc: 'encoder output stride, 8, 16 or 32 (architectures that take one; PAN default 16)' },
  { name: 'decoder-channels', type: 'string', desc: "decoder channels: a number (pan), or a comma list, one per stage (unet); default: the architecture's" },
  { name: 'arch-options', type: 'string', desc: `further architecture options as JSON with smp's camelCase names, e.g. '{"decoderAttentionType":"scse"}'` },
];

/** The training recipe from `train`'s flags (data, encoder, optimization, runtime), shared by train and compare. */
export function recipeFromFlags(o: Record<string, unknown>, cmd: string) {
  return {
    ...trainDataFromFlags(o, cmd), // dataset, dataRoot, split, valFraction, splitFile, datasetOptions
    valSplit: o.valSplit === 'none' ? null : (o.valSplit as string),
    valRoot: o.valRoot as string | undefined,
    encoder: o.encoder as string,
    classes: o.classes as number | undefined,
    encoderWeights: (o.encoderWeights as string | undefined) ?? null,
    auxWeight: o.auxWeight as number,
    crop: o.crop as number,
    batchSize: o.batchSize as number,
    epochs: o.epochs as number,
    lr: o.lr as number | undefined,
    optimizer: o.optimizer as 'sgd' | 'adamw',
    schedule: o.schedule as 'poly',
    warmupIters: o.warmupIters as number,
    loss: o.loss as string,
    labelSmoothing: o.labelSmoothing as number,
    momentum: o.momentum as number | undefined,
    weightDecay: o.weightDecay as number | undefined,
    scaleRange: numberPair(o.scaleRange, 'scale-range', '0.5,2'),
    colorJitter: o.colorJitter as number | undefined,
    classWeights: o.classWeights === undefined ? undefined : numberList(o.classWeights, 'class-weights', '1,2.5,0.8'),
    channelsLast: o.channelsLast === undefined ? undefined : o.channelsLast === 'true',
    winograd: o.winograd === undefined ? undefined : o.winograd === 'true',
    fusedKernels: o.fusedKernels === undefined ? undefined : o.fusedKernels === 'true',
    accumulate: o.accumulate as number,
    freezeEncoderEpochs: o.freezeEncoderEpochs as number,
    valEvery: o.valEvery as number,
    precision: o.precision as 'fp32' | undefined,
    device: o.device as string,
    cudaGraphs: o.cudaGraphs as boolean | undefined,
    resume: Boolean(o.resume),
    maxSteps: o.maxSteps as number | undefined,
    threads: o.threads as number | undefined,
    seed: o.seed as number,
    workers: o.workers as number | undefined,
    quiet: Boolean(o.quiet),
  };
}

/** A comma list of numbers (a 'list' flag's strings), or a UsageError naming the flag and an example. */
function numberList(raw: unknown, flag: string, example: string): number[] {
  const parts = (raw as string[]).map((x) => Number(x));
  if (!parts.length || !parts.every(Number.isFinite)) throw new UsageError(`--${flag} expects a comma list of numbers, e.g. ${example}, got '${(raw as string[]).join(',')}'`);
  return parts;
}

function numberPair(raw: unknown, flag: string, example: string): [number, number] | undefined {
  if (raw === undefined) return undefined;
  const p = numberList(raw, flag, example);
  if (p.length !== 2) throw new UsageError(`--${flag} expects two numbers MIN,MAX, e.g. ${example}, got '${(raw as string[]).join(',')}'`);
  return [p[0], p[1]];
}

/** The architecture options MODEL_FLAGS set (only those given: the rest take the architecture's defaults). */
export function archOptions(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (o.outputStride !== undefined) out.encoderOutputStride = o.outputStride;
  if (o.decoderChannels !== undefined) {
    const parts = String(o.decoderChannels).split(',').map((p) => Number(p.trim()));
    if (!parts.every((n) => Number.isInteger(n) && n > 0)) throw new UsageError(`--decoder-channels expects a positive integer or a comma list of them, got '${String(o.decoderChannels)}'`);
    out.decoderChannels = parts.length === 1 && !String(o.decoderChannels).includes(',') ? parts[0] : parts;
  }
  if (o.archOptions !== undefined) {
    let extra: unknown;
    try { extra = JSON.parse(String(o.archOptions)); } catch (e) { throw new UsageError(`--arch-options is not valid JSON (${(e as Error).message}); e.g. '{"decoderAttentionType":"scse"}'`); }
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new UsageError(`--arch-options expects a JSON object, got '${String(o.archOptions)}'`);
    Object.assign(out, extra);
  }
  return out;
}

export { DATA_FLAGS, VAL_FRACTION_FLAG } from './data-flags.js';

export const RUN_FLAGS: Flag[] = [
  { name: 'threads', type: 'int', desc: 'libtorch threads (default: all cores)' },
  { name: 'seed', type: 'int', desc: 'random seed', default: 0 },
  { name: 'precision', type: 'string', desc: 'compute precision (auto: bf16 on CPUs with AMX/AVX512-BF16, else fp32)', choices: ['auto', 'fp32', 'bf16', 'fp16'], default: 'auto' },
  { name: 'device', type: 'string', desc: "'cpu' or 'cuda[:N]' (needs a CUDA libtorch)", default: 'cpu' },
  { name: 'workers', type: 'int', desc: 'data loading threads' },
];

export const TTA_FLAGS: Flag[] = [
  { name: 'tta-flip', type: 'boolean', desc: 'test-time augmentation: average with the flipped image' },
  { name: 'tta-scales', type: 'list', desc: 'test-time augmentation: comma-separated scales, e.g. 0.75,1,1.25' },
];

/** Big images: sliding windows and inference at a set scale (predict, eval, serve). */
export const SIZE_FLAGS: Flag[] = [
  { name: 'tile', type: 'int', desc: 'segment in overlapping windows of this many pixels (bounded memory for large photos), e.g. 512' },
  { name: 'overlap', type: 'number', desc: 'fraction of a --tile window its neighbours share, 0..0.9 (default 0.25)' },
  { name: 'resize-long', type: 'int', desc: "infer with the image's longer side resized to this (e.g. the training scale); results resized back" },
];

/** The library's tile / overlap / resizeLong options from SIZE_FLAGS (only those given). */
export function sizeOptions(o: Record<string, unknown>): { tile?: number; overlap?: number; resizeLong?: number } {
  if (o.overlap !== undefined && o.tile === undefined) throw new UsageError('--overlap applies to --tile windows; add --tile N (e.g. --tile 512)');
  if (o.tile !== undefined && (o.tile as number) < 1) throw new UsageError(`--tile expects a positive number of pixels (e.g. 512), got ${String(o.tile)}`);
  if (o.overlap !== undefined && !((o.overlap as number) >= 0 && (o.overlap as number) <= 0.9)) throw new UsageError(`--overlap expects a fraction from 0 to 0.9 (e.g. 0.25), got ${String(o.overlap)}`);
  if (o.resizeLong !== undefined && (o.resizeLong as number) < 1) throw new UsageError(`--resize-long expects a positive number of pixels (e.g. 1024), got ${String(o.resizeLong)}`);
  return {
    ...(o.tile !== undefined ? { tile: o.tile as number } : {}),
    ...(o.overlap !== undefined ? { overlap: o.overlap as number } : {}),
    ...(o.resizeLong !== undefined ? { resizeLong: o.resizeLong as number } : {}),
  };
}
