// A plain folder of your own data: images/ and masks/ matched by file stem, classes in classes.json.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, fail } from '../../common/errors.js';
import { type RGB, vocPalette } from '../../common/palette.js';
import { readGreyPng, readIndexedPng } from '../png.js';
import { Dataset, type LabelOptions, type Sample } from './dataset.js';
import { contents, imagesByStem, requireDir } from './files.js';

/** Options of {@link openFolder}. */
export interface FolderOptions extends LabelOptions {
  /**
   * A split name. Looked up as `<root>/<split>/images` first, then as a list of stems in `<root>/<split>.txt`
   * over `<root>/images`. Default, and 'all' when neither exists: all of `<root>/images`.
   */
  split?: string;
  /** Receives notes on how masks are read (e.g. 0/255 masks taken as background/foreground). Default: console.error, once per note. */
  onInfo?: (message: string) => void;
  /** List images without a mask and masks without an image in `spec.unmatched` instead of failing (check-data). */
  allowUnmatched?: boolean;
}

/** The contents of classes.json. */
export interface ClassesFile {
  classes: string[];
  /** One [r, g, b] per class. Given: RGB masks map through them. Default: the VOC palette (for drawing only). */
  colors?: RGB[];
  /** Default 255. */
  ignore_index?: number;
  /** A colour that marks ignored pixels in RGB masks, e.g. [255, 255, 255]. */
  ignore_color?: RGB;
}

/**
 * Opens a folder dataset:
 * ```
 * root/classes.json        {"classes": ["bg", "cat"], "colors": [[0,0,0],[255,0,0]], "ignore_index": 255}
 *                          (also found in root/<split>/ or, for a per-split root, one level up)
 * root/images/a.jpg        (or root/<split>/images/, or root/<split>.txt listing stems)
 * root/masks/a.png         same stem; greyscale index PNG, palette PNG, or RGB PNG in the class colours
 * ```
 * Greyscale masks store class indices; palette PNGs their palette index unless `colors` is given, in which case
 * (as with RGB masks) the colour is looked up and an unknown colour is an error naming file and colour.
 * @example const ds = openFolder('data/shapes', { split: 'train' })
 */
export function openFolder(root: string, opts: FolderOptions = {}): Dataset {
  const op = 'folder';
  const split = opts.split;
  let base = root;
  let stems: string[] | null = null;
  if (split !== undefined) {
    const listFile = join(root, `${split}.txt`);
    if (existsSync(join(root, split, 'images'))) base = join(root, split);
    else if (split === 'all' && !existsSync(listFile)) { /* every image of <root>/images */ }
    else if (existsSync(listFile)) stems = readFileSync(listFile, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    else fail(op, `expected the '${split}' split as ${join(root, split, 'images')}/ or as a list ${listFile}; neither exists. ${root} contains: ${contents(root)}. For a flat images/ + masks/ folder use --split all (and --val-fraction for a validation share)`);
  }
  const images = imagesByStem(requireDir(op, base, 'images', 'the images folder images/'));
  const masks = imagesByStem(requireDir(op, base, 'masks', 'the masks folder masks/'));
  const cls = readClasses(op, firstClassesFile(base, root));

  const wanted = stems ?? [...images.keys()];
  const samples: Sample[] = [];
  const noImage: string[] = [];
  const noMask: string[] = [];
  for (const stem of wanted) {
    const imagePath = images.get(stem);
    const maskPath = masks.get(stem);
    if (!imagePath) noImage.push(stem);
    else if (!maskPath) noMask.push(imagePath);
    else samples.push({ id: stem, imagePath, maskPath });
  }
  const unmatched = opts.allowUnmatched
    ? { images: noMask, masks: [...masks].filter(([stem]) => !images.has(stem)).map(([, p]) => p) }
    : undefined;
  if (noImage.length) fail(op, `${noImage.length} stems listed in ${join(root, `${split}.txt`)} have no image in ${join(base, 'images')}, e.g. ${noImage.slice(0, 3).join(', ')}`);
  if (noMask.length && !opts.allowUnmatched) fail(op, `${noMask.length} images have no mask with the same stem in ${join(base, 'masks')}, e.g. ${noMask.slice(0, 3).join(', ')}`);
  if (!samples.length) fail(op, `found no images in ${join(base, 'images')}`);

  const ignore = cls.ignore_index ?? 255;
  let rgb: (RGB | undefined)[] | undefined;
  if (cls.colors) {
    rgb = [...cls.colors];
    if (cls.ignore_color) rgb[ignore] = cls.ignore_color;
  }
  // Two classes, 255 not declared as ignore anywhere: masks holding only 0 and 255 are binary masks, not "all ignored".
  let lut: number[] | undefined;
  const undeclared = cls.ignore_index === undefined && opts.ignoreIndex === undefined && !opts.reduceZeroLabel && !cls.colors;
  if (undeclared && cls.classes.length === 2 && isZeroAnd255(samples.map((s) => s.maskPath))) {
    lut = Array.from({ length: 256 }, (_, i) => (i === 255 ? 1 : i));
    say(opts.onInfo, `folder: the masks in ${join(base, 'masks')} hold only 0 and 255, so they are read as ${cls.classes[0]} (0) and ${cls.classes[1]} (255), not as ignored pixels; set "ignore_index": 255 in classes.json to keep 255 as ignore`);
  }
  return new Dataset({
    name: op, root, split: split ?? 'all', samples,
    classes: cls.classes,
    colors: cls.colors ?? vocPalette(cls.classes.length),
    ignoreIndex: ignore,
    labels: { palette: cls.colors ? 'color' : 'index', rgb, lut },
    ...(unmatched ? { unmatched } : {}),
  });
}

const said = new Set<string>();
function say(onInfo: ((m: string) => void) | undefined, message: string): void {
  if (onInfo) return onInfo(message);
  if (said.has(message)) return;
  said.add(message);
  console.error(message);
}

/**
 * Whether the masks are 0/255 binary masks: reads up to 24 of them spread over the list (8-bit PNGs, greyscale,
 * palette or grey RGB, with the project's own synchronous readers; other files are not sampled) and checks that their values are
 * only 0 and 255, with 255 present. A few milliseconds per mask. Every mask is still checked as it loads:
 * values other than 0, 1 and 255 stop the loader with the file named.
 */
function isZeroAnd255(paths: string[]): boolean {
  const n = paths.length;
  const picks = n <= 24 ? paths : Array.from({ length: 24 }, (_, i) => paths[Math.floor((i * n) / 24)]);
  let seen255 = false;
  for (const p of picks) {
    let d: Uint8Array;
    try {
      const buf = readFileSync(p);
      const png = readIndexedPng(buf);
      const grey = png ? null : readGreyPng(buf);
      if (!png && !grey) continue;
      d = png ? png.indices : grey!.grey;
    } catch { continue; }
    for (let i = 0; i < d.length; i++) {
      const x = d[i];
      if (x === 255) seen255 = true;
      else if (x !== 0) return false;
    }
  }
  return seen255;
}

// classes.json next to images/, else in the root, else one level up (so a per-split folder opens on its own).
function firstClassesFile(base: string, root: string): string {
  const candidates = [...new Set([join(base, 'classes.json'), join(root, 'classes.json'), join(dirname(root), 'classes.json')])];
  return candidates.find((p) => existsSync(p)) ?? candidates[0];
}

function isRgb(c: unknown): c is RGB {
  return Array.isArray(c) && c.length === 3 && c.every((x) => Number.isInteger(x) && x >= 0 && x <= 255);
}

/** Reads and checks classes.json; every problem is named with the file. */
export function readClasses(op: string, path: string): ClassesFile {
  if (!existsSync(path)) fail(op, `expected ${path} listing the classes, e.g. {"classes": ["background", "cat"]}, but it does not exist`);
  let j: ClassesFile;
  try { j = JSON.parse(readFileSync(path, 'utf8')); } catch (e) { fail(op, `cannot parse ${path}: ${(e as Error).message}`); }
  if (!j || !Array.isArray(j.classes) || !j.classes.length || !j.classes.every((c) => typeof c === 'string')) {
    fail(op, `expected "classes" in ${path} to be a non-empty array of strings but received ${describe(j?.classes)}`);
  }
  if (j.classes.length > 255) fail(op, `${path} lists ${j.classes.length} classes; at most 255 fit 8-bit masks`);
  if (j.colors !== undefined && (!Array.isArray(j.colors) || j.colors.length !== j.classes.length || !j.colors.every(isRgb))) {
    fail(op, `expected "colors" in ${path} to be ${j.classes.length} [r, g, b] triples of integers 0-255, one per class, but received ${describe(j.colors)}`);
  }
  const ig = j.ignore_index;
  if (ig !== undefined && (!Number.isInteger(ig) || ig < j.classes.length || ig > 255)) {
    fail(op, `expected "ignore_index" in ${path} to be an integer in [${j.classes.length}, 255] (not a class index) but received ${describe(ig)}`);
  }
  if (j.ignore_color !== undefined && !isRgb(j.ignore_color)) fail(op, `expected "ignore_color" in ${path} to be [r, g, b] but received ${describe(j.ignore_color)}`);
  return j;
}
