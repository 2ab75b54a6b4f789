// A comparison as data (compare.json) and as Markdown tables (compare.md, and what the CLI prints).
import type { RGB } from '../common/palette.js';
import type { CompareRow } from './row.js';

/** Everything compare.json, compare.md and compare.html show. */
export interface Comparison {
  title: string;
  createdAt: string;
  /** The dataset's layout name, the training split and the validation split the scores come from. */
  dataset: string;
  split: string;
  valSplit: string;
  classes: string[];
  colors: RGB[];
  ignoreIndex: number;
  encoder: string;
  crop: number;
  epochs: number;
  /** The shared training options (the recipe a resume must repeat). */
  options: Record<string, unknown>;
  /** One per architecture, in the order trained. */
  rows: CompareRow[];
}

export function pct(x: number | null | undefined): string {
  return typeof x === 'number' && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a';
}

/** 11.4 M, 870 k. */
export function millions(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(n >= 1e8 ? 0 : 1)} M` : `${Math.round(n / 1e3)} k`;
}

export function ms(x: number | null | undefined): string {
  if (typeof x !== 'number' || !Number.isFinite(x)) return 'n/a';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** 45 s, 12m 05s, 3h 02m. */
export function duration(s: number): string {
  if (!Number.isFinite(s)) return 'n/a';
  const t = Math.round(s);
  if (t < 60) return `${t} s`;
  const [h, m, sec] = [Math.floor(t / 3600), Math.floor((t % 3600) / 60), t % 60];
  return h ? `${h}h ${String(m).padStart(2, '0')}m` : `${m}m ${String(sec).padStart(2, '0')}s`;
}

/** The size the rows were measured at, or null when they differ (each cell then names its own). */
function commonSize(rows: readonly CompareRow[], size: (r: CompareRow) => number): number | null {
  const sizes = new Set(rows.map(size));
  return sizes.size === 1 ? [...sizes][0] : null;
}

/** The summary table's header cells and one row of cells per architecture (shared by the Markdown and the HTML). */
export function summaryCells(rows: readonly CompareRow[]): { header: string[]; cells: string[][] } {
  const g = commonSize(rows, (r) => r.gflopsSize);
  const b = commonSize(rows, (r) => r.inference.size);
  const at = (n: number | null) => (n === null ? '' : ` @${n}`);
  const header = ['architecture', 'params', `GFLOPs${at(g)}`, 'best mIoU', 'mIoU last 3', 'pixel acc', `fp32 ms${at(b)}`, `bf16 ms${at(b)}`, 'train img/s', 'wall time'];
  const cells = rows.map((r) => [
    `${r.arch} (${r.name})`, millions(r.params), `${r.gflops.toFixed(2)}${g === null ? ` @${r.gflopsSize}` : ''}`,
    `${pct(r.bestMiou)} (epoch ${r.bestEpoch})`, pct(r.lastMiou), pct(r.pixelAccuracy),
    `${ms(r.inference.fp32)}${b === null ? ` @${r.inference.size}` : ''}`, `${ms(r.inference.bf16)}${b === null ? ` @${r.inference.size}` : ''}`,
    r.trainImgPerSec === null ? 'n/a' : r.trainImgPerSec.toFixed(1), duration(r.wallSeconds),
  ]);
  return { header, cells };
}

const NUMERIC = [false, true, true, true, true, true, true, true, true, true];

function mdCell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function mdTable(header: string[], cells: string[][], numeric: boolean[]): string {
  const line = (xs: string[]) => `| ${xs.map(mdCell).join(' | ')} |`;
  return [line(header), `|${numeric.map((n) => (n ? '---:' : '---')).join('|')}|`, ...cells.map(line)].join('\n');
}

/** The summary as a Markdown table: one row per architecture. */
export function compareTable(rows: readonly CompareRow[]): string {
  const { header, cells } = summaryCells(rows);
  return mdTable(header, cells, NUMERIC);
}

/** How the numbers were measured, in one paragraph. */
export function methodNote(c: Comparison): string {
  const r = c.rows[0];
  const repeats = r ? r.inference.repeats : 5;
  return `Scores on the ${c.valSplit} split (${c.classes.length} classes): best validation mIoU, the mean of the last 3 validations, `
    + `and the final model's pixel accuracy and per-class IoU. GFLOPs: one forward pass at the crop size. Inference: ms per image, batch 1, `
    + `median of ${repeats} runs after a warm-up, of the default inference copies (BatchNorm folded, the fastest layout for the device) in float32 and bfloat16. `
    + 'Training: median images per second over epochs; wall time includes validation and checkpoints.';
}

/** compare.md: title, recipe, the summary table and per-class IoU. */
export function compareMarkdown(c: Comparison): string {
  const recipe = `${c.encoder} encoder, ${c.dataset} ${c.split} split, crop ${c.crop}, ${c.epochs} epoch${c.epochs === 1 ? '' : 's'}; same options, seed and data order for every architecture.`;
  const classes = mdTable(['class', ...c.rows.map((r) => r.arch)], c.classes.map((name, i) => [name, ...c.rows.map((r) => pct(r.perClassIou[i]))]), [false, ...c.rows.map(() => true)]);
  return `# ${mdCell(c.title)}\n\n${recipe}\n\n${compareTable(c.rows)}\n\n${methodNote(c)}\n\n## Per-class IoU\n\n${classes}\n`;
}
