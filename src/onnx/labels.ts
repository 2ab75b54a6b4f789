// From a model's output planes to probabilities and class labels, on plain typed arrays: the rule of
// segmenter.ts (toProbs, probsToLabels) for one image, without engine tensors.

/** Output planes [K, rows, cols] (row-major) and the region [h, w] at their top-left that is the image. */
export interface Planes { data: Float32Array; channels: number; rows: number; cols: number }

/** One value of the model's output as a probability, as segmenter.ts's toProbs. */
function prob(x: number, activation: string | null): number {
  switch (activation) {
    case 'sigmoid': case 'softmax': case 'softmax2d': return x;
    case 'logsoftmax': return Math.fround(Math.exp(x));
    case 'tanh': return Math.fround((x + 1) / 2);
    default: return Math.fround(1 / (1 + Math.exp(-x)));
  }
}

/**
 * Class index per pixel of the top-left h x w region: argmax over channels (every activation keeps the
 * channels' order; the first of equal values wins), or for one channel probability > 0.5.
 */
export function labelsOf(p: Planes, h: number, w: number, activation: string | null): Uint8Array {
  const { data, channels: k, rows, cols } = p;
  const plane = rows * cols;
  const out = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * cols + x;
      if (k === 1) {
        out[y * w + x] = prob(data[i], activation) > 0.5 ? 1 : 0;
        continue;
      }
      let best = 0;
      let bv = data[i];
      for (let c = 1; c < k; c++) {
        const val = data[c * plane + i];
        if (val > bv) { bv = val; best = c; }
      }
      out[y * w + x] = best;
    }
  }
  return out;
}

/** Class probabilities [K, h, w] of the top-left h x w region: softmax over channels for raw logits (sigmoid for one). */
export function probsOf(p: Planes, h: number, w: number, activation: string | null): Float32Array {
  const { data, channels: k, rows, cols } = p;
  const plane = rows * cols;
  const out = new Float32Array(k * h * w);
  const softmax = k > 1 && !['sigmoid', 'softmax', 'softmax2d', 'logsoftmax', 'tanh'].includes(activation ?? '');
  const e = new Float64Array(k);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * cols + x;
      const o = y * w + x;
      if (!softmax) {
        for (let c = 0; c < k; c++) out[c * h * w + o] = prob(data[c * plane + i], activation);
        continue;
      }
      let max = -Infinity;
      for (let c = 0; c < k; c++) max = Math.max(max, data[c * plane + i]);
      let sum = 0;
      for (let c = 0; c < k; c++) { e[c] = Math.exp(data[c * plane + i] - max); sum += e[c]; }
      for (let c = 0; c < k; c++) out[c * h * w + o] = e[c] / sum;
    }
  }
  return out;
}
