// SyncBatchNorm: BatchNorm2d whose training statistics cover the whole global batch. Each rank
// sums x and x^2 per channel with its pixel count; one differentiable all-reduce adds them up
// (its backward all-reduces the gradients of those sums, which is what makes the gradient equal
// a single process's on the whole batch); then x is normalized with the global mean and variance.
import { fail } from '../common/errors.js';
import { F, full, noGrad, type Tensor } from '../engine/index.js';
import { BatchNorm2d, type Module } from '../nn/index.js';
import type { ProcessGroup } from './process-group.js';

/**
 * BatchNorm2d with cross-rank statistics in training mode; plain BatchNorm2d in eval mode or
 * in a group of one. Parameter and buffer names are BatchNorm2d's, so checkpoints are unchanged.
 */
export class SyncBatchNorm2d extends BatchNorm2d {
  constructor(numFeatures: number, public group: ProcessGroup | null, opts: ConstructorParameters<typeof BatchNorm2d>[1] = {}) {
    super(numFeatures, opts);
  }

  /**
   * Turns `bn` itself into a SyncBatchNorm2d on `group`. The instance is converted in place rather
   * than replaced because parents may hold it in fields or arrays (Sequential.layers) besides
   * their named children; every reference, tensor and name stays valid.
   */
  static convert(bn: BatchNorm2d, group: ProcessGroup): SyncBatchNorm2d {
    Object.setPrototypeOf(bn, SyncBatchNorm2d.prototype);
    const s = bn as SyncBatchNorm2d;
    s.group = group;
    return s;
  }

  /** The group to take statistics across: in training, in a group of more than one. */
  private syncGroup(): ProcessGroup | null {
    return this.training && this.group && this.group.size > 1 ? this.group : null;
  }

  /** With cross-rank statistics the ReLU follows as its own op (the fused kernel sees one rank's batch). */
  override forwardRelu(x: Tensor): Tensor {
    return this.syncGroup() ? this.forward(x).relu_() : super.forwardRelu(x);
  }

  override forward(x: Tensor): Tensor {
    const group = this.syncGroup();
    if (!group) return super.forward(x);
    if (x.ndim !== 4) fail('SyncBatchNorm2d', `expected input of 4 dims [N, C, H, W], got [${x.shape.join(', ')}]`);
    const C = this.numFeatures;
    if (x.shape[1] !== C) fail('SyncBatchNorm2d', `expected ${C} channels, got input [${x.shape.join(', ')}]`);
    const tracked = this._buffers.get('num_batches_tracked');
    let momentum = this.momentum ?? 0;
    if (tracked) {
      noGrad(() => tracked.add_(1));
      if (this.momentum === null) momentum = 1 / tracked.item();
    }
    const count = x.numel / C;
    // Sums in float64: the variance is E[x^2] - mean^2, which would lose digits in float32 when
    // |mean| >> std (PyTorch's own CPU BatchNorm accumulates its statistics in double too).
    const x64 = x.to('float64');
    const stats = F.cat([x64.sum([0, 2, 3]), x64.square().sum([0, 2, 3]), full([1], count, { dtype: 'float64' })], 0);
    const total = group.allreduceWithGrad(stats);
    const n = total.narrow(0, 2 * C, 1);
    const mean64 = total.narrow(0, 0, C).div(n);
    const var64 = total.narrow(0, C, C).div(n).sub(mean64.square()); // biased, as BatchNorm normalizes with
    const mean = mean64.to(x.dtype);
    const variance = var64.to(x.dtype);
    let scale = variance.add(this.eps).rsqrt();
    let shift = mean.mul(scale).neg();
    if (this.weight) {
      scale = scale.mul(this.weight);
      shift = shift.mul(this.weight).add(this.bias!);
    }
    const rm = this.runningMean;
    const rv = this.runningVar;
    if (rm && rv) {
      const N = n.item();
      noGrad(() => {
        rm.mul_(1 - momentum).add_(mean.detach().mul(momentum));
        rv.mul_(1 - momentum).add_(variance.detach().mul(momentum * N / Math.max(1, N - 1)));
      });
    }
    return x.mul(scale.view(1, C, 1, 1)).add(shift.view(1, C, 1, 1));
  }
}

/**
 * Turns every BatchNorm2d in `module` into a SyncBatchNorm2d on `group` (in place; names and
 * tensors stay), as torch.nn.SyncBatchNorm.convert_sync_batchnorm. Returns how many.
 */
export function convertSyncBatchNorm(module: Module, group: ProcessGroup): number {
  let n = 0;
  for (const [, m] of module.namedModules()) {
    if (m instanceof BatchNorm2d && !(m instanceof SyncBatchNorm2d)) {
      SyncBatchNorm2d.convert(m, group);
      n++;
    }
  }
  return n;
}
