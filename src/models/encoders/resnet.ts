// ResNet encoders with torchvision's module names (conv1, bn1, layer1..4, downsample.0/.1),
// dilated exactly as smp's make_dilated does for output strides 16 and 8.
import { fail } from '../../common/errors.js';
import { noGrad, type Tensor, tensor, tidy } from '../../engine/index.js';
import { BatchNorm2d, Conv2d, Layer, MaxPool2d, Module, type OnnxEmitter, type OnnxValue, ReLU, Sequential, init } from '../../nn/index.js';
import type { Encoder, EncoderOptions } from './types.js';

export interface ResNetSpec {
  block: 'basic' | 'bottleneck';
  layers: [number, number, number, number];
}

const conv3x3 = (i: number, o: number, stride = 1) => new Conv2d(i, o, 3, { stride, padding: 1, bias: false });
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
    const out = c('bn2').forward(c('conv2').forward(c('bn1').forward(c('conv1').forward(x)).relu_()));
    const identity = this._children.has('downsample') ? c('downsample').forward(x) : x;
    return out.add_(identity).relu_();
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    return emitResidual(this, e, name, x);
  }
}

class Bottleneck extends Layer {
  static readonly expansion = 4;
  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential | null) {
    super();
    this.child('conv1', conv1x1(inplanes, planes));
    this.child('bn1', new BatchNorm2d(planes));
    this.child('conv2', conv3x3(planes, planes, stride));
    this.child('bn2', new BatchNorm2d(planes));
    this.child('conv3', conv1x1(planes, planes * 4));
    this.child('bn3', new BatchNorm2d(planes * 4));
    this.child('relu', new ReLU(true));
    if (downsample) this.child('downsample', downsample);
  }
  forward(x: Tensor): Tensor {
    const c = (n: string) => this.getChild<Layer>(n);
    let out = c('bn1').forward(c('conv1').forward(x)).relu_();
    out = c('bn2').forward(c('conv2').forward(out)).relu_();
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

/** Makes every conv of `layer` stride 1 with the given dilation, padding (k//2)*dilation (smp's replace_strides_with_dilation). */
function dilate(layer: Module, dilation: number): void {
  for (const [, m] of layer.namedModules()) {
    if (m instanceof Conv2d) {
      m.stride = [1, 1];
      m.dilation = [dilation, dilation];
      m.padding = [Math.floor(m.kernelSize[0] / 2) * dilation, Math.floor(m.kernelSize[1] / 2) * dilation];
    }
  }
}

export class ResNetEncoder extends Module implements Encoder {
  readonly outChannels: number[];
  readonly depth: number;
  readonly outputStride: number;
  readonly inChannels: number;

  constructor(readonly spec: ResNetSpec, outChannels: number[], opts: EncoderOptions = {}) {
    super();
    const depth = opts.depth ?? 5;
    const os = opts.outputStride ?? 32;
    if (![3, 4, 5].includes(depth)) fail('ResNetEncoder', `expected depth 3, 4 or 5 but received ${depth}`);
    if (![8, 16, 32].includes(os)) fail('ResNetEncoder', `expected outputStride 8, 16 or 32 but received ${os}`);
    this.depth = depth;
    this.outputStride = Math.min(os, 2 ** depth);
    this.inChannels = opts.inChannels ?? 3;
    // Feature 0 is the input itself (smp's set_in_channels updates it too).
    this.outChannels = [this.inChannels, ...outChannels.slice(1, depth + 1)];
    const Block = spec.block === 'basic' ? BasicBlock : Bottleneck;
    let inplanes = 64;
    // Built in torchvision's order so seeded init draws the same numbers.
    this.child('conv1', new Conv2d(3, 64, 7, { stride: 2, padding: 3, bias: false }));
    this.child('bn1', new BatchNorm2d(64));
    this.child('relu', new ReLU(true));
    this.child('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 }));
    // All four layers exist even for depth < 5: smp keeps them, so its checkpoints carry them.
    [64, 128, 256, 512].forEach((planes, i) => {
      const stride = i === 0 ? 1 : 2;
      const out = planes * Block.expansion;
      const down = stride !== 1 || inplanes !== out ? new Sequential(conv1x1(inplanes, out, stride), new BatchNorm2d(out)) : null;
      const blocks: Layer[] = [new Block(inplanes, planes, stride, down)];
      inplanes = out;
      for (let b = 1; b < spec.layers[i]; b++) blocks.push(new Block(inplanes, planes, 1, null));
      this.child(`layer${i + 1}`, new Sequential(...blocks));
    });
    // torchvision's init: kaiming normal (fan_out, relu) for convs; BatchNorm 1/0 is already the default.
    for (const [, m] of this.namedModules()) if (m instanceof Conv2d) init.kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
    if (os === 16) dilate(this.getChild('layer4'), 2);
    if (os === 8) { dilate(this.getChild('layer3'), 2); dilate(this.getChild('layer4'), 4); }
    if (this.inChannels !== 3) this.patchFirstConv(false);
  }

  /**
   * smp's patch_first_conv. Random weights: a fresh default-initialized conv with the new channel count.
   * Pretrained: 1 channel sums the RGB kernels; n channels cycle them, scaled by 3/n.
   */
  private patchFirstConv(pretrained: boolean): void {
    const conv = this.getChild<Conv2d>('conv1');
    const n = this.inChannels;
    if (conv.weight.shape[1] === n && !pretrained) return;
    const fresh = new Conv2d(n, 64, 7, { stride: 2, padding: 3, bias: false });
    if (pretrained) {
      const w = tidy(() => noGrad(() => {
        const rgb = conv.weight.shape[1] === 3 ? conv.weight : fail('ResNetEncoder', 'the first conv is already patched');
        if (n === 1) return rgb.sum(1, true);
        const idx = tensor(Array.from({ length: n }, (_, i) => i % 3), [n], { dtype: 'int64' });
        return rgb.indexSelect(1, idx).mul(3 / n);
      }));
      noGrad(() => fresh.weight.copy_(w));
      w.dispose();
    }
    this._children.get('conv1')!.dispose();
    this._children.set('conv1', fresh);
  }

  features(x: Tensor): Tensor[] {
    const c = (n: string) => this.getChild<Layer>(n);
    const feats = [x];
    let y = c('relu').forward(c('bn1').forward(c('conv1').forward(x)));
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

  /** Loads torchvision ResNet weights (resnet34-*.pth), ignoring fc.*; patches conv1 for inChannels != 3. */
  loadImagenet(sd: Map<string, Tensor>): void {
    const own = new Map([...sd].filter(([k]) => !k.startsWith('fc.')));
    if (this.inChannels !== 3) {
      // Load the RGB kernel into a temporary 3-channel conv, then patch it.
      const rgb = new Conv2d(3, 64, 7, { stride: 2, padding: 3, bias: false });
      this._children.get('conv1')!.dispose();
      this._children.set('conv1', rgb);
      this.loadStateDict(own);
      this.patchFirstConv(true);
    } else {
      this.loadStateDict(own);
    }
  }
}
