// Drawing attention maps over images: pure arithmetic over plain arrays (no Node, no engine), so
// the web page can draw the exported model's attention output the same way `panseg explain` does.
import type { RgbImage } from '../data/decode.js';
import { type ColormapName, heatmap } from '../eval/visualize.js';
import type { Explanation, Map2D } from './capture.js';

/** A single-channel map with any array of values (e.g. a Float32Array from an ONNX output). */
export interface MapLike {
  width: number;
  height: number;
  values: ArrayLike<number>;
}

/** The image's size and the network input's size (the image padded bottom/right), as in an Explanation. */
export type Sizes = Pick<Explanation, 'image' | 'input'>;

/**
 * Samples a map (which covers the padded network input) at every pixel of the image drawn at
 * `width` x `height`, bilinearly at pixel centres like PyTorch's align_corners=False resize, so cells
 * line up with the image pixels they were computed from; the padding is left out.
 */
export function sampleMap(map: MapLike, e: Sizes, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const { width: mw, height: mh, values } = map;
  const kx = (e.image.width / width) * (mw / e.input.width);
  const ky = (e.image.height / height) * (mh / e.input.height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(mh - 1, Math.max(0, (y + 0.5) * ky - 0.5));
    const y0 = Math.floor(sy);
    const y1 = Math.min(mh - 1, y0 + 1);
    const fy = sy - y0;
    for (let x = 0; x < width; x++) {
      const sx = Math.min(mw - 1, Math.max(0, (x + 0.5) * kx - 0.5));
      const x0 = Math.floor(sx);
      const x1 = Math.min(mw - 1, x0 + 1);
      const fx = sx - x0;
      const top = values[y0 * mw + x0] * (1 - fx) + values[y0 * mw + x1] * fx;
      const bot = values[y1 * mw + x0] * (1 - fx) + values[y1 * mw + x1] * fx;
      out[y * width + x] = top * (1 - fy) + bot * fy;
    }
  }
  return out;
}

/** The finite [min, max] of `values` ([0, 0] when none is finite). */
export function range(values: ArrayLike<number>): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (Number.isFinite(x)) { if (x < lo) lo = x; if (x > hi) hi = x; }
  }
  return Number.isFinite(lo) ? [lo, hi] : [0, 0];
}

/** Blends a heatmap of `values` (image-sized) over `image`. */
export function blend(image: RgbImage, values: Float32Array, lo: number, hi: number, colormap: ColormapName, alpha: number): RgbImage {
  const heat = heatmap(values, image.width, image.height, { min: lo, max: hi, colormap });
  const out = new Uint8Array(image.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.round((1 - alpha) * image.data[i] + alpha * heat.data[i]);
  return { data: out, width: image.width, height: image.height };
}

/** A map over the image: sampled at the image's display size, coloured, blended. */
export function mapOverlay(image: RgbImage, map: MapLike, e: Sizes, colormap: ColormapName = 'jet', alpha = 0.5): { image: RgbImage; range: [number, number] } {
  const vals = sampleMap(map, e, image.width, image.height);
  const [lo, hi] = range(vals);
  return { image: blend(image, vals, lo, hi, colormap, alpha), range: [lo, hi] };
}

/** The cells of `map` that cover the image (padding cells dropped). */
export function coveringCells(map: MapLike, e: Sizes): Map2D {
  const w = Math.max(1, Math.min(map.width, Math.ceil((map.width * e.image.width) / e.input.width - 1e-9)));
  const h = Math.max(1, Math.min(map.height, Math.ceil((map.height * e.image.height) / e.input.height - 1e-9)));
  const values: number[] = [];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) values.push(map.values[y * map.width + x]);
  return { width: w, height: h, values };
}

/** A map drawn as blocks (nearest), `width` x `height` pixels, with faint lines between cells. */
export function cellsImage(map: MapLike, width: number, height: number, lo: number, hi: number, colormap: ColormapName): RgbImage {
  const vals = new Float32Array(width * height);
  const edge = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const cy = Math.min(map.height - 1, Math.floor((y * map.height) / height));
    const cyNext = Math.min(map.height - 1, Math.floor(((y + 1) * map.height) / height));
    for (let x = 0; x < width; x++) {
      const cx = Math.min(map.width - 1, Math.floor((x * map.width) / width));
      const cxNext = Math.min(map.width - 1, Math.floor(((x + 1) * map.width) / width));
      vals[y * width + x] = map.values[cy * map.width + cx];
      edge[y * width + x] = cyNext !== cy || cxNext !== cx ? 1 : 0;
    }
  }
  const img = heatmap(vals, width, height, { min: lo, max: hi, colormap });
  // Cell borders only when cells are big enough to be told apart.
  if (width / map.width >= 8 && height / map.height >= 8) {
    for (let i = 0; i < edge.length; i++) if (edge[i]) for (let k = 0; k < 3; k++) img.data[3 * i + k] = Math.round(img.data[3 * i + k] * 0.6 + 255 * 0.4);
  }
  return img;
}

/** The cell-wise product of two maps of the same size. */
export function mulMaps(a: Map2D, b: Map2D): Map2D {
  return { width: a.width, height: a.height, values: a.values.map((x, i) => x * b.values[i]) };
}
