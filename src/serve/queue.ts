// A FIFO of segmentation jobs in front of one inference thread. The queue lives on the HTTP thread,
// so its length is known (503 when full) and a job whose client went away is dropped before it runs.
import type { Worker } from 'node:worker_threads';
import { spawnSiblingWorker } from '../common/worker-thread.js';
import type { RgbImage } from '../data/decode.js';
import type { ClassArea } from '../eval/visualize.js';
import { HttpError } from './http.js';
import type { ModelInfo, WorkerConfig, WorkerReply, WorkerRequest } from './protocol.js';

/** A finished job. */
export interface SegmentResult {
  /** The label map as a palette PNG in the class colours. */
  mask: Buffer;
  /** Pixels and percent per class, in class order. */
  areas: ClassArea[];
  width: number;
  height: number;
  /** Time in segmentImage (preprocessing + forward + argmax), ms. */
  ms: number;
  /** Time waiting in the queue, ms. */
  queuedMs: number;
}

interface Job {
  id: number;
  image: RgbImage;
  queuedAt: number;
  signal?: AbortSignal;
  resolve: (r: SegmentResult) => void;
  reject: (e: Error) => void;
}

const spawn = (cfg: WorkerConfig): Worker => spawnSiblingWorker(import.meta.url, 'worker', cfg);

export interface QueueOptions extends WorkerConfig {
  /** Jobs waiting or running before new ones get 503. Default 32. */
  maxQueue?: number;
}

/**
 * Segments images on a worker thread, one at a time, in arrival order.
 * @example
 * const q = await InferenceQueue.start({ modelDir: 'runs/voc/best' });
 * const { mask, areas } = await q.segment(image);
 * await q.close();
 */
export class InferenceQueue {
  private worker: Worker;
  private jobs: Job[] = [];
  private running: Job | null = null;
  private nextId = 0;
  private closed = false;
  /** True while a crashed thread is being replaced; jobs wait. */
  private restarting = false;
  /** Why no thread could be restarted; every job then fails with it. */
  private broken: string | null = null;
  readonly maxQueue: number;
  /** Requests admitted by {@link admit} and not yet finished: reading, decoding, queued or running. */
  private admitted = 0;

  private constructor(private readonly cfg: QueueOptions, worker: Worker, readonly info: ModelInfo) {
    this.maxQueue = cfg.maxQueue ?? 32;
    this.worker = worker;
    this.attach(worker);
  }

  /** Starts the thread and resolves once the model is loaded (rejects with the load error). */
  static async start(cfg: QueueOptions): Promise<InferenceQueue> {
    const { worker, info } = await InferenceQueue.boot(cfg);
    return new InferenceQueue(cfg, worker, info);
  }

  private static boot(cfg: WorkerConfig): Promise<{ worker: Worker; info: ModelInfo }> {
    const worker = spawn({ modelDir: cfg.modelDir, threads: cfg.threads, inference: cfg.inference });
    return new Promise((resolve, reject) => {
      const onMessage = (m: WorkerReply): void => {
        if (m.type !== 'ready' && m.type !== 'failed') return;
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (m.type === 'ready') resolve({ worker, info: m.info });
        else {
          void worker.terminate();
          reject(new Error(`serve: cannot load the model in the inference thread: ${m.message}`));
        }
      };
      const onError = (e: Error): void => reject(new Error(`serve: the inference thread failed to start: ${e.message}`));
      const onExit = (code: number): void => reject(new Error(`serve: the inference thread exited with code ${code} while starting`));
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  private attach(worker: Worker): void {
    worker.unref();
    worker.on('message', (m: WorkerReply) => {
      const job = this.running;
      if (!job || (m.type !== 'result' && m.type !== 'error') || m.id !== job.id) return;
      this.running = null;
      if (m.type === 'result') {
        job.resolve({ mask: Buffer.from(m.mask.buffer, m.mask.byteOffset, m.mask.byteLength), areas: m.areas, width: m.width, height: m.height, ms: m.ms, queuedMs: 0 });
      } else {
        job.reject(new HttpError(500, 'inference_failed', `inference failed: ${m.message}`));
      }
      this.pump();
    });
    // A crashed thread fails its job only; the next job gets a fresh thread.
    const died = (why: string): void => {
      if (this.worker !== worker || this.restarting) return;
      const job = this.running;
      this.running = null;
      job?.reject(new HttpError(500, 'inference_failed', `the inference thread ${why}`));
      if (this.closed) return;
      this.restarting = true;
      void InferenceQueue.boot(this.cfg).then(
        ({ worker: w }) => {
          this.restarting = false;
          if (this.closed) { void w.terminate(); return; }
          this.worker = w;
          this.attach(w);
          this.pump();
        },
        (e: Error) => {
          this.restarting = false;
          this.broken = e.message;
          for (const j of this.jobs.splice(0)) j.reject(new HttpError(500, 'inference_unavailable', e.message));
        },
      );
    };
    worker.on('error', (e) => died(`failed: ${e.message}`));
    worker.on('exit', (code) => died(`exited with code ${code}`));
  }

  /** Jobs waiting plus the one running. */
  get pending(): number {
    return this.jobs.length + (this.running ? 1 : 0);
  }

  /** Requests holding a place: admitted ones (still uploading or decoding) or queued jobs, whichever is more. */
  get load(): number {
    return Math.max(this.admitted, this.pending);
  }

  /** 'ok', 'restarting' (a crashed thread is being replaced), 'broken' (it could not be) or 'closed'. */
  get state(): 'ok' | 'restarting' | 'broken' | 'closed' {
    return this.closed ? 'closed' : this.broken ? 'broken' : this.restarting ? 'restarting' : 'ok';
  }

  private refusal(): HttpError | null {
    if (this.closed) return new HttpError(503, 'shutting_down', 'the server is shutting down');
    if (this.broken) return new HttpError(500, 'inference_unavailable', this.broken);
    return null;
  }

  private busy(n: number): HttpError {
    return new HttpError(503, 'busy', `the server has ${n} images queued (limit ${this.maxQueue}); retry shortly`, { 'Retry-After': '1' });
  }

  /**
   * Takes a place in the queue for a request before its upload is read, so a full server refuses it
   * without buffering or decoding anything. Call the returned function when the request ends (twice is harmless);
   * pass `admitted: true` to {@link segment} for the admitted request.
   * @throws HttpError 503 when `maxQueue` requests hold places or the queue is closed
   */
  admit(): () => void {
    const refused = this.refusal();
    if (refused) throw refused;
    if (this.load >= this.maxQueue) throw this.busy(this.load);
    this.admitted++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.admitted--;
    };
  }

  /**
   * Queues an image; resolves with its mask and class areas. An aborted `signal` drops the job if it has not started.
   * `admitted`: the request already holds a place from {@link admit}, so the capacity is not checked again.
   * @throws HttpError 503 when the queue is full or closed, 500 when inference fails
   */
  segment(image: RgbImage, signal?: AbortSignal, admitted = false): Promise<SegmentResult> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    if (!admitted && this.pending >= this.maxQueue) return Promise.reject(this.busy(this.pending));
    return new Promise<SegmentResult>((resolve, reject) => {
      const job: Job = { id: this.nextId++, image, queuedAt: performance.now(), signal, resolve, reject };
      this.jobs.push(job);
      signal?.addEventListener('abort', () => {
        const i = this.jobs.indexOf(job);
        if (i >= 0) {
          this.jobs.splice(i, 1);
          reject(new HttpError(499, 'client_closed', 'the client went away'));
        }
      }, { once: true });
      this.pump();
    });
  }

  private pump(): void {
    if (this.running || this.restarting || this.closed) return;
    const job = this.jobs.shift();
    if (!job) {
      this.worker.unref();
      return;
    }
    const queuedMs = performance.now() - job.queuedAt;
    const req: WorkerRequest = { id: job.id, data: job.image.data, width: job.image.width, height: job.image.height };
    // The thread gets a copy; the job need not keep the pixels alive while it works.
    job.image = { data: new Uint8Array(0), width: job.image.width, height: job.image.height };
    this.running = {
      ...job,
      resolve: (r) => job.resolve({ ...r, queuedMs }),
    };
    this.worker.ref();
    this.worker.postMessage(req);
  }

  /** Rejects queued jobs with 503, lets the running one finish (up to `graceMs`), then stops the thread. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const j of this.jobs.splice(0)) j.reject(new HttpError(503, 'shutting_down', 'the server is shutting down'));
    const running = this.running;
    if (running) {
      await new Promise<void>((done) => {
        const t = setTimeout(done, graceMs);
        const finish = (): void => { clearTimeout(t); done(); };
        const { resolve, reject } = running;
        running.resolve = (r) => { resolve(r); finish(); };
        running.reject = (e) => { reject(e); finish(); };
      });
    }
    await this.worker.terminate();
  }
}
