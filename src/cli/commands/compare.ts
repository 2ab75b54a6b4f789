import { compareArchitectures, compareTable, type CompareRow } from '../../compare/index.js';
import { duration, ms, pct } from '../../compare/summary.js';
import { architectures } from '../../models/index.js';
import { type CommandSpec, type Flag, required, UsageError } from '../args.js';
import { spec as trainSpec } from './train.js';
import { recipeFromFlags } from '../flags.js';

// The training flags a comparison shares with `panseg train` (same names, text and defaults): the whole recipe. Out
// stay the model-shaping ones (architecture options go per architecture in --arch-options), --model, the run-folder
// ones and the distributed ones. --val-split is compare's own: without a default, so that giving it with
// --val-fraction or --split-file is refused rather than silently ignored.
const SHARED = ['dataset', 'data-root', 'split', 'split-file', 'val-fraction', 'val-split', 'val-root', 'ignore-index', 'reduce-zero-label', 'encoder', 'classes', 'encoder-weights',
  'aux-weight', 'crop', 'batch-size', 'epochs', 'lr', 'optimizer', 'schedule', 'warmup-iters', 'loss', 'label-smoothing', 'class-weights', 'momentum',
  'weight-decay', 'scale-range', 'color-jitter', 'channels-last', 'winograd', 'fused-kernels', 'cuda-graphs', 'accumulate', 'freeze-encoder-epochs', 'val-every',
  'max-steps', 'quiet', 'threads', 'seed', 'precision', 'device', 'workers'];
const trainFlag = (name: string): Flag => trainSpec.flags.find((f) => f.name === name)!;
const ids = architectures().map((a) => a.id);
const VAL_SPLIT: Flag = { name: 'val-split', type: 'string', desc: 'validation split every architecture is ranked on (default: val; not with --val-fraction or --split-file)' };

export const spec: CommandSpec = {
  name: 'compare',
  summary: 'train several architectures with one recipe and compare accuracy, cost and speed (compare.json, .md, .html)',
  usage: 'panseg compare --dataset <layout> --data-root DIR --out DIR [--archs pan,unet,...] [train options]',
  flags: [
    { name: 'archs', type: 'list', desc: `architectures to train, in order (default: all: ${ids.join(',')})` },
    { name: 'arch-options', type: 'string', desc: `per-architecture options as JSON keyed by id, smp's camelCase names, e.g. '{"unet":{"decoderAttentionType":"scse"}}'` },
    ...SHARED.filter((n) => n !== 'max-steps' && n !== 'quiet').map((n) => (n === 'val-split' ? VAL_SPLIT : trainFlag(n))),
    { name: 'out', type: 'string', desc: 'output folder: <out>/<arch>/ per architecture, <out>/compare.{json,md,html}' },
    { name: 'resume', type: 'boolean', desc: 'continue an interrupted comparison: skip finished architectures, resume the unfinished one' },
    { name: 'bench-size', type: 'int', desc: 'image side for the inference latency', default: 512 },
    { name: 'bench-repeats', type: 'int', desc: 'timed inference runs per precision (median reported)', default: 5 },
    trainFlag('max-steps'),
    trainFlag('quiet'),
    { name: 'json', type: 'boolean', desc: 'print compare.json instead of the table' },
  ],
  examples: [
    'panseg compare --dataset camvid --data-root CamVid --archs pan,unet,fpn --encoder resnet18 --epochs 30 --crop 256 --batch-size 8 --out runs/compare',
    'panseg compare ... --optimizer adamw --weight-decay 0.01 --scale-range 0.75,1.5 --out runs/compare-adamw   (any recipe flag of panseg train)',
    'panseg compare ... --out runs/compare --resume   (after an interruption: finished architectures are skipped)',
    'panseg compare --dataset folder --data-root data/mine --split all --val-fraction 0.1 --archs pan,unet --out runs/mine   (one seeded split for all, <out>/split.json)',
    'panseg compare --dataset folder --data-root data/shapes --archs pan,unet --epochs 1 --max-steps 20 --crop 128 --out /tmp/smoke',
  ],
};

function archOptionsJson(raw: unknown): Record<string, Record<string, unknown>> | undefined {
  if (raw === undefined) return undefined;
  let v: unknown;
  try { v = JSON.parse(String(raw)); } catch (e) { throw new UsageError(`--arch-options is not valid JSON (${(e as Error).message}); e.g. '{"unet":{"decoderAttentionType":"scse"}}'`); }
  return v as Record<string, Record<string, unknown>>;
}

function line(r: CompareRow, skipped: boolean): string {
  const scores = `best mIoU ${pct(r.bestMiou)} (epoch ${r.bestEpoch}, last 3 ${pct(r.lastMiou)})`;
  if (skipped) return `${r.arch}: finished in an earlier run, skipped; ${scores}`;
  return `${r.arch}: ${scores}, ${(r.params / 1e6).toFixed(1)} M params, ${r.gflops.toFixed(2)} GFLOPs @${r.gflopsSize}, `
    + `${ms(r.inference.fp32)} ms fp32 / ${ms(r.inference.bf16)} ms bf16 @${r.inference.size}, ${r.trainImgPerSec?.toFixed(1) ?? 'n/a'} img/s, ${duration(r.wallSeconds)}`;
}

export async function run(o: Record<string, unknown>): Promise<void> {
  const cmd = 'compare';
  const res = await compareArchitectures({
    ...recipeFromFlags(o, cmd),
    archs: o.archs as string[] | undefined,
    modelOptions: archOptionsJson(o.archOptions),
    out: required(o, 'out', 'out', cmd),
    benchSize: o.benchSize as number,
    benchRepeats: o.benchRepeats as number,
    onArchitecture: o.json ? undefined : (row, { skipped }) => console.log(line(row, skipped)),
  });
  if (o.json) {
    console.log(JSON.stringify(res.comparison));
    return;
  }
  console.log(`\n${compareTable(res.comparison.rows)}\n`);
  console.log(`wrote ${res.files.json}, ${res.files.md} and ${res.files.html} in ${duration(res.seconds)}`);
}
