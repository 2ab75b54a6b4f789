// Faults: when a worker dies, the other stops on its own within a bounded time naming the dead
// rank; the last complete checkpoint stays intact; resuming with the same world size finishes the
// run with exactly the weights of a run that was never interrupted.
// Runs train() on 2 ranks (fixtures/train-worker.ts: PAN-resnet18, 128 px, batch 2 per rank,
// 16 synthetic images -> 4 steps per epoch, 3 epochs) with heartbeats every 250 ms, a rank counted
// dead after 2.5 s of silence and an 8 s grace; the launcher's own kill timer is set beyond the
// test's bound, so the surviving rank must stop by itself.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthetic } from '../../src/data/index.js';
import { tidy } from '../../src/engine/index.js';
import { PAN } from '../../src/models/index.js';
import { runWorkers } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-dist-faults-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
/** Dead after 2.5 s + detection slack; well under the 8 s grace and the launcher's 60 s. */
const BOUND_MS = 6000;

function maxWeightDiff(a: string, b: string): number {
  const ma = PAN.fromPretrained(a);
  const mb = PAN.fromPretrained(b);
  try {
    const sb = mb.stateDict();
    let worst = 0;
    for (const [k, t] of ma.stateDict()) worst = Math.max(worst, tidy(() => t.to('float64').sub(sb.get(k)!.to('float64')).abs().max().item()));
    return worst;
  } finally { ma.dispose(); mb.dispose(); }
}

describe('distributed faults: a killed worker, an intact checkpoint, an exact resume', () => {
  let data: string;
  before(async () => { data = (await generateSynthetic(join(tmp, 'shapes'), { train: 16, val: 4, size: 128, seed: 0 })).dir; });

  it('kill rank 1 after epoch 1: rank 0 exits non-zero within the bound naming rank 1; resume matches an uninterrupted run', async () => {
    const whole = join(tmp, 'whole');
    const a = await runWorkers('train-worker.ts', [data, whole, '3'], { nproc: 2 });
    assert.equal(a.code, 0, a.lines.join('\n'));

    const out = join(tmp, 'crashed');
    let pid1 = 0;
    let killedAt = 0;
    let rank0ExitAt = 0;
    const r = await runWorkers('train-worker.ts', [data, out, '3'], {
      nproc: 2, graceMs: 60_000,
      onLine: (rank, line) => {
        if (rank === 1 && line.startsWith('PID ')) pid1 = Number(line.slice(4));
        if (rank === 0 && line.startsWith('EPOCH 1 ') && !killedAt) {
          killedAt = performance.now();
          process.kill(pid1, 'SIGKILL');
        }
        if (rank === 0 && /Node\.js v|DistributedError/.test(line)) rank0ExitAt ||= performance.now();
      },
    });
    const text = r.lines.join('\n');
    assert.ok(killedAt > 0, `rank 1 was never killed:\n${text}`);
    const w0 = r.workers.find((w) => w.rank === 0)!;
    const w1 = r.workers.find((w) => w.rank === 1)!;
    assert.equal(w1.signal, 'SIGKILL');
    assert.ok(w0.code !== 0 && w0.code !== null, `rank 0 must fail on its own (exit ${w0.code}, signal ${w0.signal})`);
    assert.ok(rank0ExitAt - killedAt < BOUND_MS, `rank 0 took ${(rank0ExitAt - killedAt).toFixed(0)} ms to stop`);
    assert.match(text, /\[rank 0\] .*distributed: rank 1 \(no heartbeat for [\d.]+ s\) died, was killed or is frozen; rank 0 stops .*The last complete checkpoint is intact/);

    // The checkpoint of epoch 1 is complete and loads.
    const last = join(out, 'checkpoints', 'last');
    const state = JSON.parse(readFileSync(join(last, 'trainer.json'), 'utf8')) as { epoch: number; iter: number; configHash: string };
    assert.equal(state.epoch, 1);
    assert.equal(state.iter, 4);
    assert.match(state.configHash, /\/world2$/);
    PAN.fromPretrained(last).dispose();
    assert.ok(existsSync(join(last, 'optimizer.safetensors')));

    const b = await runWorkers('train-worker.ts', [data, out, '3', 'resume'], { nproc: 2 });
    assert.equal(b.code, 0, b.lines.join('\n'));
    assert.deepEqual(b.lines.filter((l) => l.startsWith('[rank 0] EPOCH')).map((l) => l.split(' ')[3]), ['2', '3'], 'resumed at epoch 2');
    const final = JSON.parse(readFileSync(join(last, 'trainer.json'), 'utf8')) as { epoch: number; iter: number };
    assert.deepEqual([final.epoch, final.iter], [3, 12]);
    assert.equal(maxWeightDiff(join(whole, 'checkpoints', 'last'), last), 0, 'resumed == uninterrupted, bit for bit');
  });

  it('with maxRestarts the launcher restarts both ranks after rank 1 is killed; they resume and match the uninterrupted run', async () => {
    const out = join(tmp, 'restarted');
    const pids: number[] = [];
    let killed = false;
    const r = await runWorkers('train-worker.ts', [data, out, '3'], {
      nproc: 2, maxRestarts: 1, restartArgs: ['resume'],
      onLine: (rank, line) => {
        if (rank === 1 && line.startsWith('PID ')) pids.push(Number(line.slice(4)));
        if (rank === 0 && line.startsWith('EPOCH 1 ') && !killed) {
          killed = true;
          process.kill(pids[0], 'SIGKILL');
        }
      },
    });
    const text = r.lines.join('\n');
    assert.ok(killed, text);
    assert.equal(r.code, 0, text);
    assert.equal(r.restarts, 1);
    assert.match(text, /\[launch\] panseg launch: restarting all 2 workers \(restart 1 of 1\)/);
    assert.deepEqual(r.lines.filter((l) => l.startsWith('[rank 0] EPOCH')).map((l) => l.split(' ')[3]), ['1', '2', '3'], 'epoch 1, then epochs 2-3 after the restart');
    assert.equal(maxWeightDiff(join(tmp, 'whole', 'checkpoints', 'last'), join(out, 'checkpoints', 'last')), 0, 'restarted == uninterrupted, bit for bit');
  });

  it('a frozen worker (SIGSTOP) is found by the heartbeat watchdog, which ends the blocked rank 0', async () => {
    const pids = new Map<number, number>();
    let stoppedAt = 0;
    let reportedAt = 0;
    const r = await runWorkers('hang-worker.ts', [], {
      nproc: 2, graceMs: 60_000,
      onLine: (rank, line) => {
        if (line.startsWith('READY ')) pids.set(rank, Number(line.slice(6)));
        if (pids.size === 2 && !stoppedAt) {
          stoppedAt = performance.now();
          process.kill(pids.get(1)!, 'SIGSTOP');
        }
        if (rank === 0 && line.startsWith('panseg distributed:')) {
          reportedAt = performance.now();
          process.kill(pids.get(1)!, 'SIGKILL'); // a stopped process ignores the launcher's SIGTERM
        }
      },
    });
    const text = r.lines.join('\n');
    assert.ok(stoppedAt > 0, text);
    assert.equal(r.workers.find((w) => w.rank === 0)!.code, 1, text);
    assert.ok(reportedAt - stoppedAt < BOUND_MS, `rank 0 took ${(reportedAt - stoppedAt).toFixed(0)} ms`);
    assert.match(text, /\[rank 0\] panseg distributed: rank 1 \(no heartbeat for [\d.]+ s\) died, was killed or is frozen; rank 0 stops \(exit 1\)/);
  });

  it('a resume with another world size is refused, naming the one it needs', async () => {
    // One process: the launcher sets WORLD_SIZE=1, which is not distributed, so train() runs alone.
    const r = await runWorkers('train-worker.ts', [data, join(tmp, 'whole'), '3', 'resume'], { nproc: 1 });
    assert.notEqual(r.code, 0);
    assert.match(r.lines.join('\n'), /--resume: the checkpoint was written by a run of 2 processes and this run has 1; resume with the same world size/);
  });
});
