// A dataset health report: counts, image sizes, stored mask values, class shares, unmatched and unreadable
// files. Every sample goes through the same decode and label checks as training, so what passes here loads there.
import { decodeMask } from '../decode.js';
import type { Dataset } from './dataset.js';

/** The result of {@link inspectDataset}. JSON-serializable. */
export interface DatasetReport {
  dataset: string;
  root: string;
  split: string;
  samples: number;
  classes: string[];
  ignoreIndex: number;
  /** Decoded image sizes (after EXIF orientation): extremes and the most common `WxH`, most frequent first (at most 10). */
  sizes: { minWidth: number; minHeight: number; maxWidth: number; maxHeight: number; common: { size: string; count: number }[]; distinct: number };
  /** Stored mask values (a grey level or palette index; `r,g,b` for colour masks) -> pixels, at most 64 entries. */
  maskValues: Record<string, number>;
  /** Pixels per class after label mapping, and their share of all labelled pixels (ignored pixels excluded). */
  classPixels: number[];
  classShare: number[];
  ignoredPixels: number;
  /** Classes with no pixel at all. */
  absentClasses: string[];
  /** Found only when the layout lists them (folder). */
  imagesWithoutMasks: string[];
  masksWithoutImages: string[];
  /** Unreadable files, size mismatches, values outside the classes: one line each, naming the file. */
  problems: { id: string; message: string }[];
}

/** Options of {@link inspectDataset}. */
export interface InspectOptions {
  /** Called after each sample with the number done. */
  onProgress?: (done: number) => void;
  /** Samples decoded at once (sharp decodes on its own threads). Default 4. */
  concurrency?: number;
}

/**
 * Decodes every sample of `ds` and reports on it; problems are collected, not thrown.
 * @example const r = await inspectDataset(openDataset('folder', 'data/cats', { split: 'all', allowUnmatched: true }))
 */
export async function inspectDataset(ds: Dataset, opts: InspectOptions = {}): Promise<DatasetReport> {
  const k = ds.numClasses;
  const sizes = new Map<string, number>();
  const values = new Map<string, number>();
  const classPixels = new Array<number>(k).fill(0);
  let ignored = 0;
  const problems: { id: string; message: string }[] = [];
  let [minW, minH, maxW, maxH] = [Infinity, Infinity, 0, 0];
  let done = 0;

  const one = async (i: number): Promise<void> => {
    const s = ds.samples[i];
    try {
      const [image, raw] = await Promise.all([
        ds.loadImage(i),
        decodeMask(s.maskPath).catch((e: Error) => { throw new Error(e.message.includes(s.maskPath) ? e.message : `cannot read ${s.maskPath}: ${e.message}`); }),
      ]);
      const key = `${image.width}x${image.height}`;
      sizes.set(key, (sizes.get(key) ?? 0) + 1);
      [minW, minH, maxW, maxH] = [Math.min(minW, image.width), Math.min(minH, image.height), Math.max(maxW, image.width), Math.max(maxH, image.height)];
      countValues(raw, values);
      const mask = ds.mapLabels(raw, s.maskPath);
      if (image.width !== raw.width || image.height !== raw.height) {
        throw new Error(`image ${s.imagePath} is ${image.width}x${image.height} but its mask ${s.maskPath} is ${raw.width}x${raw.height}`);
      }
      for (let p = 0; p < mask.length; p++) {
        const v = mask[p];
        if (v < k) classPixels[v]++;
        else ignored++;
      }
    } catch (e) {
      const msg = (e as Error).message ?? String(e);
      problems.push({ id: s.id, message: msg.startsWith(`${ds.name}: `) ? msg : `${ds.name}: ${msg}` });
    }
    opts.onProgress?.(++done);
  };

  let next = 0;
  const lanes = Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, async () => {
    while (next < ds.length) await one(next++);
  });
  await Promise.all(lanes);
  problems.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  const labelled = classPixels.reduce((a, b) => a + b, 0);
  const common = [...sizes].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 10).map(([size, count]) => ({ size, count }));
  const sortedValues = [...values].sort((a, b) => numKey(a[0]) - numKey(b[0]) || (a[0] < b[0] ? -1 : 1));
  return {
    dataset: ds.name, root: ds.root, split: ds.split, samples: ds.length, classes: [...ds.classes], ignoreIndex: ds.ignoreIndex,
    sizes: sizes.size
      ? { minWidth: minW, minHeight: minH, maxWidth: maxW, maxHeight: maxH, common, distinct: sizes.size }
      : { minWidth: 0, minHeight: 0, maxWidth: 0, maxHeight: 0, common: [], distinct: 0 },
    maskValues: Object.fromEntries(sortedValues),
    classPixels,
    classShare: classPixels.map((n) => (labelled ? n / labelled : 0)),
    ignoredPixels: ignored,
    absentClasses: ds.classes.filter((_, c) => classPixels[c] === 0),
    imagesWithoutMasks: ds.spec.unmatched?.images ?? [],
    masksWithoutImages: ds.spec.unmatched?.masks ?? [],
    problems,
  };
}

function numKey(s: string): number {
  const n = Number(s);
  return Number.isNaN(n) ? Infinity : n;
}

const MAX_VALUES = 64;

function countValues(raw: Awaited<ReturnType<typeof decodeMask>>, into: Map<string, number>): void {
  const local = new Map<number, number>();
  if (raw.kind === 'index') {
    const d = raw.data;
    for (let i = 0; i < d.length; i++) local.set(d[i], (local.get(d[i]) ?? 0) + 1);
    for (const [v, n] of local) add(into, String(v), n);
  } else {
    const d = raw.data;
    for (let i = 0; i < d.length; i += 3) {
      const key = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
      local.set(key, (local.get(key) ?? 0) + 1);
      if (local.size > 4 * MAX_VALUES) break; // a photo saved as a mask: enough to show that
    }
    // Grey colours read as their level (as the label mapping does), others as r,g,b.
    for (const [v, n] of local) {
      const [r, g, b] = [v >> 16, (v >> 8) & 255, v & 255];
      add(into, r === g && g === b ? String(r) : `${r},${g},${b}`, n);
    }
  }
}

function add(into: Map<string, number>, key: string, n: number): void {
  if (into.has(key) || into.size < MAX_VALUES) into.set(key, (into.get(key) ?? 0) + n);
}
