// What compareArchitectures takes, checked once before anything is trained or written.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { checkValSource } from '../data/index.js';
import { architectures } from '../models/index.js';
import type { TrainOptions } from '../train/train.js';
import type { CompareRow } from './row.js';

/** Train options that stay per run or per architecture, so a comparison does not take them. */
type NotShared = 'arch' | 'out' | 'resume' | 'model' | 'outputStride' | 'decoderChannels' | 'modelOptions' | 'onLog' | 'distributed';

/** Options of {@link compareArchitectures}: one training recipe (any of train's options) for every architecture. */
export interface CompareOptions extends Omit<TrainOptions, NotShared> {
  /** Architectures by CLI id or smp name, trained in this order. Default: every registered architecture. */
  archs?: string[];
  /** Per-architecture options in smp's camelCase names, keyed by CLI id, e.g. `{ unet: { decoderAttentionType: 'scse' } }`. */
  modelOptions?: Record<string, Record<string, unknown>>;
  /** Output folder: `<out>/<arch>/` per architecture, `<out>/compare.{json,md,html}`. Required. */
  out: string;
  /** Continue an interrupted comparison in `out`: finished architectures are skipped, an unfinished one resumes. */
  resume?: boolean;
  /** Side of the square image the inference latency is measured at. Default 512. */
  benchSize?: number;
  /** Timed inference runs per precision, after one warm-up; the median is reported. Default 5. */
  benchRepeats?: number;
  /** Called as each architecture is done: trained in this call, or finished in an earlier one (`skipped`). */
  onArchitecture?: (row: CompareRow, info: { skipped: boolean; index: number; total: number }) => void;
}

export interface ResolvedCompare {
  archs: string[];
  out: string;
  resume: boolean;
  benchSize: number;
  benchRepeats: number;
  modelOptions: Record<string, Record<string, unknown>>;
  /** What every architecture's train() gets (besides arch, modelOptions, out, resume). */
  train: Omit<CompareOptions, 'archs' | 'out' | 'resume' | 'benchSize' | 'benchRepeats' | 'modelOptions' | 'onArchitecture'> & { encoder: string; crop: number; epochs: number };
  /** The options that make two runs comparable: a resumed comparison must repeat them. */
  recipe: Record<string, unknown>;
}

const OP = 'compare';
/**
 * Options that may change between an interrupted comparison and its resume: the list of architectures (to add
 * some), how it runs, and where the data and output live (as train's resume check, which leaves paths out).
 */
const FREE_ON_RESUME = new Set(['archs', 'resume', 'quiet', 'threads', 'workers', 'benchRepeats', 'onArchitecture', 'out', 'dataRoot', 'valRoot']);

/** A CLI id for an id or smp name, case-insensitively; undefined when unknown. */
function archId(name: string): string | undefined {
  const key = name.toLowerCase();
  return architectures().find((a) => a.id === key || a.name.toLowerCase() === key)?.id;
}

export function resolveCompareOptions(o: CompareOptions): ResolvedCompare {
  if (!o || typeof o !== 'object') fail(OP, 'expected an options object');
  if (typeof o.out !== 'string' || !o.out) fail(OP, 'expected an output directory for out (--out DIR)');
  const valid = architectures().map((a) => a.id);
  let archs = valid;
  if (o.archs !== undefined) {
    if (!Array.isArray(o.archs) || o.archs.length === 0 || !o.archs.every((a) => typeof a === 'string')) fail(OP, `expected a non-empty array of architecture ids for archs (--archs); valid: ${valid.join(', ')}`);
    archs = o.archs.map((a) => archId(a) ?? fail(OP, `unknown architecture '${a}' in archs (--archs); valid: ${valid.join(', ')}`));
    const twice = archs.find((a, i) => archs.indexOf(a) !== i);
    if (twice) fail(OP, `${twice} appears twice in archs (--archs)`);
  }
  const modelOptions: Record<string, Record<string, unknown>> = {};
  if (o.modelOptions !== undefined) {
    if (typeof o.modelOptions !== 'object' || o.modelOptions === null || Array.isArray(o.modelOptions)) fail(OP, `expected an object of per-architecture options for modelOptions (--arch-options), e.g. {"unet":{"decoderAttentionType":"scse"}}`);
    for (const [k, opts] of Object.entries(o.modelOptions)) {
      const id = archId(k);
      if (!id || !archs.includes(id)) fail(OP, `modelOptions (--arch-options) has options for '${k}', which is not among the compared architectures (${archs.join(', ')})`);
      if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) fail(OP, `expected an object of ${id} options for modelOptions.${k} (--arch-options), e.g. {"decoderAttentionType":"scse"}`);
      modelOptions[id] = opts;
    }
  }
  if (o.valSplit === null) fail(OP, 'a comparison ranks the architectures on a validation split; drop valSplit: null (--val-split none)');
  const valSplit = checkValidation(o);
  const resume = o.resume === undefined ? false : v.bool(OP, 'resume', o.resume);
  const benchSize = v.int(OP, 'benchSize (--bench-size)', o.benchSize ?? 512, 32);
  const benchRepeats = v.int(OP, 'benchRepeats (--bench-repeats)', o.benchRepeats ?? 5, 1);
  if (o.onArchitecture !== undefined && typeof o.onArchitecture !== 'function') fail(OP, 'expected a function for onArchitecture');
  const { archs: _a, out, resume: _r, benchSize: _b, benchRepeats: _n, modelOptions: _m, onArchitecture: _o, ...rest } = o;
  // train()'s documented defaults, made explicit: the comparison's title, FLOP count and table name them.
  const train = { ...rest, valSplit, encoder: o.encoder ?? 'resnet34', crop: v.int(OP, 'crop', o.crop ?? 512, 32), epochs: v.int(OP, 'epochs', o.epochs ?? 50, 1) };
  const recipe: Record<string, unknown> = {};
  for (const [k, val] of Object.entries({ ...train, benchSize, modelOptions })) {
    if (val !== undefined && !FREE_ON_RESUME.has(k) && typeof val !== 'function') recipe[k] = val;
  }
  return { archs, out, resume, benchSize, benchRepeats, modelOptions, train, recipe: JSON.parse(JSON.stringify(recipe)) as Record<string, unknown> };
}

/**
 * The val split to rank on, made explicit ('val') when it is the source, as a comparison made before valFraction
 * existed recorded it (so that it still resumes); undefined when the split is drawn or read.
 */
function checkValidation(o: CompareOptions): string | undefined {
  if (o.valFraction !== undefined && o.splitFile !== undefined) fail(OP, 'splitFile (--split-file) already holds a train/val split; drop valFraction (--val-fraction)');
  return checkValSource(OP, o) ? undefined : o.valSplit ?? 'val';
}

/** The recipe keys whose values differ between two runs (sorted), for the resume check. */
export function recipeDifferences(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}
