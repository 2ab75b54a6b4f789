// Training throughput (img/s, data pipeline included): panseg's train() vs a PyTorch loop with the
// same model, recipe and data on the same machine, in one run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynthetic } from '../src/data/index.js';
import { train } from '../src/train/train.js';

export interface TrainBenchRow { precision: string; panseg: number; torch: number }

export async function benchTrain(o: { steps?: number; threads?: number } = {}): Promise<TrainBenchRow[]> {
  const steps = o.steps ?? 20;
  const threads = o.threads ?? 2;
  const dir = mkdtempSync(join(tmpdir(), 'panseg-bench-'));
  const rows: TrainBenchRow[] = [];
  try {
    await generateSynthetic(dir, { train: 8 * (steps + 3), val: 1, size: 128, seed: 0 });
    for (const precision of ['fp32', 'bf16'] as const) {
      const py = fileURLToPath(new URL('./pytorch_train.py', import.meta.url));
      const t = JSON.parse(execFileSync('/usr/bin/python3', [py, JSON.stringify({ root: dir, encoder: 'resnet18', classes: 6, crop: 128, batch: 8, steps, threads, workers: 1, precision, channels_last: true })], { encoding: 'utf8' })) as { img_per_s: number };
      // Two epochs: the first warms up (same as the 3 warm-up steps on the PyTorch side), the second is timed.
      let ips = 0;
      await train({
        dataset: 'folder', dataRoot: dir, split: 'train', valSplit: null, out: join(dir, `run-${precision}`),
        encoder: 'resnet18', crop: 128, scaleRange: [0.75, 1.5], batchSize: 8, epochs: 2, optimizer: 'adamw', lr: 1e-3, weightDecay: 1e-4,
        precision, threads, workers: 1, quiet: true, seed: 0,
        onLog: (r) => { if (r.type === 'epoch' && r.epoch === 2) ips = Number(r.imgPerSec); },
      }).then((r) => r.model.dispose());
      rows.push({ precision, panseg: ips, torch: t.img_per_s });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export async function runTrainBench(): Promise<void> {
  const rows = await benchTrain();
  console.log('\ntraining throughput, PAN-resnet18, 128x128 crops, batch 8, AdamW, data pipeline included (img/s, higher is better)');
  console.log('  precision   panseg   torch   panseg/torch');
  for (const r of rows) console.log(`  ${r.precision.padEnd(10)}${r.panseg.toFixed(1).padStart(7)} ${r.torch.toFixed(1).padStart(7)} ${(r.panseg / r.torch).toFixed(2).padStart(10)}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await runTrainBench();
