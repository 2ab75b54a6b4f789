// A model's forward replayed from CUDA graphs, one per input shape (inference: evaluation, prediction,
// tiles). A shape is captured the second time it is seen, so one-off sizes run eagerly and a workload of
// fixed sizes (tiles, resizeLong, a camera) replays; up to `maxShapes` graphs are kept, the least recently
// used freed first. Any capture failure turns graphs off with a one-line warning: inference goes on eagerly.
import { fail } from '../common/errors.js';
import { CudaGraph, inferenceMode, keep, noGrad, onSideStream, type Tensor, tidy } from '../engine/index.js';

interface Entry { graph: CudaGraph; input: Tensor; output: Tensor }

export class GraphedForward {
  private readonly graphs = new Map<string, Entry>();
  private readonly seen = new Map<string, number>();
  private failed = false;
  /** Forwards answered by a replay, and by the eager path. */
  readonly counts = { replayed: 0, eager: 0, captured: 0 };

  /**
   * @param forward the eager forward: float32 logits of a batch on `device` (run inside inference mode)
   * @param maxShapes graphs kept at once (default 4)
   */
  constructor(private readonly forward: (x: Tensor) => Tensor, readonly device: string, readonly maxShapes = 4,
    private readonly onFallback: (reason: string) => void = (r) => console.warn(`panseg: CUDA graph capture failed, inference continues without graphs: ${r}`)) {
    if (!device.startsWith('cuda')) fail('cudaGraphs', `CUDA graphs record GPU work and need a model on a CUDA device, but it is on ${device}; drop cudaGraphs (--cuda-graphs) on the CPU`);
  }

  /** Logits of `x` (on this device) as a new tensor the caller owns. */
  run(x: Tensor): Tensor {
    const key = `${x.dtype}:${x.shape.join('x')}:${x.isContiguous() ? 'c' : 'cl'}`;
    let e = this.graphs.get(key);
    if (!e && !this.failed && (this.seen.get(key) ?? 0) >= 1) e = this.capture(key, x);
    this.seen.set(key, (this.seen.get(key) ?? 0) + 1);
    if (!e) {
      this.counts.eager++;
      return inferenceMode(() => tidy(() => this.forward(x)));
    }
    this.graphs.delete(key); // re-inserted: the Map's order is least recently used first
    this.graphs.set(key, e);
    this.counts.replayed++;
    return inferenceMode(() => {
      noGrad(() => e!.input.copy_(x));
      e!.graph.replay();
      return e!.output.clone();
    });
  }

  /** Frees every graph and its buffers. */
  close(): void {
    for (const e of this.graphs.values()) this.free(e);
    this.graphs.clear();
  }

  private capture(key: string, x: Tensor): Entry | undefined {
    if (this.graphs.size >= this.maxShapes) {
      const [oldest, e] = this.graphs.entries().next().value as [string, Entry];
      this.graphs.delete(oldest);
      this.free(e);
    }
    const input = keep(x.clone());
    const graph = new CudaGraph({ device: this.device });
    try {
      const output = inferenceMode(() => {
        onSideStream(this.device, () => tidy(() => { this.forward(input); })); // warm-up: lazy init and cuDNN's choices, outside the graph
        return graph.capture(() => this.forward(input));
      });
      const entry = { graph, input, output: keep(output) };
      this.graphs.set(key, entry);
      this.counts.captured++;
      return entry;
    } catch (err) {
      graph.dispose();
      input.dispose();
      this.failed = true;
      this.onFallback((err as Error).message);
      return undefined;
    }
  }

  private free(e: Entry): void {
    e.output.dispose();
    e.graph.dispose();
    e.input.dispose();
  }
}
