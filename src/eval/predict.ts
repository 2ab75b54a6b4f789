// Segmenting image files: index PNG masks, colour overlays, per-class area stats and,
// on request, class probabilities as .npy.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fail } from '../common/errors.js';
import { type RGB, VOC_PALETTE } from '../common/palette.js';
import { decodeImage, type RgbImage } from '../data/index.js';
import { tensor } from '../engine/index.js';
import { writeFileDurableAsync } from '../io/file.js';
import { saveNpy } from '../io/npy.js';
import { type InferenceOptions, openSource, type Segmentable } from './segmenter.js';
import { type Segmentation, segment } from './segment-image.js';
import { type ClassArea, classAreas, overlay, saveIndexMask, savePng } from './visualize.js';

const IMAGE_EXT = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.bmp', '.gif']);

/** Expands files, folders (their images, sorted) and list files (.txt, one path per line). */
export function collectInputs(inputs: string[]): string[] {
  const out: string[] = [];
  for (const p of inputs) {
    if (!existsSync(p)) fail('predict', `input ${p} does not exist`);
    if (statSync(p).isDirectory()) {
      const files = readdirSync(p).filter((f) => IMAGE_EXT.has(extname(f).toLowerCase())).sort().map((f) => join(p, f));
      if (!files.length) fail('predict', `folder ${p} holds no images (${[...IMAGE_EXT].join(', ')})`);
      out.push(...files);
    } else if (extname(p).toLowerCase() === '.txt') {
      out.push(...collectInputs(readFileLines(p)));
    } else out.push(p);
  }
  return out;
}

function readFileLines(p: string): string[] {
  return readFileSync(p, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

export interface SegmentOptions extends InferenceOptions {
  /** Class colours; default: the model's metadata, else the VOC palette. */
  colors?: readonly RGB[];
}

export { type Segmentation, segment, segmentImage } from './segment-image.js';

export interface PredictFilesOptions extends SegmentOptions {
  classNames?: readonly string[];
  /** Write `<name>_overlay.png` (default true). */
  overlay?: boolean;
  /** Write `<name>_probs.npy` with [classes, H, W] float32 probabilities (default false). */
  probs?: boolean;
  /** Overlay opacity (default 0.5). */
  alpha?: number;
  onProgress?: (done: number, total: number, file: string) => void;
}

export interface PredictedFile {
  input: string;
  mask: string;
  overlay?: string;
  probs?: string;
  width: number;
  height: number;
  ms: number;
  areas: ClassArea[];
}

/** Segments one decoded image (segment or segmentImage bound to a model). */
export type ImageSegmenter = (img: RgbImage, withProbs: boolean) => Segmentation | Promise<Segmentation>;

export interface WritePredictionsOptions {
  classNames: readonly string[];
  colors: readonly RGB[];
  overlay?: boolean;
  probs?: boolean;
  alpha?: number;
  onProgress?: (done: number, total: number, file: string) => void;
}

/**
 * Output names for input files, without suffix: each file's path relative to the folder all inputs share,
 * less its extension (a/x.png and b/x.png -> a/x and b/x; one folder's images -> their stems), so no two
 * inputs write the same file. Files differing only in extension keep it (x.jpg, x.png -> x_jpg, x_png).
 */
export function outputStems(files: readonly string[]): string[] {
  const abs = files.map((f) => resolve(f));
  let base = abs.length ? dirname(abs[0]) : '';
  for (const f of abs) while (!(f.startsWith(base.endsWith(sep) ? base : base + sep))) base = dirname(base);
  const rel = abs.map((f) => relative(base, f));
  const stems = rel.map((r) => r.slice(0, r.length - extname(r).length));
  const count = new Map<string, number>();
  for (const [i, s] of stems.entries()) if (abs.indexOf(abs[i]) === i) count.set(s, (count.get(s) ?? 0) + 1);
  return stems.map((s, i) => ((count.get(s) ?? 0) > 1 ? `${s}_${extname(rel[i]).slice(1)}` : s));
}

/**
 * Runs `segment` on each file and writes `<name>_mask.png` (palette PNG of class indices),
 * `<name>_overlay.png`, optional `<name>_probs.npy`, and `stats.json` with per-image class areas.
 * `<name>` keeps each input's path below the folder the inputs share (see outputStems).
 */
export async function writePredictions(segment: ImageSegmenter, files: string[], outDir: string, o: WritePredictionsOptions): Promise<PredictedFile[]> {
  mkdirSync(outDir, { recursive: true });
  const { classNames, colors } = o;
  const palette: RGB[] = Array.from({ length: 256 }, (_, i) => (colors[i] ?? VOC_PALETTE[i]) as RGB);
  const results: PredictedFile[] = [];
  const stems = outputStems(files);
  for (const [i, file] of files.entries()) {
    let img: RgbImage;
    try { img = await decodeImage(file); } catch (e) { fail('predict', `cannot decode ${file}: ${(e as Error).message}`); }
    const seg = await segment(img, o.probs ?? false);
    const stem = stems[i];
    if (stem.includes(sep)) mkdirSync(join(outDir, dirname(stem)), { recursive: true });
    const r: PredictedFile = { input: file, mask: join(outDir, `${stem}_mask.png`), width: seg.width, height: seg.height, ms: seg.ms, areas: classAreas(seg.labels, classNames, 255) };
    await saveIndexMask(r.mask, seg.labels, seg.width, seg.height, palette);
    if (o.overlay ?? true) {
      r.overlay = join(outDir, `${stem}_overlay.png`);
      await savePng(r.overlay, overlay(img, seg.labels, colors, { alpha: o.alpha ?? 0.5 }));
    }
    if (o.probs && seg.probs) {
      r.probs = join(outDir, `${stem}_probs.npy`);
      const p = tensor(seg.probs, [seg.probs.length / (seg.width * seg.height), seg.height, seg.width]);
      try { saveNpy(r.probs, p); } finally { p.dispose(); }
    }
    results.push(r);
    o.onProgress?.(i + 1, files.length, file);
  }
  await writeFileDurableAsync(join(outDir, 'stats.json'), `${JSON.stringify(results.map(({ input, width, height, ms, areas }) => ({ input, width, height, ms: Math.round(ms), areas })), null, 2)}\n`);
  return results;
}

/** Default class names and colours for `classes` outputs (at least 2: a 1-class model predicts 0/1). */
export function defaultLabels(classes: number): { classNames: string[]; colors: RGB[] } {
  const n = Math.max(2, classes);
  return { classNames: Array.from({ length: n }, (_, i) => `class ${i}`), colors: VOC_PALETTE.slice(0, n) as RGB[] };
}

/**
 * Segments image files (files, folders, list files) into `outDir` with a model (run as an inference copy)
 * or an OnnxSegmenter; see writePredictions for the files written.
 */
export async function predictFiles(m: Segmentable, inputs: string[], outDir: string, o: PredictFilesOptions = {}): Promise<PredictedFile[]> {
  const files = collectInputs(inputs);
  const { src, close } = openSource(m, o.precision, o.cudaGraphs);
  const d = defaultLabels(src.numClasses);
  try {
    return await writePredictions((img, withProbs) => segment(src, img, { ...o, withProbs }), files, outDir, {
      ...o, classNames: o.classNames ?? d.classNames, colors: o.colors ?? d.colors,
    });
  } finally {
    close();
  }
}
