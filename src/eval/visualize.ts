// Pictures from label maps and score maps: colour masks, overlays, heatmaps, side-by-side strips,
// and PNG files. Pure arithmetic over RgbImage; only the PNG writers touch Node (sharp, fs, zlib),
// and they load those lazily, so the web page can import the drawing functions alone.
import { fail } from '../common/errors.js';
import type { RGB } from '../common/palette.js';
import * as v from '../common/validate.js';
import type { RgbImage } from '../data/decode.js';
import { escapeXml, formatNumber } from './charts.js';

export type { RgbImage } from '../data/decode.js';

function checkImage(op: string, name: string, img: RgbImage): void {
  if (!img || !(img.data instanceof Uint8Array)) fail(op, `expected an RgbImage with Uint8Array data for ${name}`);
  v.int(op, `${name}.width`, img.width, 1);
  v.int(op, `${name}.height`, img.height, 1);
  if (img.data.length !== img.width * img.height * 3) {
    fail(op, `expected ${img.width * img.height * 3} bytes (${img.width}x${img.height}x3) for ${name}.data but received ${img.data.length}`);
  }
}

function checkLength(op: string, name: string, a: ArrayLike<number>, w: number, h: number): void {
  if (!a || a.length !== w * h) fail(op, `expected ${w * h} values (${w}x${h}) for ${name} but received ${a?.length ?? 'none'}`);
}

/** Options of {@link overlay}. */
export interface OverlayOptions {
  /** Weight of the class colour, 0 (image only) to 1 (colours only). Default 0.5. */
  alpha?: number;
  /** Label left unpainted. Default 255. */
  ignoreIndex?: number;
}

/**
 * Blends class colours over an image: `out = (1 - alpha) * image + alpha * colors[label]`, rounded.
 * Pixels labelled `ignoreIndex`, or with a label that has no colour, keep the image.
 * @param labels one class per pixel, row-major, `width * height` long
 * @example overlay(img, pred, VOC_PALETTE.slice(0, 21), { alpha: 0.6 })
 */
export function overlay(image: RgbImage, labels: ArrayLike<number>, colors: readonly RGB[], opts: OverlayOptions = {}): RgbImage {
  const op = 'overlay';
  checkImage(op, 'image', image);
  checkLength(op, 'labels', labels, image.width, image.height);
  const alpha = v.num(op, 'alpha', opts.alpha ?? 0.5, { min: 0, max: 1 });
  const ignore = opts.ignoreIndex ?? 255;
  const src = image.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    const c = l === ignore ? undefined : colors[l];
    const o = 3 * i;
    if (!c) {
      out[o] = src[o]; out[o + 1] = src[o + 1]; out[o + 2] = src[o + 2];
    } else {
      out[o] = Math.round((1 - alpha) * src[o] + alpha * c[0]);
      out[o + 1] = Math.round((1 - alpha) * src[o + 1] + alpha * c[1]);
      out[o + 2] = Math.round((1 - alpha) * src[o + 2] + alpha * c[2]);
    }
  }
  return { data: out, width: image.width, height: image.height };
}

/**
 * Paints a label map with class colours. `ignoreIndex` pixels, and labels without a colour, get `ignoreColor`.
 * @param ignoreIndex default 255
 * @param ignoreColor default black
 * @example colorMask(pred, 64, 48, CAMVID_COLORS)
 */
export function colorMask(labels: ArrayLike<number>, width: number, height: number, colors: readonly RGB[], ignoreIndex = 255, ignoreColor: RGB = [0, 0, 0]): RgbImage {
  const op = 'colorMask';
  v.int(op, 'width', width, 1);
  v.int(op, 'height', height, 1);
  checkLength(op, 'labels', labels, width, height);
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    const c = (l === ignoreIndex ? undefined : colors[l]) ?? ignoreColor;
    out[3 * i] = c[0]; out[3 * i + 1] = c[1]; out[3 * i + 2] = c[2];
  }
  return { data: out, width, height };
}

/** The colour maps {@link heatmap} knows. */
export type ColormapName = 'jet' | 'viridis' | 'inferno';
export const COLORMAPS: readonly ColormapName[] = Object.freeze(['jet', 'viridis', 'inferno'] as ColormapName[]);

// Evenly spaced stops, linearly interpolated (matplotlib's maps sampled at 9-10 points).
const STOPS: Record<'viridis' | 'inferno', RGB[]> = {
  viridis: [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]],
  inferno: [[0, 0, 4], [31, 12, 72], [85, 15, 109], [136, 34, 106], [186, 54, 85], [227, 89, 51], [249, 140, 10], [249, 201, 50], [252, 255, 164]],
};

/**
 * The colour of `t` in [0, 1] (clamped) on a colour map; NaN gives black.
 * 'jet' is matplotlib's piecewise-linear jet (dark blue -> cyan -> yellow -> dark red).
 * @example colormapColor(1, 'viridis') // [253, 231, 37]
 */
export function colormapColor(t: number, name: ColormapName = 'jet'): RGB {
  if (Number.isNaN(t)) return [0, 0, 0];
  t = Math.min(1, Math.max(0, t));
  if (name === 'jet') {
    const ch = (k: number): number => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * t - k))));
    return [ch(3), ch(2), ch(1)];
  }
  const stops = STOPS[name];
  const f = t * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(f));
  const u = f - i;
  const a = stops[i];
  const b = stops[i + 1];
  return [Math.round(a[0] + (b[0] - a[0]) * u), Math.round(a[1] + (b[1] - a[1]) * u), Math.round(a[2] + (b[2] - a[2]) * u)];
}

/** Options of {@link heatmap}. */
export interface HeatmapOptions {
  /** Value drawn at the bottom of the map; default the smallest finite value. */
  min?: number;
  /** Value drawn at the top of the map; default the largest finite value. */
  max?: number;
  /** Default 'jet'. */
  colormap?: ColormapName;
}

/** The [min, max] a heatmap uses: the options where given, otherwise the finite data range. */
export function heatmapRange(values: ArrayLike<number>, opts: HeatmapOptions = {}): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  if (opts.min === undefined || opts.max === undefined) {
    for (let i = 0; i < values.length; i++) {
      const x = values[i];
      if (Number.isFinite(x)) { if (x < lo) lo = x; if (x > hi) hi = x; }
    }
  }
  if (opts.min !== undefined) lo = v.num('heatmap', 'min', opts.min);
  if (opts.max !== undefined) hi = v.num('heatmap', 'max', opts.max);
  if (!Number.isFinite(lo)) lo = 0;
  if (!Number.isFinite(hi)) hi = lo;
  return [lo, hi];
}

/**
 * Colours a score map: `(value - min) / (max - min)` through a colour map, clamped at the ends.
 * Values are quantized to 256 levels of the map. A constant map (max == min) is drawn at the bottom
 * colour; NaN values are black.
 * @example heatmap(attention, 16, 16, { colormap: 'inferno', min: 0, max: 1 })
 */
export function heatmap(values: ArrayLike<number>, width: number, height: number, opts: HeatmapOptions = {}): RgbImage {
  const op = 'heatmap';
  v.int(op, 'width', width, 1);
  v.int(op, 'height', height, 1);
  checkLength(op, 'values', values, width, height);
  const cmap = v.oneOf(op, 'colormap', opts.colormap ?? 'jet', COLORMAPS);
  const [lo, hi] = heatmapRange(values, opts);
  const lut = colormapLut(cmap);
  const scale = hi > lo ? 255 / (hi - lo) : 0;
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (Number.isNaN(x)) continue;
    const k = 3 * Math.min(255, Math.max(0, Math.round((x - lo) * scale)));
    out[3 * i] = lut[k]; out[3 * i + 1] = lut[k + 1]; out[3 * i + 2] = lut[k + 2];
  }
  return { data: out, width, height };
}

const LUTS = new Map<ColormapName, Uint8Array>();
function colormapLut(name: ColormapName): Uint8Array {
  let lut = LUTS.get(name);
  if (!lut) {
    lut = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) lut.set(colormapColor(i / 255, name), 3 * i);
    LUTS.set(name, lut);
  }
  return lut;
}

/**
 * Resizes a single-channel map with bilinear interpolation, sampling like PyTorch's
 * `interpolate(mode='bilinear', align_corners=False)` (pixel centres, edges clamped).
 * @example resizeBilinear(attn, 8, 8, 256, 256)
 */
export function resizeBilinear(values: ArrayLike<number>, width: number, height: number, outWidth: number, outHeight: number): Float32Array {
  const op = 'resizeBilinear';
  v.int(op, 'width', width, 1);
  v.int(op, 'height', height, 1);
  v.int(op, 'outWidth', outWidth, 1);
  v.int(op, 'outHeight', outHeight, 1);
  checkLength(op, 'values', values, width, height);
  const out = new Float32Array(outWidth * outHeight);
  const sxs = width / outWidth;
  const sys = height / outHeight;
  // Column weights are the same for every row: compute them once.
  const x0s = new Int32Array(outWidth);
  const x1s = new Int32Array(outWidth);
  const fxs = new Float32Array(outWidth);
  for (let x = 0; x < outWidth; x++) {
    const sx = Math.max(0, (x + 0.5) * sxs - 0.5);
    const x0 = Math.min(width - 1, Math.floor(sx));
    x0s[x] = x0;
    x1s[x] = Math.min(width - 1, x0 + 1);
    fxs[x] = sx - x0;
  }
  for (let y = 0; y < outHeight; y++) {
    const sy = Math.max(0, (y + 0.5) * sys - 0.5);
    const y0 = Math.min(height - 1, Math.floor(sy));
    const y1 = Math.min(height - 1, y0 + 1);
    const fy = sy - y0;
    const r0 = y0 * width;
    const r1 = y1 * width;
    for (let x = 0; x < outWidth; x++) {
      const fx = fxs[x];
      const top = values[r0 + x0s[x]] * (1 - fx) + values[r0 + x1s[x]] * fx;
      const bot = values[r1 + x0s[x]] * (1 - fx) + values[r1 + x1s[x]] * fx;
      out[y * outWidth + x] = top * (1 - fy) + bot * fy;
    }
  }
  return out;
}

/** Options of {@link heatmapOverlay}. */
export interface HeatmapOverlayOptions extends HeatmapOptions {
  /** Weight of the heatmap colour. Default 0.5. */
  alpha?: number;
}

/**
 * Upsamples a (usually small) score map to the image size with {@link resizeBilinear}, colours it
 * with {@link heatmap} and blends it over the image. The colour range comes from the original values,
 * so it is the same at any output size. Pixels whose value is NaN keep the image.
 * @param values `valuesWidth * valuesHeight` scores, row-major
 * @example heatmapOverlay(img, gauWeights, 16, 16, { colormap: 'jet', alpha: 0.45 })
 */
export function heatmapOverlay(image: RgbImage, values: ArrayLike<number>, valuesWidth: number, valuesHeight: number, opts: HeatmapOverlayOptions = {}): RgbImage {
  const op = 'heatmapOverlay';
  checkImage(op, 'image', image);
  v.int(op, 'valuesWidth', valuesWidth, 1);
  v.int(op, 'valuesHeight', valuesHeight, 1);
  checkLength(op, 'values', values, valuesWidth, valuesHeight);
  const alpha = v.num(op, 'alpha', opts.alpha ?? 0.5, { min: 0, max: 1 });
  const [min, max] = heatmapRange(values, opts);
  const up = resizeBilinear(values, valuesWidth, valuesHeight, image.width, image.height);
  const heat = heatmap(up, image.width, image.height, { min, max, colormap: opts.colormap });
  const src = image.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < up.length; i++) {
    const o = 3 * i;
    if (Number.isNaN(up[i])) {
      out[o] = src[o]; out[o + 1] = src[o + 1]; out[o + 2] = src[o + 2];
      continue;
    }
    for (let k = 0; k < 3; k++) out[o + k] = Math.round((1 - alpha) * src[o + k] + alpha * heat.data[o + k]);
  }
  return { data: out, width: image.width, height: image.height };
}

/**
 * A vertical colour strip, the highest value at the top, as pixels (for pasting next to a heatmap with {@link sideBySide}).
 * @example colorBarImage(16, 200, 'viridis')
 */
export function colorBarImage(width: number, height: number, colormap: ColormapName = 'jet'): RgbImage {
  const op = 'colorBarImage';
  v.int(op, 'width', width, 1);
  v.int(op, 'height', height, 1);
  v.oneOf(op, 'colormap', colormap, COLORMAPS);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const c = colormapColor(height === 1 ? 1 : 1 - y / (height - 1), colormap);
    for (let x = 0; x < width; x++) out.set(c, 3 * (y * width + x));
  }
  return { data: out, width, height };
}

/** Options of {@link colorBar}. */
export interface ColorBarOptions {
  min: number;
  max: number;
  /** Default 'jet'. */
  colormap?: ColormapName;
  /** Text beside the strip (e.g. 'attention'). */
  label?: string;
  /** Total SVG size; default 70 x 220. */
  width?: number;
  height?: number;
}

/**
 * A vertical colour legend as an SVG string: a gradient strip, the max value at the top and the min at the bottom.
 * @example colorBar({ min: 0, max: 1, colormap: 'inferno', label: 'weight' })
 */
export function colorBar(opts: ColorBarOptions): string {
  const op = 'colorBar';
  const min = v.num(op, 'min', opts.min);
  const max = v.num(op, 'max', opts.max);
  const cmap = v.oneOf(op, 'colormap', opts.colormap ?? 'jet', COLORMAPS);
  const width = v.int(op, 'width', opts.width ?? 70, 30);
  const height = v.int(op, 'height', opts.height ?? 220, 40);
  const id = `cb-${cmap}`;
  const stops: string[] = [];
  for (let i = 0; i <= 16; i++) {
    const [r, g, b] = colormapColor(1 - i / 16, cmap);
    stops.push(`<stop offset="${(i / 16).toFixed(4)}" stop-color="rgb(${r},${g},${b})"/>`);
  }
  const top = 10;
  const barH = height - 20;
  const label = opts.label
    ? `<text x="${width - 4}" y="${top + barH / 2}" text-anchor="middle" transform="rotate(-90 ${width - 4} ${top + barH / 2})">${escapeXml(opts.label)}</text>`
    : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">`
    + `<defs><linearGradient id="${id}" x1="0" y1="0" x2="0" y2="1">${stops.join('')}</linearGradient></defs>`
    + `<rect x="2" y="${top}" width="16" height="${barH}" fill="url(#${id})" stroke="#666" stroke-width="0.5"/>`
    + `<text x="22" y="${top + 8}">${escapeXml(formatNumber(max))}</text>`
    + `<text x="22" y="${top + barH}">${escapeXml(formatNumber(min))}</text>`
    + `${label}</svg>`;
}

/** Options of {@link sideBySide}. */
export interface SideBySideOptions {
  /** Pixels between images. Default 4. */
  gap?: number;
  /** Colour of the gaps and of the padding below shorter images. Default white. */
  background?: RGB;
}

/**
 * Places images left to right, top-aligned, padding shorter ones to the tallest.
 * @returns an image `sum(widths) + gap * (n - 1)` wide and `max(heights)` tall
 * @example sideBySide([img, colorMask(gt, w, h, c), colorMask(pred, w, h, c)], { gap: 8 })
 */
export function sideBySide(images: readonly RgbImage[], opts: SideBySideOptions = {}): RgbImage {
  const op = 'sideBySide';
  if (!Array.isArray(images) || images.length === 0) fail(op, 'expected a non-empty array of images');
  images.forEach((im, i) => checkImage(op, `images[${i}]`, im));
  const gap = v.int(op, 'gap', opts.gap ?? 4, 0);
  const bg = opts.background ?? [255, 255, 255];
  const width = images.reduce((s, im) => s + im.width, 0) + gap * (images.length - 1);
  const height = Math.max(...images.map((im) => im.height));
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) { out[3 * i] = bg[0]; out[3 * i + 1] = bg[1]; out[3 * i + 2] = bg[2]; }
  let x0 = 0;
  for (const im of images) {
    const row = im.width * 3;
    for (let y = 0; y < im.height; y++) out.set(im.data.subarray(y * row, (y + 1) * row), (y * width + x0) * 3);
    x0 += im.width + gap;
  }
  return { data: out, width, height };
}

/** The share of one class in a label map (see {@link classAreas}). */
export interface ClassArea {
  class: string;
  index: number;
  pixels: number;
  /** 100 * pixels / (pixels with a class label, ignored and out-of-range pixels excluded); 0 when there are none. */
  percent: number;
}

/**
 * How many pixels each class covers, in class order (classes with no pixel included).
 * @example classAreas(pred, VOC_CLASSES).filter((a) => a.pixels > 0)
 */
export function classAreas(labels: ArrayLike<number>, classes: readonly string[], ignoreIndex = 255): ClassArea[] {
  const counts = new Float64Array(classes.length);
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l === ignoreIndex || !(l >= 0 && l < classes.length)) continue;
    counts[l]++;
    total++;
  }
  return classes.map((name, i) => ({ class: name, index: i, pixels: counts[i], percent: total > 0 ? (100 * counts[i]) / total : 0 }));
}

/**
 * Encodes an image as an RGB PNG with sharp.
 * @example writeFileSync('overlay.png', await encodePng(overlay(img, pred, colors)))
 */
export async function encodePng(img: RgbImage): Promise<Buffer> {
  checkImage('encodePng', 'img', img);
  const { default: sharp } = await import('sharp');
  return sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
    raw: { width: img.width, height: img.height, channels: 3 },
  }).png({ compressionLevel: 6 }).toBuffer();
}

/**
 * Writes an image as an RGB PNG file, atomically and durably (writeFileDurableAsync); creates the parent folder.
 * @example await savePng('out/overlay.png', overlay(img, pred, colors))
 */
export async function savePng(path: string, img: RgbImage): Promise<void> {
  const { writeFileDurableAsync } = await import('../io/file.js');
  await writeFileDurableAsync(path, await encodePng(img));
}

/**
 * Writes a label map as an 8-bit indexed PNG (VOC mask format): viewers show colours while each
 * stored index stays the label, so the file reads back as the same labels.
 * @example await saveIndexMask('pred/0001.png', pred, w, h, VOC_PALETTE)
 */
export async function saveIndexMask(path: string, labels: Uint8Array, width: number, height: number, palette: readonly RGB[]): Promise<void> {
  const op = 'saveIndexMask';
  v.int(op, 'width', width, 1);
  v.int(op, 'height', height, 1);
  checkLength(op, 'labels', labels, width, height);
  const { encodeIndexedPng } = await import('../data/png.js');
  const { writeFileDurableAsync } = await import('../io/file.js');
  await writeFileDurableAsync(path, encodeIndexedPng(labels, width, height, palette));
}
