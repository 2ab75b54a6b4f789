// CUDA graphs: record a stretch of GPU work once and replay it with one launch, for steps whose
// shapes never change (batch 1-16 steps are bound by kernel launches). Wraps native/cuda-graph.cc.
import { fail } from '../common/errors.js';
import { deviceIndex } from './dtype.js';
import { keep, tidy } from './memory.js';
import { native } from './native.js';
import { cudaAvailable } from './runtime.js';
import { Tensor } from './tensor.js';

const NO_CUDA = 'CUDA graphs need a CUDA build of libtorch; set LIBTORCH to a CUDA libtorch (or install a CUDA PyTorch) and run `npm run setup`';

/** 'cuda' -> 0, 'cuda:N' -> N; 'cpu' and anything else are refused. */
function cudaIndex(op: string, device: string): number {
  const i = deviceIndex(op, device);
  if (i < 0) fail(op, `CUDA graphs record GPU work only, but the device is ${JSON.stringify(device)}; use a model and tensors on 'cuda'`);
  return i;
}

/** Whether a CUDA graph capture is under way (nothing may then read a GPU value on the host). */
export function isCapturing(): boolean {
  return native.cudaGraphCapturing();
}

/**
 * Runs `fn` on a side stream of `device` (from libtorch's pool), which first waits for the work queued
 * so far; afterwards the caller's stream waits for it. torch.cuda.graphs asks for warm-up steps so.
 */
export function onSideStream<T>(device: string, fn: () => T): T {
  if (!cudaAvailable()) fail('onSideStream', NO_CUDA);
  native.cudaSideStreamPush(cudaIndex('onSideStream', device));
  try { return fn(); } finally { native.cudaSideStreamPop(); }
}

export interface CudaGraphOptions {
  /** Default 'cuda'. */
  device?: string;
  /** Share this captured graph's memory pool (saves memory when the graphs replay in capture order). */
  sharePoolWith?: CudaGraph;
}

/**
 * One captured CUDA graph (at::cuda::CUDAGraph). `capture(fn)` records the GPU work of `fn` without running
 * it; `replay()` runs it again on the same memory. Inputs must be written into the tensors the capture
 * read (`staticInput.copy_(batch)`), and outputs are read from the tensors it returned, which the graph
 * keeps alive (they live in its memory pool) until `dispose()`.
 * @example
 * const g = new CudaGraph();
 * const y = g.capture(() => model.forward(xStatic));   // records, runs nothing
 * xStatic.copy_(batch); g.replay(); y.toArray();
 * g.dispose();
 */
export class CudaGraph {
  readonly device: string;
  private id: number | null;
  private captured = false;
  private owned: Tensor[] = [];
  private readonly pool: number;

  constructor(o: CudaGraphOptions = {}) {
    if (!cudaAvailable()) fail('CudaGraph', NO_CUDA);
    this.device = o.device ?? 'cuda';
    cudaIndex('CudaGraph', this.device);
    if (o.sharePoolWith && (o.sharePoolWith.id === null || !o.sharePoolWith.captured)) fail('CudaGraph', 'sharePoolWith needs a captured graph that was not disposed');
    this.id = native.cudaGraphNew();
    this.pool = o.sharePoolWith?.id ?? 0;
  }

  get isCaptured(): boolean { return this.captured; }
  get isDisposed(): boolean { return this.id === null; }

  /**
   * Records the GPU work of `fn` (a synchronous function) on a side stream. Tensors made inside and
   * not returned are freed into the graph's pool, as in PyTorch; the returned ones (in arrays and plain
   * objects) are the graph's outputs: replay() rewrites them, and they stay valid until dispose().
   * Nothing in `fn` may read a GPU value on the host (item(), toArray()): the capture fails with CUDA's error.
   */
  capture<T>(fn: () => T): T {
    const id = this.live('capture');
    if (typeof fn !== 'function') fail('capture', 'expected a function');
    if (isCapturing()) fail('capture', 'a capture is already under way; CUDA graph captures do not nest');
    if (this.captured) fail('capture', 'this graph was already captured; make a new CudaGraph for another capture');
    native.cudaGraphBegin(id, cudaIndex('capture', this.device), this.pool);
    let out: T;
    try {
      out = tidy(fn);
      if (out instanceof Promise) fail('capture', 'the function returned a Promise; a capture records synchronous code only');
    } catch (e) {
      native.cudaGraphAbort(id);
      throw e;
    }
    native.cudaGraphEnd(id);
    this.captured = true;
    const outs = tensorsIn(out);
    const cpu = outs.find((t) => !t.device.startsWith('cuda'));
    if (cpu) {
      this.dispose();
      fail('capture', `an output tensor is on ${cpu.device}; a CUDA graph records GPU work only, so move the model and its inputs to '${this.device}'`);
    }
    // The graph holds its own handles: a caller disposing an output does not free memory the graph writes.
    this.owned = outs.map((t) => keep(t.detach()));
    return out;
  }

  /** Runs the recorded work again, on the current stream (later work and host reads see its results). */
  replay(): void {
    const id = this.live('replay');
    if (!this.captured) fail('replay', 'nothing was captured yet; call capture(fn) first');
    native.cudaGraphReplay(id);
  }

  /** Frees the graph, its outputs' handles and (once no tensor uses it) its memory pool. Safe to call twice. */
  dispose(): void {
    if (this.id === null) return;
    for (const t of this.owned) t.dispose();
    this.owned = [];
    native.cudaGraphFree(this.id);
    this.id = null;
  }
  [Symbol.dispose](): void { this.dispose(); }

  private live(op: string): number {
    if (this.id === null) fail(op, 'this CUDA graph was disposed; capture a new one');
    return this.id;
  }
}

function tensorsIn(v: unknown, out: Tensor[] = [], depth = 0): Tensor[] {
  if (v instanceof Tensor) out.push(v);
  else if (Array.isArray(v) && depth < 4) for (const x of v) tensorsIn(x, out, depth + 1);
  else if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype && depth < 4) for (const x of Object.values(v)) tensorsIn(x, out, depth + 1);
  return out;
}

