// PAN -> ONNX: walks the module tree (encoder -> decoder -> heads) and emits one ONNX node per op,
// with every BatchNorm folded into the conv before it. Eval-mode semantics: BN uses running stats,
// dropout is the identity.
import { fail } from '../common/errors.js';
import { type Tensor, tidy } from '../engine/index.js';
import { ResNetEncoder } from '../models/encoders/resnet.js';
import { foldedConvBnParams } from '../models/fuse.js';
import { ConvBnRelu, FPABlock, GAUBlock } from '../models/pan/blocks.js';
import type { DecoderInterpolation } from '../models/pan/decoder.js';
import type { PAN } from '../models/pan/model.js';
import {
  AdaptiveAvgPool2d, AdaptiveMaxPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Identity, type Layer, Linear, LogSoftmax, MaxPool2d, type Module, ReLU,
  Sequential, Sigmoid, Softmax, Tanh,
} from '../nn/index.js';
import { attr, GraphBuilder } from './graph.js';
import type { AttrValue, Dim } from './onnx-proto.js';

/** A value in the graph and, in fixed-size mode, its spatial size. */
interface V {
  name: string;
  /** [H, W] when known at export time (fixed-size export), else null. */
  hw: [number, number] | null;
}

/** A Resize target: constant [H, W] or the name of an int64 [2] value computed in the graph. */
type Target = { fixed: [number, number] } | { value: string };

export interface EmitOptions {
  opset: number;
  /** null = symbolic H and W. */
  size: [number, number] | null;
  attention: boolean;
}

export interface EmittedGraph {
  graph: GraphBuilder;
  outputs: { logits: string; labels: string | null; attention: string | null };
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

class PanEmitter {
  readonly g = new GraphBuilder('pan');
  constructor(readonly o: EmitOptions) {}

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

  /** Resizes x to `to` ([H, W]); modes as PyTorch's F.interpolate (align_corners only for bilinear/bicubic). */
  resize(x: V, to: Target, mode: DecoderInterpolation, name: string): V {
    const attrs: Record<string, AttrValue> = ({
      bilinear: { mode: attr.str('linear'), coordinate_transformation_mode: attr.str('align_corners') },
      bicubic: { mode: attr.str('cubic'), coordinate_transformation_mode: attr.str('align_corners'), cubic_coeff_a: attr.float(-0.75) },
      // PyTorch 'nearest': src = floor(dst * in / out).
      nearest: { mode: attr.str('nearest'), coordinate_transformation_mode: attr.str('asymmetric'), nearest_mode: attr.str('floor') },
      // PyTorch 'nearest-exact': src = floor((dst + 0.5) * in / out) = round_prefer_ceil of the half-pixel coordinate.
      'nearest-exact': { mode: attr.str('nearest'), coordinate_transformation_mode: attr.str('half_pixel'), nearest_mode: attr.str('round_prefer_ceil') },
    } as Record<DecoderInterpolation, Record<string, AttrValue>>)[mode];
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
  scaled(x: V, k: number, op: 'Div' | 'Mul'): Target {
    if (x.hw) return { fixed: x.hw.map((n) => (op === 'Div' ? Math.floor(n / k) : Math.floor(n * k))) as [number, number] };
    return { value: this.g.op(op, [this.spatial(x), this.g.int64([k])]) };
  }
  sizeOf(x: V): Target {
    return x.hw ? { fixed: x.hw } : { value: this.spatial(x) };
  }

  /** Generic layers, with a Conv2d followed by a BatchNorm2d folded into one Conv. */
  sequential(x: V, s: Sequential, name: string): V {
    let y = x;
    for (let i = 0; i < s.layers.length; i++) {
      const l = s.layers[i];
      const next = s.layers[i + 1];
      if (l instanceof Conv2d && next instanceof BatchNorm2d) {
        const relu = s.layers[i + 2] instanceof ReLU;
        y = this.conv(y, l, next, relu, `${name}.${i}`);
        i += relu ? 2 : 1;
      } else y = this.layer(y, l, `${name}.${i}`);
    }
    return y;
  }

  layer(x: V, l: Module, name: string): V {
    if (l instanceof ConvBnRelu) return this.conv(x, l.getChild<Conv2d>('conv'), l.getChild<BatchNorm2d>('bn'), l.addRelu, name);
    if (l instanceof Sequential) return this.sequential(x, l, name);
    if (l instanceof Conv2d) return this.conv(x, l, null, false, name);
    if (l instanceof MaxPool2d) return this.maxPool(x, l, name);
    if (l instanceof AdaptiveAvgPool2d || l instanceof AdaptiveMaxPool2d) {
      const size = typeof l.outputSize === 'number' ? [l.outputSize, l.outputSize] : l.outputSize;
      if (size[0] !== 1 || size[1] !== 1) fail('exportOnnx', `${name}: only global (output size 1) adaptive pooling is supported`);
      return { name: this.g.op(l instanceof AdaptiveAvgPool2d ? 'GlobalAveragePool' : 'GlobalMaxPool', [x.name], {}, name), hw: [1, 1] };
    }
    if (l instanceof ReLU) return { name: this.g.op('Relu', [x.name], {}, name), hw: x.hw };
    if (l instanceof Sigmoid) return { name: this.g.op('Sigmoid', [x.name], {}, name), hw: x.hw };
    if (l instanceof Tanh) return { name: this.g.op('Tanh', [x.name], {}, name), hw: x.hw };
    if (l instanceof Softmax || l instanceof LogSoftmax) return { name: this.g.op(l instanceof Softmax ? 'Softmax' : 'LogSoftmax', [x.name], { axis: attr.int(l.dim) }, name), hw: x.hw };
    if (l instanceof Flatten) {
      if (l.startDim !== 1 || (l.endDim !== -1 && l.endDim !== 3)) fail('exportOnnx', `${name}: only Flatten(1, -1) is supported`);
      return { name: this.g.op('Flatten', [x.name], { axis: attr.int(1) }, name), hw: null };
    }
    if (l instanceof Dropout) return x; // eval mode
    if (l instanceof Linear) {
      const inputs = [x.name, this.g.weight(`${name}.weight`, floats(l.weight), [l.outFeatures, l.inFeatures])];
      if (l.bias) inputs.push(this.g.weight(`${name}.bias`, floats(l.bias), [l.outFeatures]));
      return { name: this.g.op('Gemm', inputs, { transB: attr.int(1) }, name), hw: null };
    }
    if (l instanceof Identity) {
      // The segmentation head's bilinear upsampling is an Identity subclass with a `scale`.
      const scale = (l as Identity & { scale?: unknown }).scale;
      if (typeof scale === 'number') {
        if (!Number.isInteger(scale)) fail('exportOnnx', `${name}: a non-integer upsampling ${scale} is not supported`);
        return this.resize(x, this.scaled(x, scale, 'Mul'), 'bilinear', name);
      }
      return x;
    }
    return fail('exportOnnx', `${name}: no ONNX mapping for ${l.constructor.name}`);
  }

  resnetBlock(x: V, b: Module, name: string): V {
    const cb = (k: number, input: V, relu: boolean) => this.conv(input, b.getChild<Conv2d>(`conv${k}`), b.getChild<BatchNorm2d>(`bn${k}`), relu, `${name}.conv${k}`);
    const bottleneck = b._children.has('conv3');
    let y = cb(1, x, true);
    y = cb(2, y, bottleneck);
    if (bottleneck) y = cb(3, y, false);
    let identity = x;
    if (b._children.has('downsample')) {
      const ds = b.getChild<Sequential>('downsample');
      identity = this.conv(x, ds.at(0) as Conv2d, ds.at(1) as BatchNorm2d, false, `${name}.downsample`);
    }
    const sum = this.g.op('Add', [y.name, identity.name], {}, `${name}.add`);
    return { name: this.g.op('Relu', [sum], {}, `${name}.relu`), hw: y.hw };
  }

  /** The encoder's features, as ResNetEncoder.features: [x, 1/2, 1/4, 1/8, ...] up to its depth. */
  encoder(x: V, e: ResNetEncoder): V[] {
    const feats = [x];
    let y = this.conv(x, e.getChild<Conv2d>('conv1'), e.getChild<BatchNorm2d>('bn1'), true, 'encoder.conv1');
    feats.push(y);
    y = this.maxPool(y, e.getChild<MaxPool2d>('maxpool'), 'encoder.maxpool');
    for (let stage = 1; stage < e.depth; stage++) {
      const layer = e.getChild<Sequential>(`layer${stage}`);
      layer.layers.forEach((b, i) => { y = this.resnetBlock(y, b, `encoder.layer${stage}.${i}`); });
      feats.push(y);
    }
    return feats;
  }

  /** FPA; returns the block's output and its 1-channel attention map. */
  fpa(x: V, f: FPABlock, name: string): { out: V; attention: V } {
    const c = (n: string) => f.getChild<Layer>(n);
    // branch1 is [N, C, 1, 1]: PyTorch's align_corners upsampling of a 1x1 map is a broadcast, so Add broadcasts instead.
    const b1 = this.layer(x, c('branch1'), `${name}.branch1`);
    const mid = this.layer(x, c('mid'), `${name}.mid`);
    const x1 = this.layer(x, c('down1'), `${name}.down1`);
    const x2 = this.layer(x1, c('down2'), `${name}.down2`);
    const x3 = this.resize(this.layer(x2, c('down3'), `${name}.down3`), this.scaled(x, 4, 'Div'), 'bilinear', `${name}.up3`);
    const c2 = this.layer(x2, c('conv2'), `${name}.conv2`);
    let y: V = { name: this.g.op('Add', [c2.name, x3.name], {}, `${name}.add2`), hw: c2.hw };
    y = this.resize(y, this.scaled(x, 2, 'Div'), 'bilinear', `${name}.up2`);
    const c1 = this.layer(x1, c('conv1'), `${name}.conv1`);
    y = { name: this.g.op('Add', [y.name, c1.name], {}, `${name}.add1`), hw: y.hw };
    const attention = this.resize(y, this.sizeOf(x), 'bilinear', `${name}.attention`);
    const gated = this.g.op('Mul', [attention.name, mid.name], {}, `${name}.mul`);
    return { out: { name: this.g.op('Add', [gated, b1.name], {}, `${name}.out`), hw: x.hw }, attention };
  }

  gau(x: V, y: V, b: GAUBlock, name: string): V {
    const yUp = this.resize(y, this.sizeOf(x), b.mode, `${name}.up`);
    const weights = this.layer(y, b.getChild('conv1'), `${name}.conv1`);
    const low = this.layer(x, b.getChild('conv2'), `${name}.conv2`);
    const gated = this.g.op('Mul', [low.name, weights.name], {}, `${name}.mul`);
    return { name: this.g.op('Add', [yUp.name, gated], {}, `${name}.out`), hw: x.hw };
  }
}

/** Emits the whole PAN into a GraphBuilder; inputs `input`, outputs `logits` (+ `labels`, `attention`). */
export function emitPan(model: PAN, o: EmitOptions): EmittedGraph {
  const e = new PanEmitter(o);
  const g = e.g;
  const c = model.config;
  if (!(model.encoder instanceof ResNetEncoder)) fail('exportOnnx', `only ResNet encoders can be exported; got ${model.encoder.constructor.name}`);
  const [H, W]: [Dim, Dim] = o.size ?? ['height', 'width'];
  const x: V = { name: g.input('input', ['batch', c.inChannels, H, W]), hw: o.size };

  const feats = e.encoder(x, model.encoder);
  const f = feats.slice(2);
  const fpa = e.fpa(f[f.length - 1], model.decoder.getChild<FPABlock>('fpa'), 'decoder.fpa');
  let out = fpa.out;
  for (const name of model.decoder.gauNames) {
    const level = Number(name.slice(3)) - 1;
    out = e.gau(f[level], out, model.decoder.getChild<GAUBlock>(name), `decoder.${name}`);
  }

  // The head: conv -> upsampling (bilinear, align_corners) -> activation.
  const head = model.segmentationHead;
  let y = e.conv(out, head.at(0) as Conv2d, null, false, 'segmentation_head.0');
  y = e.layer(y, head.at(1), 'segmentation_head.1');
  y = e.layer(y, head.at(2), 'segmentation_head.2');
  const sameSize = c.upsampling === 4;
  const outHW: [Dim, Dim] = y.hw ?? (sameSize ? ['height', 'width'] : ['logits_height', 'logits_width']);
  g.output(y.name, 'logits', ['batch', c.classes, ...outHW], undefined, 'segmentation logits (after the head activation, if any)');

  let labels: string | null = null;
  if (model.classificationHead) {
    const l = e.sequential(feats[feats.length - 1], model.classificationHead, 'classification_head');
    g.output(l.name, 'labels', ['batch', c.auxParams!.classes], undefined, 'auxiliary classification head output');
    labels = 'labels';
  }
  let attention: string | null = null;
  if (o.attention) {
    const a = fpa.attention;
    g.output(a.name, 'attention', ['batch', 1, ...(a.hw ?? ['attention_height', 'attention_width'] as [Dim, Dim])], undefined, "FPA's spatial attention map at the bottleneck size");
    attention = 'attention';
  }
  return { graph: g, outputs: { logits: 'logits', labels, attention } };
}
