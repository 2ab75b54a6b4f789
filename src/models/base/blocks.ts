// Blocks shared by architectures: smp's ConvBnRelu and its decoder initialization.
import type { Tensor } from '../../engine/index.js';
import { BatchNorm2d, Conv2d, Layer, type Module, normRelu, type OnnxEmitter, type OnnxValue, init } from '../../nn/index.js';

/** Conv2d (with bias) -> BatchNorm2d -> optional ReLU; children `conv` and `bn`. */
export class ConvBnRelu extends Layer {
  constructor(inC: number, outC: number, kernel: number, readonly addRelu = true) {
    super();
    this.child('conv', new Conv2d(inC, outC, kernel, { padding: Math.floor(kernel / 2) }));
    this.child('bn', new BatchNorm2d(outC));
  }
  forward(x: Tensor): Tensor {
    const bn = this.getChild<Layer>('bn');
    const y = this.getChild<Layer>('conv').forward(x);
    return this.addRelu ? normRelu(bn, y) : bn.forward(y);
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    return e.conv(x, this.getChild<Conv2d>('conv'), this.getChild('bn'), this.addRelu, name);
  }
}

/** smp's decoder init: kaiming uniform (fan_in, relu) convs with zero bias; BatchNorm 1/0. */
export function initDecoder(m: Module): void {
  for (const [, l] of m.namedModules()) {
    if (l instanceof Conv2d) {
      init.kaimingUniform_(l.weight, { mode: 'fan_in', nonlinearity: 'relu' });
      if (l.bias) init.zeros_(l.bias);
    } else if (l instanceof BatchNorm2d) {
      if (l.weight) init.ones_(l.weight);
      if (l.bias) init.zeros_(l.bias);
    }
  }
}
