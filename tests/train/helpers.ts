// The tiny run the training tests share: 16 synthetic 64 px images (batch 4 = 4 steps per epoch), 4 val
// images, and a saved PAN (resnet18 depth 3, an aux head with dropout) to start from.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { generateSynthetic } from '../../src/data/index.js';
import { manualSeed, type Tensor, tidy } from '../../src/engine/index.js';
import { PAN } from '../../src/models/index.js';
import type { TrainOptions } from '../../src/train/train.js';

export interface TinyRun { data: string; init: string }

/** Writes the data and the initial model under `tmp`. */
export async function makeTinyRun(tmp: string): Promise<TinyRun> {
  const data = (await generateSynthetic(join(tmp, 'shapes64'), { train: 16, val: 4, size: 64, seed: 1 })).dir;
  // Depth 3 keeps steps cheap; the aux head's dropout draws from the global RNG, which resume must restore.
  manualSeed(5);
  const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, decoderChannels: 16, classes: 6, auxParams: { classes: 6, dropout: 0.5 } });
  const init = join(tmp, 'init');
  m.savePretrained(init);
  m.dispose();
  return { data, init };
}

/** Two epochs of AdamW from the saved model, 1 thread, no workers (bit-reproducible); set `out`. */
export function tinyRunOptions(r: TinyRun): TrainOptions {
  return {
    dataset: 'folder', dataRoot: r.data, out: '', model: r.init, crop: 64, batchSize: 4, epochs: 2,
    optimizer: 'adamw', lr: 2e-3, auxWeight: 0.4, seed: 7, threads: 1, workers: 0, quiet: true,
  };
}

/** The largest |a - b| over two state dicts with the same keys. */
export function maxStateDiff(a: Map<string, Tensor>, b: Map<string, Tensor>): number {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  let worst = 0;
  for (const [k, t] of a) worst = Math.max(worst, tidy(() => t.to('float64').sub(b.get(k)!.to('float64')).abs().max().item()));
  return worst;
}
