// Runs loader jobs: on worker threads (least-loaded first) or inline on the main thread.
import type { Worker } from 'node:worker_threads';
import { spawnSiblingWorker } from '../common/worker-thread.js';
import { type JobConfig, type JobRequest, type JobResult, makeJob } from './job.js';

/** Something that runs jobs. `run` rejects only when the executor itself breaks (a worker dies). */
export interface Executor {
  run(req: Omit<JobRequest, 'key'>): Promise<JobResult>;
  close(): Promise<void>;
}

/** Runs jobs on the calling thread (`workers: 0`): simplest to debug. */
export class InlineExecutor implements Executor {
  private job: (req: JobRequest) => Promise<JobResult>;
  private key = 0;
  constructor(cfg: JobConfig) { this.job = makeJob(cfg); }
  run(req: Omit<JobRequest, 'key'>): Promise<JobResult> { return this.job({ ...req, key: this.key++ }); }
  async close(): Promise<void> {}
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (r: JobResult) => void; reject: (e: Error) => void }>;
  dead: Error | null;
}

const spawn = (cfg: JobConfig): Worker => spawnSiblingWorker(import.meta.url, 'worker', cfg);

/**
 * A fixed set of worker threads. Idle workers are unref'd, so a forgotten loader never keeps the process
 * alive; a worker with work in flight is ref'd, so awaiting its result does.
 */
export class WorkerPool implements Executor {
  private slots: Slot[] = [];
  private key = 0;

  constructor(cfg: JobConfig, n: number) {
    for (let i = 0; i < n; i++) {
      const worker = spawn(cfg);
      const slot: Slot = { worker, pending: new Map(), dead: null };
      worker.unref();
      worker.on('message', (r: JobResult) => {
        const p = slot.pending.get(r.key);
        if (!p) return;
        slot.pending.delete(r.key);
        if (!slot.pending.size) worker.unref();
        p.resolve(r);
      });
      const die = (e: Error): void => {
        slot.dead ??= e;
        for (const p of slot.pending.values()) p.reject(e);
        slot.pending.clear();
      };
      worker.on('error', (e) => die(new Error(`data worker ${i} failed: ${e.message}`)));
      worker.on('exit', (code) => die(new Error(`data worker ${i} exited with code ${code}`)));
      this.slots.push(slot);
    }
  }

  run(req: Omit<JobRequest, 'key'>): Promise<JobResult> {
    const live = this.slots.filter((s) => !s.dead);
    if (!live.length) return Promise.reject(this.slots[0]?.dead ?? new Error('data worker pool is closed'));
    const slot = live.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const key = this.key++;
    return new Promise<JobResult>((resolve, reject) => {
      if (!slot.pending.size) slot.worker.ref();
      slot.pending.set(key, { resolve, reject });
      slot.worker.postMessage({ ...req, key });
    });
  }

  async close(): Promise<void> {
    const slots = this.slots;
    this.slots = [];
    for (const s of slots) s.dead ??= new Error('data worker pool is closed');
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
