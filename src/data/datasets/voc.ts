// PASCAL VOC 2012 segmentation, plus the SBD-augmented train_aug set (SegmentationClassAug).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../../common/errors.js';
import { VOC_CLASSES, VOC_PALETTE } from '../../common/palette.js';
import { Dataset, type Sample } from './dataset.js';
import { firstExisting, requireDir, requireFiles } from './files.js';

/** Options of {@link openVoc}. */
export interface VocOptions {
  /** 'train' (default), 'val', 'trainval' (ImageSets/Segmentation/<split>.txt) or 'train_aug' (SegmentationClassAug). */
  split?: string;
  /**
   * A list file for the augmented set (lines `/JPEGImages/x.jpg /SegmentationClassAug/x.png` or plain ids).
   * Default for 'train_aug': the first of ImageSets/Segmentation/train_aug.txt, train_aug.txt, SegmentationClassAug/train_aug.txt.
   */
  listFile?: string;
}

/**
 * Opens PASCAL VOC 2012 at `root` (the folder holding JPEGImages/, SegmentationClass/, ImageSets/).
 * Masks are palette PNGs whose stored index is the label (read exactly, not through colours); greyscale
 * (SegmentationClassAug) and RGB masks in VOC colours also work. 21 classes; 255 (the white border) is ignored.
 * @example const ds = openVoc('/data/VOCdevkit/VOC2012', { split: 'val' })
 */
export function openVoc(root: string, opts: VocOptions = {}): Dataset {
  const op = 'voc';
  const split = opts.split ?? 'train';
  requireDir(op, root, 'JPEGImages', 'the images folder JPEGImages/');
  const aug = split === 'train_aug' || opts.listFile !== undefined;
  let samples: Sample[];
  if (aug) {
    const maskDir = requireDir(op, root, 'SegmentationClassAug', 'the SBD-augmented masks folder SegmentationClassAug/');
    const list = opts.listFile ?? firstExisting([
      join(root, 'ImageSets', 'Segmentation', 'train_aug.txt'), join(root, 'train_aug.txt'), join(maskDir, 'train_aug.txt'),
    ]);
    if (!list) fail(op, `expected a train_aug list file in ${join(root, 'ImageSets', 'Segmentation', 'train_aug.txt')}, ${join(root, 'train_aug.txt')} or ${join(maskDir, 'train_aug.txt')}; none exists. Pass listFile`);
    samples = readList(op, list).map((line) => {
      const parts = line.split(/\s+/);
      if (parts.length >= 2) {
        const id = parts[0].replace(/^.*\//, '').replace(/\.[^.]+$/, '');
        return { id, imagePath: join(root, parts[0].replace(/^\//, '')), maskPath: join(root, parts[1].replace(/^\//, '')) };
      }
      return { id: parts[0], imagePath: join(root, 'JPEGImages', `${parts[0]}.jpg`), maskPath: join(maskDir, `${parts[0]}.png`) };
    });
  } else {
    requireDir(op, root, 'SegmentationClass', 'the masks folder SegmentationClass/');
    const setDir = requireDir(op, root, join('ImageSets', 'Segmentation'), 'the split lists folder ImageSets/Segmentation/');
    const list = join(setDir, `${split}.txt`);
    const found = readdirSync(setDir).filter((f) => f.endsWith('.txt')).map((f) => f.slice(0, -4));
    if (!found.includes(split)) fail(op, `expected the split list ${list} for split '${split}' but it does not exist; found splits: ${found.map((f) => `'${f}'`).join(', ') || 'none'}`);
    samples = readList(op, list).map((id) => ({
      id, imagePath: join(root, 'JPEGImages', `${id}.jpg`), maskPath: join(root, 'SegmentationClass', `${id}.png`),
    }));
  }
  requireFiles(op, samples.flatMap((s) => [s.imagePath, s.maskPath]), `the '${split}' list`);
  return new Dataset({
    name: op, root, split, samples,
    classes: [...VOC_CLASSES],
    colors: VOC_PALETTE.slice(0, VOC_CLASSES.length).map((c) => [...c]),
    ignoreIndex: 255,
    // Palette index = label; an RGB mask maps back through the (bijective) 256-colour palette.
    labels: { palette: 'index', rgb: VOC_PALETTE.map((c) => [...c]) },
  });
}

function readList(op: string, path: string): string[] {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { fail(op, `cannot read the list file ${path}: ${(e as Error).message}`); }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (!lines.length) fail(op, `the list file ${path} is empty`);
  return lines;
}
