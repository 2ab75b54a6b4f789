// Sliding-window inference: where the windows go, how their probabilities are blended, and the loop
// that blends them one row of windows at a time so only a band of the image is ever held at full depth.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { F, full, inferenceMode, keep, type Tensor, tensor, tidy } from '../engine/index.js';

/** One window along one axis: where it starts, how long it is, and its blend weight per pixel. */
export interface AxisWindow {
  start: number;
  size: number;
  /** Weight of this window at each of its `size` pixels; over all windows they sum to 1 at every pixel. */
  weights: Float32Array;
}

/** Overlap used when a tile size is given without one. */
export const DEFAULT_OVERLAP = 0.25;

/** Checks the user's tile and overlap; `tile` undefined means no tiling. */
export function checkTiling(op: string, tile: unknown, overlap: unknown): { tile: number; overlap: number } | null {
  if (tile === undefined || tile === null || tile === 0) {
    if (overlap !== undefined) v.num(op, 'overlap', overlap, { min: 0, max: 0.9 });
    return null;
  }
  return { tile: v.int(op, 'tile', tile, 1), overlap: overlap === undefined ? DEFAULT_OVERLAP : v.num(op, 'overlap', overlap, { min: 0, max: 0.9 }) };
}

/**
 * Windows of `tile` pixels covering `length` pixels, neighbours sharing at least `overlap` of a tile.
 * The starts are spread evenly from 0 to length - tile, so every overlap is about the same and the last
 * window ends at the edge. One window (the whole axis) when length <= tile.
 *
 * Weights: a linear cross-fade across each overlap (a trapezoid: flat in the middle, ramps where a
 * neighbour is; the image's own edges are not ramped), normalized so the weights of all windows sum to
 * exactly 1 at every pixel. A separable product of two such axes is then a partition of unity in 2-D:
 * blended probabilities stay probabilities and there is no seam.
 */
export function axisWindows(length: number, tile: number, overlap: number): AxisWindow[] {
  if (length <= tile) return [{ start: 0, size: length, weights: new Float32Array(length).fill(1) }];
  const step = Math.max(1, tile - Math.round(tile * overlap));
  const n = Math.ceil((length - tile) / step) + 1;
  const starts = Array.from({ length: n }, (_, k) => Math.round((k * (length - tile)) / (n - 1)));
  // Raw trapezoid weights, then the per-pixel sum over windows (float64, so the normalization is exact to float32).
  const raw = starts.map((s, k) => {
    const before = k > 0 ? starts[k - 1] + tile - s : 0; // pixels shared with the previous window
    const after = k < n - 1 ? s + tile - starts[k + 1] : 0;
    const w = new Float64Array(tile);
    for (let t = 0; t < tile; t++) {
      let r = 1;
      if (before > 0) r = Math.min(r, (t + 0.5) / before);
      if (after > 0) r = Math.min(r, (tile - t - 0.5) / after);
      w[t] = r;
    }
    return w;
  });
  const total = new Float64Array(length);
  starts.forEach((s, k) => { for (let t = 0; t < tile; t++) total[s + t] += raw[k][t]; });
  return starts.map((s, k) => ({ start: s, size: tile, weights: Float32Array.from(raw[k], (r, t) => r / total[s + t]) }));
}

/** A window of the image: rows y..y+height, columns x..x+width. */
export interface Rect { y: number; x: number; height: number; width: number }

/**
 * The blending loop for an H x W image in windows of tileH x tileW: yields each window's rectangle and
 * takes back its probabilities [N, K, height, width]; calls `emit(y, x, block)` with the blended
 * probabilities [N, K, rows, cols] of a block at (y, x) as soon as no later window touches it (the block is
 * only valid during the call). Blocks come in raster order and tile the image exactly once. Written as a
 * generator so one loop serves both synchronous (libtorch) and asynchronous (onnxruntime) engines.
 *
 * Memory: the partial sums of one window (N x K x tileH x tileW floats) and of the rows the next row of
 * windows shares with this one (N x K x overlap rows x W), whatever the image's height.
 * Probabilities passed in are disposed here.
 */
export function* blendWindows(height: number, width: number, tileH: number, tileW: number, overlap: number,
  emit: (y: number, x: number, block: Tensor) => void): Generator<Rect, void, Tensor> {
  const rows = axisWindows(height, tileH, overlap);
  const cols = axisWindows(width, tileW, overlap);
  const sharedRows = (i: number) => (i + 1 < rows.length ? rows[i].start + rows[i].size - rows[i + 1].start : 0);
  const carryRows = Math.max(0, ...rows.map((_, i) => sharedRows(i)));
  // carry: partial sums of the rows this band shares with the previous one (top rows), full width; written
  // back, column range by column range, with the rows the next band shares, once those columns are read.
  let carry: Tensor | null = null;
  // strip: partial sums of the columns stripX.. of this band that are not final yet.
  let strip: Tensor | null = null;
  try {
    for (const [i, r] of rows.entries()) {
      const top = i > 0 ? sharedRows(i - 1) : 0;
      const below = sharedRows(i);
      const done = r.size - below; // rows final once this band is blended
      let stripX = 0;
      for (const [j, c] of cols.entries()) {
        const p = yield { y: r.start, x: c.start, height: r.size, width: c.size };
        if (p.shape[2] !== r.size || p.shape[3] !== c.size) {
          p.dispose();
          fail('tiles', `expected probabilities for a ${r.size}x${c.size} window but received ${p.shape.slice(2).join('x')}`);
        }
        if (rows.length === 1 && cols.length === 1) { // untiled: nothing to blend
          try { emit(0, 0, p); } finally { p.dispose(); }
          return;
        }
        const next: Tensor = keep(tidy(() => {
          const sN = full([p.shape[0], p.shape[1], r.size, c.size], 0, { device: p.device });
          let fresh = c.start; // columns from here on enter a strip for the first time in this band
          if (strip) {
            const kept = stripX + strip.shape[3] - c.start;
            if (kept > 0) {
              sN.narrow(3, 0, kept).copy_(strip.narrow(3, c.start - stripX, kept));
              fresh = c.start + kept;
            }
          }
          const n = c.start + c.size - fresh;
          if (carry && top > 0 && n > 0) sN.narrow(2, 0, top).narrow(3, fresh - c.start, n).copy_(carry.narrow(2, 0, top).narrow(3, fresh, n));
          const w = tensor(outer(r.weights, c.weights), [1, 1, r.size, c.size], { device: p.device });
          sN.addcmul_(p, w);
          return sN;
        }));
        p.dispose();
        strip?.dispose();
        strip = next;
        stripX = c.start;
        const fin = (j + 1 < cols.length ? cols[j + 1].start : width) - stripX; // columns no later window of this band touches
        if (fin <= 0) continue;
        if (below > 0) {
          carry ??= keep(full([next.shape[0], next.shape[1], carryRows, width], 0, { device: next.device }));
          tidy(() => { carry!.narrow(2, 0, below).narrow(3, stripX, fin).copy_(next.narrow(2, done, below).narrow(3, 0, fin)); });
        }
        const block = tidy(() => next.narrow(2, 0, done).narrow(3, 0, fin));
        try { emit(r.start, stripX, block); } finally { block.dispose(); }
      }
      strip?.dispose();
      strip = null;
    }
  } finally {
    strip?.dispose();
    carry?.dispose();
  }
}

function outer(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length * b.length);
  for (let i = 0; i < a.length; i++) for (let j = 0; j < b.length; j++) out[i * b.length + j] = a[i] * b[j];
  return out;
}

// The drivers step the generator in inference mode: its band is an inference tensor, updated in place.

/** Runs a blendWindows generator with a synchronous window function. */
export function driveSync(gen: Generator<Rect, void, Tensor>, run: (r: Rect) => Tensor): void {
  let step = inferenceMode(() => gen.next());
  while (!step.done) {
    let p: Tensor;
    try { p = run(step.value); } catch (e) { gen.return(); throw e; }
    step = inferenceMode(() => gen.next(p));
  }
}

/** Runs a blendWindows generator with an asynchronous window function (onnxruntime). */
export async function driveAsync(gen: Generator<Rect, void, Tensor>, run: (r: Rect) => Promise<Tensor>): Promise<void> {
  let step = inferenceMode(() => gen.next());
  while (!step.done) {
    let p: Tensor;
    try { p = await run(step.value); } catch (e) { gen.return(); throw e; }
    step = inferenceMode(() => gen.next(p));
  }
}

/**
 * Rows y0..y1 of `p` [N, K, h, w] resized bilinearly to H x W (align_corners=False, as F.interpolate),
 * without making the whole H x W result: the rows are interpolated here, the columns by F.interpolate.
 * Equal to the matching rows of F.interpolate(p, [H, W]) up to float rounding.
 */
export function bilinearRows(p: Tensor, outH: number, outW: number, y0: number, y1: number): Tensor {
  const h = p.shape[2];
  const rows = y1 - y0;
  const i0 = new BigInt64Array(rows);
  const i1 = new BigInt64Array(rows);
  const lam = new Float32Array(rows);
  for (let y = y0; y < y1; y++) {
    const f = Math.max(0, ((y + 0.5) * h) / outH - 0.5);
    const i = Math.min(Math.floor(f), h - 1);
    i0[y - y0] = BigInt(i);
    i1[y - y0] = BigInt(Math.min(i + 1, h - 1));
    lam[y - y0] = Math.min(1, f - i);
  }
  return tidy(() => {
    const l = tensor(lam, [1, 1, rows, 1], { device: p.device });
    const a = p.indexSelect(2, tensor(i0, [rows], { device: p.device }));
    const b = p.indexSelect(2, tensor(i1, [rows], { device: p.device }));
    const v = a.mul(l.rsub(1)).add(b.mul(l));
    return v.shape[3] === outW ? v : F.interpolate(v, { size: [rows, outW], mode: 'bilinear', alignCorners: false });
  });
}
