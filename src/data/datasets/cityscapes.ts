// Cityscapes fine annotations: leftImg8bit/<split>/<city>/ with gtFine/<split>/<city>/ label IDs.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../../common/errors.js';
import { CITYSCAPES_CLASSES, CITYSCAPES_COLORS } from '../../common/palette.js';
import { Dataset, type Sample } from './dataset.js';
import { requireDir } from './files.js';

/** Options of {@link openCityscapes}. */
export interface CityscapesOptions {
  /** 'train' (default), 'val' or 'test'. */
  split?: string;
  /** Which masks to read: 'labelIds' (default; *_gtFine_labelIds.png, mapped to train IDs) or 'trainIds' (*_gtFine_labelTrainIds.png from createTrainIdLabelImgs). */
  labels?: 'labelIds' | 'trainIds';
}

/**
 * cityscapesScripts' labels.py: label ID -> train ID for the 19 evaluated classes; every other ID is ignored (255).
 * Indexed by label ID 0-33.
 */
export const CITYSCAPES_TRAIN_IDS: readonly number[] = Object.freeze([
  255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8, 9, 10, 11, 12, 13, 14,
  15, 255, 255, 16, 17, 18,
]);

const IMAGE_SUFFIX = '_leftImg8bit.png';

/**
 * Opens Cityscapes at `root` (the folder holding leftImg8bit/ and gtFine/).
 * Label IDs become the 19 train IDs (road 0 ... bicycle 18); everything else is ignored as 255.
 * @example const ds = openCityscapes('/data/cityscapes', { split: 'val' })
 */
export function openCityscapes(root: string, opts: CityscapesOptions = {}): Dataset {
  const op = 'cityscapes';
  const split = opts.split ?? 'train';
  const kind = opts.labels ?? 'labelIds';
  if (kind !== 'labelIds' && kind !== 'trainIds') fail(op, `expected 'labelIds' or 'trainIds' for labels but received '${String(kind)}'`);
  const imgDir = requireDir(op, root, join('leftImg8bit', split), `the '${split}' images folder leftImg8bit/${split}/`);
  const gtDir = requireDir(op, root, join('gtFine', split), `the '${split}' annotations folder gtFine/${split}/`);
  const samples: Sample[] = [];
  const unmatched: string[] = [];
  for (const city of readdirSync(imgDir).sort()) {
    const cityDir = join(imgDir, city);
    let files: string[];
    try { files = readdirSync(cityDir).sort(); } catch { continue; }
    for (const f of files) {
      if (!f.endsWith(IMAGE_SUFFIX)) continue;
      const id = f.slice(0, -IMAGE_SUFFIX.length);
      const maskPath = join(gtDir, city, `${id}_gtFine_${kind === 'labelIds' ? 'labelIds' : 'labelTrainIds'}.png`);
      if (existsSync(maskPath)) samples.push({ id, imagePath: join(cityDir, f), maskPath });
      else unmatched.push(maskPath);
    }
  }
  if (unmatched.length) fail(op, `${unmatched.length} images in leftImg8bit/${split}/ have no mask; expected e.g. ${unmatched.slice(0, 3).join(', ')}`);
  if (!samples.length) fail(op, `found no *${IMAGE_SUFFIX} images in ${imgDir}/<city>/`);
  const lut = kind === 'labelIds'
    ? Array.from({ length: 256 }, (_, i) => CITYSCAPES_TRAIN_IDS[i] ?? 255)
    : undefined;
  return new Dataset({
    name: op, root, split, samples,
    classes: [...CITYSCAPES_CLASSES],
    colors: CITYSCAPES_COLORS.map((c) => [...c]),
    ignoreIndex: 255,
    labels: { palette: 'index', lut },
  });
}
