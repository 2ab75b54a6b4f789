// Layers with PyTorch's names, defaults and parameter layout.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { empty, F, ones, type Tensor, tidy, zeros, noGrad } from '../engine/index.js';
import { addMacs } from './flops.js';
import { defaultInit_ } from './init.js';
import { Layer } from './module.js';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
  /** Default true. */
  bias?: boolean;
}

export class Conv2d extends Layer {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  readonly groups: number;

  constructor(inChannels: number, outChannels: number, kernelSize: number | [number, number], opts: Conv2dOptions = {}) {
    super();
    const op = 'Conv2d';
    this.inChannels = v.int(op, 'inChannels', inChannels, 1);
    this.outChannels = v.int(op, 'outChannels', outChannels, 1);
    this.kernelSize = v.pair(op, 'kernelSize', kernelSize, 1);
    this.stride = v.pair(op, 'stride', opts.stride ?? 1, 1);
    this.padding = v.pair(op, 'padding', opts.padding ?? 0, 0);
    this.dilation = v.pair(op, 'dilation', opts.dilation ?? 1, 1);
    this.groups = v.int(op, 'groups', opts.groups ?? 1, 1);
    if (inChannels % this.groups || outChannels % this.groups) fail(op, `inChannels ${inChannels} and outChannels ${outChannels} must be divisible by groups ${this.groups}`);
    const w = this.param('weight', empty([outChannels, inChannels / this.groups, ...this.kernelSize]));
    const b = opts.bias ?? true ? this.param('bias', empty([outChannels])) : null;
    defaultInit_(w, b);
  }
  get weight(): Tensor { return this._params.get('weight')!; }
  get bias(): Tensor | null { return this._params.get('bias') ?? null; }

  forward(x: Tensor): Tensor {
    const y = F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
    addMacs(() => y.numel * (this.inChannels / this.groups) * this.kernelSize[0] * this.kernelSize[1]);
    return y;
  }
}

export interface BatchNormOptions {
  eps?: number;
  /** Running-stat update factor; null = cumulative average (as PyTorch). Default 0.1. */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

export class BatchNorm2d extends Layer {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;

  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super();
    this.numFeatures = v.int('BatchNorm2d', 'numFeatures', numFeatures, 1);
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum === undefined ? 0.1 : opts.momentum;
    if (opts.affine ?? true) {
      this.param('weight', ones([numFeatures]));
      this.param('bias', zeros([numFeatures]));
    }
    if (opts.trackRunningStats ?? true) {
      this.buffer('running_mean', zeros([numFeatures]));
      this.buffer('running_var', ones([numFeatures]));
      this.buffer('num_batches_tracked', zeros([], { dtype: 'int64' }));
    }
  }
  get weight(): Tensor | null { return this._params.get('weight') ?? null; }
  get bias(): Tensor | null { return this._params.get('bias') ?? null; }
  get runningMean(): Tensor | null { return this._buffers.get('running_mean') ?? null; }
  get runningVar(): Tensor | null { return this._buffers.get('running_var') ?? null; }

  forward(x: Tensor): Tensor { return this.normalize(x, false); }

  /** forward(x) then ReLU (in place), as one fused op in training where the kernel applies (see setFusedKernels). */
  forwardRelu(x: Tensor): Tensor { return this.normalize(x, true); }

  private normalize(x: Tensor, relu: boolean): Tensor {
    if (x.ndim !== 4) fail('BatchNorm2d', `expected input of 4 dims [N, C, H, W], got [${x.shape.join(', ')}]`);
    if (x.shape[1] !== this.numFeatures) fail('BatchNorm2d', `expected ${this.numFeatures} channels, got input [${x.shape.join(', ')}]`);
    const tracked = this._buffers.get('num_batches_tracked');
    let momentum = this.momentum ?? 0;
    if (this.training && tracked) {
      noGrad(() => tracked.add_(1));
      if (this.momentum === null) momentum = 1 / tracked.item();
    }
    // Without running stats PyTorch normalizes with batch statistics even in eval mode.
    return F.batchNorm(x, this.runningMean, this.runningVar, {
      weight: this.weight, bias: this.bias, training: this.training || !this.runningMean, momentum, eps: this.eps, relu,
    });
  }
}

export interface GroupNormOptions {
  /** Default 1e-5. */
  eps?: number;
  /** Learnable per-channel weight (init 1) and bias (init 0). Default true. */
  affine?: boolean;
}

/**
 * torch.nn.GroupNorm: normalizes each group of numChannels / numGroups channels per sample; no running statistics.
 * bfloat16 and float16 inputs are normalized in float32 and cast back.
 */
export class GroupNorm extends Layer {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;

  constructor(numGroups: number, numChannels: number, opts: GroupNormOptions = {}) {
    super();
    const op = 'GroupNorm';
    this.numGroups = v.int(op, 'numGroups', numGroups, 1);
    this.numChannels = v.int(op, 'numChannels', numChannels, 1);
    if (numChannels % numGroups !== 0) fail(op, `numChannels ${numChannels} must be divisible by numGroups ${numGroups}`);
    this.eps = v.num(op, 'eps', opts.eps ?? 1e-5, { min: 0 });
    if (v.bool(op, 'affine', opts.affine ?? true)) {
      this.param('weight', ones([numChannels]));
      this.param('bias', zeros([numChannels]));
    }
  }
  get weight(): Tensor | null { return this._params.get('weight') ?? null; }
  get bias(): Tensor | null { return this._params.get('bias') ?? null; }

  forward(x: Tensor): Tensor {
    if (x.ndim < 2 || x.shape[1] !== this.numChannels) fail('GroupNorm', `expected input [N, ${this.numChannels}, ...], got [${x.shape.join(', ')}]`);
    if (x.dtype === 'bfloat16' || x.dtype === 'float16') {
      // Normalized in float32, as PyTorch's autocast does for group_norm: libtorch 1.13 refuses a bfloat16
      // input with float32 weights (autocast), and its channels-last bfloat16 kernel accumulates in
      // bfloat16 (max error 26 on outputs of ~12 for [2, 256, 128, 256]; float32: 5e-5).
      return tidy(() => F.groupNorm(x.to('float32'), this.numGroups, {
        weight: this.weight?.to('float32') ?? null, bias: this.bias?.to('float32') ?? null, eps: this.eps,
      }).to(x.dtype));
    }
    return F.groupNorm(x, this.numGroups, { weight: this.weight, bias: this.bias, eps: this.eps });
  }
}

export class Linear extends Layer {
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean } = {}) {
    super();
    v.int('Linear', 'inFeatures', inFeatures, 1);
    v.int('Linear', 'outFeatures', outFeatures, 1);
    const w = this.param('weight', empty([outFeatures, inFeatures]));
    const b = opts.bias ?? true ? this.param('bias', empty([outFeatures])) : null;
    defaultInit_(w, b);
  }
  get weight(): Tensor { return this._params.get('weight')!; }
  get bias(): Tensor | null { return this._params.get('bias') ?? null; }
  forward(x: Tensor): Tensor {
    const y = F.linear(x, this.weight, this.bias);
    addMacs(() => y.numel * this.inFeatures);
    return y;
  }
}

/** ReLU; `inplace` overwrites its input, as torch.nn.ReLU(inplace=True) (saves memory after conv/BatchNorm). */
/** norm.forward(x) then ReLU in place: a BatchNorm2d's fused forwardRelu, else the two ops (e.g. a norm folded away). */
export function normRelu(norm: Layer, x: Tensor): Tensor {
  return norm instanceof BatchNorm2d ? norm.forwardRelu(x) : norm.forward(x).relu_();
}

export class ReLU extends Layer {
  constructor(readonly inplace = false) { super(); }
  forward(x: Tensor): Tensor { return this.inplace ? x.relu_() : x.relu(); }
}
/**
 * torch.nn.ReLU6: min(max(x, 0), 6) (MobileNetV2); `inplace` as ReLU's. ATen has no clamp for oneDNN's
 * blocked tensors, so a blocked input is clamped in a strided copy and returned blocked (measured: 18 ms
 * of PAN-mobilenet_v2's 75 ms blocked copy at 512x512, 2 threads; its strided channels-last copy takes 57).
 */
export class ReLU6 extends Layer {
  constructor(readonly inplace = false) { super(); }
  forward(x: Tensor): Tensor {
    if (x.isMkldnn) {
      const dense = x.toDense().clamp_(0, 6);
      const y = dense.toMkldnn();
      dense.dispose();
      return y;
    }
    return this.inplace ? x.clamp_(0, 6) : x.clamp(0, 6);
  }
}
export class Sigmoid extends Layer { forward(x: Tensor): Tensor { return x.sigmoid(); } }
export class Tanh extends Layer { forward(x: Tensor): Tensor { return x.tanh(); } }
export class Identity extends Layer { forward(x: Tensor): Tensor { return x; } }
export class Softmax extends Layer {
  constructor(readonly dim = 1) { super(); }
  forward(x: Tensor): Tensor { return x.softmax(this.dim); }
}
export class LogSoftmax extends Layer {
  constructor(readonly dim = 1) { super(); }
  forward(x: Tensor): Tensor { return x.logSoftmax(this.dim); }
}
export class Flatten extends Layer {
  constructor(readonly startDim = 1, readonly endDim = -1) { super(); }
  forward(x: Tensor): Tensor { return x.flatten(this.startDim, this.endDim); }
}

export class Dropout extends Layer {
  constructor(readonly p = 0.5) {
    super();
    v.num('Dropout', 'p', p, { min: 0, max: 1 });
  }
  forward(x: Tensor): Tensor { return this.training && this.p > 0 ? F.dropout(x, this.p, true) : x; }
}

/** torch.nn.Dropout2d: zeroes whole channels with probability p when training; the identity in eval mode. */
export class Dropout2d extends Layer {
  constructor(readonly p = 0.5) {
    super();
    v.num('Dropout2d', 'p', p, { min: 0, max: 1 });
  }
  forward(x: Tensor): Tensor { return this.training && this.p > 0 ? F.dropout2d(x, this.p, true) : x; }
}

export class MaxPool2d extends Layer {
  constructor(readonly kernelSize: number | [number, number], readonly opts: F.PoolOptions = {}) { super(); }
  forward(x: Tensor): Tensor { return F.maxPool2d(x, this.kernelSize, this.opts); }
}

export class AdaptiveAvgPool2d extends Layer {
  constructor(readonly outputSize: number | [number, number]) { super(); }
  forward(x: Tensor): Tensor { return F.adaptiveAvgPool2d(x, this.outputSize); }
}

export class AdaptiveMaxPool2d extends Layer {
  constructor(readonly outputSize: number | [number, number]) { super(); }
  forward(x: Tensor): Tensor { return F.adaptiveMaxPool2d(x, this.outputSize); }
}

/** Resampling by a scale factor or to a size (torch.nn.Upsample; UpsamplingBilinear2d = bilinear + alignCorners). */
export class Upsample extends Layer {
  constructor(readonly opts: F.InterpolateOptions) { super(); }
  forward(x: Tensor): Tensor { return F.interpolate(x, this.opts); }
}

/** Children named "0", "1", ... applied in order, as torch.nn.Sequential. */
export class Sequential extends Layer {
  readonly layers: Layer[];
  constructor(...layers: Layer[]) {
    super();
    this.layers = layers;
    layers.forEach((l, i) => this.child(String(i), l));
  }
  forward(x: Tensor): Tensor {
    let y = x;
    const ls = this.layers;
    for (let i = 0; i < ls.length; i++) {
      const l = ls[i];
      // BatchNorm2d then ReLU: one op (the ReLU is in place on a fresh tensor either way).
      if (l instanceof BatchNorm2d && ls[i + 1] instanceof ReLU) { y = normRelu(l, y); i++; continue; }
      y = l.forward(y);
    }
    return y;
  }
  at(i: number): Layer { return this.layers[i]; }
}
