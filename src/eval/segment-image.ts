// Segmenting one decoded image into labels at its own size, in memory that does not grow with the image
// when tiled: windows are cut from the 8-bit pixels as they are needed, blended (tiles.ts), and each
// finished block goes straight to labels (and to probabilities only when asked for).
import { evalOptions, evalTransform, type RgbImage } from '../data/index.js';
import { full, keep, type Tensor, tensor, tidy } from '../engine/index.js';
import type { SegmentationModel } from '../models/index.js';
import {
  checkSizeOptions, type InferenceOptions, type LogitsSource, modelSource, openSource, probs, probsSync, probsToLabels,
  resizedSize, type Segmentable, type SizeOptions, windowOf, windowSize,
} from './segmenter.js';
import { bilinearRows, blendWindows, driveAsync, driveSync, type Rect } from './tiles.js';

export interface Segmentation {
  /** Class index per pixel, original size. */
  labels: Uint8Array;
  width: number;
  height: number;
  /** Class probabilities [classes, H, W] at original size (only when asked for). */
  probs?: Float32Array;
  ms: number;
}

/** Floats per band when probabilities are resized back to the image (64 MiB). */
const BAND_FLOATS = 1 << 24;

/** A sub-image: rows y..y+height, columns x..x+width. */
function cropImage(img: RgbImage, r: Rect): RgbImage {
  if (r.x === 0 && r.y === 0 && r.width === img.width && r.height === img.height) return img;
  const data = new Uint8Array(r.width * r.height * 3);
  for (let y = 0; y < r.height; y++) {
    const from = ((r.y + y) * img.width + r.x) * 3;
    data.set(img.data.subarray(from, from + r.width * 3), y * r.width * 3);
  }
  return { data, width: r.width, height: r.height };
}

/**
 * One image's pass: the network input (the image padded to the stride, a resized copy, or windows cut
 * on demand), the blending loop, and the labels (and probabilities) it fills at the image's size.
 */
class ImagePass {
  readonly labels: Uint8Array;
  probs?: Float32Array;
  /** The whole input at inference scale, when it is made up front (not tiled from the image). */
  private readonly input: Tensor | null;
  /** Probabilities at inference scale, kept for resizing back (when resized). */
  private low: Tensor | null = null;
  /** Size at which the network sees the image. */
  readonly h: number;
  readonly w: number;
  private readonly tile: [number, number] | null;

  constructor(private readonly src: LogitsSource, private readonly img: RgbImage, private readonly so: SizeOptions, private readonly withProbs: boolean) {
    this.labels = new Uint8Array(img.width * img.height);
    [this.h, this.w] = so.resizeLong ? resizedSize(img.height, img.width, so.resizeLong) : [img.height, img.width];
    this.tile = so.tile ? windowSize(src, so.tile.tile) : null;
    const pre = src.preprocessing;
    const whole = !this.tile || (this.tile[0] >= this.h && this.tile[1] >= this.w);
    // Tiling at the image's own size cuts windows from the 8-bit pixels; otherwise one input tensor (small when resized).
    if (!so.resizeLong && !whole) this.input = null;
    else {
      const resize: [number, number] | undefined = so.resizeLong && (this.h !== img.height || this.w !== img.width) ? [this.h, this.w] : undefined;
      const t = evalTransform(img, null, evalOptions('predict', { stride: src.outputStride, mean: pre.mean, std: pre.std, resize }, 255));
      this.input = keep(tensor(t.image, [1, 3, t.info.inputHeight, t.info.inputWidth]));
    }
  }

  windows(): Generator<Rect, void, Tensor> {
    const [th, tw] = this.tile ?? [this.h, this.w];
    return blendWindows(this.h, this.w, th, tw, this.so.tile?.overlap ?? 0, (y, x, block) => this.block(y, x, block));
  }

  /** The network input for window r (dispose it). The whole input may be padded beyond r: crop the result with `cropped`. */
  windowInput(r: Rect): Tensor {
    if (this.input) return r.height === this.h && r.width === this.w ? keep(tidy(() => this.input!.narrow(0, 0, 1))) : keep(windowOf(this.input, r));
    const pre = this.src.preprocessing;
    const t = evalTransform(cropImage(this.img, r), null, evalOptions('predict', { stride: this.src.outputStride, mean: pre.mean, std: pre.std }, 255));
    return keep(tensor(t.image, [1, 3, t.info.inputHeight, t.info.inputWidth]));
  }

  /** Probabilities for window r from those of its (maybe padded) input; disposes p. */
  cropped(r: Rect, p: Tensor): Tensor {
    if (p.shape[2] === r.height && p.shape[3] === r.width) return p;
    try { return keep(tidy(() => p.narrow(2, 0, r.height).narrow(3, 0, r.width))); } finally { p.dispose(); }
  }

  private block(y: number, x: number, block: Tensor): void {
    if (this.h === this.img.height && this.w === this.img.width) { this.write(y, x, block); return; }
    this.low ??= keep(full([1, block.shape[1], this.h, this.w], 0, { device: block.device }));
    tidy(() => { this.low!.narrow(2, y, block.shape[2]).narrow(3, x, block.shape[3]).copy_(block); });
  }

  /** Labels (and probabilities) for the block at (y, x) from its probabilities [1, K, rows, cols] at the image's size. */
  private write(y: number, x: number, block: Tensor): void {
    const { width: W, height: H } = this.img;
    const [k, rows, cols] = [block.shape[1], block.shape[2], block.shape[3]];
    tidy(() => {
      const lab = probsToLabels(block).to('uint8').toArray() as Uint8Array;
      for (let r = 0; r < rows; r++) this.labels.set(lab.subarray(r * cols, (r + 1) * cols), (y + r) * W + x);
      if (!this.withProbs) return;
      this.probs ??= new Float32Array(k * H * W);
      const a = block.to('cpu').contiguous().toArray() as Float32Array;
      for (let c = 0; c < k; c++) {
        for (let r = 0; r < rows; r++) this.probs.set(a.subarray((c * rows + r) * cols, (c * rows + r + 1) * cols), c * H * W + (y + r) * W + x);
      }
    });
  }

  /** After the windows: resizes the probabilities back to the image (in bands of rows) when inferred at another scale. */
  finish(): void {
    const low = this.low;
    if (!low) return;
    const { width: W, height: H } = this.img;
    try {
      const rows = Math.max(1, Math.min(H, Math.floor(BAND_FLOATS / (low.shape[1] * W))));
      for (let y = 0; y < H; y += rows) {
        const band = bilinearRows(low, H, W, y, Math.min(H, y + rows));
        try { this.write(y, 0, band); } finally { band.dispose(); }
      }
    } finally {
      low.dispose();
      this.low = null;
    }
  }

  result(t0: number): Segmentation {
    return { labels: this.labels, probs: this.probs, width: this.img.width, height: this.img.height, ms: performance.now() - t0 };
  }

  dispose(): void {
    this.input?.dispose();
    this.low?.dispose();
  }
}

/**
 * Segments one decoded RGB image with the model's preprocessing, padding to a valid size and cropping back
 * (libtorch, synchronous). With `tile`, memory is bounded by one band of windows whatever the image size.
 */
export function segmentImage(model: SegmentationModel, img: RgbImage, o: InferenceOptions & { withProbs?: boolean } = {}): Segmentation {
  const t0 = performance.now();
  const src = modelSource(model, o.precision ?? 'auto');
  const pass = new ImagePass(src, img, checkSizeOptions('segment', o), o.withProbs ?? false);
  const whole = { ...o, tile: undefined, resizeLong: undefined };
  try {
    driveSync(pass.windows(), (r) => {
      const x = pass.windowInput(r);
      try { return pass.cropped(r, probsSync(src, x, whole)); } finally { x.dispose(); }
    });
    pass.finish();
    return pass.result(t0);
  } finally {
    pass.dispose();
  }
}

/** segmentImage for any engine: a model, or an OnnxSegmenter. */
export async function segment(m: Segmentable, img: RgbImage, o: InferenceOptions & { withProbs?: boolean } = {}): Promise<Segmentation> {
  const t0 = performance.now();
  const { src, close } = openSource(m, o.precision, o.cudaGraphs);
  const whole = { ...o, tile: undefined, resizeLong: undefined };
  try {
    const pass = new ImagePass(src, img, checkSizeOptions('segment', o), o.withProbs ?? false);
    try {
      await driveAsync(pass.windows(), async (r) => {
        const x = pass.windowInput(r);
        try { return pass.cropped(r, await probs(src, x, whole)); } finally { x.dispose(); }
      });
      pass.finish();
      return pass.result(t0);
    } finally {
      pass.dispose();
    }
  } finally {
    close();
  }
}
