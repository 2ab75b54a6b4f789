// Trains several architectures with one recipe, one after another, and compares them: accuracy, cost,
// speed, curves and a side-by-side sample, as compare.json, compare.md and compare.html.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../common/errors.js';
import { validSide } from '../common/input-size.js';
import { removeWriteLeftovers, writeFileDurable, writeFileDurableAsync } from '../io/file.js';
import type { RGB } from '../common/palette.js';
import { DataLoader, type Dataset, type LoadedSample, readIndexedPng } from '../data/index.js';
import { evaluate, type EvaluationResult } from '../eval/evaluate.js';
import { segmentImage } from '../eval/predict.js';
import { saveIndexMask } from '../eval/visualize.js';
import { architecture, createModel, type SegmentationModel } from '../models/index.js';
import { recoverCheckpoint } from '../train/checkpoint.js';
import { writeTrainingReport } from '../train/report.js';
import { train } from '../train/train.js';
import { inferenceLatency, modelCost } from './measure.js';
import { type CompareOptions, recipeDifferences, type ResolvedCompare, resolveCompareOptions } from './options.js';
import { COMPARE_ASSET_DIR, writeCompareHtml } from './page.js';
import { buildRow, type CompareRow, readRow, RESULT_FILE, SAMPLE_FILE } from './row.js';
import { comparisonSplit, saveComparisonSplit, SPLIT_FILE } from './split.js';
import { type Comparison, compareMarkdown } from './summary.js';

/** The file in the comparison's folder that records its recipe, written before the first training. */
export const CONFIG_FILE = 'compare-config.json';
/** Training seconds so far of an unfinished architecture, rewritten after each epoch (for the wall time of a resumed run). */
const ELAPSED_FILE = 'compare-elapsed.json';
const OP = 'compare';

export interface CompareResult {
  comparison: Comparison;
  /** Paths of compare.json, compare.md and compare.html. */
  files: { json: string; md: string; html: string };
  /** Architectures trained in this call, and those finished by an earlier one (skipped). */
  trained: string[];
  skipped: string[];
  /** Wall-clock seconds of this call. */
  seconds: number;
}

/**
 * Trains each architecture with the same recipe, seed and data order, one after another, each as a normal training
 * run in `<out>/<arch>/` (checkpoints, metrics.jsonl, report.html), then measures it (parameters, GFLOPs at the crop,
 * inference latency of the float32 and bfloat16 inference copies) and writes `<out>/compare.{json,md,html}`.
 * With `resume`, architectures that finished are skipped and an unfinished one continues from its `checkpoints/last`.
 * With `valFraction` (or `splitFile`) the train/val split is drawn (or read) once into `<out>/split.json`, and every
 * run trains and validates on those lists; a resumed comparison reads that file back.
 * @example
 * const { comparison } = await compareArchitectures({ dataset: 'camvid', dataRoot: 'CamVid', archs: ['pan', 'unet', 'fpn'],
 *   encoder: 'resnet18', crop: 256, batchSize: 8, epochs: 30, out: 'runs/compare' });
 * for (const r of comparison.rows) console.log(r.arch, r.bestMiou, r.inference.fp32);
 */
export async function compareArchitectures(options: CompareOptions): Promise<CompareResult> {
  const t0 = performance.now();
  const c = resolveCompareOptions(options);
  checkOut(c);
  // An interrupted comparison's temporaries go (its files and page pictures); each architecture's run clears its own on resume.
  if (c.resume) for (const d of [c.out, join(c.out, COMPARE_ASSET_DIR)]) removeWriteLeftovers(d);
  const t = c.train;
  const split = comparisonSplit(c);
  const valDs = split.val;
  if (valDs.length === 0) fail(OP, `the ${valDs.split} split of ${t.dataset} has no images to compare on`);
  const classes = t.classes ?? valDs.numClasses;
  checkArchitectures(c, classes);
  // The split goes before the config: a comparison that can be resumed always has its split.
  saveComparisonSplit(split);
  if (!c.resume) await writeFileDurableAsync(join(c.out, CONFIG_FILE), `${JSON.stringify({ version: 1, createdAt: new Date().toISOString(), archs: c.archs, recipe: c.recipe }, null, 2)}\n`);

  const sample = await valDs.load(0);
  const rows: CompareRow[] = [];
  const trained: string[] = [];
  const skipped: string[] = [];
  for (const [index, arch] of c.archs.entries()) {
    const dir = join(c.out, arch);
    const resultPath = join(dir, RESULT_FILE);
    const done = c.resume && existsSync(resultPath);
    if (!done && !t.quiet) console.error(`compare: [${index + 1}/${c.archs.length}] ${arch} -> ${dir}`);
    const row = done ? readRow(resultPath) : await runArchitecture(c, arch, valDs, sample, split.path);
    // The result file is the marker a resume skips on: written whole, after everything else of the architecture.
    if (!done) await writeFileDurableAsync(resultPath, `${JSON.stringify(row, null, 2)}\n`);
    rows.push(row);
    (done ? skipped : trained).push(arch);
    options.onArchitecture?.(row, { skipped: done, index, total: c.archs.length });
  }

  const comparison: Comparison = {
    title: `panseg compare: ${rows.map((r) => r.arch).join(', ')} (${t.encoder} on ${valDs.name})`,
    createdAt: new Date().toISOString(),
    dataset: valDs.name, split: split.path ? `${SPLIT_FILE} train` : t.split ?? 'train', valSplit: split.path ? `${SPLIT_FILE} val` : valDs.split,
    classes: [...valDs.classes], colors: valDs.colors.map((x) => [...x] as RGB), ignoreIndex: valDs.ignoreIndex,
    encoder: t.encoder, crop: t.crop, epochs: t.epochs, options: c.recipe, rows,
  };
  const preds = rows.map((r) => (r.sample ? readSampleLabels(join(c.out, r.sample), sample) : null));
  const files = { json: join(c.out, 'compare.json'), md: join(c.out, 'compare.md'), html: '' };
  await writeFileDurableAsync(files.json, `${JSON.stringify(comparison, null, 2)}\n`);
  await writeFileDurableAsync(files.md, compareMarkdown(comparison));
  files.html = await writeCompareHtml(c.out, comparison, { id: sample.id, image: sample.image, gt: sample.mask, preds });
  return { comparison, files, trained, skipped, seconds: (performance.now() - t0) / 1000 };
}

/** A fresh comparison needs an empty (or new) folder; a resumed one the folder of a comparison with the same recipe. */
function checkOut(c: ResolvedCompare): void {
  if (existsSync(c.out) && !statSync(c.out).isDirectory()) fail(OP, `${c.out} is a file; choose a folder for --out`);
  const configPath = join(c.out, CONFIG_FILE);
  if (!c.resume) {
    if (existsSync(c.out) && readdirSync(c.out).length) fail(OP, `${c.out} is not empty; pass --resume to continue its comparison, or choose a new --out`);
    return;
  }
  if (!existsSync(configPath)) fail(OP, `--resume: no comparison to resume in ${c.out} (no ${CONFIG_FILE}); start without --resume`);
  let recipe: Record<string, unknown>;
  try {
    recipe = (JSON.parse(readFileSync(configPath, 'utf8')) as { recipe: Record<string, unknown> }).recipe ?? {};
  } catch (e) {
    fail(OP, `--resume: ${configPath}: ${(e as Error).message}`);
  }
  const diff = recipeDifferences(recipe, c.recipe);
  if (diff.length) fail(OP, `--resume: the options differ from the interrupted comparison's in ${diff.join(', ')}; resume with the same options or use a new --out`);
}

/**
 * Builds every architecture once with its options and checks the crop suits it, so that a mistake in the last one
 * is reported before hours of training the first.
 */
function checkArchitectures(c: ResolvedCompare, classes: number): void {
  const crop = c.train.crop;
  for (const arch of c.archs) {
    let model: SegmentationModel;
    try {
      model = createModel(arch, { encoderName: c.train.encoder, classes, encoderWeights: null, ...c.modelOptions[arch] });
    } catch (e) {
      fail(OP, `building ${arch}: ${(e as Error).message}`);
    }
    const { stride, min } = model.inputSizeRule;
    model.dispose();
    if (crop % stride !== 0 || crop < min) fail(OP, `crop ${crop} does not suit ${arch}: its inputs must be multiples of ${stride} and at least ${min} px; use --crop ${validSide(crop, { stride, min })} or leave ${arch} out`);
  }
}

/** Trains (or resumes) one architecture, writes its report and sample prediction, measures it and returns its row. */
async function runArchitecture(c: ResolvedCompare, arch: string, valDs: Dataset, sample: LoadedSample, splitFile: string | undefined): Promise<CompareRow> {
  const dir = join(c.out, arch);
  const resume = c.resume && recoverCheckpoint(join(dir, 'checkpoints', 'last'));
  const prior = resume ? readElapsed(dir) : 0;
  const t0 = performance.now();
  const elapsed = (): number => prior + (performance.now() - t0) / 1000;
  const modelOptions = c.modelOptions[arch] ?? {};
  const res = await train({
    // Every run reads the comparison's split file: none draws its own.
    ...c.train, ...(splitFile ? { splitFile } : {}), arch, modelOptions, out: dir, resume,
    onLog: (rec) => { if (rec.type === 'epoch') writeFileDurable(join(dir, ELAPSED_FILE), `${JSON.stringify({ seconds: elapsed() })}\n`); },
  });
  const wallSeconds = elapsed();
  const model = res.model;
  try {
    const ds = res.valDataset ?? valDs;
    // A run resumed after its last epoch returns without validating: validate its final model here.
    const evaluation = res.lastEval ?? await validate(model, ds, c);
    await writeTrainingReport({
      model, outDir: dir, dataset: ds, evaluation, config: { ...c.recipe, arch, modelOptions },
      summary: { 'training time': `${wallSeconds.toFixed(0)} s`, 'data wait': `${(res.dataWaitFraction * 100).toFixed(1)}% of step time` },
    });
    const cost = modelCost(model, c.train.crop);
    const latency = inferenceLatency(model, c.benchSize, c.benchRepeats);
    const seg = segmentImage(model, sample.image, { precision: c.train.precision ?? 'auto' });
    await saveIndexMask(join(dir, SAMPLE_FILE), seg.labels, seg.width, seg.height, ds.colors);
    return buildRow({
      arch, name: architecture(arch).name, encoder: model.config.encoderName, modelOptions, dir: arch,
      history: res.history, evaluation, cost, latency, wallSeconds, sample: `${arch}/${SAMPLE_FILE}`,
    });
  } finally {
    model.dispose();
  }
}

async function validate(model: SegmentationModel, ds: Dataset, c: ResolvedCompare): Promise<EvaluationResult> {
  const { mean, std } = model.preprocessing;
  const loader = new DataLoader(ds, { mode: 'eval', batchSize: 1, stride: model.inputSizeRule.stride, mean, std, workers: c.train.workers });
  try {
    return await evaluate(model, loader, { precision: c.train.precision ?? 'auto' });
  } finally {
    await loader.close();
  }
}

/** A stored prediction of the sample, or null when it is missing or of another size (the page then says so). */
function readSampleLabels(path: string, sample: LoadedSample): Uint8Array | null {
  if (!existsSync(path)) return null;
  const png = readIndexedPng(readFileSync(path));
  return png && png.width === sample.width && png.height === sample.height ? png.indices : null;
}

function readElapsed(dir: string): number {
  try {
    const s = (JSON.parse(readFileSync(join(dir, ELAPSED_FILE), 'utf8')) as { seconds?: unknown }).seconds;
    return typeof s === 'number' && Number.isFinite(s) && s >= 0 ? s : 0;
  } catch {
    return 0;
  }
}

