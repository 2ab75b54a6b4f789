// The validation set of a comparison. With valFraction or splitFile the train/val split is drawn (or read) once,
// saved as <out>/split.json before the first run and handed to every run as its splitFile: architectures trained
// in different calls (a resume) cannot end up on different files, even when files were added to the dataset since.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fail } from '../common/errors.js';
import { type Dataset, openDataset, openTrainVal, type SplitFile, writeSplitFile } from '../data/index.js';
import type { ResolvedCompare } from './options.js';

/** The comparison's train/val lists in its folder (only with valFraction or splitFile). */
export const SPLIT_FILE = 'split.json';
const OP = 'compare';

export interface ComparisonSplit {
  /** The images every architecture is validated on: the sample picture and the class list come from them. */
  val: Dataset;
  /** `<out>/split.json` when the comparison has its own split, for every run's splitFile. */
  path?: string;
  /** A split to save at `path` (a new comparison); null when there is none or it is saved already. */
  file: SplitFile | null;
}

/** Opens the comparison's validation set; with a split, resolves it once (a resumed comparison reads its own). */
export function comparisonSplit(c: ResolvedCompare): ComparisonSplit {
  const t = c.train;
  if (t.valFraction === undefined && t.splitFile === undefined) {
    return { val: openDataset(t.dataset, t.valRoot ?? t.dataRoot, { ...t.datasetOptions, split: t.valSplit ?? 'val' }), file: null };
  }
  const path = join(c.out, SPLIT_FILE);
  if (c.resume && !existsSync(path)) fail(OP, `--resume: ${path} is missing, so the runs so far cannot be matched to their validation images; start a new comparison with a new --out`);
  if (!c.resume && t.splitFile !== undefined && !existsSync(t.splitFile)) {
    fail(OP, `the split file ${t.splitFile} (--split-file) does not exist; give the split.json of a training run (train --val-fraction writes <out>/split.json) or use --val-fraction`);
  }
  // train's own helper draws it, with the seed every run gets: the same lists a lone `train --val-fraction` saves.
  const { val, file } = openTrainVal({
    dataset: t.dataset, dataRoot: t.dataRoot, split: t.split, valFraction: t.valFraction, seed: t.seed,
    datasetOptions: t.datasetOptions, splitFile: c.resume ? path : t.splitFile,
  });
  return { val: val!, path, file: c.resume ? null : file };
}

/** Saves a new comparison's split, atomically and durably (as train saves its split.json). */
export function saveComparisonSplit(s: ComparisonSplit): void {
  if (!s.path || !s.file) return;
  mkdirSync(dirname(s.path), { recursive: true });
  writeSplitFile(s.path, s.file);
}
