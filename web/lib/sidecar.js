// @ts-check
// Reading the sidecar JSON that `panseg export` writes beside model.onnx (src/export/sidecar.ts).
import { vocPalette } from './render.js';

/** @typedef {import('./preprocess.js').InputSpec} InputSpec */
/** @typedef {import('./render.js').RGB} RGB */

/**
 * @typedef {object} ModelSpec What the page needs to know about an exported model.
 * @property {InputSpec} input
 * @property {string} inputName
 * @property {string} logitsName
 * @property {string | null} attentionName the FPA attention output, when exported with it
 * @property {number} numClasses channels of the logits (1: binary)
 * @property {string | null} activation the head activation already applied to the logits (null = raw logits)
 * @property {string[]} classes names, at least 2
 * @property {RGB[]} colors one per class
 * @property {string} architecture e.g. "PAN-resnet34, output stride 16"
 * @property {string | null} sha256 the model file's hash (the cache key), null in older sidecars
 * @property {'fp32' | 'fp16'} dtype the weights' type
 */

/**
 * Checks a sidecar object and extracts the model spec.
 * @param {any} s the parsed JSON
 * @returns {ModelSpec}
 */
export function parseSidecar(s) {
  if (!s || s.format !== 'panseg-onnx') throw new Error(`not a panseg ONNX sidecar (format is ${JSON.stringify(s?.format)})`);
  if (s.formatVersion !== 1) throw new Error(`sidecar formatVersion ${s.formatVersion} is newer than this page reads (1); update panseg`);
  if (s.input?.dtype && s.input.dtype !== 'float32') throw new Error(`the model takes ${s.input.dtype} input; the page feeds float32: export it without --fp16-io`);
  const p = s.preprocessing ?? {};
  /** @param {unknown} x @param {string} name @param {number} n */
  const nums = (x, name, n) => {
    if (!Array.isArray(x) || x.length !== n || !x.every((e) => typeof e === 'number' && Number.isFinite(e))) throw new Error(`sidecar: expected ${n} numbers for ${name} but received ${JSON.stringify(x)}`);
    return /** @type {number[]} */ (x);
  };
  const mean = nums(p.mean, 'preprocessing.mean', 3);
  const std = nums(p.std, 'preprocessing.std', 3);
  const range = nums(p.inputRange ?? [0, 1], 'preprocessing.inputRange', 2);
  const stride = s.outputStride;
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`sidecar: expected a positive integer outputStride but received ${JSON.stringify(stride)}`);
  const fixed = s.input && !s.input.dynamicSize && Number.isInteger(s.input.height) && Number.isInteger(s.input.width)
    ? { height: s.input.height, width: s.input.width } : null;
  const numClasses = Number.isInteger(s.numClasses) && s.numClasses >= 1 ? s.numClasses : 1;
  const n = Math.max(2, numClasses);
  /** @type {string[]} */
  const classes = Array.from({ length: n }, (_, i) => (typeof s.classes?.[i] === 'string' ? s.classes[i] : `class ${i}`));
  const fallback = vocPalette(n);
  /** @type {RGB[]} */
  const colors = classes.map((_, i) => {
    const c = s.colors?.[i];
    return Array.isArray(c) && c.length === 3 ? /** @type {RGB} */ ([c[0], c[1], c[2]]) : fallback[i];
  });
  const arch = s.architecture ?? {};
  return {
    input: {
      mean: [mean[0], mean[1], mean[2]], std: [std[0], std[1], std[2]], inputRange: [range[0], range[1]],
      bgr: p.inputSpace === 'BGR', outputStride: stride, minInputSize: Number.isInteger(s.minInputSize) ? s.minInputSize : stride, fixedSize: fixed,
    },
    inputName: s.input?.name ?? 'input',
    logitsName: s.outputs?.logits ?? 'logits',
    attentionName: s.attention && s.outputs?.attention ? s.outputs.attention : null,
    numClasses,
    activation: typeof s.activation === 'string' ? s.activation : null,
    classes,
    colors,
    // Unet takes any size (stride 1): no stride to show.
    architecture: `${arch._model_class ?? 'PAN'}-${arch.encoder_name ?? '?'}${stride > 1 ? `, output stride ${stride}` : ''}`,
    sha256: typeof s.sha256 === 'string' && /^[0-9a-f]{64}$/.test(s.sha256) ? s.sha256 : null,
    dtype: s.dtype === 'fp16' ? 'fp16' : 'fp32',
  };
}
