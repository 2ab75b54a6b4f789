// Test helper: a fake Hugging Face Hub on 127.0.0.1 (see fake-hub-worker.ts), with a temporary cache,
// and the HF_* variables pointed at them for the duration of a test.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { spawnSiblingWorker } from '../../src/common/worker-thread.js';

export interface HubRequest { server: 'hub' | 'cdn'; method: string; url: string; range: string | null; authorization: string | null }

export interface FakeRepo {
  repoId: string;
  /** Default: a random 40-hex commit. */
  commit?: string;
  /** Default ['main']. */
  branches?: string[];
  files: Record<string, Uint8Array | string>;
  /** Files served as LFS (302 to the cdn, sha256 etag). Default: *.safetensors and *.bin. */
  lfs?: string[];
}

export class FakeHub {
  readonly requests: HubRequest[] = [];
  private next = 0;
  private readonly waiting = new Map<number, () => void>();

  private constructor(private readonly worker: Worker, readonly endpoint: string, readonly cdn: string) {
    worker.on('message', (m: { type: string; id?: number } & HubRequest) => {
      if (m.type === 'request') this.requests.push({ server: m.server, method: m.method, url: m.url, range: m.range, authorization: m.authorization });
      else if (m.type === 'reply') { this.waiting.get(m.id!)?.(); this.waiting.delete(m.id!); }
    });
  }

  static async start(): Promise<FakeHub> {
    const worker = spawnSiblingWorker(import.meta.url, 'fake-hub-worker', null);
    const ready = await new Promise<{ hub: string; cdn: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    return new FakeHub(worker, ready.hub, ready.cdn);
  }

  private call(op: string, data: Record<string, unknown> = {}): Promise<void> {
    const id = this.next++;
    return new Promise((resolve) => { this.waiting.set(id, resolve); this.worker.postMessage({ id, op, ...data }); });
  }

  /** Serves a repo; returns its commit. */
  async addRepo(r: FakeRepo): Promise<string> {
    const commit = r.commit ?? randomBytes(20).toString('hex');
    const files = Object.fromEntries(Object.entries(r.files).map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v]));
    const lfs = r.lfs ?? Object.keys(files).filter((f) => /\.(safetensors|bin)$/.test(f));
    await this.call('addRepo', { repoId: r.repoId, commit, branches: r.branches ?? ['main'], files, lfs });
    return commit;
  }

  /** cutAfter: the next cdn body stops after this many bytes; corrupt: the next one has a flipped byte; token: required Bearer token. */
  configure(cfg: { cutAfter?: number | null; corrupt?: boolean; token?: string | null }): Promise<void> {
    return this.call('configure', { cfg });
  }

  /** Waits until every request made so far has been logged (the log travels on the same channel). */
  async settle(): Promise<HubRequest[]> {
    await this.call('ping');
    return this.requests;
  }

  private stopped: Promise<void> | null = null;

  /** Closes both servers (idempotent). */
  stop(): Promise<void> {
    this.stopped ??= this.call('stop').then(async () => { await this.worker.terminate(); });
    return this.stopped;
  }
}

export const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
export const gitSha1 = (b: Uint8Array | string): string => {
  const buf = typeof b === 'string' ? Buffer.from(b) : Buffer.from(b);
  return createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');
};

const HF_VARS = ['HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_HOME', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HUGGINGFACE_HUB_CACHE', 'HF_HUB_OFFLINE', 'HF_HUB_DISABLE_PROGRESS_BARS'];

/**
 * Runs `fn` with HF_ENDPOINT at `endpoint`, HF_HUB_CACHE at a fresh temporary folder (passed in) and
 * the other HF_* variables unset unless given; restores everything and removes the folder after.
 */
export async function withHubEnv<T>(endpoint: string, fn: (cache: string) => Promise<T> | T, extra: Record<string, string> = {}): Promise<T> {
  const saved = Object.fromEntries(HF_VARS.map((k) => [k, process.env[k]]));
  const cache = mkdtempSync(join(tmpdir(), 'panseg-hub-'));
  for (const k of HF_VARS) delete process.env[k];
  Object.assign(process.env, { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache, HF_HUB_DISABLE_PROGRESS_BARS: '1' }, extra);
  try {
    return await fn(cache);
  } finally {
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
    rmSync(cache, { recursive: true, force: true });
  }
}

/** An endpoint nothing listens on (a port just released). */
export async function closedEndpoint(): Promise<string> {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}
