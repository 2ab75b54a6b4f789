// The training report: one self-contained HTML page (inline SVG charts and CSS) plus sample
// pictures as PNG files beside it, so the page stays small however large the images are.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BASE_CSS, htmlPage, type PageSection } from './html-page.js';
import sharp from 'sharp';
import { fail } from '../common/errors.js';
import type { RGB } from '../common/palette.js';
import * as v from '../common/validate.js';
import type { RgbImage } from '../data/decode.js';
import type { SegMetrics } from './metrics.js';
import { barChart, confusionMatrixSvg, escapeXml, lineChart } from './charts.js';
import { colorMask } from './visualize.js';
import { writeFileDurableAsync } from '../io/file.js';

/** One logged point of training. Fields left out (or NaN) are simply not drawn. */
export interface ReportHistoryEntry {
  epoch: number;
  iter: number;
  loss?: number;
  lr?: number;
  valMiou?: number;
  valPixelAccuracy?: number;
  /** Validation loss (the training loss on the validation set). */
  valLoss?: number;
  imgPerSec?: number;
}

/** One picture row of the report: the image, its ground truth (if any) and the prediction, all the same size. */
export interface ReportSample {
  id: string;
  image: RgbImage;
  gt: Uint8Array | null;
  pred: Uint8Array;
  /** Shown beside the id, e.g. the image's IoU. */
  note?: string;
}

/** Everything a report shows. Only `title`, `config`, `history`, `classes`, `colors` and `ignoreIndex` are required. */
export interface ReportData {
  title: string;
  /** Shown under the title; default the time of writing. */
  createdAt?: string;
  /** Shown as a table; nested objects are flattened to dotted keys. */
  config: Record<string, unknown>;
  history: ReportHistoryEntry[];
  classes: string[];
  colors: RGB[];
  ignoreIndex: number;
  /** Final evaluation; `confusion` is flat `C * C`, rows = ground truth. */
  final?: SegMetrics & { confusion: number[] };
  samples?: ReportSample[];
  /** The settings the run used, defaults included (optimizer, schedule, ...): a table of their own. */
  hyperparameters?: Record<string, unknown>;
  /** Heading of the samples section (default 'Samples') and a line under it. */
  samplesTitle?: string;
  samplesNote?: string;
  /** Headline numbers, e.g. training time, best mIoU, precision, data wait %. */
  summary?: Record<string, string | number>;
  /** Extra sections (e.g. attention maps). `html` is inserted as is: it must be trusted. */
  sections?: { title: string; html: string }[];
}

/** Relative addresses of one sample's pictures, as {@link renderReportHtml} links them. */
export interface SampleFiles {
  image: string;
  gt: string | null;
  pred: string;
  /** Wrong pixels in red over a faded image; null without ground truth. */
  errors: string | null;
}

/** The folder, beside report.html, that holds the sample pictures. */
export const REPORT_ASSET_DIR = 'report';
/** Sample pictures are downscaled (masks nearest-neighbour) so their longest side is at most this. */
export const REPORT_MAX_SIDE = 512;
/** Colour of ignored ground-truth pixels (VOC's colour for 255). */
export const IGNORE_COLOR: RGB = [224, 224, 192];

/**
 * Writes `<dir>/report.html` and the sample pictures under `<dir>/report/` (PNG, linked relatively),
 * replacing those of an earlier report in the same folder. Renders with empty or partial history
 * and with NaN IoUs (classes absent from the data).
 * @returns the path of report.html
 * @example const path = await writeReport('runs/voc', { title: 'PAN ResNet-50 on VOC', config, history, classes, colors, ignoreIndex: 255, final })
 */
export async function writeReport(dir: string, data: ReportData): Promise<string> {
  const op = 'writeReport';
  if (typeof dir !== 'string' || dir === '') fail(op, 'expected a folder path for dir');
  checkData(op, data);
  const assets = join(dir, REPORT_ASSET_DIR);
  const files: SampleFiles[] = [];
  const samples = data.samples ?? [];
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    const base = `sample-${i}-${safeName(s.id)}`;
    const { width: w, height: h } = s.image;
    const href = (kind: string): string => `${REPORT_ASSET_DIR}/${base}-${kind}.png`;
    await writeSamplePng(join(dir, href('image')), s.image, false);
    await writeSamplePng(join(dir, href('pred')), colorMask(s.pred, w, h, data.colors, data.ignoreIndex, IGNORE_COLOR), true);
    if (s.gt) {
      await writeSamplePng(join(dir, href('gt')), colorMask(s.gt, w, h, data.colors, data.ignoreIndex, IGNORE_COLOR), true);
      await writeSamplePng(join(dir, href('errors')), errorImage(s.image, s.gt, s.pred, data.ignoreIndex), true);
    }
    files.push({ image: href('image'), pred: href('pred'), gt: s.gt ? href('gt') : null, errors: s.gt ? href('errors') : null });
  }
  const path = join(dir, 'report.html');
  await writeFileDurableAsync(path, renderReportHtml(data, files));
  // Old pictures go after the new page is in place, so a page open in a browser never links a missing file.
  await removeOldSamples(assets, new Set(files.flatMap((f) => [f.image, f.pred, f.gt, f.errors]).filter((x): x is string => x !== null).map((x) => x.slice(REPORT_ASSET_DIR.length + 1))));
  return path;
}

function checkData(op: string, d: ReportData): void {
  if (!d || typeof d !== 'object') fail(op, 'expected a ReportData object for data');
  if (typeof d.title !== 'string') fail(op, `expected a string for data.title but received ${typeof d.title}`);
  if (!Array.isArray(d.classes) || d.classes.length === 0) fail(op, 'expected a non-empty array of class names for data.classes');
  if (!Array.isArray(d.colors)) fail(op, 'expected an array of [r, g, b] colours for data.colors');
  if (!Array.isArray(d.history)) fail(op, 'expected an array for data.history (it may be empty)');
  v.int(op, 'data.ignoreIndex', d.ignoreIndex);
  const c = d.classes.length;
  if (d.final) {
    const f = d.final;
    if (f.perClassIou?.length !== c) fail(op, `expected ${c} values (one per class) for data.final.perClassIou but received ${f.perClassIou?.length ?? 'none'}`);
    if (f.perClassAccuracy?.length !== c) fail(op, `expected ${c} values (one per class) for data.final.perClassAccuracy but received ${f.perClassAccuracy?.length ?? 'none'}`);
    if (f.confusion?.length !== c * c) fail(op, `expected ${c * c} values (${c} x ${c} classes) for data.final.confusion but received ${f.confusion?.length ?? 'none'}`);
  }
  (d.samples ?? []).forEach((s, i) => {
    const name = `data.samples[${i}]`;
    const im = s?.image;
    if (!im || !(im.data instanceof Uint8Array) || !(im.width >= 1) || !(im.height >= 1) || im.data.length !== im.width * im.height * 3) {
      fail(op, `expected an RgbImage (width * height * 3 bytes) for ${name}.image`);
    }
    const n = im.width * im.height;
    if (s.pred?.length !== n) fail(op, `expected ${n} labels (${im.width}x${im.height}, the image size) for ${name}.pred but received ${s.pred?.length ?? 'none'}`);
    if (s.gt && s.gt.length !== n) fail(op, `expected ${n} labels (${im.width}x${im.height}, the image size) for ${name}.gt but received ${s.gt.length}`);
  });
}

async function removeOldSamples(assets: string, keep: ReadonlySet<string>): Promise<void> {
  let names: string[];
  try { names = await readdir(assets); } catch { return; }
  await Promise.all(names.filter((n) => /^sample-\d+-.*\.png$/.test(n) && !keep.has(n)).map((n) => rm(join(assets, n), { force: true })));
}

function safeName(id: string): string {
  return String(id).replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 60) || 'x';
}

async function writeSamplePng(path: string, img: RgbImage, mask: boolean): Promise<void> {
  const scale = Math.min(1, REPORT_MAX_SIDE / Math.max(img.width, img.height));
  let pipe = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } });
  if (scale < 1) {
    pipe = pipe.resize({
      width: Math.max(1, Math.round(img.width * scale)),
      height: Math.max(1, Math.round(img.height * scale)),
      kernel: mask ? 'nearest' : 'lanczos3',
    });
  }
  await writeFileDurableAsync(path, await pipe.png({ compressionLevel: 6 }).toBuffer());
}

// Wrong pixels red, right ones the image faded to grey, ignored ones the image faded lighter.
function errorImage(image: RgbImage, gt: Uint8Array, pred: Uint8Array, ignoreIndex: number): RgbImage {
  const n = image.width * image.height;
  const out = new Uint8Array(n * 3);
  const d = image.data;
  for (let i = 0; i < n; i++) {
    const o = 3 * i;
    const grey = 0.299 * d[o] + 0.587 * d[o + 1] + 0.114 * d[o + 2];
    if (gt[i] === ignoreIndex) {
      out[o] = out[o + 1] = out[o + 2] = Math.round(200 + grey * 0.2);
    } else if (gt[i] !== pred[i]) {
      out[o] = 230; out[o + 1] = 30; out[o + 2] = 30;
    } else {
      out[o] = out[o + 1] = out[o + 2] = Math.round(grey * 0.6);
    }
  }
  return { data: out, width: image.width, height: image.height };
}

/**
 * The report page as an HTML string, linking sample pictures at the addresses in `sampleFiles`
 * (one per `data.samples` entry). {@link writeReport} writes the pictures and calls this.
 */
export function renderReportHtml(data: ReportData, sampleFiles: readonly SampleFiles[] = []): string {
  const createdAt = data.createdAt ?? new Date().toISOString();
  const sections: PageSection[] = [];
  sections.push({ id: 'summary', title: 'Summary', html: summaryHtml(data) });
  sections.push({ id: 'curves', title: 'Training curves', html: curvesHtml(data.history) });
  if (data.final) {
    sections.push({ id: 'classes', title: 'Per-class results', html: perClassHtml(data) });
    sections.push({ id: 'confusion', title: 'Confusion matrix', html: confusionHtml(data) });
  }
  if (data.samples?.length) sections.push({ id: 'samples', title: data.samplesTitle ?? 'Samples', html: samplesHtml(data, sampleFiles) });
  if (data.hyperparameters) sections.push({ id: 'hyperparameters', title: 'Hyperparameters (resolved, defaults included)', html: configHtml(data.hyperparameters) });
  sections.push({ id: 'config', title: 'Configuration', html: configHtml(data.config) });
  (data.sections ?? []).forEach((s, i) => sections.push({ id: `extra-${i}`, title: String(s.title), html: String(s.html) }));

  return htmlPage({ title: data.title, subtitle: createdAt, css: CSS, generator: 'panseg', sections });
}

const CSS = `${BASE_CSS}.muted{color:#777}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #e2e2e2;border-radius:6px;padding:8px 12px;min-width:120px}
.card .k{color:#666;font-size:12px}
.card .v{font-size:18px;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:16px}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.absent td{color:#999}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #999;vertical-align:middle;margin-right:4px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin-bottom:10px;font-size:12px}
.samples{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:6px 8px;align-items:start}
.samples figure{margin:0}
.samples img{width:100%;height:auto;image-rendering:auto;border:1px solid #ddd}
.samples figcaption{font-size:12px;color:#555}
.samples .id{grid-column:1/-1;font-weight:600;margin-top:8px}
.nogt{border:1px dashed #ccc;color:#999;font-size:12px;padding:16px;text-align:center}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
`;

function pct(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '—' : `${(100 * x).toFixed(1)}%`;
}

function valueText(x: string | number): string {
  if (typeof x !== 'number') return String(x);
  if (Number.isInteger(x)) return String(x);
  return Number.isFinite(x) ? String(Number(x.toPrecision(4))) : String(x);
}

function card(k: string, val: string): string {
  return `<div class="card"><div class="k">${escapeXml(k)}</div><div class="v">${escapeXml(val)}</div></div>`;
}

function summaryHtml(d: ReportData): string {
  const cards: string[] = [];
  const given = new Set(Object.keys(d.summary ?? {}).map((k) => k.toLowerCase()));
  if (d.final) {
    if (!given.has('miou')) cards.push(card('mIoU', pct(d.final.miou)));
    if (!given.has('pixel accuracy')) cards.push(card('pixel accuracy', pct(d.final.pixelAccuracy)));
  }
  let best: ReportHistoryEntry | undefined;
  for (const h of d.history) if (Number.isFinite(h.valMiou) && (!best || h.valMiou! > best.valMiou!)) best = h;
  if (best && !given.has('best val miou')) cards.push(card('best val mIoU', `${pct(best.valMiou)} (epoch ${best.epoch})`));
  if (d.history.length && !given.has('iterations')) cards.push(card('iterations', String(Math.max(...d.history.map((h) => h.iter)))));
  for (const [k, val] of Object.entries(d.summary ?? {})) cards.push(card(k, valueText(val)));
  cards.push(card('classes', String(d.classes.length)));
  return `<div class="cards">${cards.join('')}</div>`;
}

function points(history: readonly ReportHistoryEntry[], x: 'iter' | 'epoch', y: keyof ReportHistoryEntry): [number, number][] {
  const out: [number, number][] = [];
  for (const h of history) {
    const val = h[y];
    if (typeof val === 'number' && Number.isFinite(val) && Number.isFinite(h[x])) out.push([h[x], val]);
  }
  return out;
}

function curvesHtml(history: readonly ReportHistoryEntry[]): string {
  const charts: string[] = [];
  // Epoch records repeat the loss as an average over the epoch: the curve uses the step records when there are any.
  const steps = history.filter((h) => (h as { type?: string }).type === undefined);
  const loss = points(steps.length ? steps : history, 'iter', 'loss');
  const valLoss = points(history, 'iter', 'valLoss');
  if (loss.length || valLoss.length) {
    const ys = [...loss, ...valLoss].map((p) => p[1]);
    const lo = Math.min(...ys);
    const wide = lo > 0 && Math.max(...ys) / lo > 30; // a loss that falls by decades reads better on a log axis
    const series = [{ name: 'training loss', points: loss, color: '#1f77b4' }];
    if (valLoss.length) series.push({ name: 'validation loss', points: valLoss, color: '#d62728' });
    charts.push(lineChart({ title: valLoss.length ? 'Loss' : 'Training loss', xLabel: 'iteration', yLabel: 'loss', yScale: wide ? 'log' : 'linear', series }));
  }
  const miou = points(history, 'epoch', 'valMiou');
  const acc = points(history, 'epoch', 'valPixelAccuracy');
  if (miou.length || acc.length) {
    charts.push(lineChart({
      title: 'Validation', xLabel: 'epoch', yLabel: 'score', yMin: 0, yMax: 1,
      series: [{ name: 'mIoU', points: miou, color: '#2ca02c' }, { name: 'pixel accuracy', points: acc, color: '#9467bd' }],
    }));
  }
  const lr = points(history, 'iter', 'lr');
  if (lr.length) charts.push(lineChart({ title: 'Learning rate', xLabel: 'iteration', yLabel: 'lr', width: 420, height: 260, series: [{ name: 'lr', points: lr, color: '#ff7f0e' }] }));
  const speed = points(history, 'iter', 'imgPerSec');
  if (speed.length) charts.push(lineChart({ title: 'Throughput', xLabel: 'iteration', yLabel: 'images / s', width: 420, height: 260, yMin: 0, series: [{ name: 'images/s', points: speed, color: '#8c564b' }] }));
  if (!charts.length) return '<p class="muted">No training history was recorded.</p>';
  return `<div class="charts">${charts.join('\n')}</div>`;
}

function swatch(c: RGB | undefined): string {
  const [r, g, b] = c ?? [128, 128, 128];
  return `<span class="sw" style="background:rgb(${r | 0},${g | 0},${b | 0})"></span>`;
}

function perClassHtml(d: ReportData): string {
  const f = d.final!;
  const c = d.classes.length;
  const iou = f.perClassIou;
  // Highlight the three weakest classes that occur (when there are enough to make "weakest" meaningful).
  const ranked = iou.map((x, i) => [x, i] as const).filter(([x]) => Number.isFinite(x)).sort((a, b) => a[0] - b[0]);
  const highlight = c > 4 ? ranked.slice(0, 3).map(([, i]) => i) : [];
  const chart = barChart({
    title: 'IoU per class', labels: d.classes, values: iou, valueFormat: 'percent', min: 0, max: 1, highlight,
    barHeight: c > 60 ? 12 : 18,
  });
  const gtPix = new Float64Array(c);
  const predPix = new Float64Array(c);
  let total = 0;
  for (let r = 0; r < c; r++) {
    for (let k = 0; k < c; k++) {
      const n = Number(f.confusion[r * c + k]) || 0;
      gtPix[r] += n; predPix[k] += n; total += n;
    }
  }
  const overall = `<table><tr><th>mIoU</th><th>pixel accuracy</th><th>mean accuracy</th><th>frequency-weighted IoU</th></tr>`
    + `<tr><td class="num">${pct(f.miou)}</td><td class="num">${pct(f.pixelAccuracy)}</td><td class="num">${pct(f.meanAccuracy)}</td><td class="num">${pct(f.fwIou)}</td></tr></table>`;
  const rows = d.classes.map((name, i) => {
    const absent = !Number.isFinite(iou[i]);
    return `<tr${absent ? ' class="absent"' : ''}><td class="num">${i}</td><td>${swatch(d.colors[i])}${escapeXml(name)}</td>`
      + `<td class="num">${pct(iou[i])}</td><td class="num">${pct(f.perClassAccuracy[i])}</td>`
      + `<td class="num">${total > 0 ? pct(gtPix[i] / total) : '—'}</td><td class="num">${total > 0 ? pct(predPix[i] / total) : '—'}</td></tr>`;
  }).join('\n');
  const table = `<table><tr><th class="num">#</th><th>class</th><th class="num">IoU</th><th class="num">accuracy</th><th class="num">share of ground truth</th><th class="num">share of predictions</th></tr>\n${rows}</table>`;
  const note = ranked.length < c ? `<p class="muted">— : the class occurs in neither the ground truth nor the predictions; it is left out of mIoU.</p>` : '';
  return `${overall}\n<div class="charts">${chart}<div>${table}${note}</div></div>`;
}

function confusionHtml(d: ReportData): string {
  const svg = confusionMatrixSvg(d.final!.confusion, d.classes, { normalize: 'row' });
  return `<p class="muted">Rows are ground truth, columns predictions; each row is divided by its pixel count (so the diagonal is per-class accuracy). Hatched rows have no pixels.</p>${svg}`;
}

function samplesHtml(d: ReportData, files: readonly SampleFiles[]): string {
  const samples = d.samples ?? [];
  // The legend lists the classes that appear in the pictures (all classes when there are few).
  const present = new Set<number>();
  let ignored = false;
  for (const s of samples) {
    for (const arr of [s.pred, s.gt]) {
      if (!arr) continue;
      for (let i = 0; i < arr.length; i++) {
        if (arr[i] === d.ignoreIndex) ignored = true;
        else present.add(arr[i]);
      }
    }
  }
  const shown = d.classes.length <= 30 ? d.classes.map((_, i) => i) : [...present].filter((i) => i < d.classes.length).sort((a, b) => a - b);
  const legend = shown.map((i) => `<span>${swatch(d.colors[i])}${escapeXml(d.classes[i])}</span>`);
  if (ignored) legend.push(`<span>${swatch(IGNORE_COLOR)}ignored (${d.ignoreIndex})</span>`);
  const cells: string[] = [];
  samples.forEach((s, i) => {
    const f = files[i];
    cells.push(`<div class="id">${escapeXml(s.id)} <span class="muted">${s.image.width}×${s.image.height}${s.note ? ` · ${escapeXml(s.note)}` : ''}</span></div>`);
    if (!f) {
      cells.push('<div class="nogt" style="grid-column:1/-1">pictures not written</div>');
      return;
    }
    const fig = (href: string | null, cap: string): string => (href
      ? `<figure><img src="${escapeXml(href)}" alt="${escapeXml(`${s.id} ${cap}`)}" loading="lazy"><figcaption>${cap}</figcaption></figure>`
      : `<figure><div class="nogt">no ground truth</div><figcaption>${cap}</figcaption></figure>`);
    cells.push(fig(f.image, 'image'), fig(f.gt, 'ground truth'), fig(f.pred, 'prediction'), fig(f.errors, 'errors (red)'));
  });
  const note = d.samplesNote ? `<p class="muted">${escapeXml(d.samplesNote)}</p>` : '';
  return `${note}<div class="legend">${legend.join('')}</div><div class="samples">${cells.join('\n')}</div>`;
}

/** Flattens nested plain objects to dotted keys; arrays and other values are kept whole. */
function flatten(obj: Record<string, unknown>, prefix = '', out: [string, unknown][] = [], depth = 0): [string, unknown][] {
  for (const [k, val] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (val && typeof val === 'object' && !Array.isArray(val) && Object.getPrototypeOf(val) === Object.prototype && depth < 8) {
      flatten(val as Record<string, unknown>, key, out, depth + 1);
    } else {
      out.push([key, val]);
    }
  }
  return out;
}

function configValue(x: unknown): string {
  if (typeof x === 'string') return x;
  if (typeof x === 'number') return String(x);
  if (x === undefined) return 'undefined';
  try {
    return JSON.stringify(x, (_k, val) => (typeof val === 'bigint' ? String(val) : ArrayBuffer.isView(val) ? `<${val.constructor.name}>` : val)) ?? String(x);
  } catch {
    return String(x);
  }
}

function configHtml(config: Record<string, unknown>): string {
  const rows = flatten(config ?? {});
  if (!rows.length) return '<p class="muted">No configuration was recorded.</p>';
  return `<table>${rows.map(([k, val]) => `<tr><th>${escapeXml(k)}</th><td><code>${escapeXml(configValue(val))}</code></td></tr>`).join('\n')}</table>`;
}

