// A seeded train/val split of one dataset (a flat images/ + masks/ folder, say), saved as split.json
// in the run so that evaluation, and a resumed run, use exactly the same files.
import { existsSync, readFileSync } from 'node:fs';
import { describe, fail } from '../../common/errors.js';
import { writeFileDurable } from '../../io/file.js';
import { mixSeed } from '../prng.js';
import type { Dataset } from './dataset.js';
import { type DatasetOptions, openDataset } from './registry.js';

/** The contents of a run's split.json. Sample ids are file stems (the dataset's `Sample.id`). */
export interface SplitFile {
  version: 1;
  /** Layout, root and the split that was divided. */
  dataset: string;
  root: string;
  split: string;
  seed: number;
  valFraction: number;
  train: string[];
  val: string[];
}

/** Options of {@link splitDataset}. */
export interface SplitOptions {
  /** The share of samples for validation, in (0, 1); at least one sample goes to each side. */
  valFraction: number;
  /** Default 0. */
  seed?: number;
}

// FNV-1a over UTF-16 code units, then mixed with the seed: a stable per-id rank.
function rank(id: string, seed: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return mixSeed(seed, h >>> 0);
}

/**
 * Splits a dataset into train and val, seeded and reproducible: the `round(n * valFraction)` samples whose
 * seeded hash of the id ranks lowest go to val. The choice depends only on the ids and the seed (not on file
 * order), and adding files moves at most a few others across.
 * @example const { train, val, file } = splitDataset(openDataset('folder', 'data/cats', { split: 'all' }), { valFraction: 0.1 })
 */
export function splitDataset(ds: Dataset, opts: SplitOptions): { train: Dataset; val: Dataset; file: SplitFile } {
  const op = 'splitDataset';
  const f = opts.valFraction;
  const seed = opts.seed ?? 0;
  checkValFraction(op, f);
  if (!Number.isInteger(seed)) fail(op, `expected an integer for seed but received ${describe(seed)}`);
  const n = ds.length;
  if (n < 2) fail(op, `the ${ds.name} dataset at ${ds.root} has ${n} sample; a train/val split needs at least 2`);
  const nVal = Math.min(n - 1, Math.max(1, Math.round(n * f)));
  const ranked = ds.samples.map((s, i) => ({ i, r: rank(s.id, seed), id: s.id }))
    .sort((a, b) => a.r - b.r || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const valSet = new Set(ranked.slice(0, nVal).map((x) => x.i));
  const trainIdx: number[] = [];
  const valIdx: number[] = [];
  for (let i = 0; i < n; i++) (valSet.has(i) ? valIdx : trainIdx).push(i);
  const train = ds.subset(trainIdx, 'train');
  const val = ds.subset(valIdx, 'val');
  const file: SplitFile = {
    version: 1, dataset: ds.name, root: ds.root, split: ds.split, seed, valFraction: f,
    train: train.samples.map((s) => s.id), val: val.samples.map((s) => s.id),
  };
  return { train, val, file };
}

/**
 * The `which` side of a saved split, taken from `ds` (which must hold every listed id).
 * @throws naming the split file and the first missing ids when files were removed or renamed since the split was made
 */
export function applySplit(ds: Dataset, file: SplitFile, which: 'train' | 'val', path = 'split.json'): Dataset {
  const ids = file[which];
  const index = new Map(ds.samples.map((s, i) => [s.id, i]));
  const missing = ids.filter((id) => !index.has(id));
  if (missing.length) {
    fail(ds.name, `${missing.length} of the ${ids.length} '${which}' samples listed in ${path} are not in ${ds.root}, e.g. ${missing.slice(0, 3).join(', ')}; restore those files or start a new split`);
  }
  return ds.subset(ids.map((id) => index.get(id)!), which);
}

/** Writes split.json atomically and durably, as the run's other state files. */
export function writeSplitFile(path: string, file: SplitFile): void {
  writeFileDurable(path, `${JSON.stringify(file, null, 1)}\n`);
}

/** Reads and checks a split.json. */
export function readSplitFile(path: string): SplitFile {
  const op = 'split';
  if (!existsSync(path)) fail(op, `expected the split file ${path} but it does not exist (train with --val-fraction writes <out>/split.json)`);
  let j: SplitFile;
  try { j = JSON.parse(readFileSync(path, 'utf8')); } catch (e) { fail(op, `cannot parse ${path}: ${(e as Error).message}`); }
  const strings = (a: unknown) => Array.isArray(a) && a.every((x) => typeof x === 'string');
  if (!j || typeof j !== 'object' || j.version !== 1 || typeof j.dataset !== 'string' || typeof j.root !== 'string' || !strings(j.train) || !strings(j.val)) {
    fail(op, `${path} is not a panseg split file (expected version 1 with "dataset", "root", "train" and "val" id lists)`);
  }
  return j;
}

/** Options of {@link openTrainVal}: TrainOptions' data fields. */
export interface TrainValOptions {
  dataset: string;
  dataRoot: string;
  /** Default 'train' ('all' with valFraction). */
  split?: string;
  /** Default 'val'; null: no validation. Not with valFraction or splitFile (see checkValSource). */
  valSplit?: string | null;
  valRoot?: string;
  /** Split `split` into train and val instead of opening a val split. */
  valFraction?: number;
  seed?: number;
  datasetOptions?: DatasetOptions;
  /** A split.json to reuse (a resumed run's): its lists win over valFraction. */
  splitFile?: string;
}

function checkValFraction(op: string, f: unknown): asserts f is number {
  if (typeof f !== 'number' || !(f > 0 && f < 1)) fail(op, `expected a number between 0 and 1 (exclusive) for valFraction (--val-fraction), e.g. 0.1, but received ${describe(f)}`);
}

/**
 * Checks that a run's validation images come from a val split or else from a share of `split` (valFraction) or a
 * split file (whose lists win over valFraction). Returns that source in words, or '' for the val split.
 * `legacyVal` lets valSplit 'val' stand beside the others: a train config.json spells out that flag default.
 * @example checkValSource('train', { valFraction: 0.1, valSplit: 'test' }) // throws: ... drop valSplit (--val-split test) ...
 */
export function checkValSource(op: string, o: Pick<TrainValOptions, 'valFraction' | 'splitFile' | 'valSplit'>, { legacyVal = false } = {}): string {
  const { valFraction: f, splitFile } = o;
  if (f !== undefined) checkValFraction(op, f);
  if (splitFile !== undefined && (typeof splitFile !== 'string' || !splitFile)) fail(op, `expected the path of a split.json for splitFile (--split-file) but received ${describe(splitFile)}`);
  const from = f !== undefined ? 'valFraction (--val-fraction) validates on a share of split (--split)' : splitFile !== undefined ? 'splitFile (--split-file) names the validation images' : '';
  if (from && o.valSplit !== undefined && !(legacyVal && o.valSplit === 'val')) {
    fail(op, `${from}; drop valSplit (--val-split ${o.valSplit === null ? 'none' : String(o.valSplit)}), or drop ${f !== undefined ? 'valFraction' : 'splitFile'} to validate on that split`);
  }
  return from;
}

/**
 * Opens the training and validation datasets of a run: two splits, or one split divided by `valFraction`
 * (then `file` is the split to save as `<out>/split.json`), or the lists of an existing split file.
 * @example const { train, val, file } = openTrainVal({ dataset: 'folder', dataRoot: 'data/cats', valFraction: 0.1 })
 */
export function openTrainVal(o: TrainValOptions): { train: Dataset; val: Dataset | null; file: SplitFile | null } {
  const opts = o.datasetOptions ?? {};
  if (o.splitFile !== undefined && existsSync(o.splitFile)) {
    const file = readSplitFile(o.splitFile);
    const all = openDataset(o.dataset, o.dataRoot, { ...opts, split: file.split });
    return { train: applySplit(all, file, 'train', o.splitFile), val: applySplit(all, file, 'val', o.splitFile), file };
  }
  if (o.valFraction !== undefined) {
    const all = openDataset(o.dataset, o.dataRoot, { ...opts, split: o.split ?? 'all' });
    const { train, val, file } = splitDataset(all, { valFraction: o.valFraction, seed: o.seed });
    return { train, val, file };
  }
  const train = openDataset(o.dataset, o.dataRoot, { ...opts, split: o.split ?? 'train' });
  const valSplit = o.valSplit === undefined ? 'val' : o.valSplit;
  const val = valSplit === null ? null : openDataset(o.dataset, o.valRoot ?? o.dataRoot, { ...opts, split: valSplit });
  return { train, val, file: null };
}
