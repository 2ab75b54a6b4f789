// What a training run publishes as it goes, besides checkpoints: metrics.jsonl (the record of truth),
// the optional loggers (csv, tensorboard) fed the same records, config.json, and report.html with its
// report.json rewritten after each validation. Only the writing rank (rank 0) opens one.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PansegError } from '../common/errors.js';
import type { Dataset } from '../data/index.js';
import type { Precision } from '../engine/index.js';
import type { EvaluationResult } from '../eval/evaluate.js';
import { segmentImage } from '../eval/predict.js';
import { syncFile, writeFileDurable } from '../io/file.js';
import type { SegmentationModel } from '../models/index.js';
import { type LoggerName, type LogRecord, openLoggers, type RunLogger } from './loggers.js';
import { writeReportState, writeTrainingReport } from './report.js';
import type { RunState } from './resume.js';

export interface RunOutputOptions {
  out: string;
  /** The restored state on --resume (the log is cut back to it), or null for a new run (an empty log). */
  resumed: RunState | null;
  /** What config.json holds. */
  config: Record<string, unknown>;
  hyperparameters: Record<string, unknown>;
  loggers: readonly LoggerName[];
  /** Pictures in report.html; 0 writes no report. */
  reportSamples: number;
  model: SegmentationModel;
  /** The images the report and the loggers' pictures show (the validation set, else the training set). */
  shown: Dataset;
  /** Whether `shown` is the validation set: without one, the report shows evenly spaced training images. */
  validation: boolean;
  precision: Precision;
  onLog?: (rec: LogRecord) => void;
  /** performance.now() at the start of the run, for the report's elapsed time. */
  t0: number;
}

export class RunOutput {
  private constructor(private readonly o: RunOutputOptions, private readonly loggers: RunLogger[], readonly logPath: string) {}

  /** Starts (or, on resume, cuts back) metrics.jsonl, writes config.json and report.json, and opens the loggers. */
  static async open(o: RunOutputOptions): Promise<RunOutput> {
    const logPath = join(o.out, 'metrics.jsonl');
    if (o.resumed) truncateLog(logPath, o.resumed);
    else writeFileDurable(logPath, '');
    writeFileDurable(join(o.out, 'config.json'), `${JSON.stringify(o.config, null, 2)}\n`);
    if (o.reportSamples) {
      const ds = o.shown;
      await writeReportState(o.out, { config: o.config, hyperparameters: o.hyperparameters, dataset: o.validation ? ds.spec : { ...ds.spec, samples: evenly(ds.samples, o.reportSamples) }, evaluation: null });
    }
    // After the log is cut back: the csv logger rebuilds metrics.csv from it.
    return new RunOutput(o, openLoggers(o.out, o.loggers, { resume: o.resumed !== null }), logPath);
  }

  /** Appends a record to metrics.jsonl and hands it to the loggers and onLog. */
  log(rec: LogRecord): void {
    appendFileSync(this.logPath, `${JSON.stringify(rec)}\n`);
    for (const l of this.loggers) l.record(rec);
    this.o.onLog?.(rec);
  }

  /** fsyncs metrics.jsonl, so it holds every record a checkpoint saved next covers, even after a power loss. */
  syncLog(): void { syncFile(this.logPath); }

  /** After a validation (or an epoch without one): the report and the loggers' pictures. Failures are warnings: training goes on. */
  async publish(epoch: number, status: string, at: { evaluation: EvaluationResult | null; iter: number }): Promise<void> {
    const { model, shown } = this.o;
    try {
      if (this.o.reportSamples) {
        await writeTrainingReport({
          model, outDir: this.o.out, dataset: shown, evaluation: at.evaluation, config: this.o.config, hyperparameters: this.o.hyperparameters, samples: this.o.reportSamples,
          summary: { status, 'elapsed': `${((performance.now() - this.o.t0) / 1000).toFixed(0)} s` },
        });
      }
      const imageLoggers = this.loggers.filter((l) => l.images);
      if (imageLoggers.length) {
        const picked = [];
        for (const s of evenly(shown.samples, Math.min(3, shown.length))) {
          const loaded = await shown.load(shown.samples.indexOf(s));
          picked.push({ id: loaded.id, image: loaded.image, gt: loaded.mask, pred: segmentImage(model, loaded.image, { precision: this.o.precision }).labels, colors: shown.colors, ignoreIndex: shown.ignoreIndex });
        }
        for (const l of imageLoggers) await l.images!(at.iter, picked);
      }
    } catch (e) {
      if (!(e instanceof PansegError) && (e as NodeJS.ErrnoException)?.code === undefined) throw e; // a bug, not the disk or the data
      console.warn(`panseg: train: epoch ${epoch + 1}: could not write the report or pictures (${(e as Error).message.split('\n')[0]}); training goes on`);
    }
  }

  close(): void {
    for (const l of this.loggers) l.close();
  }
}

/** `n` evenly spaced items of `xs`. */
function evenly<T>(xs: readonly T[], n: number): T[] {
  const k = Math.min(n, xs.length);
  return Array.from({ length: k }, (_, i) => xs[Math.floor((i * xs.length) / k)]);
}

/**
 * On resume: drops the records metrics.jsonl holds beyond the checkpoint (the epochs the crashed run
 * had started or finished after it), and a last line cut short, so the log matches an uninterrupted run.
 */
function truncateLog(path: string, state: RunState): void {
  if (!existsSync(path)) return;
  const midEpoch = (state.epochBatches ?? 0) > 0;
  const keep = readFileSync(path, 'utf8').split('\n').filter((line) => {
    let r: { epoch?: unknown; iter?: unknown; type?: unknown };
    try { r = JSON.parse(line) as typeof r; } catch { return false; }
    // A checkpoint from mid-epoch (maxSteps) keeps that epoch's step records up to it, not its 'stop' record.
    const stepOfKeptEpoch = midEpoch && r.type === undefined && r.epoch === state.epoch + 1;
    return !(typeof r.epoch === 'number' && r.epoch > state.epoch && !stepOfKeptEpoch) && !(typeof r.iter === 'number' && r.iter > state.iter);
  });
  writeFileDurable(path, keep.map((l) => `${l}\n`).join(''));
}
