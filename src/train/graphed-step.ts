// The whole training step (forward under autocast, loss, backward, optimizer, loss scaler) recorded
// once in a CUDA graph and replayed for every batch of the same shape: at batch 1-16 a GPU step is bound
// by kernel launches, which a replay makes one. The step reads its batch from static buffers (copy_ before
// each replay), keeps gradients allocated (zeroed in place, never set to none) and leaves the loss on the
// device. With capture off the same static-buffer step runs eagerly, which is how the CPU tests it.
import { fail } from '../common/errors.js';
import { CudaGraph, keep, noGrad, onSideStream, type Tensor, tidy } from '../engine/index.js';
import type { SegmentationModel } from '../models/index.js';
import type { DeviceGradScaler } from './grad-scaler.js';
import type { Optimizer } from './optimizers.js';

export interface GraphedStepOptions {
  model: SegmentationModel;
  /** Made with `capturable: true`. */
  optimizer: Optimizer;
  /** For fp16: the device-side scaler. */
  scaler?: DeviceGradScaler | null;
  /** The float32 0-dim loss of a batch: forward (under the run's autocast) and loss, no backward. */
  forwardLoss: (x: Tensor, y: Tensor) => Tensor;
  /** Record the step in a CUDA graph after the warm-up steps (default true; needs a CUDA model). false: the same step, eagerly. */
  capture?: boolean;
  /** Eager steps before the capture, on a side stream (default 3, as torch.cuda.graphs suggests; at least 1, which makes the optimizer state). */
  warmup?: number;
  /** Called once if a capture fails: the run continues eagerly. Default: a one-line console warning. */
  onFallback?: (reason: string) => void;
}

/**
 * One training step with static shapes, graphed on a GPU. A batch of another shape than the first (a last
 * partial batch) runs eagerly on the same parameters and state, never a failure.
 * @example
 * const step = new GraphedTrainStep({ model, optimizer, forwardLoss: (x, y) => F.crossEntropy(model.forward(x), y) });
 * for (const [x, y] of batches) { step.step(x, y); console.log(step.lossValue()); scheduler.step(); }
 */
export class GraphedTrainStep {
  private readonly o: Required<Omit<GraphedStepOptions, 'scaler'>> & { scaler: DeviceGradScaler | null };
  private readonly device: string;
  private input: { x: Tensor; y: Tensor } | null = null;
  private graph: CudaGraph | null = null;
  private graphLoss: Tensor | null = null;
  private eagerLoss: Tensor | null = null;
  private lastGraphed = false;
  private steps = 0;
  private failed = false;
  /** Steps that ran eagerly because their batch's shape differed from the static one. */
  shapeFallbacks = 0;

  constructor(o: GraphedStepOptions) {
    if (!o.optimizer.capturable) fail('GraphedTrainStep', 'the optimizer must be made with capturable: true');
    this.device = o.model.parameters()[0].device;
    const capture = o.capture ?? true;
    if (capture && !this.device.startsWith('cuda')) fail('GraphedTrainStep', `CUDA graphs need the model on a CUDA device, but it is on ${this.device}; move it to 'cuda' or pass capture: false`);
    const warmup = o.warmup ?? 3;
    if (!Number.isInteger(warmup) || warmup < 1) fail('GraphedTrainStep', `expected an integer >= 1 for warmup but received ${warmup}`);
    this.o = { capture, warmup, scaler: o.scaler ?? null, onFallback: o.onFallback ?? ((r) => console.warn(`panseg: CUDA graph capture failed, training continues without graphs: ${r}`)), model: o.model, optimizer: o.optimizer, forwardLoss: o.forwardLoss };
  }

  /** Whether the next steps of the static shape replay a captured graph. */
  get graphed(): boolean { return this.graph !== null; }

  /** Runs one step on batch x, y (copied into the static buffers when of their shape). */
  step(x: Tensor, y: Tensor): void {
    this.o.optimizer.writeScalars(); // this step's lr, written outside any graph
    if (!this.input) this.input = { x: keep(x.clone()), y: keep(y.clone()) };
    else if (!sameShape(this.input.x, x) || !sameShape(this.input.y, y)) {
      this.shapeFallbacks++;
      this.eager(x, y);
      return;
    }
    else noGrad(() => { this.input!.x.copy_(x); this.input!.y.copy_(y); });
    const { x: sx, y: sy } = this.input;
    this.steps++;
    if (!this.o.capture || this.failed) { this.eager(sx, sy); return; }
    if (this.steps <= this.o.warmup) { onSideStream(this.device, () => this.eager(sx, sy)); return; }
    if (!this.graph) this.capture(sx, sy);
    if (this.graph) {
      this.graph.replay();
      this.lastGraphed = true;
    } else this.eager(sx, sy);
  }

  /** step(x, y), then its loss on the host. */
  run(x: Tensor, y: Tensor): number {
    this.step(x, y);
    return this.lossValue();
  }

  /** The last step's loss as a device tensor, owned by this object (valid until the next step). */
  get loss(): Tensor {
    const l = this.lastGraphed ? this.graphLoss : this.eagerLoss;
    if (!l) fail('GraphedTrainStep', 'no step has run yet');
    return l;
  }

  /** The last step's loss on the host (a device read). */
  lossValue(): number {
    return this.loss.item();
  }

  /** Frees the graph, its pool and the static buffers; the model and optimizer stay. */
  dispose(): void {
    this.graph?.dispose();
    this.graph = null;
    this.graphLoss?.dispose();
    this.graphLoss = null;
    this.eagerLoss?.dispose();
    this.eagerLoss = null;
    if (this.input) { this.input.x.dispose(); this.input.y.dispose(); }
    this.input = null;
  }

  private eager(x: Tensor, y: Tensor): void {
    const l = this.body(x, y);
    this.eagerLoss?.dispose();
    this.eagerLoss = keep(l);
    this.lastGraphed = false;
  }

  private capture(x: Tensor, y: Tensor): void {
    const g = new CudaGraph({ device: this.device });
    try {
      this.graphLoss = g.capture(() => this.body(x, y));
      this.graph = g;
    } catch (e) {
      g.dispose();
      this.failed = true;
      this.o.onFallback((e as Error).message);
    }
  }

  /** Zero the gradients in place, forward + loss, backward, step; returns the (unscaled) loss. */
  private body(x: Tensor, y: Tensor): Tensor {
    const { optimizer, scaler } = this.o;
    noGrad(() => {
      for (const g of optimizer.groups) for (const p of g.params) {
        const grad = p.grad;
        if (grad) { grad.zero_(); grad.dispose(); }
      }
    });
    const loss = tidy(() => {
      const l = this.o.forwardLoss(x, y);
      (scaler ? scaler.scaleLoss(l) : l).backward();
      return l.detach();
    });
    if (scaler) scaler.step(optimizer);
    else optimizer.step();
    return loss;
  }
}

function sameShape(a: Tensor, b: Tensor): boolean {
  const s = a.shape;
  const t = b.shape;
  return s.length === t.length && s.every((d, i) => d === t[i]) && a.dtype === b.dtype;
}

/** Why train's cudaGraphs cannot run with these options, or null when it can. */
export function graphedTrainingRefusal(o: { device: string; accumulate: number; freezeEncoderEpochs: number; distributed: boolean }): string | null {
  if (!o.device.startsWith('cuda')) return `cudaGraphs (--cuda-graphs) records GPU work and needs --device cuda, not ${o.device}; drop --cuda-graphs on the CPU`;
  if (o.distributed) return 'cudaGraphs (--cuda-graphs) does not support distributed training yet (the gradient all-reduce is not captured); drop --cuda-graphs or train on one process';
  if (o.accumulate > 1) return 'cudaGraphs (--cuda-graphs) does not support gradient accumulation yet; use --accumulate 1 (a larger --batch-size) or drop --cuda-graphs';
  if (o.freezeEncoderEpochs > 0) return 'cudaGraphs (--cuda-graphs) captures one set of trainable parameters and cannot follow --freeze-encoder-epochs; drop one of them';
  return null;
}
