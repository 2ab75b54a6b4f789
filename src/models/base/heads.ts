// Heads shared by segmentation models, laid out as smp's so state_dict keys match
// (segmentation_head.0 = conv, classification_head.3 = linear).
import { fail } from '../../common/errors.js';
import * as v from '../../common/validate.js';
import { F, isGradEnabled, type Tensor } from '../../engine/index.js';
import {
  AdaptiveAvgPool2d, AdaptiveMaxPool2d, Conv2d, Dropout, Flatten, Identity, type Layer, Linear, LogSoftmax, type OnnxEmitter, type OnnxValue, Sequential, Sigmoid, Softmax, Tanh, init,
} from '../../nn/index.js';

export const ACTIVATIONS = ['identity', 'sigmoid', 'softmax2d', 'softmax', 'logsoftmax', 'tanh'] as const;
export type ActivationName = (typeof ACTIVATIONS)[number];

export function activation(name: ActivationName | null | undefined): Layer {
  switch (v.oneOf('activation', 'activation', name ?? 'identity', ACTIVATIONS)) {
    case 'sigmoid': return new Sigmoid();
    case 'softmax2d': case 'softmax': return new Softmax(1);
    case 'logsoftmax': return new LogSoftmax(1);
    case 'tanh': return new Tanh();
    default: return new Identity();
  }
}

function xavier(l: Conv2d | Linear): void {
  init.xavierUniform_(l.weight);
  if (l.bias) init.zeros_(l.bias);
}

/** k x k conv (default 3) to classes -> bilinear x`upsampling` (alignCorners) -> activation. */
export class SegmentationHead extends Sequential {
  constructor(inChannels: number, classes: number, opts: { upsampling?: number; kernelSize?: number; activation?: ActivationName | null } = {}) {
    const up = opts.upsampling ?? 1;
    const k = opts.kernelSize ?? 3;
    const conv = new Conv2d(inChannels, classes, k, { padding: Math.floor(k / 2) });
    super(conv, up > 1 ? new UpsamplingBilinear(up) : new Identity(), activation(opts.activation));
    xavier(conv);
  }
}

/** smp's UpsamplingBilinear2d: no parameters, so no state_dict keys (an Identity in the Sequential). */
class UpsamplingBilinear extends Identity {
  constructor(readonly scale: number) { super(); }
  override forward(x: Tensor): Tensor {
    // Training in bfloat16: the full-size logits are upsampled in float32 (the loss takes float32 anyway), because
    // libtorch's bfloat16 bilinear backward runs ~6x slower than its float32 one (`npm run bench -- profile`).
    if (x.dtype === 'bfloat16' && isGradEnabled()) x = x.to('float32');
    // With alignCorners the scale only sets the size: floor(h * scale).
    return F.interpolate(x, { size: [Math.floor(x.shape[2] * this.scale), Math.floor(x.shape[3] * this.scale)], mode: 'bilinear', alignCorners: true });
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    if (!Number.isInteger(this.scale)) fail('exportOnnx', `${name}: a non-integer upsampling ${this.scale} is not supported`);
    return e.resize(x, e.scaled(x, this.scale, 'Mul'), 'bilinear', name, true);
  }
}

export interface AuxParams {
  classes: number;
  pooling?: 'avg' | 'max';
  /** Default 0.2 as smp; null or 0 = no dropout. */
  dropout?: number | null;
  activation?: ActivationName | null;
}

/** Global pool -> flatten -> dropout -> linear -> activation, on the deepest encoder feature. */
export class ClassificationHead extends Sequential {
  constructor(inChannels: number, p: AuxParams) {
    const pooling = v.oneOf('auxParams', 'pooling', p.pooling ?? 'avg', ['avg', 'max']);
    const linear = new Linear(inChannels, v.int('auxParams', 'classes', p.classes, 1));
    super(
      pooling === 'avg' ? new AdaptiveAvgPool2d(1) : new AdaptiveMaxPool2d(1),
      new Flatten(),
      (p.dropout === undefined ? 0.2 : p.dropout) ? new Dropout(p.dropout ?? 0.2) : new Identity(),
      linear,
      activation(p.activation),
    );
    xavier(linear);
  }
}
