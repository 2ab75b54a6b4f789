// ResNet and ResNeXt encoders with torchvision's module names (conv1, bn1, layer1..4, downsample.0/.1),
// as smp's ResNetEncoder: stages layer3 (1/16) and layer4 (1/32), the classifier fc dropped.
import type { Tensor } from '../../engine/index.js';
import { BatchNorm2d, Conv2d, init, Layer, MaxPool2d, type Module, normRelu, type OnnxEmitter, type OnnxValue, ReLU, Sequential } from '../../nn/index.js';
import { EncoderBase } from './base.js';
import type { EncoderOptions } from './types.js';

export interface ResNetSpec {
  block: 'basic' | 'bottleneck';
  layers: [number, number, number, number];
  /** Grouped 3x3 convs in bottlenecks (ResNeXt's cardinality). Default 1. */
  groups?: number;
  /** Bottleneck width per group (ResNeXt's 4 in 32x4d). Default 64: plain ResNet. */
  widthPerGroup?: number;
}

const conv3x3 = (i: number, o: number, stride = 1, groups = 1) => new Conv2d(i, o, 3, { stride, padding: 1, groups, bias: false });
const conv1x1 = (i: number, o: number, stride = 1) => new Conv2d(i, o, 1, { stride, bias: false });

class BasicBlock extends Layer {
  static readonly expansion = 1;
  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential | null) {
    super();
    this.child('conv1', conv3x3(inplanes, planes, stride));
    this.child('bn1', new BatchNorm2d(planes));
    this.child('relu', new ReLU(true));
    this.child('conv2', conv3x3(planes, planes));
    this.child('bn2', new BatchNorm2d(planes));
    if (downsample) this.child('downsample', downsample);
  }
  forward(x: Tensor): Tensor {
    const c = (n: string) => this.getChild<Layer>(n);
    const out = c('bn2').forward(c('conv2').forward(normRelu(c('bn1'), c('conv1').forward(x))));
    const identity = this._children.has('downsample') ? c('downsample').forward(x) : x;
    return out.add_(identity).relu_();
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    return emitResidual(this, e, name, x);
  }
}

/** torchvision's Bottleneck (v1.5: the stride on the 3x3 conv); width = planes * widthPerGroup / 64 * groups. */
class Bottleneck extends Layer {
  static readonly expansion = 4;
  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential | null, groups = 1, widthPerGroup = 64) {
    super();
    const width = Math.floor(planes * (widthPerGroup / 64)) * groups;
    this.child('conv1', conv1x1(inplanes, width));
    this.child('bn1', new BatchNorm2d(width));
    this.child('conv2', conv3x3(width, width, stride, groups));
    this.child('bn2', new BatchNorm2d(width));
    this.child('conv3', conv1x1(width, planes * 4));
    this.child('bn3', new BatchNorm2d(planes * 4));
    this.child('relu', new ReLU(true));
    if (downsample) this.child('downsample', downsample);
  }
  forward(x: Tensor): Tensor {
    const c = (n: string) => this.getChild<Layer>(n);
    let out = normRelu(c('bn1'), c('conv1').forward(x));
    out = normRelu(c('bn2'), c('conv2').forward(out));
    out = c('bn3').forward(c('conv3').forward(out));
    const identity = this._children.has('downsample') ? c('downsample').forward(x) : x;
    return out.add_(identity).relu_();
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    return emitResidual(this, e, name, x);
  }
}

/** A basic or bottleneck block in ONNX: conv/bn pairs folded, ReLU after all but the last, residual add. */
function emitResidual(b: Module, e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
  const n = b._children.has('conv3') ? 3 : 2;
  let y = x;
  for (let k = 1; k <= n; k++) y = e.conv(y, b.getChild<Conv2d>(`conv${k}`), b.getChild(`bn${k}`), k < n, `${name}.conv${k}`);
  const identity = b._children.has('downsample') ? e.module(b.getChild('downsample'), `${name}.downsample`, x) : x;
  return e.relu(e.add(y, identity, `${name}.add`), `${name}.relu`);
}

export class ResNetEncoder extends EncoderBase {
  protected readonly classifierKeys = ['fc.'];

  constructor(readonly spec: ResNetSpec, outChannels: readonly number[], opts: EncoderOptions = {}) {
    super('ResNetEncoder', outChannels, opts);
    const basic = spec.block === 'basic';
    const expansion = basic ? BasicBlock.expansion : Bottleneck.expansion;
    const block = (inplanes: number, planes: number, stride: number, down: Sequential | null): Layer => (basic
      ? new BasicBlock(inplanes, planes, stride, down)
      : new Bottleneck(inplanes, planes, stride, down, spec.groups ?? 1, spec.widthPerGroup ?? 64));
    let inplanes = 64;
    // Built in torchvision's order so seeded init draws the same numbers.
    this.child('conv1', new Conv2d(3, 64, 7, { stride: 2, padding: 3, bias: false }));
    this.child('bn1', new BatchNorm2d(64));
    this.child('relu', new ReLU(true));
    this.child('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 }));
    // All four layers exist even for depth < 5: smp keeps them, so its checkpoints carry them.
    [64, 128, 256, 512].forEach((planes, i) => {
      const stride = i === 0 ? 1 : 2;
      const out = planes * expansion;
      const down = stride !== 1 || inplanes !== out ? new Sequential(conv1x1(inplanes, out, stride), new BatchNorm2d(out)) : null;
      const blocks: Layer[] = [block(inplanes, planes, stride, down)];
      inplanes = out;
      for (let b = 1; b < spec.layers[i]; b++) blocks.push(block(inplanes, planes, 1, null));
      this.child(`layer${i + 1}`, new Sequential(...blocks));
    });
    // torchvision's init: kaiming normal (fan_out, relu) for convs; BatchNorm 1/0 is already the default.
    for (const [, m] of this.namedModules()) if (m instanceof Conv2d) init.kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
    this.finishConstruction();
  }

  stages(): Map<16 | 32, Module[]> {
    return new Map([[16, [this.getChild('layer3')]], [32, [this.getChild('layer4')]]]);
  }

  features(x: Tensor): Tensor[] {
    const c = (n: string) => this.getChild<Layer>(n);
    const feats = [x];
    let y = normRelu(c('bn1'), c('conv1').forward(x));
    feats.push(y);
    y = c('layer1').forward(c('maxpool').forward(y));
    feats.push(y);
    for (let stage = 3; stage <= this.depth; stage++) {
      y = c(`layer${stage - 1}`).forward(y);
      feats.push(y);
    }
    return feats;
  }

  emitOnnxFeatures(e: OnnxEmitter, x: OnnxValue, name: string): OnnxValue[] {
    const feats = [x];
    let y = e.conv(x, this.getChild<Conv2d>('conv1'), this.getChild('bn1'), true, `${name}.conv1`);
    feats.push(y);
    y = e.module(this.getChild('maxpool'), `${name}.maxpool`, y);
    for (let stage = 1; stage < this.depth; stage++) {
      y = e.module(this.getChild(`layer${stage}`), `${name}.layer${stage}`, y);
      feats.push(y);
    }
    return feats;
  }
}
