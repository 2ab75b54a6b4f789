import { join } from 'node:path';
import { generateSynthetic } from '../../data/index.js';
import { resolvePrecision } from '../../engine/index.js';
import { architectures } from '../../models/index.js';
import { writeTrainingReport } from '../../train/report.js';
import { train } from '../../train/train.js';
import type { CommandSpec } from '../args.js';
import { printMetrics } from '../output.js';

export const spec: CommandSpec = {
  name: 'demo',
  summary: 'generate a synthetic shapes dataset, train a small model (PAN-resnet18 unless --arch) on it, evaluate and write the report',
  usage: 'panseg demo [--out demo-out] [--epochs N] [--arch pan]',
  flags: [
    { name: 'arch', type: 'string', desc: `architecture: ${architectures().map((a) => `${a.id} (${a.name})`).join(', ')}`, choices: architectures().map((a) => a.id), default: 'pan' },
    { name: 'out', type: 'string', desc: 'output directory (dataset, checkpoints, report)', default: 'demo-out' },
    { name: 'train-images', type: 'int', desc: 'synthetic training images', default: 480 },
    { name: 'val-images', type: 'int', desc: 'synthetic validation images', default: 96 },
    { name: 'size', type: 'int', desc: 'image side in pixels', default: 128 },
    { name: 'epochs', type: 'int', desc: 'training epochs', default: 24 },
    { name: 'loss', type: 'string', desc: "loss: ce, dice, focal or sums like 'ce+dice'", default: 'ce+dice' },
    { name: 'batch-size', type: 'int', desc: 'images per step', default: 8 },
    { name: 'lr', type: 'number', desc: 'AdamW learning rate', default: 0.003 },
    { name: 'encoder', type: 'string', desc: 'encoder', default: 'resnet18' },
    { name: 'precision', type: 'string', desc: 'compute precision (auto: bf16 on CPUs with AMX/AVX512-BF16 and on GPUs; fp16 on GPUs only)', choices: ['auto', 'fp32', 'bf16', 'fp16'], default: 'auto' },
    { name: 'device', type: 'string', desc: "'cpu' or 'cuda[:N]' (needs a CUDA libtorch)", default: 'cpu' },
    { name: 'threads', type: 'int', desc: 'libtorch threads (default: all cores)' },
    { name: 'workers', type: 'int', desc: 'data loading threads', default: 1 },
    { name: 'seed', type: 'int', desc: 'random seed', default: 0 },
    { name: 'quiet', type: 'boolean', desc: 'no progress bar' },
  ],
  examples: ['npm run demo', 'panseg demo --epochs 3 --out /tmp/demo', 'panseg demo --arch unet --out /tmp/demo-unet', 'panseg demo --device cuda'],
};

export async function run(o: Record<string, unknown>): Promise<void> {
  const out = o.out as string;
  const data = join(out, 'data');
  const t0 = performance.now();
  const gen = await generateSynthetic(data, { train: o.trainImages as number, val: o.valImages as number, size: o.size as number, seed: o.seed as number });
  console.log(`dataset: ${gen.train} train + ${gen.val} val images of ${gen.size}x${gen.size} in ${data} (${gen.skipped ? 'reused' : `made in ${(gen.ms / 1000).toFixed(1)} s`}); classes: ${gen.classes.join(', ')}`);
  const res = await train({
    dataset: 'folder', dataRoot: data, split: 'train', valSplit: 'val', out: join(out, 'run'), arch: o.arch as string,
    encoder: o.encoder as string, crop: o.size as number, scaleRange: [0.75, 1.5], batchSize: o.batchSize as number, epochs: o.epochs as number,
    optimizer: 'adamw', lr: o.lr as number, weightDecay: 1e-4, schedule: 'poly', warmupIters: 20, loss: o.loss as string, precision: o.precision as 'fp32',
    threads: o.threads as number | undefined, workers: o.workers as number, seed: o.seed as number, quiet: Boolean(o.quiet), valEvery: 2,
    device: o.device as string,
  });
  const total = (performance.now() - t0) / 1000;
  const report = await writeTrainingReport({
    model: res.model, outDir: join(out, 'run'), dataset: res.valDataset!, evaluation: res.lastEval, config: o, samples: 8,
    title: `panseg demo: ${res.model.architecture}-${res.model.config.encoderName} on synthetic shapes`,
    summary: { 'total time': `${total.toFixed(0)} s`, 'training time': `${res.seconds.toFixed(0)} s`, 'data wait': `${(res.dataWaitFraction * 100).toFixed(1)}% of step time`, precision: resolvePrecision(o.precision as 'auto', o.device as string), device: o.device as string },
  });
  if (res.lastEval) printMetrics(res.lastEval, [...res.valDataset!.classes]);
  console.log(`\nval mIoU ${(res.lastEval?.miou ?? Number.NaN).toFixed(4)} (best ${res.bestMiou.toFixed(4)} at epoch ${res.bestEpoch}) after ${total.toFixed(0)} s; data wait ${(res.dataWaitFraction * 100).toFixed(1)}% of step time`);
  console.log(`model: ${join(out, 'run', 'checkpoints', 'best')}\nreport: ${report}`);
  res.model.dispose();
}
