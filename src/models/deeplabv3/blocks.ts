// DeepLab's blocks as in smp 0.5 (decoders/deeplabv3/decoder.py): the separable convolution, the
// atrous spatial pyramid pooling (ASPP) and its branches. smp never re-initializes them: every layer
// keeps PyTorch's default init, which panseg's layers draw in the same order.
import { F, type Tensor } from '../../engine/index.js';
import {
  AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, type Layer, Module, type OnnxEmitter, type OnnxValue, ReLU, Sequential,
} from '../../nn/index.js';

/** Depthwise k x k conv (no bias) then pointwise 1x1 conv; children '0' and '1' as smp's SeparableConv2d. */
export class SeparableConv2d extends Sequential {
  constructor(inChannels: number, outChannels: number, kernelSize: number, o: { padding?: number; dilation?: number; bias?: boolean } = {}) {
    super(
      new Conv2d(inChannels, inChannels, kernelSize, { padding: o.padding ?? 0, dilation: o.dilation ?? 1, groups: inChannels, bias: false }),
      new Conv2d(inChannels, outChannels, 1, { bias: o.bias ?? true }),
    );
  }
  get depthwise(): Conv2d { return this.at(0) as Conv2d; }
  get pointwise(): Conv2d { return this.at(1) as Conv2d; }
}

/**
 * Sequential(SeparableConv2d, BatchNorm2d, ReLU): smp's ASPPSeparableConv, and DeepLabV3Plus's block2.
 * Inference copies and ONNX fold the BatchNorm into the pointwise conv (models/base/fuse.ts).
 */
export class SeparableConvBnRelu extends Sequential {
  constructor(inChannels: number, outChannels: number, o: { padding: number; dilation?: number }) {
    super(new SeparableConv2d(inChannels, outChannels, 3, { padding: o.padding, dilation: o.dilation ?? 1, bias: false }), new BatchNorm2d(outChannels), new ReLU(true));
  }
}

/**
 * Conv (no bias) -> BatchNorm -> ReLU as a Sequential: smp's ASPPConv (3x3, atrous), and the same layout
 * for the ASPP's 1x1 branch and DeepLabV3Plus's block1.
 */
export class ASPPConv extends Sequential {
  constructor(inChannels: number, outChannels: number, kernelSize: number, dilation = 1) {
    const pad = Math.floor(kernelSize / 2) * dilation;
    super(new Conv2d(inChannels, outChannels, kernelSize, { padding: pad, dilation, bias: false }), new BatchNorm2d(outChannels), new ReLU(true));
  }
}

/**
 * Image pooling branch: global average pool -> 1x1 conv -> BatchNorm -> ReLU, then back to the
 * input's size with bilinear interpolation (alignCorners false, as smp) from 1x1, i.e. a broadcast.
 * In training BatchNorm sees one value per sample and channel: batches of 1 cannot train (the model
 * refuses them).
 */
export class ASPPPooling extends Sequential {
  constructor(inChannels: number, outChannels: number) {
    super(new AdaptiveAvgPool2d(1), new Conv2d(inChannels, outChannels, 1, { bias: false }), new BatchNorm2d(outChannels), new ReLU(true));
  }
  override forward(x: Tensor): Tensor {
    // F.interpolate (not expand) keeps PyTorch's exact numbers: its bilinear weights from a single pixel may round by an ulp.
    return F.interpolate(super.forward(x), { size: [x.shape[2], x.shape[3]], mode: 'bilinear', alignCorners: false });
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    const pooled = e.module(this.at(0), `${name}.0`, x);
    const y = e.conv(pooled, this.at(1) as Conv2d, this.at(2), true, `${name}.1`);
    // Upsampling a 1x1 map is a broadcast: Expand to [N, C, H, W] with H, W taken from x.
    const nc = e.op('Slice', [e.op('Shape', [y.name], null, `${name}.shape_nc`).name, e.int64([0]), e.int64([2])], null, `${name}.nc`);
    const hw = e.op('Slice', [e.op('Shape', [x.name], null, `${name}.shape_hw`).name, e.int64([2]), e.int64([4])], null, `${name}.hw`);
    const shape = e.op('Concat', [nc.name, hw.name], null, `${name}.size`, { axis: 0 });
    return e.op('Expand', [y.name, shape.name], x.hw, `${name}.up`);
  }
}

/** torch.nn.ModuleList: children '0', '1', ... with no forward of its own. */
class ModuleList<M extends Module> extends Module {
  constructor(readonly items: M[]) {
    super();
    items.forEach((m, i) => this.child(String(i), m));
  }
}

export interface ASPPOptions {
  /** The three atrous branches' dilation rates. */
  atrousRates: readonly [number, number, number];
  /** Depthwise-separable atrous branches (smp's ASPPSeparableConv). */
  separable: boolean;
  /** nn.Dropout after the projection. */
  dropout: number;
}

/**
 * Atrous spatial pyramid pooling: a 1x1 branch, three 3x3 atrous branches and the image pooling
 * branch, concatenated (5 x outChannels) and projected back by a 1x1 conv + BatchNorm + ReLU + Dropout.
 * Children `convs.{0..4}` and `project`, as smp.
 */
export class ASPP extends Module {
  private readonly convs: ModuleList<Layer>;
  constructor(inChannels: number, outChannels: number, o: ASPPOptions) {
    super();
    const atrous = (rate: number): Layer => (o.separable ? new SeparableConvBnRelu(inChannels, outChannels, { padding: rate, dilation: rate }) : new ASPPConv(inChannels, outChannels, 3, rate));
    this.convs = this.child('convs', new ModuleList<Layer>([
      new ASPPConv(inChannels, outChannels, 1),
      ...o.atrousRates.map(atrous),
      new ASPPPooling(inChannels, outChannels),
    ]));
    this.child('project', new Sequential(new Conv2d(5 * outChannels, outChannels, 1, { bias: false }), new BatchNorm2d(outChannels), new ReLU(true), new Dropout(o.dropout)));
  }
  forward(x: Tensor): Tensor {
    return this.getChild<Sequential>('project').forward(F.cat(this.convs.items.map((c) => c.forward(x)), 1));
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    const branches = this.convs.items.map((c, i) => e.module(c, `${name}.convs.${i}`, x));
    return e.module(this.getChild('project'), `${name}.project`, { ...e.concat(branches, `${name}.cat`), hw: x.hw });
  }
}
