// Small SVG chart builders for reports and the web page: line charts, horizontal bar charts (single and
// grouped), labelled scatter plots and a confusion-matrix heatmap. Dependency-free strings; every piece of text is escaped because class
// names and titles come from user files.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';

/** Escapes `& < > " '` so any string can sit in SVG/HTML text or an attribute. */
export function escapeXml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ESC[c]);
}
const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** A chart palette for series without a colour (matplotlib's tab10). */
export const SERIES_COLORS: readonly string[] = Object.freeze([
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
]);

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

/**
 * About `count` round tick values covering [min, max] (steps of 1, 2, 2.5 or 5 times a power of ten).
 * @example niceTicks(0, 0.83, 5) // [0, 0.2, 0.4, 0.6, 0.8]
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max < min) [min, max] = [max, min];
  if (max === min) return [min];
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  const first = Math.ceil(min / step - 1e-9);
  for (let k = first; k * step <= max + step * 1e-9; k++) out.push(roundTo(k * step, step));
  return out;
}

// Removes float noise (0.30000000000000004) using the step's number of decimals.
function roundTo(x: number, step: number): number {
  const dec = Math.max(0, Math.ceil(-Math.log10(step)) + 2);
  return Number(x.toFixed(Math.min(dec, 20)));
}

/** Short human text for a number: 3 significant digits, k/M suffixes for large values, exponents for tiny ones. */
export function formatNumber(x: number): string {
  if (Number.isNaN(x)) return 'n/a';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '-∞';
  const a = Math.abs(x);
  if (a === 0) return '0';
  if (a >= 1e6) return `${trim((x / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${trim((x / 1e3).toPrecision(3))}k`;
  if (a >= 1000) return String(Math.round(x));
  if (a < 1e-3) return x.toExponential(1);
  return trim(x.toPrecision(3));
}
function trim(s: string): string {
  return s.includes('e') || !s.includes('.') ? s : s.replace(/\.?0+$/, '');
}

// Pixel coordinates keep two decimals: enough for any screen, and the SVG stays small.
function px(x: number): string {
  return String(Math.round(x * 100) / 100);
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${px(x)}" y="${px(y)}"${attrs ? ` ${attrs}` : ''}>${escapeXml(s)}</text>`;
}

function svgOpen(width: number, height: number, label: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(label)}" ${FONT} font-size="12">`;
}

/** One line of a {@link lineChart}. */
export interface LineSeries {
  name: string;
  /** `[x, y]` points; non-finite values break the line. */
  points: readonly (readonly [number, number])[];
  /** Any CSS colour; defaults to the next of {@link SERIES_COLORS}. */
  color?: string;
}

/** Options of {@link lineChart}. */
export interface LineChartOptions {
  series: readonly LineSeries[];
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Default 640. */
  width?: number;
  /** Default 320. */
  height?: number;
  /** Fixed y range ends (e.g. 0 and 1 for mIoU); by default the data's range. */
  yMin?: number;
  yMax?: number;
  /** `'log'` draws y on a log10 axis (non-positive values are dropped). Default `'linear'`. */
  yScale?: 'linear' | 'log';
  /** Series longer than this are averaged in consecutive buckets down to this many points, to keep the SVG small. Default 1500. */
  maxPoints?: number;
}

/**
 * A line chart as an SVG string, with axes, ticks, axis labels and a legend. Series with no finite
 * point are left out of the plot (but kept in the legend); a chart with no data says so.
 * @example lineChart({ title: 'loss', xLabel: 'iteration', series: [{ name: 'train', points: [[0, 2.1], [100, 1.3]] }] })
 */
export function lineChart(opts: LineChartOptions): string {
  const op = 'lineChart';
  if (!opts || !Array.isArray(opts.series)) fail(op, 'expected an array of series for series');
  const width = v.int(op, 'width', opts.width ?? 640, 120);
  const height = v.int(op, 'height', opts.height ?? 320, 80);
  const yScale = v.oneOf(op, 'yScale', opts.yScale ?? 'linear', ['linear', 'log'] as const);
  const maxPoints = v.int(op, 'maxPoints', opts.maxPoints ?? 1500, 2);
  const log = yScale === 'log';
  const ty = (y: number): number => (log ? Math.log10(y) : y);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  // Axis ranges come from all finite points, before decimation, so the axes span the real data.
  const series = opts.series.map((s, i) => {
    const pts = (s.points ?? []).filter((p: readonly [number, number]) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!log || p[1] > 0));
    for (const [x, y] of pts) {
      x0 = Math.min(x0, x); x1 = Math.max(x1, x);
      y0 = Math.min(y0, ty(y)); y1 = Math.max(y1, ty(y));
    }
    return { name: String(s.name), color: s.color ?? SERIES_COLORS[i % SERIES_COLORS.length], points: decimate(pts, maxPoints) };
  });
  const hasData = x0 <= x1;
  if (opts.yMin !== undefined && Number.isFinite(opts.yMin) && (!log || opts.yMin > 0)) y0 = ty(opts.yMin);
  if (opts.yMax !== undefined && Number.isFinite(opts.yMax) && (!log || opts.yMax > 0)) y1 = ty(opts.yMax);
  if (!hasData) { x0 = 0; x1 = 1; }
  if (!(y0 <= y1)) { y0 = 0; y1 = 1; }
  if (x0 === x1) { const d = Number.isInteger(x0) ? 1 : 0.5; x0 -= d; x1 += d; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 0.5; y0 -= d; y1 += d; }

  const top = opts.title ? 30 : 12;
  const legendH = series.length > 0 ? 18 * Math.ceil(series.length / Math.max(1, Math.floor((width - 70) / 150))) : 0;
  const m = { left: 62, right: 16, top, bottom: 42 + legendH };
  const pw = width - m.left - m.right;
  const ph = Math.max(10, height - m.top - m.bottom);
  const sx = (x: number): number => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number): number => m.top + ph - ((ty(y) - y0) / (y1 - y0)) * ph;
  const syT = (t: number): number => m.top + ph - ((t - y0) / (y1 - y0)) * ph;

  const parts: string[] = [svgOpen(width, height, opts.title ?? 'line chart')];
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  if (opts.title) parts.push(text(width / 2, 19, opts.title, 'text-anchor="middle" font-size="14" font-weight="600"'));

  // Grid and ticks.
  const yTicks = log ? logTicks(y0, y1) : niceTicks(y0, y1, Math.max(2, Math.floor(ph / 45)));
  for (const t of yTicks) {
    const y = syT(t);
    parts.push(`<line x1="${m.left}" y1="${px(y)}" x2="${m.left + pw}" y2="${px(y)}" stroke="#e5e5e5"/>`);
    parts.push(text(m.left - 6, y + 4, formatNumber(log ? 10 ** t : t), 'text-anchor="end" fill="#444"'));
  }
  for (const t of niceTicks(x0, x1, Math.max(2, Math.floor(pw / 80)))) {
    const x = sx(t);
    parts.push(`<line x1="${px(x)}" y1="${m.top + ph}" x2="${px(x)}" y2="${m.top + ph + 4}" stroke="#444"/>`);
    parts.push(text(x, m.top + ph + 16, formatNumber(t), 'text-anchor="middle" fill="#444"'));
  }
  parts.push(`<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#444"/>`);
  parts.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#444"/>`);
  if (opts.xLabel) parts.push(text(m.left + pw / 2, m.top + ph + 32, opts.xLabel, 'text-anchor="middle"'));
  if (opts.yLabel) {
    const cy = m.top + ph / 2;
    parts.push(text(14, cy, opts.yLabel, `text-anchor="middle" transform="rotate(-90 14 ${px(cy)})"`));
  }

  // Lines, split at gaps; lone points drawn as dots so a single epoch still shows.
  parts.push(`<g fill="none" stroke-width="1.8" stroke-linejoin="round">`);
  for (const s of series) {
    if (s.points.length === 0) continue;
    const sorted = [...s.points].sort((a, b) => a[0] - b[0]);
    const d = sorted.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${px(sx(x))} ${px(sy(y))}`).join('');
    parts.push(`<path d="${d}" stroke="${escapeXml(s.color)}"/>`);
    if (sorted.length <= 30) {
      for (const [x, y] of sorted) parts.push(`<circle cx="${px(sx(x))}" cy="${px(sy(y))}" r="2.5" fill="${escapeXml(s.color)}" stroke="none"/>`);
    }
  }
  parts.push('</g>');
  if (!hasData) parts.push(text(m.left + pw / 2, m.top + ph / 2, 'no data', 'text-anchor="middle" fill="#888" font-size="14"'));

  // Legend below the x label, wrapping in columns of 150 px.
  const perRow = Math.max(1, Math.floor((width - 70) / 150));
  series.forEach((s, i) => {
    const lx = m.left + (i % perRow) * 150;
    const ly = m.top + ph + 44 + Math.floor(i / perRow) * 18;
    parts.push(`<rect x="${lx}" y="${ly - 9}" width="14" height="4" fill="${escapeXml(s.color)}"/>`);
    parts.push(text(lx + 19, ly - 3, clip(s.name, 22), s.points.length ? '' : 'fill="#999"'));
  });
  parts.push('</svg>');
  return parts.join('');
}

// Bucket means keep a noisy loss curve's trend while bounding the path length.
function decimate(points: readonly (readonly [number, number])[], max: number): (readonly [number, number])[] {
  if (points.length <= max) return [...points];
  const out: [number, number][] = [];
  const sorted = [...points].sort((a, b) => a[0] - b[0]);
  for (let b = 0; b < max; b++) {
    const lo = Math.floor((b * sorted.length) / max);
    const hi = Math.floor(((b + 1) * sorted.length) / max);
    let sx = 0, sy = 0;
    for (let i = lo; i < hi; i++) { sx += sorted[i][0]; sy += sorted[i][1]; }
    out.push([sx / (hi - lo), sy / (hi - lo)]);
  }
  return out;
}

function logTicks(y0: number, y1: number): number[] {
  const out: number[] = [];
  for (let k = Math.ceil(y0 - 1e-9); k <= Math.floor(y1 + 1e-9); k++) out.push(k);
  return out.length >= 2 ? out : niceTicks(y0, y1, 4);
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** How bar values are written: a function, `'percent'` (0.734 -> 73.4%) or `'number'` ({@link formatNumber}). */
export type ValueFormat = ((value: number) => string) | 'percent' | 'number';

function formatter(f: ValueFormat | undefined): (x: number) => string {
  if (typeof f === 'function') return (x) => (Number.isNaN(x) ? 'n/a' : f(x));
  if (f === 'percent') return (x) => (Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  return formatNumber;
}

/** The value axis of the horizontal bar charts: data values mapped onto x pixels from `left` over `width`. */
interface BarAxis {
  lo: number;
  hi: number;
  /** The x pixel of a value, clamped to the range. */
  sx: (x: number) => number;
  /** The x pixel of 0 (or of the range end nearest it): where bars start. */
  zero: number;
  fmt: (x: number) => string;
}

/** The range is [min, max] where given, else the data's with 0 in it; an empty or flat range becomes one unit wide. */
function barAxis(values: readonly number[], o: { min?: number; max?: number; left: number; width: number; valueFormat?: ValueFormat }): BarAxis {
  const finite = values.filter(Number.isFinite);
  let lo = o.min ?? Math.min(0, ...finite);
  let hi = o.max ?? Math.max(0, ...finite);
  if (!(hi > lo)) { lo = Math.min(lo, 0); hi = lo + 1; }
  const sx = (x: number): number => o.left + ((Math.min(hi, Math.max(lo, x)) - lo) / (hi - lo)) * o.width;
  return { lo, hi, sx, zero: sx(0), fmt: formatter(o.valueFormat) };
}

/** Grid lines from `top` to `bottom` at nice ticks, labelled under `bottom`. */
function barGrid(a: BarAxis, top: number, bottom: number, pw: number, valueFormat: ValueFormat | undefined): string[] {
  return niceTicks(a.lo, a.hi, Math.max(2, Math.floor(pw / 90))).flatMap((t) => [
    `<line x1="${px(a.sx(t))}" y1="${top}" x2="${px(a.sx(t))}" y2="${bottom}" stroke="#eee"/>`,
    text(a.sx(t), bottom + 16, valueFormat === 'percent' ? `${formatNumber(100 * t)}%` : formatNumber(t), 'text-anchor="middle" fill="#666" font-size="11"'),
  ]);
}

/**
 * One bar in the row from `y` to `y + h`: from the zero line to `val`, inset from the row's edges, its value written
 * `gap` px past its end. A non-finite value gets no bar, only its text (NaN: "n/a") in grey.
 */
function barSvg(a: BarAxis, val: number, r: { y: number; h: number; inset: number; gap: number; fs: number; fill: string }): string {
  const textY = r.y + r.h / 2 + r.fs / 2 - 1;
  if (!Number.isFinite(val)) return text(a.zero + r.gap, textY, Number.isNaN(val) ? 'n/a' : a.fmt(val), `font-size="${r.fs}" fill="#999"`);
  const x = a.sx(val);
  const bw = Math.max(Math.abs(x - a.zero), val === 0 ? 0 : 0.5);
  return `<rect x="${px(Math.min(x, a.zero))}" y="${px(r.y + r.inset)}" width="${px(bw)}" height="${Math.max(1, r.h - 2 * r.inset)}" fill="${r.fill}"/>`
    + text(Math.max(x, a.zero) + r.gap, textY, a.fmt(val), `font-size="${r.fs}" fill="#333"`);
}

/** Options of {@link barChart}. */
export interface BarChartOptions {
  labels: readonly string[];
  values: ArrayLike<number>;
  title?: string;
  /** Indices of bars drawn in `highlightColor` (e.g. the worst classes, or the strongest channels). */
  highlight?: readonly number[];
  /** Default `'number'`. */
  valueFormat?: ValueFormat;
  /** Default 640. */
  width?: number;
  /** Height of one bar row in px; default 18. */
  barHeight?: number;
  /** Value range ends; by default [min(0, data), max(0, data)]. */
  min?: number;
  max?: number;
  /** Default '#4c78a8'. */
  color?: string;
  /** Default '#e45756'. */
  highlightColor?: string;
}

/**
 * A horizontal bar chart as an SVG string: one labelled row per value, the value written at the
 * bar's end. NaN values (e.g. the IoU of a class absent from the data) get a row reading "n/a" and no bar.
 * @example barChart({ labels: ['road', 'car'], values: [0.93, 0.71], valueFormat: 'percent', highlight: [1] })
 */
export function barChart(opts: BarChartOptions): string {
  const op = 'barChart';
  if (!opts || !Array.isArray(opts.labels)) fail(op, 'expected an array of strings for labels');
  const n = opts.labels.length;
  if (!opts.values || opts.values.length !== n) fail(op, `expected ${n} values (one per label) but received ${opts.values?.length ?? 'none'}`);
  const width = v.int(op, 'width', opts.width ?? 640, 160);
  const barH = v.int(op, 'barHeight', opts.barHeight ?? 18, 4);
  const hl = new Set(opts.highlight ?? []);
  const values = Array.from(opts.values, Number);

  const labelW = Math.min(Math.round(width * 0.35), 12 + 7 * Math.max(4, ...opts.labels.map((l) => Math.min(String(l).length, 28))));
  const valueW = 58;
  const top = opts.title ? 30 : 8;
  const pw = width - labelW - valueW - 10;
  const height = top + n * barH + 26;
  const axis = barAxis(values, { min: opts.min, max: opts.max, left: labelW, width: pw, valueFormat: opts.valueFormat });

  const parts: string[] = [svgOpen(width, height, opts.title ?? 'bar chart')];
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  if (opts.title) parts.push(text(width / 2, 19, opts.title, 'text-anchor="middle" font-size="14" font-weight="600"'));
  parts.push(...barGrid(axis, top, top + n * barH, pw, opts.valueFormat));
  const color = escapeXml(opts.color ?? '#4c78a8');
  const hlColor = escapeXml(opts.highlightColor ?? '#e45756');
  const fs = Math.min(12, Math.max(7, barH - 5));
  for (let i = 0; i < n; i++) {
    const y = top + i * barH;
    const label = String(opts.labels[i]);
    parts.push(`<g><title>${escapeXml(`${label}: ${axis.fmt(values[i])}`)}</title>`);
    parts.push(text(labelW - 6, y + barH / 2 + fs / 2 - 1, clip(label, 28), `text-anchor="end" font-size="${fs}"`));
    parts.push(barSvg(axis, values[i], { y, h: barH, inset: 2, gap: 4, fs, fill: hl.has(i) ? hlColor : color }));
    parts.push('</g>');
  }
  parts.push(`<line x1="${px(axis.zero)}" y1="${top}" x2="${px(axis.zero)}" y2="${top + n * barH}" stroke="#444"/>`);
  parts.push('</svg>');
  return parts.join('');
}

/** One series of a {@link groupedBarChart}: one value per group label. */
export interface BarSeries {
  name: string;
  values: ArrayLike<number>;
  /** Any CSS colour; defaults to the next of {@link SERIES_COLORS}. */
  color?: string;
}

/** Options of {@link groupedBarChart}. */
export interface GroupedBarChartOptions {
  /** One group (a row of bars) per label, e.g. the classes. */
  labels: readonly string[];
  /** One bar per series in every group, e.g. the architectures. */
  series: readonly BarSeries[];
  title?: string;
  /** Default `'number'`. */
  valueFormat?: ValueFormat;
  /** Default 640. */
  width?: number;
  /** Height of one bar in px; default 9. */
  barHeight?: number;
  /** Value range ends; by default [min(0, data), max(0, data)]. */
  min?: number;
  max?: number;
}

/**
 * Horizontal grouped bars as an SVG string: per label a group holding one bar for each series, the value
 * written at the bar's end, and a legend of the series on top. NaN values get "n/a" and no bar.
 * @example groupedBarChart({ labels: ['road', 'car'], series: [{ name: 'pan', values: [0.9, 0.6] }, { name: 'unet', values: [0.88, 0.7] }], valueFormat: 'percent', min: 0, max: 1 })
 */
export function groupedBarChart(opts: GroupedBarChartOptions): string {
  const op = 'groupedBarChart';
  if (!opts || !Array.isArray(opts.labels)) fail(op, 'expected an array of strings for labels');
  if (!Array.isArray(opts.series)) fail(op, 'expected an array of series for series');
  const n = opts.labels.length;
  opts.series.forEach((s, i) => {
    if (!s?.values || s.values.length !== n) fail(op, `expected ${n} values (one per label) for series[${i}] but received ${s?.values?.length ?? 'none'}`);
  });
  const width = v.int(op, 'width', opts.width ?? 640, 160);
  const barH = v.int(op, 'barHeight', opts.barHeight ?? 9, 3);
  const series = opts.series.map((s, i) => ({ name: String(s.name), color: escapeXml(s.color ?? SERIES_COLORS[i % SERIES_COLORS.length]), values: Array.from(s.values, Number) }));

  const k = Math.max(1, series.length);
  const groupGap = Math.max(4, Math.round(barH * 0.8));
  const groupH = k * barH + groupGap;
  const labelW = Math.min(Math.round(width * 0.35), 12 + 7 * Math.max(4, ...opts.labels.map((l) => Math.min(String(l).length, 28))));
  const valueW = 52;
  const perRow = Math.max(1, Math.floor((width - 20) / 130));
  const legendH = series.length ? 18 * Math.ceil(series.length / perRow) : 0;
  const top = (opts.title ? 30 : 8) + legendH;
  const pw = width - labelW - valueW - 10;
  const height = top + n * groupH + 26;
  const axis = barAxis(series.flatMap((s) => s.values), { min: opts.min, max: opts.max, left: labelW, width: pw, valueFormat: opts.valueFormat });

  const parts: string[] = [svgOpen(width, height, opts.title ?? 'grouped bar chart')];
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  if (opts.title) parts.push(text(width / 2, 19, opts.title, 'text-anchor="middle" font-size="14" font-weight="600"'));
  series.forEach((s, i) => {
    const lx = 10 + (i % perRow) * 130;
    const ly = (opts.title ? 30 : 8) + Math.floor(i / perRow) * 18 + 12;
    parts.push(`<rect x="${lx}" y="${ly - 9}" width="12" height="10" fill="${s.color}"/>`);
    parts.push(text(lx + 17, ly, clip(s.name, 16)));
  });
  parts.push(...barGrid(axis, top, top + n * groupH, pw, opts.valueFormat));
  const fs = Math.min(11, Math.max(7, barH - 1));
  for (let g = 0; g < n; g++) {
    const y0 = top + g * groupH + groupGap / 2;
    const label = String(opts.labels[g]);
    parts.push(`<g><title>${escapeXml(`${label}: ${series.map((s) => `${s.name} ${axis.fmt(s.values[g])}`).join(', ')}`)}</title>`);
    parts.push(text(labelW - 6, y0 + (k * barH) / 2 + 4, clip(label, 28), 'text-anchor="end" font-size="12"'));
    series.forEach((s, i) => parts.push(barSvg(axis, s.values[g], { y: y0 + i * barH, h: barH, inset: 0.5, gap: 3, fs, fill: s.color })));
    parts.push('</g>');
  }
  parts.push(`<line x1="${px(axis.zero)}" y1="${top}" x2="${px(axis.zero)}" y2="${top + n * groupH}" stroke="#444"/>`);
  parts.push('</svg>');
  return parts.join('');
}

/** One labelled point of a {@link scatterChart}. */
export interface ScatterPoint {
  label: string;
  x: number;
  y: number;
  /** Any CSS colour; defaults to the next of {@link SERIES_COLORS}. */
  color?: string;
}

/** Options of {@link scatterChart}. */
export interface ScatterChartOptions {
  points: readonly ScatterPoint[];
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Default 640. */
  width?: number;
  /** Default 360. */
  height?: number;
  /** Fixed axis range ends; by default the data's range with a margin (x from 0 when all x are positive). */
  xMin?: number;
  xMax?: number;
  yMin?: number;
  yMax?: number;
  /** How the tooltip writes x and y; default {@link formatNumber}. */
  xFormat?: ValueFormat;
  yFormat?: ValueFormat;
}

/**
 * A scatter plot of labelled points as an SVG string (e.g. accuracy against latency, one point per model),
 * each point named beside it and in its tooltip. Points with a non-finite coordinate are listed under the plot
 * as "not drawn"; a chart with no drawable point says so.
 * @example scatterChart({ title: 'mIoU vs latency', xLabel: 'ms', yLabel: 'mIoU', points: [{ label: 'pan', x: 41, y: 0.62 }, { label: 'unet', x: 55, y: 0.6 }] })
 */
export function scatterChart(opts: ScatterChartOptions): string {
  const op = 'scatterChart';
  if (!opts || !Array.isArray(opts.points)) fail(op, 'expected an array of points for points');
  const width = v.int(op, 'width', opts.width ?? 640, 160);
  const height = v.int(op, 'height', opts.height ?? 360, 120);
  const fx = formatter(opts.xFormat);
  const fy = formatter(opts.yFormat);
  const all = opts.points.map((p, i) => ({ label: String(p.label), x: Number(p.x), y: Number(p.y), color: escapeXml(p.color ?? SERIES_COLORS[i % SERIES_COLORS.length]) }));
  const pts = all.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const missing = all.filter((p) => !pts.includes(p));
  const range = (vals: number[], lo: number | undefined, hi: number | undefined, fromZero: boolean): [number, number] => {
    let a = Math.min(...vals);
    let b = Math.max(...vals);
    if (!vals.length) { a = 0; b = 1; }
    const pad = (b - a) * 0.12 || Math.abs(a) * 0.2 || 0.5;
    a = fromZero && a >= 0 ? 0 : a - pad;
    b += pad;
    return [lo !== undefined && Number.isFinite(lo) ? lo : a, hi !== undefined && Number.isFinite(hi) ? hi : b];
  };
  let [x0, x1] = range(pts.map((p) => p.x), opts.xMin, opts.xMax, true);
  let [y0, y1] = range(pts.map((p) => p.y), opts.yMin, opts.yMax, false);
  if (!(x1 > x0)) { x0 -= 0.5; x1 = x0 + 1; }
  if (!(y1 > y0)) { y0 -= 0.5; y1 = y0 + 1; }

  const top = opts.title ? 30 : 12;
  const m = { left: 62, right: 16, top, bottom: 42 + (missing.length ? 18 : 0) };
  const pw = width - m.left - m.right;
  const ph = Math.max(10, height - m.top - m.bottom);
  const sx = (x: number): number => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number): number => m.top + ph - ((y - y0) / (y1 - y0)) * ph;

  const parts: string[] = [svgOpen(width, height, opts.title ?? 'scatter chart')];
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  if (opts.title) parts.push(text(width / 2, 19, opts.title, 'text-anchor="middle" font-size="14" font-weight="600"'));
  for (const t of niceTicks(y0, y1, Math.max(2, Math.floor(ph / 45)))) {
    const y = sy(t);
    parts.push(`<line x1="${m.left}" y1="${px(y)}" x2="${m.left + pw}" y2="${px(y)}" stroke="#e5e5e5"/>`);
    parts.push(text(m.left - 6, y + 4, formatNumber(t), 'text-anchor="end" fill="#444"'));
  }
  for (const t of niceTicks(x0, x1, Math.max(2, Math.floor(pw / 80)))) {
    const x = sx(t);
    parts.push(`<line x1="${px(x)}" y1="${m.top}" x2="${px(x)}" y2="${m.top + ph}" stroke="#f0f0f0"/>`);
    parts.push(`<line x1="${px(x)}" y1="${m.top + ph}" x2="${px(x)}" y2="${m.top + ph + 4}" stroke="#444"/>`);
    parts.push(text(x, m.top + ph + 16, formatNumber(t), 'text-anchor="middle" fill="#444"'));
  }
  parts.push(`<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#444"/>`);
  parts.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#444"/>`);
  if (opts.xLabel) parts.push(text(m.left + pw / 2, m.top + ph + 32, opts.xLabel, 'text-anchor="middle"'));
  if (opts.yLabel) {
    const cy = m.top + ph / 2;
    parts.push(text(14, cy, opts.yLabel, `text-anchor="middle" transform="rotate(-90 14 ${px(cy)})"`));
  }
  for (const p of pts) {
    const [cx, cy] = [sx(p.x), sy(p.y)];
    // Labels go left of points in the right third, so they stay inside the plot.
    const right = cx < m.left + pw * 0.67;
    parts.push(`<g><title>${escapeXml(`${p.label}: ${fx(p.x)}, ${fy(p.y)}`)}</title>`);
    parts.push(`<circle cx="${px(cx)}" cy="${px(cy)}" r="5" fill="${p.color}" stroke="#fff" stroke-width="1"/>`);
    parts.push(text(cx + (right ? 8 : -8), cy + 4, clip(p.label, 24), `${right ? '' : 'text-anchor="end" '}fill="#222"`));
    parts.push('</g>');
  }
  if (!pts.length) parts.push(text(m.left + pw / 2, m.top + ph / 2, 'no data', 'text-anchor="middle" fill="#888" font-size="14"'));
  if (missing.length) parts.push(text(m.left, height - 6, clip(`not drawn (no value): ${missing.map((p) => p.label).join(', ')}`, 90), 'fill="#999" font-size="11"'));
  parts.push('</svg>');
  return parts.join('');
}

/** Options of {@link confusionMatrixSvg}. */
export interface ConfusionMatrixOptions {
  /** `'row'` (default) divides each ground-truth row by its total, so cells read as recall shares; `'none'` shows counts. */
  normalize?: 'row' | 'none';
  title?: string;
  /** Cell side in px; default fits about 560 px, between 8 and 48. */
  cellSize?: number;
  /** Write the value in each cell; default when cells are at least 22 px. */
  showValues?: boolean;
}

/**
 * A confusion matrix as an SVG heatmap: rows are ground truth, columns predictions, with class labels
 * on both axes. Rows without any pixel are drawn hatched grey.
 * @param counts flat row-major `C * C` counts, `C = classes.length`
 * @example confusionMatrixSvg(cm.counts, VOC_CLASSES, { normalize: 'row' })
 */
export function confusionMatrixSvg(counts: ArrayLike<number>, classes: readonly string[], opts: ConfusionMatrixOptions = {}): string {
  const op = 'confusionMatrixSvg';
  if (!Array.isArray(classes) || classes.length === 0) fail(op, 'expected a non-empty array of class names for classes');
  const c = classes.length;
  if (!counts || counts.length !== c * c) fail(op, `expected ${c * c} counts (${c} x ${c} classes) but received ${counts?.length ?? 'none'}`);
  const normalize = v.oneOf(op, 'normalize', opts.normalize ?? 'row', ['row', 'none'] as const);
  const cell = opts.cellSize !== undefined ? v.int(op, 'cellSize', opts.cellSize, 2) : Math.max(8, Math.min(48, Math.floor(560 / c)));
  const showValues = opts.showValues ?? cell >= 22;
  // Many classes: skip empty cells and tooltips (the background shows zero), so 150 classes stay well under a megabyte.
  const sparse = c > 40;

  const cells = new Float64Array(c * c);
  const rowSum = new Float64Array(c);
  let maxVal = 0;
  for (let r = 0; r < c; r++) for (let k = 0; k < c; k++) rowSum[r] += Number(counts[r * c + k]) || 0;
  for (let r = 0; r < c; r++) {
    for (let k = 0; k < c; k++) {
      const raw = Number(counts[r * c + k]) || 0;
      const val = normalize === 'row' ? (rowSum[r] > 0 ? raw / rowSum[r] : 0) : raw;
      cells[r * c + k] = val;
      maxVal = Math.max(maxVal, val);
    }
  }
  const scaleMax = normalize === 'row' ? 1 : maxVal || 1;

  const longest = Math.min(24, Math.max(...classes.map((s) => String(s).length)));
  const fs = Math.max(7, Math.min(12, cell - 2));
  const labelW = Math.round(fs * 0.62 * longest) + 12;
  const top = (opts.title ? 28 : 6) + labelW + 16;
  const left = labelW + 22;
  const width = left + c * cell + 10;
  const height = top + c * cell + 10;

  const parts: string[] = [svgOpen(width, height, opts.title ?? 'confusion matrix')];
  parts.push('<defs><pattern id="cm-empty" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f2f2f2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d0d0d0" stroke-width="2"/></pattern></defs>');
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  parts.push(`<rect x="${left}" y="${top}" width="${c * cell}" height="${c * cell}" fill="${blues(0)}"/>`);
  if (opts.title) parts.push(text(width / 2, 19, opts.title, 'text-anchor="middle" font-size="14" font-weight="600"'));
  parts.push(text(left + (c * cell) / 2, top - labelW - 4, 'prediction', 'text-anchor="middle" fill="#444"'));
  const gy = top + (c * cell) / 2;
  parts.push(text(12, gy, 'ground truth', `text-anchor="middle" fill="#444" transform="rotate(-90 12 ${px(gy)})"`));

  for (let k = 0; k < c; k++) {
    const x = left + k * cell + cell / 2 + fs / 3;
    parts.push(text(x, top - 4, clip(String(classes[k]), 24), `font-size="${fs}" transform="rotate(-90 ${px(x)} ${px(top - 4)})"`));
  }
  for (let r = 0; r < c; r++) {
    const y = top + r * cell;
    parts.push(text(left - 4, y + cell / 2 + fs / 3, clip(String(classes[r]), 24), `text-anchor="end" font-size="${fs}"`));
    const gt = escapeXml(classes[r]);
    if (normalize === 'row' && rowSum[r] === 0) {
      parts.push(`<rect x="${left}" y="${y}" width="${c * cell}" height="${cell}" fill="url(#cm-empty)"><title>${gt}: no pixels</title></rect>`);
      continue;
    }
    for (let k = 0; k < c; k++) {
      const x = left + k * cell;
      const val = cells[r * c + k];
      const raw = Number(counts[r * c + k]) || 0;
      const pr = escapeXml(classes[k]);
      const t = Math.min(1, val / scaleMax);
      if (sparse) {
        if (val > 0) parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${blues(t)}"/>`);
        continue;
      }
      const tip = normalize === 'row' ? `${gt} → ${pr}: ${(100 * val).toFixed(1)}% (${formatNumber(raw)} px)` : `${gt} → ${pr}: ${formatNumber(raw)} px`;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${blues(t)}" stroke="#fff" stroke-width="0.5"><title>${tip}</title></rect>`);
      if (showValues && val > 0) {
        const s = normalize === 'row' ? (val >= 0.995 ? '1' : val < 0.005 ? '0' : val.toFixed(2).slice(1)) : formatNumber(raw);
        parts.push(text(x + cell / 2, y + cell / 2 + fs / 3, s, `text-anchor="middle" font-size="${Math.min(fs, Math.floor(cell / 2.2))}" fill="${t > 0.55 ? '#fff' : '#222'}"`));
      }
    }
  }
  parts.push(`<rect x="${left}" y="${top}" width="${c * cell}" height="${c * cell}" fill="none" stroke="#888"/>`);
  parts.push('</svg>');
  return parts.join('');
}

// White -> dark blue, like matplotlib's "Blues".
function blues(t: number): string {
  const a = [247, 251, 255];
  const b = [8, 48, 107];
  const mid = [107, 174, 214];
  const [p, q, u] = t < 0.5 ? [a, mid, t * 2] : [mid, b, (t - 0.5) * 2];
  const ch = (i: number): number => Math.round(p[i] + (q[i] - p[i]) * u);
  return `rgb(${ch(0)},${ch(1)},${ch(2)})`;
}
