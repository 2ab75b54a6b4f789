// Training throughput (img/s, data pipeline included): panseg's train() vs a PyTorch loop with the
// same model, recipe and data on the same machine, in one run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynthetic } from '../src/data/index.js';
import { train } from '../src/train/train.js';
import { load, loadRange, median } from './timing.js';

/** Medians over the rounds (img/s) and the 1-minute load average seen, as "min-max". */
export interface TrainBenchRow { precision: string; panseg: number; torch: number; rounds: number; load: string }

/**
 * `rounds` rounds (default 5) of PyTorch then panseg per precision, each a fresh process or run
 * timing `steps` steps after its warm-up; alternating spreads drift in machine load over both sides.
 */
export async function benchTrain(o: { steps?: number; threads?: number; rounds?: number } = {}): Promise<TrainBenchRow[]> {
  const steps = o.steps ?? 20;
  const threads = o.threads ?? 2;
  const rounds = o.rounds ?? 5;
  const dir = mkdtempSync(join(tmpdir(), 'panseg-bench-'));
  const rows: TrainBenchRow[] = [];
  try {
    await generateSynthetic(dir, { train: 8 * (steps + 3), val: 1, size: 128, seed: 0 });
    for (const precision of ['fp32', 'bf16'] as const) {
      const ours: number[] = [];
      const theirs: number[] = [];
      const loads: number[] = [];
      for (let r = 0; r < rounds; r++) {
        loads.push(load());
        const py = fileURLToPath(new URL('./pytorch_train.py', import.meta.url));
        const t = JSON.parse(execFileSync('/usr/bin/python3', [py, JSON.stringify({ root: dir, encoder: 'resnet18', classes: 6, crop: 128, batch: 8, steps, threads, workers: 1, precision, channels_last: true })], { encoding: 'utf8' })) as { img_per_s: number };
        theirs.push(t.img_per_s);
        // Two epochs: the first warms up (as the 3 warm-up steps on the PyTorch side), the second is timed.
        let ips = 0;
        await train({
          dataset: 'folder', dataRoot: dir, split: 'train', valSplit: null, out: join(dir, `run-${precision}-${r}`),
          encoder: 'resnet18', crop: 128, scaleRange: [0.75, 1.5], batchSize: 8, epochs: 2, optimizer: 'adamw', lr: 1e-3, weightDecay: 1e-4,
          precision, threads, workers: 1, quiet: true, seed: 0,
          onLog: (x) => { if (x.type === 'epoch' && x.epoch === 2) ips = Number(x.imgPerSec); },
        }).then((x) => x.model.dispose());
        ours.push(ips);
      }
      loads.push(load());
      rows.push({ precision, panseg: median(ours), torch: median(theirs), rounds, load: loadRange(loads) });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export async function runTrainBench(): Promise<void> {
  const rows = await benchTrain();
  console.log(`\ntraining throughput, PAN-resnet18, 128x128 crops, batch 8, AdamW, data pipeline included (img/s, higher is better; medians of ${rows[0]?.rounds} rounds)`);
  console.log('  precision   panseg   torch   panseg/torch   load');
  for (const r of rows) console.log(`  ${r.precision.padEnd(10)}${r.panseg.toFixed(1).padStart(7)} ${r.torch.toFixed(1).padStart(7)} ${(r.panseg / r.torch).toFixed(2).padStart(10)}     ${r.load}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await runTrainBench();
