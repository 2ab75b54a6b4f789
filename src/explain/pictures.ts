// The pictures of an explanation: the FPA map over the image, the pyramid levels at their real
// resolution, the FPA branches, each GAU's channel weights and where its gated detail lands, and the
// prediction. The map drawing is pure (draw.ts); laying out and encoding uses sharp (figure.ts).
import { join } from 'node:path';
import type { RGB } from '../common/palette.js';
import type { RgbImage } from '../data/decode.js';
import { barChart } from '../eval/charts.js';
import { type ColormapName, colorMask, encodePng, overlay } from '../eval/visualize.js';
import { writeFileDurableAsync } from '../io/file.js';
import type { Explanation, GauCapture } from './capture.js';
import { cellsImage, coveringCells, mapOverlay, mulMaps, range } from './draw.js';
import { fitImage, type Panel, renderFigure, svgToPng } from './figure.js';

/** Options of {@link writeExplanationPictures}. */
export interface PictureOptions {
  classes: readonly string[];
  colors: readonly RGB[];
  /** Default 'jet'. */
  colormap?: ColormapName;
  /** Heatmap opacity over the image. Default 0.5. */
  alpha?: number;
  /** Longest side of the pictures (the image is shrunk to it, never enlarged). Default 384. */
  maxSide?: number;
  /** Prefix of every file name (e.g. 'attention-0-'). Default ''. */
  prefix?: string;
}

/** The files {@link writeExplanationPictures} wrote, as names relative to its folder. */
export interface ExplanationFiles {
  /** image | FPA attention over it | prediction. */
  overview: string;
  /** The FPA attention map over the image, with a colour bar. */
  attention: string;
  /** The pyramid levels (coarse to fine) and their sum, the attention map, at their own resolution. */
  pyramid: string;
  /** mid branch strength | attention | attention x mid: what FPA keeps. */
  branches: string;
  /** The global branch's value per channel (SVG and PNG). */
  globalBranch: { svg: string; png: string };
  /** Per GAU: its channel weights as a bar chart (SVG and PNG), top-k highlighted. */
  gau: { name: string; svg: string; png: string }[];
  /** Where each GAU's gated detail is added, over the image; null without GAU parts. */
  gauDetail: string | null;
  /** The prediction in class colours, and over the image. */
  prediction: string;
  predictionOverlay: string;
  /** The image (shrunk to maxSide). */
  image: string;
  /** The colour range of the attention overlay. */
  attentionRange: [number, number];
}

function fraction(stride: number): string {
  return Number.isFinite(stride) ? `1/${Math.round(stride)}` : '';
}

/** The bar chart of a GAU's channel weights, top-k highlighted. */
export function gauChart(g: GauCapture): string {
  const c = g.weights.length;
  return barChart({
    title: `${g.name} channel weights${Number.isFinite(g.stride) ? ` (skip at ${fraction(g.stride)})` : ''}: top ${g.top.length} in red`,
    labels: g.weights.map((_, i) => `ch ${i}`),
    values: g.weights, min: 0, max: 1, highlight: g.top,
    width: 480, barHeight: c <= 32 ? 14 : c <= 64 ? 9 : c <= 128 ? 6 : 4,
  });
}

/** The global branch's per-channel values as a bar chart. */
export function globalBranchChart(e: Explanation): string {
  const b = e.fpa.globalBranch;
  const c = b.length;
  return barChart({
    title: 'FPA global branch: value added to every pixel, per channel',
    labels: b.map((_, i) => `ch ${i}`), values: b, width: 480, barHeight: c <= 32 ? 14 : c <= 64 ? 9 : c <= 128 ? 6 : 4, color: '#59a14f',
  });
}

/** The image, the FPA attention over it (with a colour bar) and the prediction, as one PNG. */
export async function overviewFigure(e: Explanation, image: RgbImage, opts: PictureOptions): Promise<{ png: Buffer; range: [number, number] }> {
  const cmap = opts.colormap ?? 'jet';
  const maxSide = opts.maxSide ?? 384;
  const img = await fitImage(image, maxSide);
  const pred = await fitImage(colorMask(e.labels, e.image.width, e.image.height, opts.colors, 255, IGNORE), maxSide, true);
  const att = mapOverlay(img, e.fpa.attention, e, cmap, opts.alpha ?? 0.5);
  const png = await renderFigure([
    { image: img, caption: 'image' },
    { image: att.image, caption: 'FPA attention' },
    { image: pred, caption: 'prediction' },
  ], { colorBar: { min: att.range[0], max: att.range[1], colormap: cmap, label: 'attention' } });
  return { png, range: att.range };
}

/** The pyramid levels, coarse to fine, and their sum (the attention map) at their real resolution, in one colour range. */
export async function pyramidFigure(e: Explanation, opts: Pick<PictureOptions, 'colormap'> = {}): Promise<Buffer> {
  const cmap = opts.colormap ?? 'jet';
  const os = e.model.outputStride;
  const [c1, c2, x3] = e.fpa.levels;
  const cells = [x3, c2, c1, e.fpa.attention].map((m) => coveringCells(m, e));
  const [lo, hi] = range(cells.flatMap((m) => m.values));
  const box = 180;
  const ar = e.image.height / e.image.width;
  const [pw, ph] = ar >= 1 ? [Math.max(24, Math.round(box / ar)), box] : [box, Math.max(24, Math.round(box * ar))];
  const caps = [`down3: 1/${os * 8} (at 1/${os * 4})`, `conv2: 1/${os * 4}`, `conv1: 1/${os * 2}`, `sum = attention: 1/${os}`];
  return renderFigure(
    cells.map((m, i) => ({ image: cellsImage(m, pw, ph, lo, hi, cmap), caption: caps[i] })),
    { title: 'FPA pyramid levels (each block is one value)', colorBar: { min: lo, max: hi, colormap: cmap, label: 'value' } },
  );
}

const IGNORE: RGB = [224, 224, 192];

/**
 * Draws the pictures of an explanation into `dir` (see {@link ExplanationFiles}) and returns their
 * names relative to `dir`. `image` must be the image that was explained.
 */
export async function writeExplanationPictures(dir: string, e: Explanation, image: RgbImage, opts: PictureOptions): Promise<ExplanationFiles> {
  const cmap = opts.colormap ?? 'jet';
  const pre = opts.prefix ?? '';
  const maxSide = opts.maxSide ?? 384;
  const name = (n: string): string => `${pre}${n}`;
  const write = (n: string, data: Buffer | string): Promise<void> => writeFileDurableAsync(join(dir, name(n)), data);

  const img = await fitImage(image, maxSide);
  const overview = await overviewFigure(e, image, opts);
  const att = mapOverlay(img, e.fpa.attention, e, cmap, opts.alpha ?? 0.5);
  const files: ExplanationFiles = {
    overview: name('overview.png'), attention: name('fpa-attention.png'), pyramid: name('fpa-pyramid.png'),
    branches: name('fpa-branches.png'), globalBranch: { svg: name('fpa-global.svg'), png: name('fpa-global.png') },
    gau: [], gauDetail: null, prediction: name('prediction.png'), predictionOverlay: name('prediction-overlay.png'),
    image: name('image.png'), attentionRange: overview.range,
  };
  await write('image.png', await encodePng(img));
  await write('prediction.png', await encodePng(await fitImage(colorMask(e.labels, e.image.width, e.image.height, opts.colors, 255, IGNORE), maxSide, true)));
  await write('prediction-overlay.png', await encodePng(await fitImage(overlay(image, e.labels, opts.colors, { alpha: 0.5 }), maxSide)));
  await write('overview.png', overview.png);
  await write('fpa-attention.png', await renderFigure([{ image: att.image, caption: `FPA attention (1/${e.model.outputStride} cells, upsampled)` }], {
    colorBar: { min: att.range[0], max: att.range[1], colormap: cmap, label: 'attention' },
  }));
  await write('fpa-pyramid.png', await pyramidFigure(e, opts));

  // FPA's product: what the local feature is, where attention is, and what survives.
  const kept = mulMaps(e.fpa.attention, e.fpa.midNorm);
  const branchPanels: Panel[] = ([[e.fpa.midNorm, '|mid|'], [e.fpa.attention, 'attention'], [kept, 'attention x |mid|']] as const)
    .map(([m, caption]) => ({ image: mapOverlay(img, m, e, cmap, 0.65).image, caption }));
  await write('fpa-branches.png', await renderFigure(branchPanels, { title: 'FPA output = attention x mid + global (own colour range each)' }));
  const gsvg = globalBranchChart(e);
  await write('fpa-global.svg', gsvg);
  await write('fpa-global.png', await svgToPng(gsvg));

  for (const g of e.gau) {
    const svg = gauChart(g);
    await write(`${g.name}-weights.svg`, svg);
    await write(`${g.name}-weights.png`, await svgToPng(svg));
    files.gau.push({ name: g.name, svg: name(`${g.name}-weights.svg`), png: name(`${g.name}-weights.png`) });
  }
  const withDetail = e.gau.filter((g) => g.detail.values.length);
  if (withDetail.length) {
    const panels = withDetail.map((g) => ({ image: mapOverlay(img, g.detail, e, cmap, 0.65).image, caption: `${g.name} detail (${fraction(g.stride)})` }));
    await write('gau-detail.png', await renderFigure(panels, { title: 'Where each GAU adds gated detail (own colour range each)' }));
    files.gauDetail = name('gau-detail.png');
  }
  return files;
}
