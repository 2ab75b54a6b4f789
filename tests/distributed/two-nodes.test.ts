// Two machines, simulated: two network namespaces joined by a veth pair (10.231.<n>.1 and .2),
// each running `panseg train --nnodes 2 --node-rank R --nproc-per-node 1 --master-addr 10.231.<n>.1`
// from the CLI. Node 0 serves the rendezvous on its veth address; Gloo binds each side's veth
// address (the one that routes to the master), so all traffic crosses the pair. Both nodes pass
// the same --rdzv-token; a stranger on node 1's side without it is refused. Needs root (or
// CAP_NET_ADMIN) and iproute2; elsewhere it is skipped with the reason.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthetic } from '../../src/data/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-dist-2n-'));
const tag = (process.pid % 200) + 20;
const ns = [`panseg-n0-${process.pid}`, `panseg-n1-${process.pid}`];
const veth = [`pv0-${process.pid}`.slice(0, 15), `pv1-${process.pid}`.slice(0, 15)];
const addr = [`10.231.${tag}.1`, `10.231.${tag}.2`];
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

function setup(): string | null {
  try {
    ip('netns', 'add', ns[0]);
  } catch (e) {
    return `network namespaces are not permitted here (ip netns add: ${(e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message})`;
  }
  try {
    ip('netns', 'add', ns[1]);
    ip('link', 'add', veth[0], 'type', 'veth', 'peer', 'name', veth[1]);
    for (const i of [0, 1]) {
      ip('link', 'set', veth[i], 'netns', ns[i]);
      ip('-n', ns[i], 'addr', 'add', `${addr[i]}/24`, 'dev', veth[i]);
      ip('-n', ns[i], 'link', 'set', veth[i], 'up');
      ip('-n', ns[i], 'link', 'set', 'lo', 'up');
    }
    return null;
  } catch (e) {
    return `could not build the veth pair (${(e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message})`;
  }
}

function teardown(): void {
  for (const n of ns) try { ip('netns', 'del', n); } catch { /* not created */ }
}

function node(i: number, data: string, out: string): Promise<{ code: number | null; out: string }> {
  const args = [
    'netns', 'exec', ns[i], process.execPath, '--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts'), 'train',
    '--dataset', 'folder', '--data-root', data, '--split', 'train', '--val-split', 'none', '--out', out,
    '--encoder', 'resnet18', '--decoder-channels', '16', '--crop', '128', '--batch-size', '2', '--epochs', '1',
    '--precision', 'fp32', '--threads', '1', '--workers', '0', '--quiet', '--json',
    '--nnodes', '2', '--node-rank', String(i), '--nproc-per-node', '1', '--master-addr', addr[0], '--master-port', '29500',
    '--rdzv-token', TOKEN,
  ];
  return new Promise((resolve) => {
    const p = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.on('data', (d) => { text += d; });
    p.stderr.on('data', (d) => { text += d; });
    p.on('close', (code) => resolve({ code, out: text }));
  });
}

const TOKEN = `two-nodes-${process.pid}`;

/** A process on node 1's side that tries to join as rank 1 without the token. */
function stranger(): Promise<{ code: number | null; out: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: addr[0], MASTER_PORT: '29500', PANSEG_NUM_THREADS: '1', PANSEG_TEST_PG: JSON.stringify({ rendezvousTimeoutMs: 20_000 }) };
  delete env.PANSEG_RDZV_TOKEN;
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', ns[1], process.execPath, '--import', 'tsx', join(import.meta.dirname, 'fixtures', 'rdv-worker.ts')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.on('data', (d) => { text += d; });
    p.stderr.on('data', (d) => { text += d; });
    p.on('close', (code) => resolve({ code, out: text }));
  });
}

const txBytes = (i: number) => Number(/TX:.*\n\s*(\d+)/.exec(ip('-n', ns[i], '-s', 'link', 'show', veth[i]))?.[1] ?? 0);

describe('two machines simulated with network namespaces and a veth pair', () => {
  let skip: string | null = null;
  let data: string;
  before(async () => {
    skip = setup();
    data = (await generateSynthetic(join(tmp, 'shapes'), { train: 16, val: 0, size: 128, seed: 0 })).dir;
  });
  after(() => {
    teardown();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('trains one epoch across the pair: node 0 writes the checkpoint, node 1 writes nothing', async (t) => {
    if (skip) { t.skip(skip); return; }
    const outs = [join(tmp, 'node0'), join(tmp, 'node1')];
    const [a, b, s] = await Promise.all([node(0, data, outs[0]), node(1, data, outs[1]), stranger()]);
    assert.equal(a.code, 0, a.out);
    assert.equal(b.code, 0, b.out);
    assert.equal(s.code, 1, s.out);
    assert.match(s.out, new RegExp(`ERR distributed: rank 1 was refused by the rendezvous at ${addr[0].replace(/\./g, '\\.')}:29500: wrong rendezvous token`));
    // Rank 0 says once that the store is reachable from the network and unencrypted (the token is set).
    const warnings = a.out.split('\n').filter((l) => l.includes('warning'));
    assert.deepEqual(warnings, [`panseg distributed: warning: the rendezvous store on ${addr[0]}:29500 is not encrypted (as PyTorch's TCPStore); keep it on a trusted network`], a.out);
    assert.ok(existsSync(join(outs[0], 'checkpoints', 'last', 'trainer.json')), a.out);
    assert.ok(!existsSync(outs[1]), 'rank 1 writes no output directory');
    assert.match(a.out, /"best_miou"/);
    // 11.3 M float32 parameters were broadcast and 4 steps of gradients all-reduced over the veth pair.
    for (const i of [0, 1]) assert.ok(txBytes(i) > 40e6, `${veth[i]} sent only ${txBytes(i)} bytes`);
  });
});
