// labelme JSON (one file per image: shapes with a label and points) -> a folder dataset.
// Shapes are painted in file order, so a later shape covers an earlier one, as in labelme's own converters.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import sharp from 'sharp';
import { fail } from '../../common/errors.js';
import {
  checkCoverage, checkSize, type ConvertSummary, countPixels, DEFAULT_LIMITS, FolderWriter, IGNORE, type ImportLimits, isRecord, shown,
} from './common.js';
import { fillCircle, fillPolygon } from './polygon.js';

const OP = 'labelme';

/** Labels that mean "ignore" and "background", as in labelme's labels.txt convention. */
const IGNORE_LABELS = new Set(['__ignore__']);
const BACKGROUND_LABELS = new Set(['_background_', 'background']);

/** One shape of a labelme file. */
export interface LabelmeShape {
  label: string;
  type: string;
  points: [number, number][];
}

/** A checked labelme file. */
export interface LabelmeFile {
  width: number;
  height: number;
  imagePath: string | null;
  /** Base64 image bytes, when embedded. */
  imageData: string | null;
  shapes: LabelmeShape[];
}

/**
 * Checks a parsed labelme JSON. Image areas above `limits.maxPixels` are refused before any mask exists.
 * @param source the file name, for messages
 */
export function parseLabelme(json: unknown, source = 'the labelme file', limits: ImportLimits = {}): LabelmeFile {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  if (!isRecord(json) || !Array.isArray(json.shapes)) fail(OP, `${source} is not a labelme file (expected a JSON object with "shapes", "imageWidth", "imageHeight")`);
  const { width, height } = checkSize(OP, source, json.imageWidth, json.imageHeight, lim);
  if (json.imagePath !== undefined && json.imagePath !== null && typeof json.imagePath !== 'string') fail(OP, `${source}: "imagePath" is ${shown(json.imagePath)}; expected a file name`);
  if (json.imageData !== undefined && json.imageData !== null && typeof json.imageData !== 'string') fail(OP, `${source}: "imageData" is ${shown(json.imageData)}; expected base64 text or null`);
  let coords = 0;
  const shapes = json.shapes.map((s, i): LabelmeShape => {
    const where = `${source}: shapes[${i}]`;
    if (!isRecord(s) || typeof s.label !== 'string' || !s.label) fail(OP, `${where} needs a non-empty "label", got ${shown(s)}`);
    const type = s.shape_type ?? 'polygon';
    if (typeof type !== 'string') fail(OP, `${where} has shape_type ${shown(type)}; expected a string such as "polygon"`);
    if (!Array.isArray(s.points)) fail(OP, `${where} has points ${shown(s.points)}; expected [[x, y], ...]`);
    coords += 2 * s.points.length;
    if (coords > lim.maxCoordinates) fail(OP, `${source} has more than ${lim.maxCoordinates} point coordinates; simplify its shapes`);
    const points = s.points.map((p, k): [number, number] => {
      if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => typeof x === 'number' && Number.isFinite(x))) fail(OP, `${where}.points[${k}] is ${shown(p)}; expected [x, y] finite numbers`);
      return [p[0] as number, p[1] as number];
    });
    return { label: s.label, type, points };
  });
  return { width, height, imagePath: (json.imagePath as string | null | undefined) ?? null, imageData: (json.imageData as string | null | undefined) ?? null, shapes };
}

/** Whether a label marks ignored pixels or background. */
export function labelRole(label: string): 'ignore' | 'background' | 'class' {
  return IGNORE_LABELS.has(label) ? 'ignore' : BACKGROUND_LABELS.has(label) ? 'background' : 'class';
}

/**
 * The class mask of one labelme file, row-major: shapes in file order (later covers earlier); polygon and
 * rectangle by the even-odd rule at pixel centres, circle (centre, then a point on the circle) by centre distance.
 * Lines and points have no area and are skipped (counted in `stats.skipped`).
 * @param classIndex label -> class index (background and ignore labels are handled here)
 */
export function labelmeMask(f: LabelmeFile, classIndex: ReadonlyMap<string, number>, source = 'the labelme file', limits: ImportLimits = {}, stats: Pick<ConvertSummary, 'painted' | 'ignored' | 'skipped'> = { painted: 0, ignored: 0, skipped: {} }): Uint8Array {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  if (f.width * f.height > lim.maxPixels) fail(OP, `${source} is ${f.width}x${f.height}, above the limit of ${lim.maxPixels} pixels`);
  const skip = (why: string) => { stats.skipped[why] = (stats.skipped[why] ?? 0) + 1; };
  // Measure first (no pixel touched), so a file repeating a full-image shape is refused before the work.
  let total = 0;
  for (const s of f.shapes) {
    if (s.type === 'polygon' && s.points.length >= 3) total += fillPolygon(s.points.flat(), f.height, f.width, null, 0, `${OP}: ${source}`, lim);
    else if ((s.type === 'rectangle' || s.type === 'circle') && s.points.length === 2) {
      const [[x0, y0], [x1, y1]] = s.points;
      const bound = s.type === 'rectangle' ? (Math.abs(x1 - x0) + 1) * (Math.abs(y1 - y0) + 1) : Math.PI * (Math.hypot(x1 - x0, y1 - y0) + 1) ** 2;
      total += Math.min(f.width * f.height, bound); // an upper bound of the pixels painted
    }
  }
  checkCoverage(OP, source, total, f.width * f.height, lim);
  const mask = new Uint8Array(f.width * f.height);
  f.shapes.forEach((s, i) => {
    const op = `${OP}: ${source}: shapes[${i}]`;
    const role = labelRole(s.label);
    let value = role === 'ignore' ? IGNORE : role === 'background' ? 0 : classIndex.get(s.label);
    if (value === undefined) fail(OP, `${source}: shapes[${i}] has label ${shown(s.label)}, which is not in the class list; add it to --labels`);
    value = value as number;
    const p = s.points;
    switch (s.type) {
      case 'polygon':
        if (p.length < 3) return skip('polygon with fewer than 3 points');
        fillPolygon(p.flat(), f.height, f.width, mask, value, op, lim);
        break;
      case 'rectangle': {
        if (p.length !== 2) fail(OP, `${source}: shapes[${i}] is a rectangle with ${p.length} points; expected 2 corners`);
        const [[x0, y0], [x1, y1]] = p;
        fillPolygon([x0, y0, x1, y0, x1, y1, x0, y1], f.height, f.width, mask, value, op, lim);
        break;
      }
      case 'circle': {
        if (p.length !== 2) fail(OP, `${source}: shapes[${i}] is a circle with ${p.length} points; expected the centre and a point on the circle`);
        const [[cx, cy], [px, py]] = p;
        fillCircle(cx, cy, Math.hypot(px - cx, py - cy), f.height, f.width, mask, value, op);
        break;
      }
      case 'line': case 'linestrip': case 'point': case 'points':
        return skip(`${s.type} shape (no area)`);
      default:
        return skip(`${s.type} shape (not supported)`);
    }
    if (value === IGNORE) stats.ignored++;
    else stats.painted++;
  });
  return mask;
}

/** Reads labelme's labels.txt convention: one label a line; `__ignore__` and `_background_` lines are special. */
export function readLabelsFile(path: string): string[] {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { fail(OP, `cannot read the labels file ${path}: ${(e as Error).message}`); }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const classes = ['background', ...lines.filter((l) => labelRole(l) === 'class')];
  if (new Set(classes).size !== classes.length) fail(OP, `the labels file ${path} lists a label twice`);
  if (classes.length > 255) fail(OP, `the labels file ${path} lists ${classes.length - 1} labels; masks hold at most 254 besides background`);
  return classes;
}

const MAGIC: [string, number[]][] = [
  ['.png', [0x89, 0x50, 0x4e, 0x47]], ['.jpg', [0xff, 0xd8, 0xff]], ['.bmp', [0x42, 0x4d]],
  ['.tif', [0x49, 0x49, 0x2a, 0x00]], ['.tif', [0x4d, 0x4d, 0x00, 0x2a]], ['.webp', [0x52, 0x49, 0x46, 0x46]],
];

function extFor(bytes: Uint8Array): string | null {
  return MAGIC.find(([, m]) => m.every((b, i) => bytes[i] === b))?.[0] ?? null;
}

/** Options of {@link convertLabelme}. */
export interface LabelmeConvertOptions extends ImportLimits {
  /** A folder of labelme .json files (images beside them, or embedded as imageData). */
  input: string;
  out: string;
  /** A labels.txt fixing the class order (labelme's convention). Default: background, then every label found, sorted. */
  labels?: string;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Converts a folder of labelme JSON files into a folder dataset: `out/images/<stem>.<ext>` (the file at imagePath,
 * else the embedded imageData), `out/masks/<stem>.png` (palette PNGs; 0 background, 255 `__ignore__`),
 * `out/classes.json`. Polygon, rectangle and circle shapes are painted; lines and points are counted as skipped.
 * @example await convertLabelme({ input: 'labelme/', out: 'data/mine' })
 */
export async function convertLabelme(o: LabelmeConvertOptions): Promise<ConvertSummary> {
  let names: string[];
  try { names = readdirSync(o.input).filter((f) => f.toLowerCase().endsWith('.json')).sort(); } catch (e) { fail(OP, `cannot list ${o.input}: ${(e as Error).message}`); }
  if (!names.length) fail(OP, `found no .json files in ${o.input}`);
  const files = names.map((n) => {
    const path = join(o.input, n);
    let json: unknown;
    try { json = JSON.parse(readFileSync(path, 'utf8')); } catch (e) { fail(OP, `${path} is not valid JSON: ${(e as Error).message}`); }
    return { path, stem: basename(n, extname(n)), file: parseLabelme(json, path, o) };
  });
  const classes = o.labels ? readLabelsFile(o.labels)
    : ['background', ...[...new Set(files.flatMap((f) => f.file.shapes.map((s) => s.label)))].filter((l) => labelRole(l) === 'class').sort()];
  if (classes.length > 255) fail(OP, `${o.input} uses ${classes.length - 1} labels; masks hold at most 254 besides background`);
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  // Every image must be found before anything is written.
  const sources = files.map(({ path, file }): { from: string; ext: string } | { bytes: Buffer; ext: string } => {
    const beside = file.imagePath ? join(dirname(path), file.imagePath) : null;
    if (beside && existsSync(beside)) return { from: beside, ext: extname(beside).toLowerCase() || '.png' };
    if (file.imageData) {
      const bytes = Buffer.from(file.imageData, 'base64');
      const ext = extFor(bytes);
      if (!ext) fail(OP, `${path}: the embedded imageData is not a PNG, JPEG, BMP, TIFF or WebP image`);
      return { bytes, ext };
    }
    fail(OP, `${path}: its image ${beside ?? '(no imagePath)'} does not exist and no imageData is embedded`);
  });
  const writer = new FolderWriter(OP, o.out);
  const summary: ConvertSummary = { out: o.out, images: 0, classes, painted: 0, ignored: 0, skipped: {}, pixels: new Array(classes.length + 1).fill(0) };
  for (const [i, { path, stem, file }] of files.entries()) {
    const src = sources[i];
    const meta = await sharp('from' in src ? src.from : src.bytes).metadata().catch((e: Error) => fail(OP, `${path}: cannot read its image: ${e.message}`));
    const turned = (meta.orientation ?? 1) >= 5;
    const [w, h] = turned ? [meta.height, meta.width] : [meta.width, meta.height];
    if (w !== file.width || h !== file.height) fail(OP, `${path} gives ${file.width}x${file.height} but its image is ${w}x${h}${turned ? ' after its EXIF orientation' : ''}`);
    const mask = labelmeMask(file, classIndex, path, o, summary);
    if ('from' in src) writer.copyImage(src.from, `${stem}${src.ext}`);
    else writer.writeImage(`${stem}${src.ext}`, src.bytes);
    writer.writeMask(stem, mask, file.width, file.height);
    countPixels(mask, summary.pixels);
    summary.images++;
    o.onProgress?.(summary.images, files.length);
  }
  writer.writeClasses(classes);
  return summary;
}
