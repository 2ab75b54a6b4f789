// Figures as PNG: pictures laid out left to right on a white canvas, with captions, a title and an
// optional colour bar. Text is drawn by compositing an SVG over the pixels with sharp.
import { fail } from '../common/errors.js';
import type { RgbImage } from '../data/decode.js';
import { escapeXml, formatNumber } from '../eval/charts.js';
import { type ColormapName, colorBarImage } from '../eval/visualize.js';

/** One picture of a {@link renderFigure} row. */
export interface Panel {
  image: RgbImage;
  caption?: string;
}

/** A vertical colour legend drawn at the right of a figure. */
export interface FigureColorBar {
  min: number;
  max: number;
  colormap: ColormapName;
  label?: string;
}

export interface FigureOptions {
  title?: string;
  colorBar?: FigureColorBar;
  /** Pixels between panels. Default 8. */
  gap?: number;
}

const CAPTION_H = 18;
const TITLE_H = 24;
const PAD = 6;
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

/** Lays panels out left to right with captions above them, and encodes the result as PNG. */
export async function renderFigure(panels: readonly Panel[], opts: FigureOptions = {}): Promise<Buffer> {
  if (!panels.length) fail('renderFigure', 'expected at least one panel');
  const gap = opts.gap ?? 8;
  const top = PAD + (opts.title ? TITLE_H : 0) + (panels.some((p) => p.caption) ? CAPTION_H : 0);
  const panelsW = panels.reduce((s, p) => s + p.image.width, 0) + gap * (panels.length - 1);
  const panelH = Math.max(...panels.map((p) => p.image.height));
  const barW = opts.colorBar ? 14 : 0;
  const barTextW = opts.colorBar ? 64 : 0;
  // Wide enough for the title too (about 8 px per character at 14 px bold).
  const width = Math.max(PAD + panelsW + (barW ? gap + barW + barTextW : 0) + PAD, opts.title ? 2 * PAD + Math.ceil(opts.title.length * 8.6) : 0);
  const height = top + panelH + PAD;
  const canvas = new Uint8Array(width * height * 3).fill(255);
  const paste = (img: RgbImage, x0: number, y0: number): void => {
    const row = img.width * 3;
    for (let y = 0; y < img.height; y++) canvas.set(img.data.subarray(y * row, (y + 1) * row), ((y0 + y) * width + x0) * 3);
  };
  const texts: string[] = [];
  if (opts.title) texts.push(`<text x="${PAD}" y="${PAD + 16}" font-size="14" font-weight="bold">${escapeXml(opts.title)}</text>`);
  let x = PAD;
  for (const p of panels) {
    paste(p.image, x, top);
    if (p.caption) texts.push(`<text x="${x + p.image.width / 2}" y="${top - 5}" font-size="12" text-anchor="middle">${escapeXml(clip(p.caption, Math.max(6, Math.floor(p.image.width / 6.5))))}</text>`);
    x += p.image.width + gap;
  }
  if (opts.colorBar) {
    const b = opts.colorBar;
    const bx = x;
    paste(colorBarImage(barW, panelH, b.colormap), bx, top);
    const tx = bx + barW + 4;
    texts.push(`<text x="${tx}" y="${top + 10}" font-size="11">${escapeXml(formatNumber(b.max))}</text>`);
    texts.push(`<text x="${tx}" y="${top + panelH}" font-size="11">${escapeXml(formatNumber(b.min))}</text>`);
    if (b.label && panelH >= 60) {
      const cy = top + panelH / 2;
      texts.push(`<text x="${tx + 6}" y="${cy}" font-size="11" text-anchor="middle" transform="rotate(-90 ${tx + 6} ${cy})">${escapeXml(b.label)}</text>`);
    }
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ${FONT} fill="#222">${texts.join('')}</svg>`;
  const { default: sharp } = await import('sharp');
  return sharp(Buffer.from(canvas.buffer, canvas.byteOffset, canvas.byteLength), { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .removeAlpha()
    .png({ compressionLevel: 6 })
    .toBuffer();
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** Rasterizes an SVG string (e.g. a bar chart) to an RGB PNG on white. */
export async function svgToPng(svg: string): Promise<Buffer> {
  const { default: sharp } = await import('sharp');
  return sharp(Buffer.from(svg)).flatten({ background: '#ffffff' }).png({ compressionLevel: 6 }).toBuffer();
}

/** Resizes an image to fit `maxSide` (never enlarges); `nearest` keeps hard edges (label colours). */
export async function fitImage(img: RgbImage, maxSide: number, nearest = false): Promise<RgbImage> {
  const s = Math.min(1, maxSide / Math.max(img.width, img.height));
  if (s >= 1) return img;
  const width = Math.max(1, Math.round(img.width * s));
  const height = Math.max(1, Math.round(img.height * s));
  const { default: sharp } = await import('sharp');
  const { data } = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize({ width, height, fit: 'fill', kernel: nearest ? 'nearest' : 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}
