// Segmenting images with an exported model on onnxruntime-node alone (no libtorch): decode as the library
// does (data/decode.ts, EXIF orientation applied), resize when asked (sharp), normalize and pad by the library's own rules
// (data/transforms.ts, common/input-size.ts), run, then labels and probabilities on plain arrays.
import sharp from 'sharp';
import { fail } from '../common/errors.js';
import type { RGB } from '../common/palette.js';
import * as v from '../common/validate.js';
import { decodeImage, type RgbImage } from '../data/decode.js';
import { evalOptions, evalTransform, type PadInfo, unpad } from '../data/transforms.js';
import type { OnnxSidecar } from '../export/sidecar.js';
import { labelsOf, probsOf } from './labels.js';
import { type OnnxOutput, OnnxSession, type OnnxSessionOptions } from './session.js';

const OP = 'OnnxModel';

export interface OnnxSegmentOptions {
  /** Resize so the longer side is this many pixels (the training scale), segment, and scale the labels back. Default: as it is. */
  resizeLong?: number;
  /** Also return class probabilities [classes, H, W] at the image's size. Default false. */
  withProbs?: boolean;
}

/** One image's result, at the image's size (after EXIF orientation). */
export interface OnnxSegmentation {
  /** Class index per pixel, row-major. */
  labels: Uint8Array;
  width: number;
  height: number;
  /** [classes, height, width] when asked for. */
  probs?: Float32Array;
  /** The size the model ran at (padded). */
  inputWidth: number;
  inputHeight: number;
  /** Every output of the model as it came (logits at the input size; `attention` when exported with it). */
  outputs: Record<string, OnnxOutput>;
  ms: number;
}

async function resized(img: RgbImage, width: number, height: number): Promise<RgbImage> {
  const data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).resize(width, height, { fit: 'fill' }).raw().toBuffer();
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}

/** CHW planes [c, h, w] copied to the top-left of zero planes [c, ph, pw]. */
function padPlanes(x: Float32Array, c: number, h: number, w: number, ph: number, pw: number): Float32Array {
  if (ph === h && pw === w) return x;
  const out = new Float32Array(c * ph * pw);
  for (let k = 0; k < c; k++) for (let y = 0; y < h; y++) out.set(x.subarray((k * h + y) * w, (k * h + y + 1) * w), (k * ph + y) * pw);
  return out;
}

/**
 * An exported model (`panseg export`) on onnxruntime-node, with its class names, colours and preprocessing
 * from the sidecar. Imports neither libtorch nor panseg's addon: `import { OnnxModel } from 'panseg/onnx'`.
 * @example
 * const model = await OnnxModel.load('pan.onnx', { threads: 2 });
 * const seg = await model.segmentFile('photo.jpg');   // EXIF-oriented; seg.labels: Uint8Array(width * height)
 * console.log(model.classes[seg.labels[0]]);
 * await model.release();
 */
export class OnnxModel {
  private constructor(readonly session: OnnxSession) {}

  static async load(path: string, o: OnnxSessionOptions = {}): Promise<OnnxModel> {
    return new OnnxModel(await OnnxSession.create(path, o, OP));
  }

  get sidecar(): OnnxSidecar { return this.session.sidecar; }
  /** Class names (at least 2: a 1-channel model predicts 0/1). */
  get classes(): string[] { return this.sidecar.classes; }
  get colors(): RGB[] { return this.sidecar.colors; }
  /** Channels of the logits (1 = binary). */
  get numClasses(): number { return this.sidecar.numClasses; }

  /** Segments an image file (JPEG, PNG, WebP, ...), decoded as the library decodes (upright by its EXIF orientation). */
  async segmentFile(path: string, o: OnnxSegmentOptions = {}): Promise<OnnxSegmentation> {
    let img: RgbImage;
    try {
      img = await decodeImage(path);
    } catch (e) {
      return fail(OP, `cannot decode ${path}: ${(e as Error).message.split('\n')[0]}; is it a complete JPEG, PNG, WebP or TIFF image?`);
    }
    return this.segment(img, o);
  }

  /** Segments decoded RGB pixels (HWC, 8-bit). */
  async segment(img: RgbImage, o: OnnxSegmentOptions = {}): Promise<OnnxSegmentation> {
    const t0 = performance.now();
    if (!img || !(img.data instanceof Uint8Array) || !Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1 || img.data.length !== img.width * img.height * 3) {
      fail(OP, `expected { data: Uint8Array of width * height * 3 RGB bytes, width, height } but received ${img?.width}x${img?.height} with ${img?.data?.length} bytes`);
    }
    const s = this.sidecar;
    if (s.input.channels !== 3) fail(OP, `the model takes ${s.input.channels} channels; segment() feeds RGB images (use session.run for other inputs)`);
    // The size the model runs at: as it is, the long side at resizeLong, or scaled down into a fixed-size model.
    let [rw, rh] = [img.width, img.height];
    if (o.resizeLong !== undefined) {
      const k = v.int(OP, 'resizeLong', o.resizeLong, 1) / Math.max(rw, rh);
      [rw, rh] = [Math.max(1, Math.round(rw * k)), Math.max(1, Math.round(rh * k))];
    }
    if (!s.input.dynamicSize && (rh > s.input.height! || rw > s.input.width!)) {
      const k = Math.min(s.input.height! / rh, s.input.width! / rw);
      [rw, rh] = [Math.max(1, Math.floor(rw * k)), Math.max(1, Math.floor(rh * k))];
    }
    const run = rw === img.width && rh === img.height ? img : await resized(img, rw, rh);
    const pre = s.preprocessing;
    const t = evalTransform(run, null, evalOptions(OP, { stride: s.outputStride, mean: pre.mean, std: pre.std }, 255));
    const [ph, pw] = this.session.paddedSize(rh, rw, OP);
    const x = padPlanes(t.image, 3, t.info.inputHeight, t.info.inputWidth, ph, pw);
    const outputs = await this.session.run(x, [1, 3, ph, pw], OP);
    const logits = outputs[s.outputs.logits];
    if (logits.dims[2] !== ph || logits.dims[3] !== pw) fail(OP, `the model's logits are ${logits.dims.slice(2).join('x')}, not the input size ${ph}x${pw} (its head does not upsample to the input)`);
    const planes = { data: logits.data, channels: logits.dims[1], rows: ph, cols: pw };
    let labels = labelsOf(planes, rh, rw, s.activation);
    let probs = o.withProbs ? probsOf(planes, rh, rw, s.activation) : undefined;
    if (run !== img) {
      // Back to the image's size: nearest for labels, bilinear for probabilities (data/transforms.ts's unpad).
      const info: PadInfo = { mode: 'resize', height: img.height, width: img.width, inputHeight: rh, inputWidth: rw };
      labels = unpad(labels, info);
      if (probs) probs = unpad(probs, info, planes.channels);
    }
    return { labels, width: img.width, height: img.height, probs, inputWidth: pw, inputHeight: ph, outputs, ms: performance.now() - t0 };
  }

  /** Frees the onnxruntime session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
