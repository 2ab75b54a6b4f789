// Rendezvous errors are clear: missing ranks are named after the timeout, a busy port is said to
// be busy, a config that differs across ranks stops every rank naming the keys (even a rank that
// reads the store late), and a rank whose rank 0 never starts says so. Workers are separate
// processes (tests/distributed/fixtures/rdv-worker.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { Store } from '../../src/engine/c10d.js';
import { configHash } from '../../src/distributed/rendezvous.js';
import { FIXTURES, freePort, runWorkers } from './helpers.js';

/** Runs one rdv-worker with the given env; resolves its output and exit code. */
function one(env: NodeJS.ProcessEnv): Promise<{ out: string; code: number | null; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', join(FIXTURES, 'rdv-worker.ts')], { env: { ...process.env, PANSEG_NUM_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('close', (code) => resolve({ out, code, ms: performance.now() - t0 }));
  });
}

describe('distributed rendezvous', () => {
  it('two ranks meet and all-reduce', async () => {
    const r = await runWorkers('rdv-worker.ts', [], { nproc: 2 });
    assert.equal(r.code, 0, r.lines.join('\n'));
    assert.equal(r.lines.filter((l) => l.endsWith('SUM 3')).length, 2, r.lines.join('\n'));
  });

  it('names the ranks that never arrived when the timeout expires', async () => {
    const port = await freePort();
    const r = await one({ RANK: '0', WORLD_SIZE: '3', MASTER_PORT: String(port), PANSEG_TEST_PG: JSON.stringify({ rendezvousTimeoutMs: 1500 }) });
    assert.equal(r.code, 1);
    assert.match(r.out, /ERR distributed: rendezvous at 127\.0\.0\.1:\d+ timed out after 1\.5 s: ranks 1, 2 of world size 3 never arrived \(arrived: 0\)\. Start the missing workers/);
  });

  it('says when rank 0 never arrives', async () => {
    const port = await freePort();
    const r = await one({ RANK: '1', WORLD_SIZE: '2', MASTER_PORT: String(port), PANSEG_TEST_PG: JSON.stringify({ rendezvousTimeoutMs: 1500 }) });
    assert.equal(r.code, 1);
    assert.match(r.out, /ERR distributed: rank 1 could not reach the rendezvous at 127\.0\.0\.1:\d+ within 1\.5 s: rank 0 never arrived/);
  });

  it('says the port is in use', async () => {
    const srv = createServer();
    await new Promise<void>((res) => srv.listen(0, res));
    const port = (srv.address() as { port: number }).port;
    try {
      const r = await one({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: String(port) });
      assert.equal(r.code, 1);
      assert.match(r.out, new RegExp(`ERR distributed: port ${port} is already in use on this machine, so rank 0 cannot serve the rendezvous there .*choose a free one with --master-port`));
    } finally { srv.close(); }
  });

  it('stops every rank when the configuration differs, naming the keys', async () => {
    const r = await runWorkers('rdv-worker.ts', [], { nproc: 2, env: { PANSEG_TEST_MISMATCH: '1' } });
    assert.notEqual(r.code, 0);
    const errs = r.lines.filter((l) => l.includes('ERR '));
    assert.equal(errs.length, 2, r.lines.join('\n'));
    for (const e of errs) assert.match(e, /ERR distributed: the configuration differs across ranks \(hash \w+ on rank 0, \w+ on rank 1\): lr \(rank 0: 0\.01, rank 1: 0\.02\)\. Every rank must run the same command and data/);
  });

  it('rank 0 keeps the store up on a config mismatch until the other ranks have read it', async () => {
    // This test is rank 1 and reads the peers 1.5 s after announcing itself (a loaded machine).
    // Rank 0 used to exit at once, so rank 1 saw only "connection closed" (a CI failure).
    const port = await freePort();
    let exited = false;
    const rank0 = one({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: String(port), PANSEG_TEST_MISMATCH: '1', PANSEG_RDZV_TOKEN: '', PANSEG_RUN_ID: 'late' }).finally(() => { exited = true; });
    let store: Store | undefined;
    for (let i = 0; i < 100 && !store; i++) {
      try { store = Store.connect('127.0.0.1', port, '', 5000); } catch { await new Promise((r) => setTimeout(r, 100)); }
    }
    assert.ok(store, 'rank 0 never served the store');
    const config = { lr: 0.02, crop: 128 };
    store.add('panseg/late/claim/1', 1);
    store.set('panseg/late/rank/1', JSON.stringify({ rank: 1, host: hostname(), pid: process.pid, configHash: configHash(config), config }));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(exited, false, 'rank 0 exited before rank 1 had read the peers');
    assert.equal(store.has('panseg/late/rank/0'), true);
    store.add('panseg/late/mismatch-read', 1);
    const r = await rank0;
    assert.equal(r.code, 1);
    assert.match(r.out, /ERR distributed: the configuration differs across ranks .*lr \(rank 0: 0\.01, rank 1: 0\.02\)/);
  });
});
