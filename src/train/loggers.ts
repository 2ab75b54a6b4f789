// Where training records go besides metrics.jsonl (always written): a CSV table and TensorBoard
// event files. Each logger receives the same records train() appends to metrics.jsonl.
import { existsSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../common/errors.js';
import type { RGB } from '../common/palette.js';
import type { RgbImage } from '../data/decode.js';
import { TfEventsWriter } from '../io/tfevents.js';
import { colorMask, sideBySide } from '../eval/visualize.js';

/** The optional loggers: `csv` writes `metrics.csv`, `tensorboard` writes `events.out.tfevents.*`. */
export const LOGGERS = ['csv', 'tensorboard'] as const;
export type LoggerName = (typeof LOGGERS)[number];

/** One training record, as in metrics.jsonl: step records carry loss/lr/imgPerSec, epoch records (type 'epoch') validation too. */
export type LogRecord = Record<string, number | string>;

export interface RunLogger {
  /** A record (also written to metrics.jsonl). */
  record(rec: LogRecord): void;
  /** Validation pictures (image | ground truth | prediction) at optimizer step `step`. */
  images?(step: number, samples: LoggedSample[]): Promise<void>;
  close(): void;
}

/** One picture for the image loggers. */
export interface LoggedSample {
  id: string;
  image: RgbImage;
  gt: Uint8Array | null;
  pred: Uint8Array;
  colors: readonly RGB[];
  ignoreIndex: number;
}

/** The columns of metrics.csv, in order (metrics.jsonl keeps every field). */
export const CSV_COLUMNS = ['type', 'epoch', 'iter', 'loss', 'lr', 'imgPerSec', 'valMiou', 'valPixelAccuracy', 'valLoss'] as const;

/** TensorBoard tags of the record fields: step records, then epoch records. */
const STEP_TAGS: Record<string, string> = { loss: 'train/loss', lr: 'train/lr', imgPerSec: 'train/img_per_sec' };
const EPOCH_TAGS: Record<string, string> = {
  loss: 'train/epoch_loss', valMiou: 'val/mIoU', valPixelAccuracy: 'val/pixel_accuracy', valLoss: 'val/loss', imgPerSec: 'train/epoch_img_per_sec',
};

/**
 * Parses `--log`'s value: a comma list of csv and tensorboard ('jsonl' is accepted and always on).
 * @example parseLoggers('tensorboard,csv') // ['tensorboard', 'csv']
 */
export function parseLoggers(op: string, value: string | readonly string[] | undefined): LoggerName[] {
  const parts = (typeof value === 'string' ? value.split(',') : value ?? []).map((s) => String(s).trim().toLowerCase()).filter(Boolean);
  const out: LoggerName[] = [];
  for (const p of parts) {
    if (p === 'jsonl') continue;
    if (!(LOGGERS as readonly string[]).includes(p)) fail(op, `unknown logger '${p}' for log; expected a comma list of ${[...LOGGERS, 'jsonl'].join(', ')}`);
    if (!out.includes(p as LoggerName)) out.push(p as LoggerName);
  }
  return out;
}

function csvCell(x: unknown): string {
  if (x === undefined || x === null) return '';
  const s = typeof x === 'number' ? (Number.isFinite(x) ? String(x) : '') : String(x);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const csvLine = (rec: LogRecord): string => `${CSV_COLUMNS.map((k) => csvCell(k === 'type' ? rec.type ?? 'step' : rec[k])).join(',')}\n`;

/** Writes `<dir>/metrics.csv`; on resume it is rebuilt from metrics.jsonl (the record of truth), then appended to. */
export class CsvLogger implements RunLogger {
  readonly path: string;
  constructor(dir: string, resume: boolean) {
    this.path = join(dir, 'metrics.csv');
    let text = `${CSV_COLUMNS.join(',')}\n`;
    const jsonl = join(dir, 'metrics.jsonl');
    if (resume && existsSync(jsonl)) {
      for (const line of readFileSync(jsonl, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        try { text += csvLine(JSON.parse(line) as LogRecord); } catch { /* a torn last line of a killed run */ }
      }
    }
    writeFileSync(this.path, text);
  }
  record(rec: LogRecord): void { appendFileSync(this.path, csvLine(rec)); }
  close(): void {}
}

/** Writes TensorBoard scalars (loss, lr, img/s, val mIoU, val loss, ...) and validation pictures. */
export class TensorBoardLogger implements RunLogger {
  readonly writer: TfEventsWriter;
  constructor(dir: string) { this.writer = new TfEventsWriter(dir); }

  record(rec: LogRecord): void {
    const tags = rec.type === 'epoch' || rec.type === 'stop' ? EPOCH_TAGS : rec.type === undefined ? STEP_TAGS : null;
    if (!tags) return;
    const values: Record<string, number> = {};
    for (const [k, tag] of Object.entries(tags)) if (typeof rec[k] === 'number') values[tag] = rec[k] as number;
    if (typeof rec.epoch === 'number' && tags === EPOCH_TAGS) values['train/epoch'] = rec.epoch;
    this.writer.scalars(Number(rec.iter) || 0, values);
  }

  async images(step: number, samples: LoggedSample[]): Promise<void> {
    for (const s of samples) {
      const png = await samplePng(s);
      this.writer.image(step, `val_samples/${s.id}`, { height: png.height, width: png.width, colorspace: 3, encoded: png.data });
    }
  }

  close(): void { this.writer.close(); }
}

/** Longest side of a logged picture panel. */
const PANEL_MAX_SIDE = 1024;

/** image | ground truth | prediction as one PNG, downscaled so its longest side is at most 1024 px. */
async function samplePng(s: LoggedSample): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { width: w, height: h } = s.image;
  const gray: RGB = [224, 224, 192];
  const parts = [s.image, ...(s.gt ? [colorMask(s.gt, w, h, s.colors, s.ignoreIndex, gray)] : []), colorMask(s.pred, w, h, s.colors, s.ignoreIndex, gray)];
  const panel = sideBySide(parts, { gap: 4 });
  const scale = Math.min(1, PANEL_MAX_SIDE / Math.max(panel.width, panel.height));
  const width = Math.max(1, Math.round(panel.width * scale));
  const height = Math.max(1, Math.round(panel.height * scale));
  const { default: sharp } = await import('sharp');
  let pipe = sharp(Buffer.from(panel.data.buffer, panel.data.byteOffset, panel.data.byteLength), { raw: { width: panel.width, height: panel.height, channels: 3 } });
  if (scale < 1) pipe = pipe.resize({ width, height, kernel: 'nearest' });
  const data = await pipe.png({ compressionLevel: 6 }).toBuffer();
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}

/** Opens the named loggers in a run directory. */
export function openLoggers(dir: string, names: readonly LoggerName[], o: { resume: boolean }): RunLogger[] {
  return names.map((n) => (n === 'csv' ? new CsvLogger(dir, o.resume) : new TensorBoardLogger(dir)));
}
