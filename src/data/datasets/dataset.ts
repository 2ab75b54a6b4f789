// The Dataset every layout produces: plain, serializable data (so worker threads can rebuild it)
// plus the label mapping and sample loading shared by all of them.
import sharp from 'sharp';
import { PansegError, fail } from '../../common/errors.js';
import type { RGB } from '../../common/palette.js';
import { MaskValueError, type RawMask, type RgbImage, decodeImage, decodeMask, rgbToIndex } from '../decode.js';

/** One image and its mask. */
export interface Sample {
  /** A name unique within the dataset, e.g. the file stem. */
  id: string;
  imagePath: string;
  maskPath: string;
}

/** How stored mask values become class indices. Plain data so it crosses to worker threads. */
export interface LabelSpec {
  /**
   * What an indexed (palette) PNG's pixel means: 'index' takes the stored palette index as the raw value
   * (VOC's convention); 'color' takes the palette colour and looks it up in `rgb`.
   */
  palette: 'index' | 'color';
  /** Raw value -> class index (256 entries; the ignore index for void). Absent: identity. */
  lut?: number[];
  /**
   * Colour of each raw value, for RGB masks (a sparse array is fine). Absent: RGB masks are refused
   * unless they are grey (R = G = B), whose level is then the raw value.
   */
  rgb?: (RGB | undefined)[];
}

/** Everything that defines a dataset. JSON-serializable. */
export interface DatasetSpec {
  /** The layout's name: 'voc', 'camvid', 'cityscapes', 'folder'. Prefixes every error message. */
  name: string;
  root: string;
  split: string;
  samples: Sample[];
  classes: string[];
  /** One colour per class, for drawing. */
  colors: RGB[];
  /** The label of pixels that count for nothing (loss and metrics skip them). 255 for the built-in layouts. */
  ignoreIndex: number;
  labels: LabelSpec;
  /** Files that have no partner, listed instead of refused when the layout was opened with `allowUnmatched` (check-data). */
  unmatched?: { images: string[]; masks: string[] };
}

/** How to read stored mask values, for any layout (applied by openDataset). */
export interface LabelOptions {
  /**
   * The stored value that marks pixels to ignore, 0-255 but not a class index. Default: the layout's
   * (255; the folder layout's classes.json `ignore_index`).
   */
  ignoreIndex?: number;
  /** ADE20K's convention (mmseg's `reduce_zero_label`): stored 0 is ignored and every other value moves down by one. */
  reduceZeroLabel?: boolean;
}

/** A decoded sample: RGB image and class-index mask of the same size. */
export interface LoadedSample {
  id: string;
  image: RgbImage;
  /** One class index (or the ignore index) per pixel, row-major. */
  mask: Uint8Array;
  width: number;
  height: number;
}

/**
 * A list of image/mask pairs with its classes, colours, ignore index and label mapping.
 * Make one with {@link openDataset} (or a layout's own `open*`); rebuild one from `toJSON()` with `new Dataset(spec)`.
 */
export class Dataset {
  constructor(readonly spec: DatasetSpec) {}

  get name(): string { return this.spec.name; }
  get root(): string { return this.spec.root; }
  get split(): string { return this.spec.split; }
  get samples(): readonly Sample[] { return this.spec.samples; }
  get classes(): readonly string[] { return this.spec.classes; }
  get colors(): readonly RGB[] { return this.spec.colors; }
  get ignoreIndex(): number { return this.spec.ignoreIndex; }
  get numClasses(): number { return this.spec.classes.length; }
  get length(): number { return this.spec.samples.length; }

  /**
   * The label-mapping function: turns a decoded mask's stored values into class indices and checks them.
   * @throws when a colour is not a class colour, or values fall outside the classes and are not the ignore index;
   *   the message names the file and the values.
   */
  mapLabels(raw: RawMask, path: string): Uint8Array {
    const { name, labels, ignoreIndex } = this.spec;
    let values: Uint8Array | Uint16Array;
    if (raw.kind === 'rgb') {
      if (labels.rgb) values = rgbToIndex(raw, labels.rgb, path);
      else {
        const grey = greyOf(raw);
        if (!grey) throw new Error(`mask ${path} is a colour image, but ${name} masks hold one class index per pixel (greyscale or palette PNG)`);
        values = grey;
      }
    } else if (raw.palette && labels.palette === 'color') {
      if (!labels.rgb) throw new Error(`mask ${path} is a palette PNG, but ${name} has no class colours to read it by`);
      values = rgbToIndex({ data: expand(raw.data, raw.palette), width: raw.width, height: raw.height }, labels.rgb, path);
    } else values = raw.data;

    const lut = labels.lut;
    const k = this.numClasses;
    const out = new Uint8Array(values.length);
    const bad = new Set<number>();
    for (let i = 0; i < values.length; i++) {
      const r = values[i];
      const v = lut && r < 256 ? lut[r] : r;
      if (v >= k && v !== ignoreIndex) {
        if (bad.size < 16) bad.add(r);
        continue;
      }
      out[i] = v;
    }
    if (bad.size) {
      const list = [...bad].sort((a, b) => a - b).join(', ');
      throw new MaskValueError(`mask ${path} has label values ${list} outside the ${k} classes (0-${k - 1}) that are not the ignore index ${ignoreIndex}${jpegHint(path)}`);
    }
    return out;
  }

  /** Decodes sample `i`'s image (8-bit RGB). */
  loadImage(i: number): Promise<RgbImage> {
    return decodeImage(this.sample(i).imagePath).catch((e) => rethrow(e, this.sample(i).imagePath));
  }

  /** Decodes and maps sample `i`'s mask to class indices. */
  async loadMask(i: number): Promise<{ data: Uint8Array; width: number; height: number }> {
    const path = this.sample(i).maskPath;
    const raw = await decodeMask(path).catch((e) => rethrow(e, path));
    return { data: this.mapLabels(raw, path), width: raw.width, height: raw.height };
  }

  /**
   * Decodes sample `i`: image and mapped mask.
   * @throws a PansegError (`<name>: ...`) naming the file for an unreadable file, a size mismatch (both paths) or bad label values
   */
  async load(i: number): Promise<LoadedSample> {
    const s = this.sample(i);
    try {
      const [image, mask] = await Promise.all([this.loadImage(i), this.loadMask(i)]);
      if (image.width !== mask.width || image.height !== mask.height) {
        const turned = image.width === mask.height && image.height === mask.width && (await exifOrientation(s.imagePath)) >= 5
          ? '; the image is turned by its EXIF orientation, so the mask was drawn on the unrotated pixels: rotate the mask to match, or re-save the image without the orientation tag'
          : '';
        throw new Error(`image ${s.imagePath} is ${image.width}x${image.height} but its mask ${s.maskPath} is ${mask.width}x${mask.height}${turned}`);
      }
      return { id: s.id, image, mask: mask.data, width: image.width, height: image.height };
    } catch (e) {
      if (e instanceof MaskValueError && !e.message.startsWith(`${this.name}: `)) throw new MaskValueError(`${this.name}: ${e.message}`);
      if (e instanceof PansegError) throw e;
      fail(this.name, (e as Error).message);
    }
  }

  /**
   * A dataset of some of these samples, in the given order (e.g. one side of a train/val split).
   * @param indices sample positions in this dataset
   * @param split the new split's name, e.g. 'val'
   */
  subset(indices: readonly number[], split: string): Dataset {
    const samples = indices.map((i) => this.sample(i));
    return new Dataset({ ...this.spec, split, samples });
  }

  /**
   * Decodes every sample and collects the problems (unreadable files, size mismatches, bad labels) instead of throwing.
   * @param limit stop after this many problems (default all)
   */
  async check(limit = Infinity): Promise<{ id: string; message: string }[]> {
    const problems: { id: string; message: string }[] = [];
    for (let i = 0; i < this.length && problems.length < limit; i++) {
      try { await this.load(i); } catch (e) { problems.push({ id: this.samples[i].id, message: (e as Error).message }); }
    }
    return problems;
  }

  /** The plain-data spec, e.g. to send to a worker thread. */
  toJSON(): DatasetSpec { return this.spec; }

  private sample(i: number): Sample {
    const s = this.spec.samples[i];
    if (!s) throw new RangeError(`${this.spec.name}: sample index ${i} is outside [0, ${this.length - 1}]`);
    return s;
  }
}

function rethrow(e: unknown, path: string): never {
  const msg = (e as Error).message ?? String(e);
  throw new Error(msg.includes(path) ? msg : `cannot read ${path}: ${msg}`);
}

async function exifOrientation(path: string): Promise<number> {
  try { return (await sharp(path).metadata()).orientation ?? 1; } catch { return 1; }
}

// JPEG's lossy compression turns a 0/255 edge into 1..254: the usual cause of stray mask values.
function jpegHint(path: string): string {
  return /\.jpe?g$/i.test(path) ? '; JPEG compression alters mask values at edges: save masks as PNG' : '';
}

function greyOf(img: RgbImage): Uint8Array | null {
  const n = img.width * img.height;
  const d = img.data;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const r = d[3 * i];
    if (r !== d[3 * i + 1] || r !== d[3 * i + 2]) return null;
    out[i] = r;
  }
  return out;
}

function expand(idx: Uint8Array | Uint16Array, palette: readonly RGB[]): Uint8Array {
  const out = new Uint8Array(idx.length * 3);
  for (let i = 0; i < idx.length; i++) {
    const c = palette[idx[i]] ?? [0, 0, 0];
    out[3 * i] = c[0];
    out[3 * i + 1] = c[1];
    out[3 * i + 2] = c[2];
  }
  return out;
}
