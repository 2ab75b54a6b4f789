// @ts-check
// Pixels for the page's layers: the class-colour mask and the attention heatmap. Pure: no DOM.

/** @typedef {[number, number, number]} RGB */

/**
 * The PASCAL VOC palette (src/common/palette.ts vocPalette), for a sidecar without colours.
 * @param {number} n
 * @returns {RGB[]}
 */
export function vocPalette(n) {
  /** @type {RGB[]} */
  const out = [];
  for (let i = 0; i < n; i++) {
    let c = i;
    let r = 0;
    let g = 0;
    let b = 0;
    for (let j = 0; j < 8; j++) {
      r |= (c & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    out.push([r, g, b]);
  }
  return out;
}

/**
 * RGBA pixels of a label map: each class in its colour, opaque; labels without a colour transparent.
 * The layer's opacity is the slider's business (CSS), so these stay exact class colours.
 * @param {Uint8Array} labels
 * @param {readonly RGB[]} colors
 * @returns {Uint8ClampedArray<ArrayBuffer>} `labels.length * 4` bytes
 */
export function maskRgba(labels, colors) {
  const out = new Uint8ClampedArray(labels.length * 4);
  for (let i = 0; i < labels.length; i++) {
    const c = colors[labels[i]];
    if (!c) continue;
    const o = 4 * i;
    out[o] = c[0];
    out[o + 1] = c[1];
    out[o + 2] = c[2];
    out[o + 3] = 255;
  }
  return out;
}

/**
 * Maps an RGBA mask back to class indices by exact colour (255 where no class has the colour).
 * The inverse of {@link maskRgba}; the browser test reads the page's mask with it.
 * @param {Uint8ClampedArray | Uint8Array} rgba
 * @param {readonly RGB[]} colors
 * @returns {Uint8Array}
 */
export function labelsFromRgba(rgba, colors) {
  /** @type {Map<number, number>} */
  const lookup = new Map();
  for (let i = colors.length - 1; i >= 0; i--) lookup.set((colors[i][0] << 16) | (colors[i][1] << 8) | colors[i][2], i);
  const out = new Uint8Array(rgba.length / 4);
  for (let i = 0; i < out.length; i++) {
    const o = 4 * i;
    out[i] = rgba[o + 3] === 0 ? 255 : lookup.get((rgba[o] << 16) | (rgba[o + 1] << 8) | rgba[o + 2]) ?? 255;
  }
  return out;
}

/**
 * matplotlib's jet at t in [0, 1] (as src/eval/visualize.ts colormapColor 'jet').
 * @param {number} t
 * @returns {RGB}
 */
export function jet(t) {
  t = Math.min(1, Math.max(0, t));
  /** @param {number} k */
  const ch = (k) => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * t - k))));
  return [ch(3), ch(2), ch(1)];
}

/**
 * RGBA pixels of a score map through jet, scaled to [lo, hi] (a constant map is drawn at the bottom colour).
 * @param {ArrayLike<number>} values
 * @param {number} lo
 * @param {number} hi
 * @returns {Uint8ClampedArray<ArrayBuffer>}
 */
export function heatmapRgba(values, lo, hi) {
  const out = new Uint8ClampedArray(values.length * 4);
  const scale = hi > lo ? 1 / (hi - lo) : 0;
  for (let i = 0; i < values.length; i++) {
    const c = jet((values[i] - lo) * scale);
    out.set(c, 4 * i);
    out[4 * i + 3] = 255;
  }
  return out;
}

/**
 * The [min, max] of the cells of a `cols` x `rows` map that cover the image (the rest is padding).
 * @param {ArrayLike<number>} values
 * @param {number} cols
 * @param {number} rows
 * @param {number} usedCols
 * @param {number} usedRows
 * @returns {[number, number]}
 */
export function valueRange(values, cols, rows, usedCols, usedRows) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let y = 0; y < Math.min(rows, usedRows); y++) {
    for (let x = 0; x < Math.min(cols, usedCols); x++) {
      const v = values[y * cols + x];
      if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    }
  }
  return Number.isFinite(lo) ? [lo, hi] : [0, 0];
}
