// One architecture's line in a comparison: its accuracy, cost and speed, as stored in
// `<out>/<arch>/compare-result.json` once the architecture is done (the marker a resume skips on).
import { readFileSync } from 'node:fs';
import { fail } from '../common/errors.js';
import type { EvaluationResult } from '../eval/evaluate.js';
import type { Latency, ModelCost } from './measure.js';

/** The file in an architecture's folder that marks it finished and holds its row. */
export const RESULT_FILE = 'compare-result.json';
/** Its prediction of the first validation image, as an indexed PNG (labels = palette indices). */
export const SAMPLE_FILE = 'compare-sample.png';

/** One validation during training. */
export interface ValidationPoint {
  epoch: number;
  miou: number | null;
  pixelAccuracy: number | null;
}

/** One architecture's results. Scores are fractions in [0, 1]; null where a value does not exist (e.g. a class in no image). */
export interface CompareRow {
  /** CLI id ('pan'). */
  arch: string;
  /** smp class name ('PAN'). */
  name: string;
  encoder: string;
  /** Architecture options given beyond the defaults. */
  modelOptions: Record<string, unknown>;
  /** The architecture's run folder, relative to the comparison's folder. */
  dir: string;
  /** Best validation mIoU over the run, and its epoch. */
  bestMiou: number | null;
  bestEpoch: number;
  /** Mean validation mIoU of the last 3 validations (of all when fewer): less lucky than the best. */
  lastMiou: number | null;
  /** The final model's validation: pixel accuracy, mean class accuracy and IoU per class. */
  pixelAccuracy: number | null;
  meanAccuracy: number | null;
  perClassIou: (number | null)[];
  params: number;
  /** GFLOPs of one forward pass at `gflopsSize` (the training crop) square. */
  gflops: number;
  gflopsSize: number;
  /** Milliseconds per image of the default inference copies at `inference.size` square. */
  inference: Latency;
  /** Training throughput: the median over epochs of images per second (validation excluded). */
  trainImgPerSec: number | null;
  /** Wall-clock seconds of training, validation and checkpoints, summed over resumed runs. */
  wallSeconds: number;
  epochs: number;
  steps: number;
  validations: ValidationPoint[];
  /** Relative paths (from the comparison's folder) of the run's report and of the sample prediction. */
  report: string;
  sample: string | null;
}

/** A finite number, or null (JSON has no NaN). */
export function finite(x: unknown): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The row of a finished architecture, from train()'s epoch history, its final evaluation and the measurements. */
export function buildRow(r: {
  arch: string; name: string; encoder: string; modelOptions: Record<string, unknown>; dir: string;
  history: readonly Record<string, number>[]; evaluation: EvaluationResult;
  cost: ModelCost; latency: Latency; wallSeconds: number; sample: string | null;
}): CompareRow {
  const validations: ValidationPoint[] = r.history.filter((h) => h.valMiou !== undefined)
    .map((h) => ({ epoch: h.epoch, miou: finite(h.valMiou), pixelAccuracy: finite(h.valPixelAccuracy) }));
  let best: ValidationPoint | undefined;
  for (const p of validations) if (p.miou !== null && (!best || p.miou > best.miou!)) best = p;
  const last = validations.slice(-3).map((p) => p.miou).filter((m): m is number => m !== null);
  const ev = r.evaluation;
  return {
    arch: r.arch, name: r.name, encoder: r.encoder, modelOptions: r.modelOptions, dir: r.dir,
    bestMiou: best?.miou ?? finite(ev.miou), bestEpoch: best?.epoch ?? (r.history.at(-1)?.epoch ?? 0),
    lastMiou: last.length ? last.reduce((a, b) => a + b, 0) / last.length : finite(ev.miou),
    pixelAccuracy: finite(ev.pixelAccuracy), meanAccuracy: finite(ev.meanAccuracy), perClassIou: ev.perClassIou.map(finite),
    params: r.cost.params, gflops: r.cost.gflops, gflopsSize: r.cost.size, inference: r.latency,
    trainImgPerSec: median(r.history.map((h) => h.imgPerSec).filter((x) => Number.isFinite(x) && x > 0)),
    wallSeconds: r.wallSeconds, epochs: r.history.at(-1)?.epoch ?? 0, steps: r.history.at(-1)?.iter ?? 0,
    validations, report: `${r.dir}/report.html`, sample: r.sample,
  };
}

/** Reads a finished architecture's row. */
export function readRow(path: string): CompareRow {
  let row: CompareRow;
  try {
    row = JSON.parse(readFileSync(path, 'utf8')) as CompareRow;
  } catch (e) {
    fail('compare', `${path}: ${(e as Error).message}; delete it to train that architecture again`);
  }
  if (!row || typeof row.arch !== 'string' || !Array.isArray(row.perClassIou) || !Array.isArray(row.validations)) {
    fail('compare', `${path} is not a comparison result; delete it to train that architecture again`);
  }
  return row;
}
