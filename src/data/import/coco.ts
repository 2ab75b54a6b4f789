// COCO instance annotations (instances_*.json) -> a folder dataset: one palette PNG mask per image,
// class 0 = background, categories in id order from 1, crowd regions = ignore (255).
import { existsSync, readFileSync } from 'node:fs';
import { basename, extname, isAbsolute, join } from 'node:path';
import sharp from 'sharp';
import { fail } from '../../common/errors.js';
import {
  checkCoverage, checkSize, type ConvertSummary, countPixels, DEFAULT_LIMITS, FolderWriter, IGNORE, type ImportLimits, isRecord, shown,
} from './common.js';
import { fillPolygon } from './polygon.js';
import { decodeRleString, paintRle } from './rle.js';

const OP = 'coco';

/** One image of a COCO file, with its annotations. */
export interface CocoImage {
  id: string;
  fileName: string;
  width: number;
  height: number;
  annotations: CocoAnnotation[];
}

/** One annotation: its class (1..N), crowd flag and region. */
export interface CocoAnnotation {
  id: string;
  classIndex: number;
  crowd: boolean;
  /** Polygons (flat x, y lists) or run lengths (column-major, already decoded from a string). */
  region: { polygons: number[][] } | { counts: number[] };
}

/** A checked COCO file. */
export interface CocoIndex {
  /** 'background', then the category names in id order. */
  classes: string[];
  images: CocoImage[];
}

const key = (v: unknown): string | null => (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && v !== '') ? String(v) : null;

/**
 * Checks a parsed COCO instances file and indexes it. Every problem is one PansegError naming the entry.
 * Image areas above `limits.maxPixels` are refused here, before any mask exists.
 * @param source the file name, for messages
 */
export function parseCoco(json: unknown, source = 'the annotation file', limits: ImportLimits = {}): CocoIndex {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  if (!isRecord(json)) fail(OP, `${source} is not a COCO instances file (expected a JSON object with "images", "annotations" and "categories")`);
  for (const f of ['images', 'annotations', 'categories'] as const) {
    if (!Array.isArray(json[f])) fail(OP, `${source}: expected "${f}" to be an array but received ${shown(json[f])}`);
  }
  const cats = json.categories as unknown[];
  if (cats.length > 254) fail(OP, `${source} has ${cats.length} categories; masks hold at most 254 classes besides background`);
  const catList: { id: string; num: number; name: string }[] = [];
  const seenCat = new Set<string>();
  cats.forEach((c, i) => {
    const id = isRecord(c) ? key(c.id) : null;
    if (!isRecord(c) || id === null || typeof c.name !== 'string' || !c.name) fail(OP, `${source}: categories[${i}] needs an integer "id" and a non-empty "name", got ${shown(c)}`);
    if (seenCat.has(id)) fail(OP, `${source}: category id ${id} appears twice`);
    seenCat.add(id);
    catList.push({ id, num: typeof c.id === 'number' ? c.id : Number.NaN, name: c.name });
  });
  catList.sort((a, b) => (a.num - b.num) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const classOf = new Map(catList.map((c, i) => [c.id, i + 1]));

  const images = new Map<string, CocoImage>();
  (json.images as unknown[]).forEach((im, i) => {
    const id = isRecord(im) ? key(im.id) : null;
    if (!isRecord(im) || id === null || typeof im.file_name !== 'string' || !im.file_name) fail(OP, `${source}: images[${i}] needs an "id" and a "file_name", got ${shown(im)}`);
    if (images.has(id)) fail(OP, `${source}: image id ${id} appears twice`);
    const name = im.file_name;
    if (isAbsolute(name) || name.split(/[\\/]/).includes('..')) fail(OP, `${source}: images[${i}].file_name ${shown(name)} leaves the images folder; expected a path inside it`);
    const { width, height } = checkSize(OP, `${source}: image ${id} (${name})`, im.width, im.height, lim);
    images.set(id, { id, fileName: name, width, height, annotations: [] });
  });

  const coords = new Map<string, number>();
  (json.annotations as unknown[]).forEach((a, i) => {
    const where = `${source}: annotations[${i}]`;
    if (!isRecord(a)) fail(OP, `${where} is ${shown(a)}, not an object`);
    const img = images.get(key(a.image_id) ?? '');
    if (!img) fail(OP, `${where} has image_id ${shown(a.image_id)}, which is not in "images"`);
    const classIndex = classOf.get(key(a.category_id) ?? '');
    if (classIndex === undefined) fail(OP, `${where} has category_id ${shown(a.category_id)}, which is not in "categories"`);
    if (a.iscrowd !== undefined && a.iscrowd !== 0 && a.iscrowd !== 1 && typeof a.iscrowd !== 'boolean') fail(OP, `${where} has iscrowd ${shown(a.iscrowd)}; expected 0 or 1`);
    const seg = a.segmentation;
    let region: CocoAnnotation['region'];
    if (Array.isArray(seg)) {
      let n = coords.get(img.id) ?? 0;
      for (const [j, poly] of seg.entries()) {
        if (!Array.isArray(poly) || poly.length % 2 !== 0) fail(OP, `${where}.segmentation[${j}] is ${shown(poly)}; expected a flat list [x1, y1, x2, y2, ...] of even length`);
        n += poly.length;
        if (n > lim.maxCoordinates) fail(OP, `${where}: image ${img.id} has more than ${lim.maxCoordinates} polygon coordinates; simplify its polygons`);
        for (let k = 0; k < poly.length; k++) {
          if (typeof poly[k] !== 'number' || !Number.isFinite(poly[k])) fail(OP, `${where}.segmentation[${j}][${k}] is ${shown(poly[k])}; expected a finite number`);
        }
      }
      coords.set(img.id, n);
      region = { polygons: seg as number[][] };
    } else if (isRecord(seg)) {
      const size = seg.size;
      if (!Array.isArray(size) || size[0] !== img.height || size[1] !== img.width || size.length !== 2) {
        fail(OP, `${where}: RLE "size" is ${shown(size)} but image ${img.id} is [${img.height}, ${img.width}] ([height, width])`);
      }
      let counts: number[];
      if (typeof seg.counts === 'string') {
        if (seg.counts.length > 10 * (img.width * img.height + 1)) fail(OP, `${where}: the RLE string is longer than any mask of ${img.width}x${img.height} needs`);
        counts = decodeRleString(seg.counts, `${OP}: ${where}`);
      } else if (Array.isArray(seg.counts)) {
        if (seg.counts.length > img.width * img.height + 1) fail(OP, `${where}: ${seg.counts.length} RLE counts for ${img.width * img.height} pixels`);
        counts = seg.counts as number[];
      } else fail(OP, `${where}: RLE "counts" is ${shown(seg.counts)}; expected a list of integers or a compressed string`);
      region = { counts };
    } else fail(OP, `${where} has segmentation ${shown(seg)}; expected polygons [[x1, y1, ...], ...] or RLE {"counts", "size"}`);
    img.annotations.push({ id: key(a.id) ?? String(i), classIndex, crowd: a.iscrowd === 1 || a.iscrowd === true, region });
  });
  return { classes: ['background', ...catList.map((c) => c.name)], images: [...images.values()] };
}

/**
 * Paints one annotation's region with `value` (target null: only measure) and returns its area: the RLE's
 * foreground, or the sum of its polygons' areas (overlaps between an annotation's own polygons count twice).
 */
function paint(a: CocoAnnotation, img: CocoImage, target: Uint8Array | null, value: number, lim: Required<ImportLimits>): number {
  const op = `${OP}: image ${img.id} (${img.fileName}), annotation ${a.id}`;
  if ('counts' in a.region) return paintRle(a.region.counts, img.height, img.width, target, value, op);
  let n = 0;
  for (const poly of a.region.polygons) n += fillPolygon(poly, img.height, img.width, target, value, op, lim);
  return n;
}

/**
 * The class mask of one image, row-major. Painting order: crowd regions first (as ignore, 255), then the other
 * annotations from the largest area to the smallest, so a small object lying on a larger one stays visible
 * (equal areas: later in the file wins; an annotation's area is the sum of its polygons'). Polygons of one annotation are united; each is filled by the even-odd rule
 * at pixel centres.
 * @param skipped counts annotations skipped, by reason
 */
export function cocoMask(img: CocoImage, limits: ImportLimits = {}, stats: Pick<ConvertSummary, 'painted' | 'ignored' | 'skipped'> = { painted: 0, ignored: 0, skipped: {} }): Uint8Array {
  const skipped = stats.skipped;
  const lim = { ...DEFAULT_LIMITS, ...limits };
  const n = img.width * img.height;
  if (n > lim.maxPixels) fail(OP, `image ${img.id} is ${img.width}x${img.height}, above the limit of ${lim.maxPixels} pixels`);
  const areas = img.annotations.map((a) => {
    if ('polygons' in a.region && !a.region.polygons.some((p) => p.length >= 6)) {
      skipped['polygon with fewer than 3 points'] = (skipped['polygon with fewer than 3 points'] ?? 0) + 1;
      return -1;
    }
    return paint(a, img, null, 1, lim);
  });
  checkCoverage(OP, `image ${img.id} (${img.fileName})`, areas.reduce((s, x) => s + Math.max(0, x), 0), n, lim);
  const mask = new Uint8Array(n);
  const order = img.annotations.map((a, i) => i).filter((i) => areas[i] >= 0)
    .sort((i, j) => Number(img.annotations[j].crowd) - Number(img.annotations[i].crowd) || areas[j] - areas[i] || i - j);
  for (const i of order) {
    const a = img.annotations[i];
    paint(a, img, mask, a.crowd ? IGNORE : a.classIndex, lim);
    if (a.crowd) stats.ignored++;
    else stats.painted++;
  }
  return mask;
}

/** Options of {@link convertCoco}. */
export interface CocoConvertOptions extends ImportLimits {
  /** instances_*.json */
  annotations: string;
  /** The folder the file_names are relative to. */
  images: string;
  /** The new folder dataset. */
  out: string;
  /** Called after each image. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Converts COCO instance annotations (polygons, RLE lists and compressed RLE strings) into a folder dataset:
 * `out/images/` (copies), `out/masks/<stem>.png` (palette PNGs: 0 background, 1..N the categories in id order,
 * 255 crowd = ignore) and `out/classes.json`. Images without annotations get an all-background mask.
 * @example await convertCoco({ annotations: 'annotations/instances_val2017.json', images: 'val2017', out: 'data/coco-val' })
 */
export async function convertCoco(o: CocoConvertOptions): Promise<ConvertSummary> {
  let text: string;
  try { text = readFileSync(o.annotations, 'utf8'); } catch (e) { fail(OP, `cannot read ${o.annotations}: ${(e as Error).message}`); }
  let json: unknown;
  try { json = JSON.parse(text); } catch (e) { fail(OP, `${o.annotations} is not valid JSON: ${(e as Error).message}`); }
  const index = parseCoco(json, o.annotations, o);
  const stems = new Map<string, string>();
  const missing: string[] = [];
  for (const img of index.images) {
    const stem = basename(img.fileName, extname(img.fileName));
    const other = stems.get(stem);
    if (other) fail(OP, `images ${other} and ${img.fileName} share the name ${stem}; a folder dataset matches masks by file stem, so rename one`);
    stems.set(stem, img.fileName);
    if (!existsSync(join(o.images, img.fileName))) missing.push(img.fileName);
  }
  if (missing.length) fail(OP, `${missing.length} of the ${index.images.length} images in ${o.annotations} are not in ${o.images}, e.g. ${missing.slice(0, 3).join(', ')}; check --images`);
  const writer = new FolderWriter(OP, o.out);
  const summary: ConvertSummary = { out: o.out, images: 0, classes: index.classes, painted: 0, ignored: 0, skipped: {}, pixels: new Array(index.classes.length + 1).fill(0) };
  for (const img of index.images) {
    const src = join(o.images, img.fileName);
    const meta = await sharp(src).metadata().catch((e: Error) => fail(OP, `cannot read image ${src}: ${e.message}`));
    const turned = (meta.orientation ?? 1) >= 5;
    const [w, h] = turned ? [meta.height, meta.width] : [meta.width, meta.height];
    if (w !== img.width || h !== img.height) {
      fail(OP, `image ${src} is ${w}x${h}${turned ? ' after its EXIF orientation' : ''} but ${o.annotations} gives ${img.width}x${img.height}`);
    }
    const mask = cocoMask(img, o, summary);
    const stem = basename(img.fileName, extname(img.fileName));
    writer.copyImage(src, `${stem}${extname(img.fileName)}`);
    writer.writeMask(stem, mask, img.width, img.height);
    countPixels(mask, summary.pixels);
    summary.images++;
    o.onProgress?.(summary.images, index.images.length);
  }
  writer.writeClasses(index.classes);
  return summary;
}
