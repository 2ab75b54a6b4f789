// The end-of-training report: curves from metrics.jsonl, final metrics and sample predictions.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RGB } from '../common/palette.js';
import type { Dataset } from '../data/index.js';
import { segmentImage } from '../eval/predict.js';
import { type ReportHistoryEntry, type ReportSample, writeReport } from '../eval/report.js';
import type { EvaluationResult } from '../eval/evaluate.js';
import { attentionReportSection } from '../explain/index.js';
import type { SegmentationModel } from '../models/index.js';

export interface TrainingReportInput {
  model: SegmentationModel;
  outDir: string;
  dataset: Dataset;
  evaluation: EvaluationResult | null;
  config: Record<string, unknown>;
  summary?: Record<string, string | number>;
  title?: string;
  /** Sample predictions to show (default 6). */
  samples?: number;
  sections?: { title: string; html: string }[];
  /** Add an "Attention" section with the FPA maps and GAU channel weights of the samples (default true). */
  attention?: boolean;
}

/** Reads `<out>/metrics.jsonl` into report history entries. */
export function readHistory(outDir: string): ReportHistoryEntry[] {
  const path = join(outDir, 'metrics.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as ReportHistoryEntry);
}

/** Writes `<out>/report.html` and returns its path. */
export async function writeTrainingReport(r: TrainingReportInput): Promise<string> {
  const ds = r.dataset;
  const n = Math.min(r.samples ?? 6, ds.length);
  const samples: ReportSample[] = [];
  for (let i = 0; i < n; i++) {
    const idx = Math.floor((i * ds.length) / n);
    let s: Awaited<ReturnType<Dataset['load']>>;
    try { s = await ds.load(idx); } catch { continue; } // a corrupt sample was skipped in training; it must not end the run here

    const seg = segmentImage(r.model, s.image);
    samples.push({ id: s.id, image: s.image, gt: s.mask, pred: seg.labels });
  }
  const colors = ds.colors.map((c) => [...c] as RGB);
  // Attention pictures are PAN's (its FPA map and GAU weights); other architectures have none.
  const attention = r.attention === false || !samples.length || !r.model.spec.attentionMaps ? [] : [await attentionReportSection(r.model, samples, r.outDir, { classes: [...ds.classes], colors })];
  const ev = r.evaluation;
  return writeReport(r.outDir, {
    title: r.title ?? `${r.model.architecture} training report: ${r.model.config.encoderName} on ${ds.name}`,
    config: r.config,
    history: readHistory(r.outDir),
    classes: [...ds.classes],
    colors,
    ignoreIndex: ds.ignoreIndex,
    final: ev ? { ...ev, confusion: Array.from(ev.confusion.counts) } : undefined,
    samples,
    summary: r.summary,
    sections: [...attention, ...(r.sections ?? [])],
  });
}
