// Initializers with torch.nn.init's formulas; they draw from the same generator in the same
// order as PyTorch, so a seeded panseg model starts from PyTorch's numbers.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { noGrad, type Tensor } from '../engine/index.js';

export type Nonlinearity = 'linear' | 'conv2d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu';

export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv2d': case 'sigmoid': return 1;
    case 'tanh': return 5 / 3;
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': { const a = param ?? 0.01; return Math.sqrt(2 / (1 + a * a)); }
    default: fail('calculateGain', `unknown nonlinearity '${String(nonlinearity)}'`);
  }
}

export function fanInOut(t: Tensor): [number, number] {
  if (t.ndim < 2) fail('init', `fan in and fan out need a tensor of at least 2 dims, got [${t.shape.join(', ')}]`);
  const receptive = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return [t.shape[1] * receptive, t.shape[0] * receptive];
}

export interface KaimingOptions {
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, o: KaimingOptions): number {
  const mode = v.oneOf('kaiming', 'mode', o.mode ?? 'fan_in', ['fan_in', 'fan_out']);
  const [fi, fo] = fanInOut(t);
  return calculateGain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(mode === 'fan_in' ? fi : fo);
}

export function kaimingUniform_(t: Tensor, o: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, o);
  return noGrad(() => t.uniform_(-bound, bound));
}
export function kaimingNormal_(t: Tensor, o: KaimingOptions = {}): Tensor {
  const std = kaimingStd(t, o);
  return noGrad(() => t.normal_(0, std));
}
export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const [fi, fo] = fanInOut(t);
  const a = gain * Math.sqrt(6 / (fi + fo));
  return noGrad(() => t.uniform_(-a, a));
}
export function xavierNormal_(t: Tensor, gain = 1): Tensor {
  const [fi, fo] = fanInOut(t);
  return noGrad(() => t.normal_(0, gain * Math.sqrt(2 / (fi + fo))));
}
export function uniform_(t: Tensor, a = 0, b = 1): Tensor {
  return noGrad(() => t.uniform_(a, b));
}
export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  return noGrad(() => t.normal_(mean, std));
}
export function constant_(t: Tensor, value: number): Tensor {
  return noGrad(() => t.fill_(value));
}
export const zeros_ = (t: Tensor): Tensor => constant_(t, 0);
export const ones_ = (t: Tensor): Tensor => constant_(t, 1);

/** PyTorch's default for Conv2d and Linear: kaiming_uniform(a=sqrt(5)) weights, bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function defaultInit_(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias) {
    const [fi] = fanInOut(weight);
    const bound = fi > 0 ? 1 / Math.sqrt(fi) : 0;
    uniform_(bias, -bound, bound);
  }
}
