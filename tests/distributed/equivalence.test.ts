// Data-parallel training computes what one process computes.
// PAN-resnet18 (128 px, decoder 16, 3 classes), 3 SGD steps (lr 0.05, momentum 0.9, weight decay 1e-4)
// on one fixed batch of 4 random images and labels (fixtures/equiv-worker.ts):
// - 2 processes x batch 2 with SyncBatchNorm == 1 process x batch 4, within 1e-5 (parameters and
//   BatchNorm running statistics). SyncBatchNorm sees the global batch's statistics and its
//   all-reduce is differentiated through, so the averaged gradient is the batch-4 gradient.
// - Without SyncBatchNorm each rank normalizes with its own 2-image statistics, so the result
//   differs from batch 4 (by ~1 here, see below), exactly as PyTorch's DDP does: DDP averages
//   gradients but keeps BatchNorm local. What DDP computes is reproduced in one process by
//   running the two half-batches separately and averaging their gradients; the 2-process weights
//   equal that within 1e-5.
// Rank 1 starts from other random weights, so the broadcast of rank 0's weights is tested too.
// Precision: float64. In float32 the runs agree to ~3e-6 after one step, but PAN's max-pools turn
// 1e-7 rounding differences into different argmax picks, which grow to ~1e-3 after two steps and
// ~7e-2 after three; two single-process runs that sum in another order drift the same way. In
// float64 the rounding stays far below any argmax tie (observed agreement: ~1e-13).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Tensor, tidy } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { FIXTURES, runWorkers } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-dist-eq-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function single(mode: 'single' | 'emulated'): Map<string, Tensor> {
  const out = join(tmp, mode);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(FIXTURES, 'equiv-worker.ts'), mode, 'plain', out], { encoding: 'utf8', env: { ...process.env, PANSEG_NUM_THREADS: '1' } });
  assert.equal(r.status, 0, r.stderr);
  return loadSafetensors(out);
}

async function ddp(bn: 'sync' | 'local'): Promise<{ ranks: Map<string, Tensor>[]; stats: { buckets: number; stats: { buckets: number; launchedEarly: number }[] } }> {
  const out = join(tmp, `ddp-${bn}`);
  const r = await runWorkers('equiv-worker.ts', ['ddp', bn, out], { nproc: 2 });
  assert.equal(r.code, 0, r.lines.join('\n'));
  return { ranks: [0, 1].map((k) => loadSafetensors(`${out}.rank${k}`)), stats: JSON.parse(readFileSync(`${out}.rank0.json`, 'utf8')) };
}

/** Largest |a - b| over the entries `keep` selects, and where. */
function maxDiff(a: Map<string, Tensor>, b: Map<string, Tensor>, keep: (k: string) => boolean): [number, string] {
  let worst: [number, string] = [0, ''];
  for (const [k, t] of a) {
    if (!keep(k)) continue;
    const d = tidy(() => t.sub(b.get(k)!).abs().max().item());
    if (d > worst[0]) worst = [d, k];
  }
  return worst;
}
const params = (k: string) => !k.includes('running_') && !k.endsWith('num_batches_tracked');
const paramsAndStats = (k: string) => !k.endsWith('num_batches_tracked');

describe('data-parallel equivalence (2 processes x batch 2 vs 1 process x batch 4, 3 SGD steps)', () => {
  let ref: Map<string, Tensor>;
  let emulated: Map<string, Tensor>;
  before(() => {
    ref = single('single');
    emulated = single('emulated');
  });

  it('with SyncBatchNorm: the same weights and running statistics as batch 4 on one process (within 1e-5)', async () => {
    const { ranks, stats } = await ddp('sync');
    const [d, where] = maxDiff(ranks[0], ref, paramsAndStats);
    assert.ok(d < 1e-5, `max |diff| ${d} at ${where}`);
    assert.equal(maxDiff(ranks[0], ranks[1], paramsAndStats)[0], 0, 'every rank holds the same model');
    // The gradient all-reduce ran in buckets, each launched while backward was still running.
    assert.ok(stats.buckets >= 2, `${stats.buckets} buckets`);
    for (const s of stats.stats) assert.equal(s.launchedEarly, s.buckets);
  });

  it("without SyncBatchNorm: what PyTorch's DDP computes (local BatchNorm statistics, averaged gradients)", async () => {
    const { ranks } = await ddp('local');
    const [d, where] = maxDiff(ranks[0], emulated, params);
    assert.ok(d < 1e-5, `vs DDP emulated in one process: max |diff| ${d} at ${where}`);
    assert.equal(maxDiff(ranks[0], ranks[1], params)[0], 0, 'every rank holds the same parameters');
    const [dRef] = maxDiff(ranks[0], ref, params);
    assert.ok(dRef > 1e-3, `local BatchNorm statistics must differ from batch 4's (max |diff| ${dRef})`);
  });
});
