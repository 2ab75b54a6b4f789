// See PAN's attention: capture it (explain), draw it (writeExplanation), gather several images
// (writeExplanationIndex) and add it to the training report (attentionReportSection).
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../common/errors.js';
import type { RGB } from '../common/palette.js';
import * as v from '../common/validate.js';
import type { RgbImage } from '../data/decode.js';
import { COLORMAPS, type ColormapName } from '../eval/visualize.js';
import { writeFileDurableAsync } from '../io/file.js';
import type { SegmentationModel } from '../models/index.js';
import { type Explanation, explain } from './capture.js';
import { attentionSectionHtml, explanationIndexHtml, explanationPageHtml, type IndexEntry } from './page.js';
import { type ExplanationFiles, overviewFigure, pyramidFigure, writeExplanationPictures } from './pictures.js';

export { explain, mapStats, stats, type ExplainOptions, type Explanation, type FpaCapture, type GauCapture, type Map2D, type PyramidLevel, type Stats } from './capture.js';
export { type ExplanationFiles, gauChart, globalBranchChart, overviewFigure, type PictureOptions, pyramidFigure, writeExplanationPictures } from './pictures.js';
export { cellsImage, coveringCells, mapOverlay, type MapLike, sampleMap, type Sizes } from './draw.js';
export { attentionSectionHtml, explanationIndexHtml, explanationPageHtml, type IndexEntry } from './page.js';

/** Options of {@link writeExplanation}. */
export interface WriteExplanationOptions {
  /** Class names, in label order; default 'class 0', 'class 1', ... */
  classes?: readonly string[];
  /** Class colours, in label order (the prediction's colours). */
  colors: readonly RGB[];
  /** Heatmap colours: 'jet' (default), 'viridis' or 'inferno'. */
  colormap?: ColormapName;
  /** Page title; default 'Where PAN looks'. */
  title?: string;
  /** A link from the page back to an index (relative to `dir`). */
  indexHref?: string;
}

/** What {@link writeExplanation} wrote. */
export interface WrittenExplanation {
  /** The page's path. */
  html: string;
  /** The pictures, relative to the folder. */
  files: ExplanationFiles;
}

/**
 * Writes the pictures of an explanation, `attention.json` (its numbers) and `index.html` (a page
 * explaining each picture) into `dir`. `image` must be the image given to {@link explain}.
 * @example
 * const e = explain(model, img);
 * await writeExplanation('out/cat', e, img, { classes: VOC_CLASSES, colors: VOC_PALETTE });
 */
export async function writeExplanation(dir: string, explanation: Explanation, image: RgbImage, opts: WriteExplanationOptions): Promise<WrittenExplanation> {
  const op = 'writeExplanation';
  const o = checkWriteOptions(op, dir, explanation, image, opts);
  const files = await writeExplanationPictures(dir, explanation, image, { classes: o.classes, colors: o.colors, colormap: o.colormap });
  await writeFileDurableAsync(join(dir, 'attention.json'), `${JSON.stringify(explanationJson(explanation))}\n`);
  const html = join(dir, 'index.html');
  await writeFileDurableAsync(html, explanationPageHtml(explanation, files, { title: o.title, classes: o.classes, colors: o.colors, indexHref: o.indexHref }));
  return { html, files };
}

function checkWriteOptions(op: string, dir: string, e: Explanation, image: RgbImage, opts: WriteExplanationOptions): Required<Pick<WriteExplanationOptions, 'classes' | 'colors' | 'colormap'>> & WriteExplanationOptions {
  if (typeof dir !== 'string' || dir === '') fail(op, 'expected a folder path for dir');
  if (!e || !e.fpa || !Array.isArray(e.gau) || !(e.labels instanceof Uint8Array)) fail(op, 'expected an Explanation (from explain) for explanation');
  if (!image || !(image.data instanceof Uint8Array) || image.data.length !== image.width * image.height * 3) fail(op, 'expected an RgbImage for image');
  if (image.width !== e.image.width || image.height !== e.image.height) {
    fail(op, `the image is ${image.width}x${image.height} but the explanation was made for ${e.image.width}x${e.image.height}; pass the image given to explain`);
  }
  if (!opts || !Array.isArray(opts.colors)) fail(op, 'expected an array of [r, g, b] colours for colors');
  const classes = opts.classes ?? Array.from({ length: Math.max(2, e.model.classes) }, (_, i) => `class ${i}`);
  const colormap = v.oneOf(op, 'colormap', opts.colormap ?? 'jet', COLORMAPS);
  return { ...opts, classes, colormap };
}

/** The explanation's numbers for JSON (maps as nested-free arrays; the label map left out: see prediction.png). */
export function explanationJson(e: Explanation): Record<string, unknown> {
  const { labels: _l, ...rest } = e;
  const round = (_k: string, x: unknown): unknown => (typeof x === 'number' && !Number.isInteger(x) ? (Number.isFinite(x) ? Number(x.toPrecision(6)) : null) : x);
  return JSON.parse(JSON.stringify(rest, round)) as Record<string, unknown>;
}

/**
 * Writes `<dir>/index.html` listing several explained images (cards with their overview pictures
 * linking to their pages). `entries` addresses are relative to `dir`.
 */
export async function writeExplanationIndex(dir: string, entries: readonly IndexEntry[], opts: { title?: string; classes: readonly string[]; colors: readonly RGB[] }): Promise<string> {
  const path = join(dir, 'index.html');
  await writeFileDurableAsync(path, explanationIndexHtml(entries, opts));
  return path;
}

/** Options of {@link attentionReportSection}. */
export interface AttentionSectionOptions {
  classes: readonly string[];
  colors: readonly RGB[];
  colormap?: ColormapName;
  /** Folder beside the report page that holds pictures. Default 'report' (the report's own). */
  assetDir?: string;
  /** Channels listed per GAU. Default 5. */
  topK?: number;
}

/**
 * The training report's "Attention" section: explains each sample image and writes its overview
 * and pyramid pictures to `<reportDir>/<assetDir>/attention-<i>-*.png` (replacing earlier ones).
 * A failure is reported inside the section instead of failing the report.
 * @example sections.push(await attentionReportSection(model, samples, outDir, { classes, colors }))
 */
export async function attentionReportSection(model: SegmentationModel, samples: readonly { id: string; image: RgbImage }[], reportDir: string, opts: AttentionSectionOptions): Promise<{ title: string; html: string }> {
  const title = 'Attention';
  const assetDir = opts.assetDir ?? 'report';
  const assets = join(reportDir, assetDir);
  try {
    await removeOld(assets);
    const items: { id: string; files: { overview: string; pyramid: string }; explanation: Explanation }[] = [];
    for (const [i, s] of samples.entries()) {
      const e = explain(model, s.image, { topK: opts.topK });
      const files = { overview: `attention-${i}-overview.png`, pyramid: `attention-${i}-pyramid.png` };
      const pic = { classes: opts.classes, colors: opts.colors, colormap: opts.colormap, maxSide: 256 };
      await writeFileDurableAsync(join(assets, files.overview), (await overviewFigure(e, s.image, pic)).png);
      await writeFileDurableAsync(join(assets, files.pyramid), await pyramidFigure(e, pic));
      items.push({ id: s.id, files, explanation: e });
    }
    return { title, html: attentionSectionHtml(items, `${assetDir}/`) };
  } catch (e) {
    return { title, html: `<p class="muted">The attention pictures could not be drawn: ${escape((e as Error).message)}</p>` };
  }
}

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function removeOld(assets: string): Promise<void> {
  let names: string[];
  try { names = await readdir(assets); } catch { return; }
  await Promise.all(names.filter((x) => /^attention-\d+-/.test(x)).map((x) => rm(join(assets, x), { force: true })));
}
