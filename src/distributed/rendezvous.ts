// Rendezvous on panseg's store (store-server.ts): rank 0 serves it on the master address, every
// rank (rank 0 too) connects with the job's token and announces itself under
// `<prefix>rank/<r>` with its host, pid and a hash of its configuration, then waits for all the
// others. A rank that never arrives is named, a busy port is said so, and a configuration that
// differs from rank 0's stops every rank with the differing keys.
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { PansegError } from '../common/errors.js';
import { Store } from '../engine/c10d.js';
import { type HostedStore, hostStore } from './store-server.js';

/** What each rank announces. */
export interface PeerInfo {
  rank: number;
  host: string;
  pid: number;
  configHash: string;
  config: Record<string, unknown>;
}

export interface RendezvousOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** How long to wait for every rank (and, for ranks > 0, for rank 0's store). */
  timeoutMs: number;
  /** Key prefix of this run in the store. */
  prefix: string;
  /** Options that must be equal on every rank (JSON values). */
  config: Record<string, unknown>;
  /** The job's rendezvous token ('' for none): the store refuses processes without it. */
  token: string;
  /** Where rank 0 says the store is unauthenticated/unencrypted. Default: stderr. */
  warn?: (line: string) => void;
}

/** An error of the distributed layer; `ranks` names the ranks at fault when known. */
export class DistributedError extends PansegError {
  override name = 'DistributedError';
  constructor(message: string, readonly ranks: number[] = []) {
    super(`distributed: ${message}`);
  }
}

/** JSON with sorted keys, so equal configurations hash equally. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export function configHash(config: Record<string, unknown>): string {
  return createHash('sha256').update(stable(config)).digest('hex').slice(0, 16);
}

const ranksText = (rs: number[]) => (rs.length > 12 ? `${rs.slice(0, 12).join(', ')} and ${rs.length - 12} more` : rs.join(', '));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const isLoopback = (addr: string) => /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i.test(addr);

/** Test hooks: PANSEG_STORE_TEST_LIMITS (JSON) overrides the server's deadlines and caps. */
function testLimits(): Record<string, number> {
  try { return process.env.PANSEG_STORE_TEST_LIMITS ? JSON.parse(process.env.PANSEG_STORE_TEST_LIMITS) as Record<string, number> : {}; } catch { return {}; }
}

/**
 * Serves the store on rank 0, bound to the master address only, and says (one line) when that
 * address is reachable from other machines: the store is unencrypted, like PyTorch's TCPStore.
 */
async function serve(o: RendezvousOptions): Promise<HostedStore> {
  try {
    const hosted = await hostStore({ ...testLimits(), host: o.masterAddr, port: o.masterPort, token: o.token });
    if (!isLoopback(o.masterAddr)) {
      (o.warn ?? ((l: string) => process.stderr.write(`${l}\n`)))(`panseg distributed: warning: the rendezvous store on ${o.masterAddr}:${hosted.port} is not encrypted${o.token ? '' : ' and, without --rdzv-token (PANSEG_RDZV_TOKEN), not authenticated'} (as PyTorch's TCPStore); keep it on a trusted network`);
    }
    return hosted;
  } catch (e) {
    const { code, message } = e as NodeJS.ErrnoException;
    if (code === 'EADDRINUSE') {
      throw new DistributedError(`port ${o.masterPort} is already in use on this machine, so rank 0 cannot serve the rendezvous there (another run, or a leftover process, holds it); choose a free one with --master-port (MASTER_PORT)`);
    }
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      throw new DistributedError(`rank 0 cannot serve the rendezvous on ${o.masterAddr}:${o.masterPort}: ${o.masterAddr} is not an address of this machine (${code}); set --master-addr (MASTER_ADDR) to this machine's address that the other nodes reach`);
    }
    throw new DistributedError(`rank 0 cannot serve the rendezvous on ${o.masterAddr}:${o.masterPort}: ${message}`);
  }
}

/**
 * Opens the store (serving it on rank 0) and translates socket errors. Ranks > 0 retry until the
 * timeout: their rank 0 may start later (another machine, a slow node).
 */
export async function openStore(o: RendezvousOptions): Promise<{ store: Store; server?: HostedStore }> {
  const server = o.rank === 0 ? await serve(o) : undefined;
  const port = server?.port ?? o.masterPort;
  const where = `${o.masterAddr}:${port}`;
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    try {
      return { store: Store.connect(o.masterAddr, port, o.token, o.timeoutMs), server }; // also the timeout of later store reads
    } catch (e) {
      const msg = (e as Error).message.replace(/^storeConnect: /, '');
      if (/refused this process/.test(msg)) {
        await server?.close();
        throw new DistributedError(`rank ${o.rank} was refused by the rendezvous at ${where}: ${msg.replace(/^.*refused this process: /, '')}`, [o.rank]);
      }
      if (!server && /could not connect|timed out|closed the connection/.test(msg)) {
        if (Date.now() + 250 < deadline) { await sleep(250); continue; }
        throw new DistributedError(`rank ${o.rank} could not reach the rendezvous at ${where} within ${o.timeoutMs / 1000} s: rank 0 never arrived. Start rank 0 (node rank 0) with the same --master-addr/--master-port, and check that ${where} is reachable from ${hostname()}`, [0]);
      }
      await server?.close();
      throw new DistributedError(`rank ${o.rank} could not open the rendezvous at ${where}: ${msg}`);
    }
  }
}

/**
 * Meets every other rank: announces this one, waits (polling, so the event loop keeps running)
 * until all `worldSize` ranks have, and checks that their configurations equal rank 0's.
 */
export async function rendezvous(o: RendezvousOptions): Promise<{ store: Store; peers: PeerInfo[]; server?: HostedStore }> {
  const { store, server } = await openStore(o);
  return { store, peers: await meet(o, store), server }; // rank 0's server thread ends with its process
}

async function meet(o: RendezvousOptions, store: Store): Promise<PeerInfo[]> {
  const key = (r: number) => `${o.prefix}rank/${r}`;
  if (store.add(`${o.prefix}claim/${o.rank}`, 1) > 1) {
    throw new DistributedError(`rank ${o.rank} joined twice: each process needs its own rank (check --node-rank and --nproc-per-node, or RANK, on every machine)`, [o.rank]);
  }
  const me: PeerInfo = { rank: o.rank, host: hostname(), pid: process.pid, configHash: configHash(o.config), config: o.config };
  store.set(key(o.rank), JSON.stringify(me));

  const deadline = Date.now() + o.timeoutMs;
  let missing = Array.from({ length: o.worldSize }, (_, r) => r).filter((r) => r !== o.rank);
  for (;;) {
    missing = missing.filter((r) => !store.has(key(r)));
    if (!missing.length) break;
    if (Date.now() > deadline) {
      const arrived = Array.from({ length: o.worldSize }, (_, r) => r).filter((r) => !missing.includes(r));
      throw new DistributedError(`rendezvous at ${o.masterAddr}:${o.masterPort} timed out after ${o.timeoutMs / 1000} s: rank${missing.length > 1 ? 's' : ''} ${ranksText(missing)} of world size ${o.worldSize} never arrived (arrived: ${ranksText(arrived)}). Start the missing workers with the same --nnodes, --master-addr, --master-port and --rdzv-token, or raise the rendezvous timeout`, missing);
    }
    await sleep(100);
  }

  const peers = Array.from({ length: o.worldSize }, (_, r) => (r === o.rank ? me : (JSON.parse(store.get(key(r))) as PeerInfo)));
  const ref = peers[0];
  const bad = peers.filter((p) => p.configHash !== ref.configHash);
  if (bad.length) {
    // Every rank sees the same peers, so all stop here. Rank 0 hosts the store: it waits until the
    // others have read the peers, or they would see only "connection closed" when it exits.
    const read = store.add(`${o.prefix}mismatch-read`, 1);
    if (o.rank === 0) await waitForCount(store, `${o.prefix}mismatch-read`, read, o.worldSize, Math.min(o.timeoutMs, 30_000));
    const p = bad[0];
    const keys = [...new Set([...Object.keys(ref.config), ...Object.keys(p.config)])]
      .filter((k) => stable(ref.config[k]) !== stable(p.config[k]));
    const shown = keys.slice(0, 6).map((k) => `${k} (rank 0: ${stable(ref.config[k])}, rank ${p.rank}: ${stable(p.config[k])})`).join('; ');
    throw new DistributedError(`the configuration differs across ranks (hash ${ref.configHash} on rank 0, ${p.configHash} on rank${bad.length > 1 ? 's' : ''} ${ranksText(bad.map((b) => b.rank))}): ${shown || 'same keys, different values'}. Every rank must run the same command and data`, bad.map((b) => b.rank));
  }
  return peers;
}

/** Polls a counter until it reaches `want` or `ms` pass (a rank that died never counts). */
async function waitForCount(store: Store, key: string, now: number, want: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (now < want && Date.now() < deadline) {
    await sleep(20);
    now = store.add(key, 0);
  }
}
