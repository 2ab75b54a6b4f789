// Issue 15, "Distributed rendezvous": strangers on the same machine against a real run. The
// attacks are raw bytes on the rendezvous port, so they say nothing of how the store is built,
// and each failed against c10d's TCPStore daemon (what served the rendezvous before):
// - the store listened on every interface with --master-addr 127.0.0.1;
// - a 12-byte prefix held open stalled the store for every rank (the heartbeat watchdog then
//   killed all of them); a length prefix of 512 MiB made rank 0 allocate it;
// - any process could join the store and write keys (no token).
// Each test starts the real ranks, attacks while they meet and train, and checks that they finish
// as they do alone, that every stranger was cut off, and that the stranger process was refused.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthetic } from '../../src/data/index.js';
import { savedFlags } from '../../src/cli/commands/train.js';
import { FIXTURES, freePort, runWorkers } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-dist-strangers-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** This machine's first non-loopback IPv4 address, if any. */
const external = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

/** A raw connection that records what came back and when the other side closed it. */
interface Probe { name: string; sock: Socket; sentAt: number; closedAfterMs: number | null; got: Buffer; error: string | null }

function probe(host: string, port: number, name: string, bytes: Buffer): Promise<Probe> {
  return new Promise((resolve) => {
    const p: Probe = { name, sock: connect({ host, port }), sentAt: 0, closedAfterMs: null, got: Buffer.alloc(0), error: null };
    p.sock.on('data', (d) => { p.got = Buffer.concat([p.got, d]); });
    p.sock.on('error', (e) => { p.error = (e as NodeJS.ErrnoException).code ?? e.message; resolve(p); });
    p.sock.on('close', () => { if (p.closedAfterMs === null) p.closedAfterMs = performance.now() - p.sentAt; });
    p.sock.on('connect', () => { p.sentAt = performance.now(); p.sock.write(bytes); resolve(p); });
  });
}

/** Resolves once something accepts connections on host:port (rank 0's store is up). */
async function waitForPort(host: string, port: number, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect({ host, port });
      s.once('connect', () => { s.destroy(); res(true); });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listened on ${host}:${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };
/** A panseg-store frame (u32 length, op, u32-prefixed fields). */
const frame = (op: number, ...fields: string[]) => {
  const body = Buffer.concat([Buffer.from([op]), ...fields.flatMap((f) => [u32(Buffer.byteLength(f)), Buffer.from(f)])]);
  return Buffer.concat([u32(body.length), body]);
};

/** What strangers send. Old-protocol bytes are c10d TCPStore requests (query type byte, u64 sizes). */
const ATTACKS: [string, Buffer][] = [
  ['garbage', Buffer.from('GET / HTTP/1.1\r\nHost: rendezvous\r\n\r\n\x00\xff\xfe garbage')],
  // 12 bytes: a TCPStore SET whose key length says 10 but only 3 bytes follow, held open.
  ['12-byte partial (c10d)', Buffer.concat([Buffer.from([0]), u64(10n), Buffer.from('abc')])],
  // 12 bytes of a panseg frame that says 16 bytes, held open.
  ['12-byte partial (panseg)', Buffer.concat([u32(16), Buffer.from([1]), u32(14), Buffer.from('pan')])],
  // A key length of 512 MiB: what made rank 0 allocate it.
  ['512 MiB length (c10d)', Buffer.concat([Buffer.from([0]), u64(512n << 20n), Buffer.from('x')])],
  ['512 MiB length (panseg)', Buffer.concat([u32(512 << 20), Buffer.from([2])])],
  // A well-formed store request without the greeting, and a greeting with a wrong token.
  ['request without token', frame(2, 'panseg/run/rank/1', '{"rank":1}')],
  ['wrong token', Buffer.concat([frame(1, 'panseg-store/1', 'guess'), frame(2, 'panseg/run/rank/1', 'x')])],
];

/**
 * Attacks host:port in waves `everyMs` apart, from when the port opens until `stop()` says so or
 * the store has gone (rank 0 closes it when the ranks are done; that wave is left out).
 */
async function attack(host: string, port: number, everyMs: number, stop: () => boolean, min = 1): Promise<Probe[]> {
  await waitForPort(host, port);
  const all: Probe[] = [];
  for (let i = 0; i < min || !stop(); i++) {
    const wave = await Promise.all(ATTACKS.map(([name, bytes]) => probe(host, port, name, bytes)));
    if (wave.some((p) => p.error === 'ECONNREFUSED')) { wave.forEach((p) => p.sock.destroy()); break; }
    all.push(...wave);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return all;
}

/** A rdv-worker run alone (a stranger, or a lone rank 0); resolves its stdout+stderr and exit code. */
function lone(env: NodeJS.ProcessEnv): Promise<{ out: string; code: number | null; ms: number }> {
  const t0 = performance.now();
  const clean = { ...process.env };
  delete clean.PANSEG_RDZV_TOKEN;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', join(FIXTURES, 'rdv-worker.ts')], { env: { ...clean, PANSEG_NUM_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', (code) => resolve({ out, code, ms: performance.now() - t0 }));
  });
}

/** Every stranger connection was cut off: the malformed at once, the partial ones by the greeting deadline. */
function checkProbes(probes: Probe[], helloMs: number): void {
  for (const p of probes) {
    p.sock.destroy();
    assert.equal(p.error, null, `${p.name}: ${p.error}`);
    assert.ok(p.closedAfterMs !== null, `${p.name}: the store kept the connection open`);
    const bound = p.name.includes('partial (panseg)') ? helloMs + 1500 : 1500;
    assert.ok(p.closedAfterMs! < bound, `${p.name}: closed after ${p.closedAfterMs!.toFixed(0)} ms (bound ${bound} ms)`);
    const reply = p.got.toString('latin1');
    if (p.name === 'wrong token') assert.match(reply, /wrong rendezvous token/, 'a wrong token is told so');
    else assert.equal(p.got.length, 0, `${p.name}: the store answered a stranger: ${JSON.stringify(reply)}`);
  }
}

describe('distributed rendezvous: strangers on the same machine', () => {
  let data: string;
  before(async () => { data = (await generateSynthetic(join(tmp, 'shapes'), { train: 8, val: 2, size: 128, seed: 0 })).dir; });

  it('the store listens only on --master-addr (127.0.0.1 is not reachable from another interface)', async (t) => {
    if (!external) { t.skip('no non-loopback IPv4 address on this machine'); return; }
    const port = await freePort();
    const rank0 = lone({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), PANSEG_TEST_PG: JSON.stringify({ rendezvousTimeoutMs: 4000 }) });
    await waitForPort('127.0.0.1', port, 20_000);
    const outside = await probe(external, port, 'from outside', Buffer.from('x'));
    outside.sock.destroy();
    assert.equal(outside.error, 'ECONNREFUSED', `${external}:${port} accepted a connection although --master-addr is 127.0.0.1`);
    assert.equal((await rank0).code, 1);
  });

  it('rank 0 warns once that a store reachable from other machines is unencrypted, and refuses an address not its own', async (t) => {
    if (!external) { t.skip('no non-loopback IPv4 address on this machine'); return; }
    const port = await freePort();
    const r = await lone({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: external, MASTER_PORT: String(port), PANSEG_TEST_PG: JSON.stringify({ rendezvousTimeoutMs: 1000 }) });
    const warnings = r.out.split('\n').filter((l) => l.includes('warning'));
    assert.equal(warnings.length, 1, r.out);
    assert.match(warnings[0], new RegExp(`^panseg distributed: warning: the rendezvous store on ${external.replace(/\./g, '\\.')}:${port} is not encrypted and, without --rdzv-token \\(PANSEG_RDZV_TOKEN\\), not authenticated \\(as PyTorch's TCPStore\\); keep it on a trusted network$`));
    const withToken = await lone({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: external, MASTER_PORT: String(await freePort()), PANSEG_RDZV_TOKEN: 's3cret', PANSEG_TEST_PG: JSON.stringify({ rendezvousTimeoutMs: 1000 }) });
    assert.match(withToken.out, /warning: the rendezvous store on \S+ is not encrypted \(as PyTorch's TCPStore\); keep it on a trusted network/);
    // 192.0.2.77 (TEST-NET-1) is not this machine's: binding there must fail, not fall back to every interface.
    const foreign = external === '192.0.2.77' ? '198.51.100.77' : '192.0.2.77';
    const bad = await lone({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: foreign, MASTER_PORT: String(await freePort()), PANSEG_TEST_PG: JSON.stringify({ rendezvousTimeoutMs: 1000 }) });
    assert.equal(bad.code, 1);
    assert.match(bad.out, new RegExp(`ERR distributed: rank 0 cannot serve the rendezvous on ${foreign.replace(/\./g, '\\.')}:\\d+: ${foreign.replace(/\./g, '\\.')} is not an address of this machine \\(EADDRNOTAVAIL\\); set --master-addr`));
  });

  it('strangers (garbage, partial and huge prefixes, no token, a process without the token) neither stall nor join the rendezvous', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const helloMs = 2000;
    // Rank 1 arrives 6 s late, so the strangers reach the store first and stay connected while the ranks meet.
    let done = false;
    const run = runWorkers('rdv-worker.ts', [], {
      nproc: 2, port, env: { PANSEG_TEST_DELAY: '1:6000', PANSEG_STORE_TEST_LIMITS: JSON.stringify({ helloTimeoutMs: helloMs }), PANSEG_TEST_PG: JSON.stringify({ rendezvousTimeoutMs: 30_000 }) },
    }).finally(() => { done = true; });
    // A process that does everything a rank does, except that it lacks the launcher's token.
    const stranger = lone({ RANK: '1', WORLD_SIZE: '2', MASTER_PORT: String(port), PANSEG_TEST_PG: JSON.stringify({ rendezvousTimeoutMs: 20_000 }) });
    const probes = attack('127.0.0.1', port, 1000, () => done, 3);
    const r = await run;
    assert.equal(r.code, 0, r.lines.join('\n'));
    assert.equal(r.lines.filter((l) => l.endsWith('SUM 3')).length, 2, r.lines.join('\n'));
    assert.ok(r.ms < 25_000, `the ranks took ${r.ms.toFixed(0)} ms (6 s of it rank 1's delay)`);
    const s = await stranger;
    assert.equal(s.code, 1, s.out);
    assert.match(s.out, /ERR distributed: rank 1 was refused by the rendezvous at 127\.0\.0\.1:\d+: wrong rendezvous token: every rank needs the job's token/);
    const checked = await probes;
    assert.ok(checked.length >= 3 * ATTACKS.length, `only ${checked.length} stranger connections`);
    checkProbes(checked, helloMs);
  });

  it('strangers attacking during training do not set off the watchdog: the run takes its normal time', { timeout: 300_000 }, async () => {
    const dist = { PANSEG_STORE_TEST_LIMITS: JSON.stringify({ helloTimeoutMs: 2000 }) };
    const alone = await runWorkers('train-worker.ts', [data, join(tmp, 'alone'), '1'], { nproc: 2, env: dist });
    assert.equal(alone.code, 0, alone.lines.join('\n'));
    const port = await freePort();
    let done = false;
    const run = runWorkers('train-worker.ts', [data, join(tmp, 'attacked'), '1'], { nproc: 2, port, env: dist }).finally(() => { done = true; });
    // Waves every 0.5 s through the run: heartbeats (every 250 ms, dead after 2.5 s) must keep flowing.
    const probes = attack('127.0.0.1', port, 500, () => done, 2);
    const r = await run;
    assert.equal(r.code, 0, r.lines.join('\n'));
    assert.equal(r.lines.filter((l) => /DONE rank \d epochs 1/.test(l)).length, 2, r.lines.join('\n'));
    assert.ok(r.ms < alone.ms * 1.5 + 5000, `attacked run ${r.ms.toFixed(0)} ms, alone ${alone.ms.toFixed(0)} ms`);
    const checked = await probes;
    assert.ok(checked.length >= 2 * ATTACKS.length, `only ${checked.length} stranger connections`);
    note(`training, 2 ranks, 1 epoch: ${(alone.ms / 1000).toFixed(1)} s alone, ${(r.ms / 1000).toFixed(1)} s with ${checked.length} stranger connections`);
    checkProbes(checked, 2000);
  });

  it('--rdzv-token is never written to config.json', () => {
    assert.ok(!('rdzv-token' in savedFlags({ rdzvToken: 's3cret', masterPort: 29500 })));
    assert.equal(savedFlags({ rdzvToken: 's3cret', masterPort: 29500 })['master-port'], 29500);
  });
});

function note(line: string): void { console.log(`# ${line}`); }
