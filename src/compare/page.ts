// compare.html: one self-contained page (inline SVG charts and CSS) with the sample pictures as PNG files in
// `compare/` beside it, as the training report does.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { RGB } from '../common/palette.js';
import type { RgbImage } from '../data/decode.js';
import { escapeXml, groupedBarChart, lineChart, scatterChart, SERIES_COLORS } from '../eval/charts.js';
import { BASE_CSS, htmlPage, type PageSection } from '../eval/html-page.js';
import { IGNORE_COLOR, REPORT_MAX_SIDE } from '../eval/report.js';
import { colorMask } from '../eval/visualize.js';
import { writeFileDurableAsync } from '../io/file.js';
import { type Comparison, duration, methodNote, ms, pct, summaryCells } from './summary.js';

/** The folder, beside compare.html, that holds the sample pictures. */
export const COMPARE_ASSET_DIR = 'compare';

/** The first validation image, its ground truth and each architecture's prediction (null where there is none), all the image's size. */
export interface CompareSample {
  id: string;
  image: RgbImage;
  gt: Uint8Array | null;
  /** One per row of the comparison, in its order. */
  preds: (Uint8Array | null)[];
}

/** Relative addresses of the sample pictures. */
export interface CompareSampleFiles {
  image: string;
  gt: string | null;
  preds: (string | null)[];
}

/** Writes the sample pictures under `<dir>/compare/` (replacing an earlier page's) and `<dir>/compare.html`; returns the page's path. */
export async function writeCompareHtml(dir: string, c: Comparison, sample: CompareSample | null): Promise<string> {
  const assets = join(dir, COMPARE_ASSET_DIR);
  await removeOldSamples(assets);
  let files: CompareSampleFiles | null = null;
  if (sample) {
    const { width: w, height: h } = sample.image;
    const href = (kind: string) => `${COMPARE_ASSET_DIR}/sample-${kind}.png`;
    const mask = async (kind: string, labels: Uint8Array) => {
      await writePng(join(dir, href(kind)), colorMask(labels, w, h, c.colors, c.ignoreIndex, IGNORE_COLOR), true);
      return href(kind);
    };
    await writePng(join(dir, href('image')), sample.image, false);
    files = {
      image: href('image'),
      gt: sample.gt ? await mask('gt', sample.gt) : null,
      preds: await Promise.all(sample.preds.map((p, i) => (p && p.length === w * h ? mask(`pred-${c.rows[i].arch}`, p) : null))),
    };
  }
  const path = join(dir, 'compare.html');
  await writeFileDurableAsync(path, renderCompareHtml(c, sample, files));
  return path;
}

async function removeOldSamples(assets: string): Promise<void> {
  let names: string[];
  try { names = await readdir(assets); } catch { return; }
  await Promise.all(names.filter((n) => /^sample-.*\.png$/.test(n)).map((n) => rm(join(assets, n), { force: true })));
}

async function writePng(path: string, img: RgbImage, isMask: boolean): Promise<void> {
  const scale = Math.min(1, REPORT_MAX_SIDE / Math.max(img.width, img.height));
  let pipe = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } });
  if (scale < 1) {
    pipe = pipe.resize({ width: Math.max(1, Math.round(img.width * scale)), height: Math.max(1, Math.round(img.height * scale)), kernel: isMask ? 'nearest' : 'lanczos3' });
  }
  await writeFileDurableAsync(path, await pipe.png({ compressionLevel: 6 }).toBuffer());
}

/** The comparison page as an HTML string, linking the sample pictures at `files`' addresses. */
export function renderCompareHtml(c: Comparison, sample: CompareSample | null = null, files: CompareSampleFiles | null = null): string {
  const color = (i: number) => SERIES_COLORS[i % SERIES_COLORS.length];
  const sections: PageSection[] = [
    { id: 'summary', title: 'Summary', html: summaryHtml(c) },
    { id: 'curves', title: 'Validation mIoU', html: curvesHtml(c, color) },
    { id: 'tradeoff', title: 'Accuracy and latency', html: tradeoffHtml(c, color) },
    { id: 'classes', title: 'IoU per class', html: classesHtml(c, color) },
  ];
  if (sample && files) sections.push({ id: 'sample', title: 'Sample', html: sampleHtml(c, sample, files) });
  sections.push({ id: 'config', title: 'Configuration', html: configHtml(c.options) });
  return htmlPage({ title: c.title, subtitle: c.createdAt, css: CSS, generator: 'panseg compare', sections });
}

const CSS = `${BASE_CSS}.muted{color:#777}
.charts{display:flex;flex-wrap:wrap;gap:16px}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #999;vertical-align:middle;margin-right:4px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin-bottom:10px;font-size:12px}
.side{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:8px;align-items:start}
.side figure{margin:0}
.side img{width:100%;height:auto;border:1px solid #ddd}
.side img.mask{image-rendering:pixelated}
.side figcaption{font-size:12px;color:#555}
.nogt{border:1px dashed #ccc;color:#999;font-size:12px;padding:16px;text-align:center}
a{color:#1f5fa8}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
`;

function swatch(c: RGB | string | undefined): string {
  const css = typeof c === 'string' ? c : `rgb(${(c ?? [128, 128, 128]).map((x) => x | 0).join(',')})`;
  return `<span class="sw" style="background:${escapeXml(css)}"></span>`;
}

function summaryHtml(c: Comparison): string {
  const { header, cells } = summaryCells(c.rows);
  const head = header.map((h, i) => `<th${i ? ' class="num"' : ''}>${escapeXml(h)}</th>`).join('');
  const body = cells.map((row, r) => `<tr>${row.map((cell, i) => (i
    ? `<td class="num">${escapeXml(cell)}</td>`
    : `<td>${swatch(SERIES_COLORS[r % SERIES_COLORS.length])}<a href="${escapeXml(c.rows[r].report)}">${escapeXml(cell)}</a></td>`)).join('')}</tr>`).join('\n');
  const recipe = `${c.encoder} encoder on ${c.dataset} (${c.split} split), crop ${c.crop}, ${c.epochs} epoch${c.epochs === 1 ? '' : 's'}: the same options, seed and data order for every architecture. Each name links to its training report.`;
  return `<p>${escapeXml(recipe)}</p><table><tr>${head}</tr>\n${body}</table><p class="muted">${escapeXml(methodNote(c))}</p>`;
}

function curvesHtml(c: Comparison, color: (i: number) => string): string {
  const series = c.rows.map((r, i) => ({ name: r.arch, color: color(i), points: r.validations.filter((p) => p.miou !== null).map((p) => [p.epoch, p.miou!] as [number, number]) }));
  // The data's range with a margin (within [0, 1]): close architectures stay apart, lone points off the frame.
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const [lo, hi] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  const pad = 0.1 * (hi - lo) + 0.01;
  return lineChart({ title: 'Validation mIoU per epoch', xLabel: 'epoch', yLabel: 'mIoU', width: 760, height: 360, yMin: Math.max(0, lo - pad), yMax: Math.min(1, hi + pad), series });
}

function tradeoffHtml(c: Comparison, color: (i: number) => string): string {
  const sizes = new Set(c.rows.map((r) => r.inference.size));
  const per = sizes.size === 1 ? `ms per ${[...sizes][0]}x${[...sizes][0]} image` : 'ms per image (sizes in the table above)';
  const points = c.rows.map((r, i) => ({ label: r.arch, x: r.inference.fp32 ?? Number.NaN, y: r.bestMiou ?? Number.NaN, color: color(i) }));
  const chart = scatterChart({
    title: 'Best mIoU vs float32 latency', xLabel: `${per}, float32 inference copy`, yLabel: 'best val mIoU',
    width: 760, height: 380, points, xFormat: (x) => `${ms(x)} ms`, yFormat: 'percent',
  });
  const rows = c.rows.map((r) => `<tr><td>${escapeXml(r.arch)}</td><td class="num">${escapeXml(pct(r.bestMiou))}</td><td class="num">${escapeXml(ms(r.inference.fp32))}</td>`
    + `<td class="num">${escapeXml(ms(r.inference.bf16))}</td><td class="num">${escapeXml(duration(r.wallSeconds))}</td></tr>`).join('\n');
  const errors = c.rows.flatMap((r) => Object.entries(r.inference.errors ?? {}).map(([k, e]) => `${r.arch} ${k}: ${e}`));
  const note = errors.length ? `<p class="muted">Not measured: ${escapeXml(errors.join('; '))}</p>` : '';
  return `<p class="muted">Up and to the left is better.</p><div class="charts">${chart}<table><tr><th>architecture</th><th class="num">best mIoU</th><th class="num">fp32 ms</th><th class="num">bf16 ms</th><th class="num">wall time</th></tr>\n${rows}</table></div>${note}`;
}

function classesHtml(c: Comparison, color: (i: number) => string): string {
  const series = c.rows.map((r, i) => ({ name: r.arch, color: color(i), values: c.classes.map((_, k) => r.perClassIou[k] ?? Number.NaN) }));
  const chart = groupedBarChart({ title: "Final model's IoU per class", labels: c.classes, series, valueFormat: 'percent', min: 0, max: 1, width: 760, barHeight: c.rows.length > 4 ? 7 : 9 });
  return `<p class="muted">n/a: the class occurs in neither the ground truth nor that model's predictions.</p>${chart}`;
}

function sampleHtml(c: Comparison, s: CompareSample, f: CompareSampleFiles): string {
  const present = new Set<number>();
  let ignored = false;
  for (const arr of [s.gt, ...s.preds]) {
    if (!arr) continue;
    for (let i = 0; i < arr.length; i++) {
      if (arr[i] === c.ignoreIndex) ignored = true;
      else present.add(arr[i]);
    }
  }
  const shown = c.classes.length <= 30 ? c.classes.map((_, i) => i) : [...present].filter((i) => i < c.classes.length).sort((a, b) => a - b);
  const legend = shown.map((i) => `<span>${swatch(c.colors[i])}${escapeXml(c.classes[i])}</span>`);
  if (ignored) legend.push(`<span>${swatch(IGNORE_COLOR)}ignored (${c.ignoreIndex})</span>`);
  const fig = (href: string | null, cap: string, missing: string) => (href
    ? `<figure><img src="${escapeXml(href)}"${href === f.image ? '' : ' class="mask"'} alt="${escapeXml(`${s.id} ${cap}`)}"><figcaption>${escapeXml(cap)}</figcaption></figure>`
    : `<figure><div class="nogt">${escapeXml(missing)}</div><figcaption>${escapeXml(cap)}</figcaption></figure>`);
  const figs = [fig(f.image, 'image', ''), fig(f.gt, 'ground truth', 'no ground truth'),
    ...c.rows.map((r, i) => fig(f.preds[i] ?? null, r.arch, 'no prediction stored'))];
  return `<p class="muted">The first validation image, ${escapeXml(s.id)} (${s.image.width}×${s.image.height}), and each architecture's prediction.</p>`
    + `<div class="legend">${legend.join('')}</div><div class="side">${figs.join('\n')}</div>`;
}

function configHtml(options: Record<string, unknown>): string {
  const rows = Object.entries(options);
  if (!rows.length) return '<p class="muted">No options were recorded.</p>';
  const val = (x: unknown) => (typeof x === 'string' ? x : JSON.stringify(x) ?? String(x));
  return `<table>${rows.map(([k, x]) => `<tr><th>${escapeXml(k)}</th><td><code>${escapeXml(val(x))}</code></td></tr>`).join('\n')}</table>`;
}
