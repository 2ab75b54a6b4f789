// The ONNX emitter: implements nn's OnnxEmitter over a GraphBuilder. Plain layers are emitted from a
// map keyed by layer class; blocks emit themselves (emitOnnx beside their forward). BatchNorm is folded
// into the conv before it by the one rule in models/base/fuse.ts. Eval-mode semantics: BatchNorm uses
// running statistics, dropout is the identity.
import { fail } from '../common/errors.js';
import { type Tensor, tidy } from '../engine/index.js';
import { foldedConvBnParams, isConvBnPair } from '../models/base/fuse.js';
import {
  AdaptiveAvgPool2d, AdaptiveMaxPool2d, BatchNorm2d, Conv2d, Dropout, Dropout2d, Flatten, GroupNorm, Identity, isOnnxEmittable, Linear, LogSoftmax, MaxPool2d, type Module,
  type OnnxEmitter, type OnnxInterpolation, type OnnxSize, type OnnxValue, ReLU, ReLU6, Sequential, Sigmoid, Softmax, Tanh, Upsample,
} from '../nn/index.js';
import { attr, GraphBuilder } from './graph.js';
import type { AttrValue } from './onnx-proto.js';

type V = OnnxValue;

export interface EmitOptions {
  opset: number;
  /** null = symbolic H and W. */
  size: [number, number] | null;
}

function floats(t: Tensor): Float32Array {
  // Weights of a blocked-layout inference copy are packed for oneDNN: read them back in OIHW order.
  return tidy(() => (t.isMkldnn ? t.toDense() : t).to({ dtype: 'float32', device: 'cpu' }).toArray() as Float32Array);
}

/** The conv's weights as float32 arrays, with an eval-mode BatchNorm folded in (see foldedConvBnParams). */
export function foldBatchNorm(conv: Conv2d, bn: Module | null, where: string): { weight: Float32Array; bias: Float32Array | null } {
  // An Identity stands where optimizedForInference() already folded the BatchNorm.
  if (!bn || bn instanceof Identity) return { weight: floats(conv.weight), bias: conv.bias ? floats(conv.bias) : null };
  if (!(bn instanceof BatchNorm2d)) return fail('exportOnnx', `${where}: expected a BatchNorm2d after the conv, got ${bn.constructor.name}`);
  if (!bn.runningMean || !bn.runningVar) fail('exportOnnx', `${where}: BatchNorm2d without running statistics cannot be folded (it normalizes with batch statistics)`);
  const out = conv.outChannels;
  if (bn.numFeatures !== out) fail('exportOnnx', `${where}: BatchNorm2d has ${bn.numFeatures} channels but the conv outputs ${out}`);
  const folded = foldedConvBnParams(conv, bn);
  try {
    return { weight: floats(folded.weight), bias: floats(folded.bias) };
  } finally {
    folded.weight.dispose();
    folded.bias.dispose();
  }
}

const convOut = (n: number, k: number, s: number, p: number, d: number) => Math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1;

type LayerEmitter = (e: Emitter, l: any, x: V, name: string) => V; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Layers the exporter maps itself, by class (checked in order: subclasses before their bases). */
const LAYERS: [abstract new (...a: any[]) => Module, LayerEmitter][] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
  [Sequential, (e, l: Sequential, x, name) => e.sequential(x, l, name)],
  [Conv2d, (e, l: Conv2d, x, name) => e.conv(x, l, null, false, name)],
  [BatchNorm2d, (_e, _l, _x, name) => fail('exportOnnx', `${name}: a BatchNorm2d that does not follow a Conv2d cannot be folded`)],
  [MaxPool2d, (e, l: MaxPool2d, x, name) => e.maxPool(x, l, name)],
  [AdaptiveAvgPool2d, (e, l: AdaptiveAvgPool2d, x, name) => e.adaptivePool(x, l, name)],
  [AdaptiveMaxPool2d, (e, l: AdaptiveMaxPool2d, x, name) => e.adaptivePool(x, l, name)],
  [ReLU, (e, _l, x, name) => e.relu(x, name)],
  [ReLU6, (e, _l, x, name) => e.op('Clip', [x.name, e.weight(`${name}.min`, Float32Array.of(0), []), e.weight(`${name}.max`, Float32Array.of(6), [])], x.hw, name)],
  [Sigmoid, (e, _l, x, name) => e.sigmoid(x, name)],
  [Tanh, (e, _l, x, name) => e.op('Tanh', [x.name], x.hw, name)],
  [Softmax, (e, l: Softmax, x, name) => e.op('Softmax', [x.name], x.hw, name, { axis: l.dim })],
  [LogSoftmax, (e, l: LogSoftmax, x, name) => e.op('LogSoftmax', [x.name], x.hw, name, { axis: l.dim })],
  [Flatten, (e, l: Flatten, x, name) => {
    if (l.startDim !== 1 || (l.endDim !== -1 && l.endDim !== 3)) fail('exportOnnx', `${name}: only Flatten(1, -1) is supported`);
    return e.op('Flatten', [x.name], null, name, { axis: 1 });
  }],
  [Dropout, (_e, _l, x) => x], // eval mode
  [Dropout2d, (_e, _l, x) => x],
  [GroupNorm, (e, l: GroupNorm, x, name) => e.groupNorm(x, l, name)],
  [Linear, (e, l: Linear, x, name) => {
    const inputs = [x.name, e.weight(`${name}.weight`, floats(l.weight), [l.outFeatures, l.inFeatures])];
    if (l.bias) inputs.push(e.weight(`${name}.bias`, floats(l.bias), [l.outFeatures]));
    return e.op('Gemm', inputs, null, name, { transB: 1 });
  }],
  [Upsample, (e, l: Upsample, x, name) => {
    const o = l.opts;
    const to = o.size !== undefined ? { fixed: (typeof o.size === 'number' ? [o.size, o.size] : o.size) as [number, number] } : e.scaledBy(x, o.scaleFactor, name);
    return e.resize(x, to, (o.mode ?? 'nearest') as OnnxInterpolation, name, o.alignCorners ?? false);
  }],
  [Identity, (_e, _l, x) => x],
];

export class Emitter implements OnnxEmitter {
  readonly g = new GraphBuilder('model');
  /** Values blocks offered as optional outputs (PAN's FPA attention map), by tag. */
  readonly taps = new Map<string, V>();
  constructor(readonly o: EmitOptions) {}

  module(m: Module, name: string, ...inputs: V[]): V {
    // A block's own emitter wins: it may subclass a mapped layer (the head's upsampling is an Identity).
    if (isOnnxEmittable(m)) return m.emitOnnx(this, name, ...inputs);
    const entry = LAYERS.find(([cls]) => m instanceof cls);
    if (!entry) return fail('exportOnnx', `${name}: no ONNX mapping for ${m.constructor.name}; give it an emitOnnx method (see src/nn/onnx.ts)`);
    if (inputs.length !== 1) return fail('exportOnnx', `${name}: ${m.constructor.name} takes one input, got ${inputs.length}`);
    return entry[1](this, m, inputs[0], name);
  }

  tap(tag: string, x: V): void { this.taps.set(tag, x); }
  add(a: V, b: V, name: string): V { return { name: this.g.op('Add', [a.name, b.name], {}, name), hw: a.hw ?? b.hw }; }
  mul(a: V, b: V, name: string): V { return { name: this.g.op('Mul', [a.name, b.name], {}, name), hw: a.hw ?? b.hw }; }
  relu(x: V, name: string): V { return { name: this.g.op('Relu', [x.name], {}, name), hw: x.hw }; }
  sigmoid(x: V, name: string): V { return { name: this.g.op('Sigmoid', [x.name], {}, name), hw: x.hw }; }
  concat(xs: V[], name: string): V { return { name: this.g.op('Concat', xs.map((x) => x.name), { axis: attr.int(1) }, name), hw: xs[0].hw }; }
  weight(name: string, data: Float32Array, dims: number[]): string { return this.g.weight(name, data, dims); }
  int64(values: number[]): string { return this.g.int64(values); }

  op(type: string, inputs: string[], hw: [number, number] | null, name: string, attrs: Record<string, number | number[] | string> = {}): V {
    const a: Record<string, AttrValue> = {};
    for (const [k, val] of Object.entries(attrs)) {
      a[k] = typeof val === 'string' ? attr.str(val)
        : Array.isArray(val) ? (val.every(Number.isInteger) ? attr.ints(val) : attr.floats(val))
          : Number.isInteger(val) ? attr.int(val) : attr.float(val);
    }
    return { name: this.g.op(type, inputs, a, name), hw };
  }

  /** Global adaptive pooling; other output sizes when the input size is fixed and divides evenly (a plain pool). */
  adaptivePool(x: V, l: AdaptiveAvgPool2d | AdaptiveMaxPool2d, name: string): V {
    const size = typeof l.outputSize === 'number' ? [l.outputSize, l.outputSize] : l.outputSize;
    const avg = l instanceof AdaptiveAvgPool2d;
    if (size[0] === 1 && size[1] === 1) return { name: this.g.op(avg ? 'GlobalAveragePool' : 'GlobalMaxPool', [x.name], {}, name), hw: [1, 1] };
    if (x.hw && x.hw[0] % size[0] === 0 && x.hw[1] % size[1] === 0) {
      const k = [x.hw[0] / size[0], x.hw[1] / size[1]];
      return { name: this.g.op(avg ? 'AveragePool' : 'MaxPool', [x.name], { kernel_shape: attr.ints(k), strides: attr.ints(k) }, name), hw: size as [number, number] };
    }
    return fail('exportOnnx', `${name}: adaptive pooling to ${size.join('x')} needs a fixed input size that it divides; export without dynamicSize`);
  }

  /**
   * GroupNorm in ONNX ops that every opset from 13 has (GroupNormalization needs 18 and changed meaning
   * in 21): reshape to [N, G, -1], InstanceNormalization (unit scale, zero shift) normalizes each
   * (sample, group), reshape back, then the per-channel affine.
   */
  groupNorm(x: V, gn: GroupNorm, name: string): V {
    const g = gn.numGroups;
    const grouped = this.op('Reshape', [x.name, this.int64([0, g, -1])], null, `${name}.group`);
    const unit = this.weight(`${name}.unit_scale`, new Float32Array(g).fill(1), [g]);
    const zero = this.weight(`${name}.zero_shift`, new Float32Array(g), [g]);
    const normed = this.op('InstanceNormalization', [grouped.name, unit, zero], null, `${name}.norm`, { epsilon: gn.eps });
    const y = this.op('Reshape', [normed.name, this.op('Shape', [x.name], null, `${name}.shape`).name], x.hw, `${name}.ungroup`);
    if (!gn.weight || !gn.bias) return y;
    const c = gn.numChannels;
    const w = { name: this.weight(`${name}.weight`, floats(gn.weight), [c, 1, 1]), hw: null };
    const b = { name: this.weight(`${name}.bias`, floats(gn.bias), [c, 1, 1]), hw: null };
    return this.add(this.mul(y, w, `${name}.scale`), b, `${name}.shift`);
  }

  /** A Resize target from an Upsample scale factor. */
  scaledBy(x: V, k: number | [number, number] | undefined, name: string): OnnxSize {
    const f = typeof k === 'number' ? k : k?.[0];
    if (f === undefined || (Array.isArray(k) && k[0] !== k[1]) || !Number.isInteger(f)) return fail('exportOnnx', `${name}: only equal integer scale factors are supported, got ${String(k)}`);
    return this.scaled(x, f, 'Mul');
  }

  private hwAfter(x: V, k: [number, number], s: [number, number], p: [number, number], d: [number, number]): [number, number] | null {
    return x.hw && [convOut(x.hw[0], k[0], s[0], p[0], d[0]), convOut(x.hw[1], k[1], s[1], p[1], d[1])];
  }

  conv(x: V, conv: Conv2d, bn: Module | null, relu: boolean, name: string): V {
    const { weight, bias } = foldBatchNorm(conv, bn, name);
    const inputs = [x.name, this.g.weight(`${name}.weight`, weight, [...conv.weight.shape])];
    if (bias) inputs.push(this.g.weight(`${name}.bias`, bias, [bias.length]));
    const [ph, pw] = conv.padding;
    let y = this.g.op('Conv', inputs, {
      kernel_shape: attr.ints(conv.kernelSize), strides: attr.ints(conv.stride), pads: attr.ints([ph, pw, ph, pw]),
      dilations: attr.ints(conv.dilation), group: attr.int(conv.groups),
    }, name);
    if (relu) y = this.g.op('Relu', [y], {}, `${name}.relu`);
    return { name: y, hw: this.hwAfter(x, conv.kernelSize, conv.stride, conv.padding, conv.dilation) };
  }

  maxPool(x: V, m: MaxPool2d, name: string): V {
    const pair = (v: number | [number, number] | undefined, d: number): [number, number] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);
    const k = pair(m.kernelSize, 1);
    const s = pair(m.opts.stride, k[0]);
    if (m.opts.stride === undefined) s[1] = k[1];
    const p = pair(m.opts.padding, 0);
    const d = pair(m.opts.dilation, 1);
    if (m.opts.ceilMode) fail('exportOnnx', `${name}: MaxPool2d with ceilMode is not supported`);
    const attrs = { kernel_shape: attr.ints(k), strides: attr.ints(s), pads: attr.ints([p[0], p[1], p[0], p[1]]), ...(d[0] !== 1 || d[1] !== 1 ? { dilations: attr.ints(d) } : {}) };
    return { name: this.g.op('MaxPool', [x.name], attrs, name), hw: this.hwAfter(x, k, s, p, d) };
  }

  /** int64 [2] value holding x's [H, W]. */
  spatial(x: V): string {
    return this.g.op('Slice', [this.g.op('Shape', [x.name]), this.g.int64([2]), this.g.int64([4])]);
  }

  /** Resizes x to `to` ([H, W]); modes as PyTorch's F.interpolate (alignCorners only for bilinear/bicubic). */
  resize(x: V, to: OnnxSize, mode: OnnxInterpolation, name: string, alignCorners = false): V {
    const ct = attr.str(alignCorners ? 'align_corners' : 'half_pixel');
    const attrs: Record<string, AttrValue> = ({
      bilinear: { mode: attr.str('linear'), coordinate_transformation_mode: ct },
      bicubic: { mode: attr.str('cubic'), coordinate_transformation_mode: ct, cubic_coeff_a: attr.float(-0.75) },
      // PyTorch 'nearest': src = floor(dst * in / out).
      nearest: { mode: attr.str('nearest'), coordinate_transformation_mode: attr.str('asymmetric'), nearest_mode: attr.str('floor') },
      // PyTorch 'nearest-exact': src = floor((dst + 0.5) * in / out) = round_prefer_ceil of the half-pixel coordinate.
      'nearest-exact': { mode: attr.str('nearest'), coordinate_transformation_mode: attr.str('half_pixel'), nearest_mode: attr.str('round_prefer_ceil') },
    } as Record<OnnxInterpolation, Record<string, AttrValue>>)[mode];
    const hw = 'fixed' in to ? this.g.int64(to.fixed) : to.value;
    let y: string;
    if (this.o.opset >= 18) {
      y = this.g.op('Resize', [x.name, '', '', hw], { ...attrs, axes: attr.ints([2, 3]) }, name);
    } else {
      // Before opset 18 `sizes` covers every axis: N and C come from x's shape (the batch is dynamic).
      const nc = this.g.op('Slice', [this.g.op('Shape', [x.name]), this.g.int64([0]), this.g.int64([2])]);
      const sizes = this.g.op('Concat', [nc, hw], { axis: attr.int(0) });
      y = this.g.op('Resize', [x.name, '', '', sizes], attrs, name);
    }
    return { name: y, hw: 'fixed' in to ? to.fixed : null };
  }

  /** x's size divided (integer floor) or multiplied by k, as a Resize target. */
  scaled(x: V, k: number, op: 'Div' | 'Mul'): OnnxSize {
    if (x.hw) return { fixed: x.hw.map((n) => (op === 'Div' ? Math.floor(n / k) : Math.floor(n * k))) as [number, number] };
    return { value: this.g.op(op, [this.spatial(x), this.g.int64([k])]) };
  }
  sizeOf(x: V): OnnxSize {
    return x.hw ? { fixed: x.hw } : { value: this.spatial(x) };
  }

  /** Generic layers, with a Conv2d followed by a BatchNorm2d folded into one Conv. */
  sequential(x: V, s: Sequential, name: string): V {
    let y = x;
    for (let i = 0; i < s.layers.length; i++) {
      const l = s.layers[i];
      const next = s.layers[i + 1];
      if (isConvBnPair(l, next)) {
        y = this.convBn(y, l, next, `${name}.${i}`);
        i += 1;
      } else y = this.module(l, `${name}.${i}`, y);
    }
    return y;
  }

  /** A conv, or a Sequential ending in one, with the BatchNorm after it folded into that last conv. */
  private convBn(x: V, l: Module, bn: BatchNorm2d, name: string): V {
    if (l instanceof Conv2d) return this.conv(x, l, bn, false, name);
    const s = l as Sequential;
    let y = x;
    s.layers.forEach((layer, i) => { y = i < s.layers.length - 1 ? this.module(layer, `${name}.${i}`, y) : this.convBn(y, layer, bn, `${name}.${i}`); });
    return y;
  }
}
