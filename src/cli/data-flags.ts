// The dataset flags shared by train, eval and check-data: layout, root, split, a saved split file,
// and how mask values are read (--ignore-index, --reduce-zero-label).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { applySplit, type Dataset, type DatasetOptions, openDataset, readSplitFile, type SplitFile } from '../data/index.js';
import { type Flag, required, UsageError } from './args.js';

export const DATA_FLAGS: Flag[] = [
  { name: 'dataset', type: 'string', desc: 'dataset layout', choices: ['voc', 'camvid', 'cityscapes', 'folder'] },
  { name: 'data-root', type: 'string', desc: 'dataset folder' },
  { name: 'split', type: 'string', desc: 'split to use (folder layout: a subfolder <split>/images, a list <split>.txt, or "all" for images/; with --split-file: train or val)' },
  { name: 'split-file', type: 'string', desc: "a run's split.json (written by train --val-fraction): use its train/val file lists; --dataset and --data-root default to the file's" },
  { name: 'ignore-index', type: 'int', desc: 'mask value to ignore in loss and metrics, not a class (default: 255; folder: classes.json "ignore_index")' },
  { name: 'reduce-zero-label', type: 'boolean', desc: "ADE20K's convention (mmseg's reduce_zero_label): mask value 0 is ignored and the others shift down by one" },
];

/** train and compare: a validation share of one split. */
export const VAL_FRACTION_FLAG: Flag = {
  name: 'val-fraction', type: 'number',
  desc: 'validate on this seeded share of --split (default all) instead of --val-split, e.g. 0.1; the file lists are saved as <out>/split.json',
};

/** The label options of the dataset flags. */
export function datasetOptionsFromFlags(o: Record<string, unknown>): DatasetOptions {
  const out: DatasetOptions = {};
  if (o.ignoreIndex !== undefined) {
    const n = o.ignoreIndex as number;
    if (n < 0 || n > 255) throw new UsageError(`--ignore-index expects a mask value from 0 to 255, got ${n}`);
    out.ignoreIndex = n;
  }
  if (o.reduceZeroLabel) out.reduceZeroLabel = true;
  return out;
}

/** The split file named by --split-file (checked), or null. */
export function splitFileFromFlags(o: Record<string, unknown>): { path: string; file: SplitFile } | null {
  if (o.splitFile === undefined) return null;
  const path = String(o.splitFile);
  return { path, file: readSplitFile(path) };
}

/** The data fields of a training recipe: --dataset/--data-root (from --split-file when it is given), split, label options. */
export function trainDataFromFlags(o: Record<string, unknown>, cmd: string) {
  const sf = splitFileFromFlags(o);
  const valFraction = o.valFraction as number | undefined;
  if (valFraction !== undefined && !(valFraction > 0 && valFraction < 1)) throw new UsageError(`--val-fraction expects a number between 0 and 1, e.g. 0.1, got ${valFraction}`);
  if (sf && valFraction !== undefined) throw new UsageError('--split-file already holds a train/val split; drop --val-fraction');
  return {
    dataset: sf && o.dataset === undefined ? sf.file.dataset : required<string>(o, 'dataset', 'dataset', cmd),
    dataRoot: sf && o.dataRoot === undefined ? sf.file.root : required<string>(o, 'dataRoot', 'data-root', cmd),
    split: o.split as string | undefined,
    valFraction,
    splitFile: sf?.path,
    datasetOptions: datasetOptionsFromFlags(o),
  };
}

/**
 * The split.json of the run a model directory belongs to (`RUN/split.json` for `RUN`, `RUN/checkpoints/best`, ...), or null.
 */
export function runSplitFile(model: string | undefined): string | null {
  if (!model) return null;
  let dir = resolve(model);
  for (let i = 0; i < 3; i++, dir = dirname(dir)) {
    const p = join(dir, 'split.json');
    if (existsSync(p)) return p;
  }
  return null;
}

/**
 * Opens the dataset the flags name, for eval and check-data. With --split-file (or, when neither --split-file nor
 * --dataset is given, the split.json of the run `--model` belongs to), takes its `--split` list (default `defaultSplit`).
 * @param say receives the line that tells which split file was used
 */
export function openDatasetFromFlags(o: Record<string, unknown>, cmd: string, defaultSplit: string, say: (m: string) => void = console.error, extra: DatasetOptions = {}): Dataset {
  const opts = { ...extra, ...datasetOptionsFromFlags(o) };
  let path = o.splitFile as string | undefined;
  if (path === undefined && o.dataset === undefined && o.dataRoot === undefined) {
    const found = runSplitFile(o.model as string | undefined);
    if (found) {
      path = found;
      say(`${cmd}: using the '${String(o.split ?? defaultSplit)}' files of ${found} (pass --dataset and --data-root to evaluate something else)`);
    }
  }
  if (path !== undefined) {
    const file = readSplitFile(path);
    const which = String(o.split ?? defaultSplit);
    if (which !== 'train' && which !== 'val') throw new UsageError(`with a split file, --split is 'train' or 'val', got '${which}'`);
    const dataset = (o.dataset as string | undefined) ?? file.dataset;
    const root = (o.dataRoot as string | undefined) ?? file.root;
    return applySplit(openDataset(dataset, root, { ...opts, split: file.split }), file, which, path);
  }
  const dataset = required<string>(o, 'dataset', 'dataset', cmd);
  const root = required<string>(o, 'dataRoot', 'data-root', cmd);
  return openDataset(dataset, root, { ...opts, split: (o.split as string | undefined) ?? defaultSplit });
}
