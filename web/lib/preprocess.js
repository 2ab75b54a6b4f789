// @ts-check
// The page's copy of panseg's prediction preprocessing and postprocessing (src/data/transforms.ts
// evalTransform, src/eval/inference.ts padForModel, src/eval/predict.ts segmentImage). Pure: no DOM,
// so the Node tests run it against the library and check both give the same input tensor.

/**
 * @typedef {object} InputSpec What the model takes, from the ONNX sidecar.
 * @property {[number, number, number]} mean
 * @property {[number, number, number]} std
 * @property {[number, number]} inputRange pixel range before normalization, e.g. [0, 1]
 * @property {boolean} [bgr] the model takes BGR channel order
 * @property {number} outputStride H and W must be multiples of this
 * @property {number} minInputSize H and W must be at least this
 * @property {{ height: number, width: number } | null} fixedSize null when H and W are dynamic
 */

/**
 * @typedef {object} InputPlan How an image becomes a network input.
 * @property {number} width the (possibly scaled) image size that is fed, before padding
 * @property {number} height
 * @property {number} inputWidth the padded network input size
 * @property {number} inputHeight
 * @property {boolean} scaled whether the image had to be scaled to `width` x `height`
 */

/**
 * Plans the input for an image of `width` x `height`. Like panseg, it pads bottom/right with zeros to a
 * multiple of the output stride and at least the minimum size. The image is scaled down (aspect kept)
 * only when it is longer than `maxSide`, or does not fit a fixed-size model.
 * @param {number} width
 * @param {number} height
 * @param {InputSpec} spec
 * @param {number} [maxSide] longest side fed to the model; Infinity (default) feeds full resolution
 * @returns {InputPlan}
 */
export function planInput(width, height, spec, maxSide = Infinity) {
  if (!(width >= 1 && height >= 1)) throw new Error(`planInput: expected a positive image size but received ${width}x${height}`);
  let scale = Math.min(1, maxSide / Math.max(width, height));
  if (spec.fixedSize) scale = Math.min(scale, spec.fixedSize.width / width, spec.fixedSize.height / height);
  const w = scale < 1 ? Math.max(1, Math.floor(width * scale)) : width;
  const h = scale < 1 ? Math.max(1, Math.floor(height * scale)) : height;
  const s = spec.outputStride;
  const min = Math.ceil(spec.minInputSize / s) * s;
  const inputWidth = spec.fixedSize ? spec.fixedSize.width : Math.max(min, Math.ceil(w / s) * s);
  const inputHeight = spec.fixedSize ? spec.fixedSize.height : Math.max(min, Math.ceil(h / s) * s);
  return { width: w, height: h, inputWidth, inputHeight, scaled: w !== width || h !== height };
}

/**
 * Builds the NCHW float32 input from RGBA pixels (a canvas's ImageData): RGB scaled to `inputRange`,
 * normalized with mean/std, zero padding (the mean after normalization) bottom/right.
 * @param {Uint8ClampedArray | Uint8Array} rgba `plan.width * plan.height * 4` bytes
 * @param {InputPlan} plan
 * @param {InputSpec} spec
 * @returns {Float32Array} `3 * plan.inputHeight * plan.inputWidth` values
 */
export function toInputTensor(rgba, plan, spec) {
  const { width: w, height: h, inputWidth: iw, inputHeight: ih } = plan;
  if (rgba.length !== w * h * 4) throw new Error(`toInputTensor: expected ${w * h * 4} RGBA bytes (${w}x${h}) but received ${rgba.length}`);
  const out = new Float32Array(3 * ih * iw);
  const [lo, hi] = spec.inputRange;
  const span = hi - lo;
  for (let c = 0; c < 3; c++) {
    const m = spec.mean[c];
    const is = 1 / spec.std[c];
    const base = c * ih * iw;
    for (let y = 0; y < h; y++) {
      const row = base + y * iw;
      const src = y * w * 4 + (spec.bgr ? 2 - c : c);
      for (let x = 0; x < w; x++) out[row + x] = (Math.fround(lo + (rgba[src + 4 * x] * span) / 255) - m) * is;
    }
  }
  return out;
}

/**
 * Class index per pixel from logits [1, C, inputHeight, inputWidth], cropped to `width` x `height`:
 * argmax over classes (first maximum wins, as torch); a single-class model thresholds its output where
 * sigmoid(logit) = 0.5: at 0 for raw logits (or tanh), at 0.5 when the head already applied a sigmoid.
 * @param {Float32Array} logits
 * @param {number} classes C
 * @param {number} inputHeight
 * @param {number} inputWidth
 * @param {number} height rows kept
 * @param {number} width columns kept
 * @param {string | null} [activation] the head activation from the sidecar
 * @returns {Uint8Array} `width * height` labels
 */
export function labelsFromLogits(logits, classes, inputHeight, inputWidth, height, width, activation = null) {
  const threshold = activation === 'sigmoid' ? 0.5 : 0;
  const plane = inputHeight * inputWidth;
  if (logits.length !== classes * plane) throw new Error(`labelsFromLogits: expected ${classes * plane} logits (${classes}x${inputHeight}x${inputWidth}) but received ${logits.length}`);
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * inputWidth + x;
      let best = 0;
      if (classes === 1) best = logits[p] > threshold ? 1 : 0;
      else {
        let bv = logits[p];
        for (let c = 1; c < classes; c++) {
          const v = logits[c * plane + p];
          if (v > bv || (Number.isNaN(v) && !Number.isNaN(bv))) { bv = v; best = c; }
        }
      }
      out[y * width + x] = best;
    }
  }
  return out;
}

/**
 * @typedef {object} ClassArea
 * @property {string} class
 * @property {number} index
 * @property {number} pixels
 * @property {number} percent 100 * pixels / all pixels
 */

/**
 * Pixels per class, in class order (as panseg's classAreas).
 * @param {Uint8Array} labels
 * @param {readonly string[]} classes
 * @returns {ClassArea[]}
 */
export function classAreas(labels, classes) {
  const counts = new Float64Array(classes.length);
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l < classes.length) { counts[l]++; total++; }
  }
  return classes.map((name, i) => ({ class: name, index: i, pixels: counts[i], percent: total > 0 ? (100 * counts[i]) / total : 0 }));
}
