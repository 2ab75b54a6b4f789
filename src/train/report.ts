// The training report: curves from metrics.jsonl, the last validation's metrics, the worst validation
// images and the resolved hyperparameters. train() rewrites it after every validation; what it is
// made from is kept in `<out>/report.json`, so `panseg report RUN_DIR` can rebuild it from a run directory.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail } from '../common/errors.js';
import type { RGB } from '../common/palette.js';
import { Dataset, type DatasetSpec } from '../data/index.js';
import { segmentImage } from '../eval/predict.js';
import { type ReportHistoryEntry, type ReportSample, writeReport } from '../eval/report.js';
import type { EvaluationResult, ImageScore } from '../eval/evaluate.js';
import { ConfusionMatrix } from '../eval/metrics.js';
import { attentionReportSection } from '../explain/index.js';
import { writeFileDurableAsync } from '../io/file.js';
import { loadModel, type SegmentationModel } from '../models/index.js';

export interface TrainingReportInput {
  model: SegmentationModel;
  outDir: string;
  /** The validation set (or, without one, the training set: then samples are evenly spaced). */
  dataset: Dataset;
  evaluation: EvaluationResult | null;
  /** The run's options, shown as given (the CLI's are its config.json). */
  config: Record<string, unknown>;
  /** The settings the run used with every default filled in (optimizer, schedule, ...). */
  hyperparameters?: Record<string, unknown>;
  summary?: Record<string, string | number>;
  title?: string;
  /**
   * Pictures to show (default 6): with an evaluation that has per-image scores, the worst images
   * (lowest mIoU, then pixel accuracy); otherwise evenly spaced ones.
   */
  samples?: number;
  sections?: { title: string; html: string }[];
  /** Add an "Attention" section with the FPA maps and GAU channel weights of the samples (default true). */
  attention?: boolean;
}

/** The file beside report.html that holds what the report is made from (besides metrics.jsonl and the checkpoints). */
export const REPORT_STATE_FILE = 'report.json';

/** What report.json holds. */
export interface ReportState {
  title?: string;
  config: Record<string, unknown>;
  hyperparameters?: Record<string, unknown>;
  summary?: Record<string, string | number>;
  /** The dataset the pictures come from, sample paths absolute. */
  dataset: DatasetSpec;
  /** The last validation (NaN written as null). */
  evaluation: SavedEvaluation | null;
  /** The iteration of that validation. */
  iter?: number;
}

type SavedEvaluation = Omit<EvaluationResult, 'confusion'> & { confusion: number[]; numClasses: number; ignoreIndex: number };

/** Reads `<out>/metrics.jsonl` into report history entries (a torn last line of a killed run is skipped). */
export function readHistory(outDir: string): ReportHistoryEntry[] {
  const path = join(outDir, 'metrics.jsonl');
  if (!existsSync(path)) return [];
  const out: ReportHistoryEntry[] = [];
  for (const l of readFileSync(path, 'utf8').split('\n')) {
    if (!l.trim()) continue;
    try { out.push(JSON.parse(l) as ReportHistoryEntry); } catch { /* cut short by a kill */ }
  }
  return out;
}

/** The `n` worst-scored images: lowest mIoU first, ties by pixel accuracy; images with nothing to score last. */
export function worstImages(scores: readonly ImageScore[], n: number): ImageScore[] {
  const key = (x: number) => (Number.isFinite(x) ? x : Number.POSITIVE_INFINITY);
  return [...scores].sort((a, b) => key(a.miou) - key(b.miou) || key(a.pixelAccuracy) - key(b.pixelAccuracy)).slice(0, Math.max(0, n));
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '—');

/** Writes `<out>/report.html` (atomically) and `<out>/report.json`, and returns the report's path. */
export async function writeTrainingReport(r: TrainingReportInput): Promise<string> {
  const ds = r.dataset;
  const n = Math.min(r.samples ?? 6, ds.length);
  const ev = r.evaluation;
  const samples: ReportSample[] = [];
  let samplesTitle: string | undefined;
  let samplesNote: string | undefined;
  const byId = ev?.perImage?.length && ds.samples ? new Map(ds.samples.map((s, i) => [s.id, i])) : null;
  const worst = byId ? worstImages(ev!.perImage!, n).filter((s) => byId.has(s.id)) : [];
  if (worst.length) {
    for (const w of worst) {
      let s: Awaited<ReturnType<Dataset['load']>>;
      try { s = await ds.load(byId!.get(w.id)!); } catch { continue; } // a corrupt sample was skipped in training; it must not end the run here
      samples.push({ id: s.id, image: s.image, gt: s.mask, pred: segmentImage(r.model, s.image).labels, note: `mIoU ${pct(w.miou)}, pixel accuracy ${pct(w.pixelAccuracy)}` });
    }
    samplesTitle = `Worst ${worst.length} of ${ev!.perImage!.length} validation images`;
    samplesNote = 'The validation images with the lowest mIoU (ties: pixel accuracy) at the last validation, predicted by this model.';
  } else {
    for (let i = 0; i < n; i++) {
      let s: Awaited<ReturnType<Dataset['load']>>;
      try { s = await ds.load(Math.floor((i * ds.length) / n)); } catch { continue; } // as above
      samples.push({ id: s.id, image: s.image, gt: s.mask, pred: segmentImage(r.model, s.image).labels });
    }
  }
  const colors = ds.colors.map((c) => [...c] as RGB);
  const history = readHistory(r.outDir);
  if (ds.spec) {
    const spec = ev ? ds.spec : { ...ds.spec, samples: samples.map((s) => ds.samples.find((x) => x.id === s.id)!).filter(Boolean) };
    await writeReportState(r.outDir, {
      title: r.title, config: r.config, hyperparameters: r.hyperparameters, summary: r.summary, dataset: spec,
      evaluation: ev ? saveEvaluation(ev) : null, iter: history.length ? history[history.length - 1].iter : undefined,
    });
  }
  // Attention pictures are PAN's (its FPA map and GAU weights); other architectures have none.
  const attention = r.attention === false || !samples.length || !r.model.spec.attentionMaps ? [] : [await attentionReportSection(r.model, samples, r.outDir, { classes: [...ds.classes], colors })];
  return writeReport(r.outDir, {
    title: r.title ?? `${r.model.architecture} training report: ${r.model.config.encoderName} on ${ds.name}`,
    config: r.config,
    hyperparameters: r.hyperparameters,
    history,
    classes: [...ds.classes],
    colors,
    ignoreIndex: ds.ignoreIndex,
    final: ev ? { ...ev, confusion: Array.from(ev.confusion.counts) } : undefined,
    samples,
    samplesTitle,
    samplesNote,
    summary: r.summary,
    sections: [...attention, ...(r.sections ?? [])],
  });
}

function saveEvaluation(ev: EvaluationResult): SavedEvaluation {
  return { ...ev, confusion: Array.from(ev.confusion.counts), numClasses: ev.confusion.numClasses, ignoreIndex: ev.confusion.ignoreIndex };
}

function loadEvaluation(s: SavedEvaluation): EvaluationResult {
  const nan = (x: number | null) => (x === null ? Number.NaN : x);
  const cm = new ConfusionMatrix(s.numClasses, s.ignoreIndex);
  cm.counts.set(s.confusion);
  return {
    ...s, miou: nan(s.miou), pixelAccuracy: nan(s.pixelAccuracy), meanAccuracy: nan(s.meanAccuracy), fwIou: nan(s.fwIou),
    perClassIou: s.perClassIou.map(nan), perClassAccuracy: s.perClassAccuracy.map(nan), confusion: cm,
    perImage: s.perImage?.map((p) => ({ id: p.id, miou: nan(p.miou), pixelAccuracy: nan(p.pixelAccuracy) })),
  };
}

/** Writes `<out>/report.json` (atomically), sample paths made absolute so the file works from any folder. */
export async function writeReportState(outDir: string, state: ReportState): Promise<void> {
  const abs = (p: string) => (p ? resolve(p) : p);
  const dataset = { ...state.dataset, root: abs(state.dataset.root), samples: state.dataset.samples.map((s) => ({ ...s, imagePath: abs(s.imagePath), maskPath: abs(s.maskPath) })) };
  await writeFileDurableAsync(join(outDir, REPORT_STATE_FILE), `${JSON.stringify({ ...state, dataset })}\n`);
}

/** Options of {@link rewriteTrainingReport}. */
export interface RewriteReportOptions {
  /** The checkpoint whose predictions the pictures show: 'last' (default when it exists) or 'best'. */
  checkpoint?: 'best' | 'last';
  /** Pictures to show (default 6). */
  samples?: number;
  /** Attention section for PAN (default true). */
  attention?: boolean;
}

/**
 * Rebuilds `<runDir>/report.html` from the run directory alone: metrics.jsonl, report.json (written by
 * train() when it starts and after every validation) and a checkpoint. Works on a run that is still
 * training or was stopped.
 * @returns the path of report.html
 * @example await rewriteTrainingReport('runs/voc')
 */
export async function rewriteTrainingReport(runDir: string, o: RewriteReportOptions = {}): Promise<string> {
  const op = 'report';
  if (typeof runDir !== 'string' || !runDir) fail(op, 'expected a run directory');
  if (!existsSync(runDir)) fail(op, `${runDir} does not exist; give the --out folder of a training run`);
  const statePath = join(runDir, REPORT_STATE_FILE);
  if (!existsSync(statePath)) {
    fail(op, existsSync(join(runDir, 'metrics.jsonl'))
      ? `${statePath} not found: the run was made by an older panseg; its report.html is the one it wrote`
      : `${runDir} is not a training run (no metrics.jsonl or ${REPORT_STATE_FILE}); give the --out folder of panseg train`);
  }
  let state: ReportState;
  try { state = JSON.parse(readFileSync(statePath, 'utf8')) as ReportState; } catch (e) { fail(op, `${statePath}: ${(e as Error).message}`); }
  const ckpts = join(runDir, 'checkpoints');
  // Only looks: renaming a checkpoint back (recoverCheckpoint) could collide with a run saving one right now.
  const which = o.checkpoint ?? (existsSync(join(ckpts, 'last', 'config.json')) ? 'last' : 'best');
  if (which !== 'best' && which !== 'last') fail(op, `expected 'best' or 'last' for checkpoint but received ${JSON.stringify(which)}`);
  const dir = join(ckpts, which);
  if (!existsSync(join(dir, 'config.json'))) {
    fail(op, `no checkpoint at ${dir}${which === 'last' ? '' : ` (nor ${join(ckpts, 'last')})`}: a run has one after its first epoch (or validation)${o.checkpoint ? '; try the other --checkpoint' : ''}`);
  }
  const model = await loadWhileTraining(dir);
  try {
    return await writeTrainingReport({
      model, outDir: runDir, dataset: new Dataset(state.dataset), evaluation: state.evaluation ? loadEvaluation(state.evaluation) : null,
      config: state.config ?? {}, hyperparameters: state.hyperparameters, title: state.title,
      summary: { ...state.summary, pictures: `checkpoints/${which}` }, samples: o.samples, attention: o.attention,
    });
  } finally {
    model.dispose();
  }
}

/** Loads a checkpoint that a running training may be replacing at this moment (a rename of a second): a few tries. */
async function loadWhileTraining(dir: string): Promise<SegmentationModel> {
  for (let attempt = 0; ; attempt++) {
    try { return loadModel(dir); } catch (e) {
      if (attempt >= 4) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
