// ProcessGroup: c10d's ProcessGroupGloo behind a validated TS API, with the rendezvous in front
// and a heartbeat watchdog beside it, so a failed collective is reported as "rank N died".
import { lookup } from 'node:dns/promises';
import { createSocket } from 'node:dgram';
import { fail, PansegError } from '../common/errors.js';
import * as v from '../common/validate.js';
import { type DType, noGrad, Tensor, tensor, zeros } from '../engine/index.js';
import { c10d, type DistHandle, distributedBackends, ensureDistributed, handles, type Store } from '../engine/c10d.js';
import type { Handle } from '../engine/native.js';
import { DEFAULT_MASTER_ADDR, DEFAULT_MASTER_PORT } from './env.js';
import { DistributedError, type PeerInfo, rendezvous } from './rendezvous.js';
import type { HostedStore } from './store-server.js';

export interface ProcessGroupOptions {
  /** This process's rank, 0 <= rank < worldSize. */
  rank: number;
  worldSize: number;
  /** Address of rank 0's machine. Default '127.0.0.1'. */
  masterAddr?: string;
  /** Port rank 0 serves the rendezvous on. Default 29500. */
  masterPort?: number;
  /** Rank on this machine (informational). Default rank. */
  localRank?: number;
  /** Milliseconds to wait for every rank to arrive. Default 300000. */
  rendezvousTimeoutMs?: number;
  /** Milliseconds one collective may take before it fails. Default 1800000 (PyTorch's). */
  collectiveTimeoutMs?: number;
  /** Heartbeat period in milliseconds. Default 1000. */
  heartbeatMs?: number;
  /** A rank silent this long is dead. Default 30000. */
  deadAfterMs?: number;
  /** After a death, a rank still running this much later stops itself (exit 1). Default 10000. */
  graceMs?: number;
  /** Options that must be equal on every rank; rendezvous fails naming the keys that differ. */
  config?: Record<string, unknown>;
  /** Network interface for Gloo (e.g. 'eth0'). Default: GLOO_SOCKET_IFNAME, else the one that routes to masterAddr. */
  ifname?: string;
  /**
   * The job's rendezvous token: the store refuses any process that does not present it (it cannot
   * join or write keys). Default: PANSEG_RDZV_TOKEN (the launcher sets a random one on one machine),
   * else none. Every rank needs the same one.
   */
  token?: string;
  /** Separates runs that share a store port. Default: PANSEG_RUN_ID or 'run'. */
  runId?: string;
  /**
   * 'gloo' (CPU tensors; default) or 'nccl' (CUDA tensors; needs a CUDA libtorch). With NCCL each
   * rank uses GPU `cuda:<localRank>`, and CPU tensors passed to a collective travel through it.
   */
  backend?: 'gloo' | 'nccl';
}

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';

/** A token is 1 to 256 printable ASCII characters (it travels in the store's greeting). */
function checkToken(token: unknown): string {
  if (token === '') return '';
  if (typeof token !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(token)) {
    throw new DistributedError('the rendezvous token (--rdzv-token, PANSEG_RDZV_TOKEN) must be 1 to 256 printable ASCII characters without spaces, the same on every rank; e.g. openssl rand -hex 16');
  }
  return token;
}

/** The local address the kernel would use to reach `addr`: Gloo binds there, so peers can connect back. */
async function localAddressFor(addr: string): Promise<string> {
  let ip: string;
  try { ip = (await lookup(addr, { family: 4 })).address; } catch { return ''; }
  if (ip.startsWith('127.')) return '127.0.0.1';
  return new Promise((res) => {
    const s = createSocket('udp4');
    s.once('error', () => { s.close(); res(''); });
    s.connect(9, ip, () => {
      const a = s.address().address;
      s.close();
      res(a);
    });
  });
}

/**
 * A group of processes that run collectives together (PyTorch's torch.distributed process group,
 * Gloo backend). Collectives block until every rank has called them, in the same order.
 * @example
 * const pg = await ProcessGroup.init({ rank: Number(process.env.RANK), worldSize: 2 });
 * const t = tensor([pg.rank + 1]);
 * pg.allreduce([t]);           // t = [3] on both ranks
 * await pg.destroy();
 */
export class ProcessGroup {
  private seq = 0;
  private destroyed = false;

  private constructor(
    /** @internal */ readonly h: DistHandle,
    readonly store: Store,
    private readonly watchdog: DistHandle,
    readonly rank: number,
    readonly size: number,
    readonly localRank: number,
    /** 'gloo' or 'nccl'. */
    readonly backend: 'gloo' | 'nccl',
    readonly peers: PeerInfo[],
    private readonly prefix: string,
    private readonly deadAfterMs: number,
    private readonly heartbeatMs: number,
    private readonly server: HostedStore | undefined,
  ) {}

  /** Rendezvous with every rank, then connects Gloo's full mesh and starts the heartbeat. */
  static async init(o: ProcessGroupOptions): Promise<ProcessGroup> {
    const op = 'distributed';
    ensureDistributed(op);
    if (!o || typeof o !== 'object') fail(op, 'expected an options object with rank and worldSize');
    const worldSize = v.int(op, 'worldSize', o.worldSize, 1);
    const rank = v.int(op, 'rank', o.rank, 0, worldSize - 1);
    const masterAddr = o.masterAddr ?? DEFAULT_MASTER_ADDR;
    if (typeof masterAddr !== 'string' || !masterAddr) fail(op, `expected a host name or address for masterAddr but received ${String(masterAddr)}`);
    const masterPort = v.int(op, 'masterPort', o.masterPort ?? DEFAULT_MASTER_PORT, 1, 65535);
    const rdvMs = v.int(op, 'rendezvousTimeoutMs', o.rendezvousTimeoutMs ?? 300_000, 1);
    const collMs = v.int(op, 'collectiveTimeoutMs', o.collectiveTimeoutMs ?? 1_800_000, 1);
    const hbMs = v.int(op, 'heartbeatMs', o.heartbeatMs ?? 1000, 10);
    const deadMs = v.int(op, 'deadAfterMs', o.deadAfterMs ?? 30_000, hbMs * 2);
    const graceMs = v.int(op, 'graceMs', o.graceMs ?? 10_000, 0);
    const backend = v.oneOf(op, 'backend', o.backend ?? 'gloo', ['gloo', 'nccl'] as const);
    if (!distributedBackends().includes(backend)) {
      fail(op, backend === 'nccl'
        ? "the NCCL backend needs panseg built against a CUDA libtorch with NCCL's headers (see README, 'GPU'); use backend 'gloo'"
        : "the Gloo backend is not in this build (gloo's headers were missing when panseg was compiled; PyTorch's pip wheels lack them): use backend 'nccl' with CUDA tensors, or build against Debian's libtorch-dev with libgloo-dev");
    }
    const localRank = v.int(op, 'localRank', o.localRank ?? rank, 0);
    const prefix = `panseg/${o.runId ?? process.env.PANSEG_RUN_ID ?? 'run'}/`;
    const token = checkToken(o.token ?? process.env.PANSEG_RDZV_TOKEN ?? '');
    const { store, peers, server } = await rendezvous({ rank, worldSize, masterAddr, masterPort, timeoutMs: rdvMs, prefix, config: o.config ?? {}, token });
    const ifname = o.ifname ?? process.env.GLOO_SOCKET_IFNAME ?? '';
    const host = ifname ? '' : await localAddressFor(masterAddr);
    let h: DistHandle;
    try {
      h = c10d.pgCreate(store.h, `${prefix}${backend}/`, rank, worldSize, Math.min(collMs, rdvMs), ifname, host, 2, backend);
    } catch (e) {
      const why = (e as Error).message.replace(/^pgCreate: /, '');
      if (backend === 'nccl') throw new DistributedError(`rank ${rank} could not create its NCCL process group: ${why}`);
      throw new DistributedError(`rank ${rank} could not connect Gloo to its peers (bound to ${ifname ? `interface ${ifname}` : host || 'the default address'}): ${why}. Set GLOO_SOCKET_IFNAME to the interface that reaches the other machines`);
    }
    const watchdog = c10d.watchdogStart(store.h, prefix, rank, worldSize, hbMs, deadMs, graceMs, Math.max(deadMs, 5000));
    return new ProcessGroup(h, store, watchdog, rank, worldSize, localRank, backend, peers, prefix, deadMs, hbMs, server);
  }

  /** The device collectives run on: 'cpu' for Gloo, this rank's GPU for NCCL. */
  get device(): string { return this.backend === 'nccl' ? `cuda:${this.localRank}` : 'cpu'; }

  /** Runs `fn` on handles of tensors on this group's device; NCCL's CPU tensors go through GPU copies and come back. */
  private onDevice(ts: Tensor[], fn: (hs: Handle[]) => void): void {
    if (this.backend === 'gloo' || ts.every((t) => t.device !== 'cpu')) { fn(handles(ts)); return; }
    const moved = ts.map((t) => (t.device === 'cpu' ? t.to(this.device) : t));
    try {
      fn(handles(moved));
      noGrad(() => ts.forEach((t, i) => { if (moved[i] !== t) t.copy_(moved[i]); }));
    } finally {
      moved.forEach((m, i) => { if (m !== ts[i]) m.dispose(); });
    }
  }

  /** Runs a native collective; a failure is explained by the watchdog when a peer died. */
  private guard<T>(op: string, fn: () => T): T {
    if (this.destroyed) throw new DistributedError(`${op}: this process group was destroyed`);
    try {
      return fn();
    } catch (e) {
      if (e instanceof PansegError) throw e;
      throw this.diagnose(op, e as Error);
    }
  }

  /** @internal Turns a native failure into an error naming the dead rank(s), when the heartbeats tell. */
  diagnose(op: string, e: Error): DistributedError {
    const dead = c10d.watchdogDead(this.watchdog, this.deadAfterMs + 3 * this.heartbeatMs);
    const detail = e.message.replace(/^[A-Za-z]+: /, '');
    if (dead) {
      return new DistributedError(`${dead.message}; rank ${this.rank} stops (${op} failed: ${detail}). The last complete checkpoint is intact: resume with --resume and the same world size`, dead.ranks);
    }
    return new DistributedError(`${op} failed on rank ${this.rank}: ${detail}`);
  }

  /** Reduces each tensor in place across ranks ('avg' divides the sum by the world size). Tensors of one dtype travel as one message. */
  allreduce(ts: Tensor[], op: ReduceOp = 'sum'): void {
    v.oneOf('allreduce', 'op', op, ['sum', 'avg', 'max', 'min']);
    if (!ts.length) return;
    this.guard('allreduce', () => this.onDevice(ts, (hs) => c10d.allreduce(this.h, hs, op === 'avg' ? 'sum' : op)));
    if (op === 'avg') noGrad(() => { for (const t of ts) t.div_(this.size); });
  }

  /** All-reduces plain numbers (as float64). */
  allreduceNumbers(xs: ArrayLike<number>, op: ReduceOp = 'sum'): number[] {
    const t = tensor(Float64Array.from(xs as ArrayLike<number>), [xs.length], { dtype: 'float64' });
    try {
      this.allreduce([t], op);
      return t.toNumbers();
    } finally { t.dispose(); }
  }

  /** Copies each tensor from `root` to every rank, in place. */
  broadcast(ts: Tensor[], root = 0): void {
    v.int('broadcast', 'root', root, 0, this.size - 1);
    if (ts.length) this.guard('broadcast', () => this.onDevice(ts, (hs) => c10d.broadcast(this.h, hs, root)));
  }

  /** Sends a JSON value from `root` to every rank (through the store; for small metadata). */
  broadcastObject<T>(value: T | null, root = 0): T {
    const key = `${this.prefix}obj/${this.seq++}`;
    if (this.rank === root) {
      this.store.set(key, JSON.stringify(value));
      return value as T;
    }
    return this.guard('broadcastObject', () => JSON.parse(this.store.get(key)) as T);
  }

  /** Blocks until every rank has called it. */
  barrier(): void {
    this.guard('barrier', () => c10d.barrier(this.h));
  }

  /**
   * A sum all-reduce autograd differentiates through: backward all-reduces the gradient
   * (torch.distributed.nn.functional.all_reduce). Returns a new tensor.
   */
  allreduceWithGrad(t: Tensor): Tensor {
    return this.guard('allreduceWithGrad', () => new Tensor(c10d.allreduceDiff(this.h, t.h)));
  }

  /** Zero tensors shaped as `shapes` (helper for receiving broadcasts). */
  static empties(specs: { shape: number[]; dtype: DType }[]): Tensor[] {
    return specs.map((s) => zeros(s.shape, { dtype: s.dtype }));
  }

  /** The ranks the heartbeat watchdog considers dead now (waits up to `waitMs` for it to tell). */
  deadRanks(waitMs = 0): number[] {
    return c10d.watchdogDead(this.watchdog, waitMs)?.ranks ?? [];
  }

  /**
   * Leaves the group in step with the others: marks this rank done (so its silence is not taken
   * for a death), waits for every rank, stops the heartbeat, and on rank 0 keeps the store up
   * until every rank has let go of it.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.store.set(`${this.prefix}done/${this.rank}`, '1');
    this.barrier();
    this.destroyed = true;
    c10d.watchdogStop(this.watchdog);
    this.store.add(`${this.prefix}finished`, 1);
    if (this.rank === 0) {
      const until = Date.now() + this.deadAfterMs;
      while (this.store.add(`${this.prefix}finished`, 0) < this.size && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      await this.server?.close();
    }
  }

  /** Stops the heartbeat without telling the others (after a failure: they will see this rank go). */
  abort(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    c10d.watchdogStop(this.watchdog);
  }
}
