// PSPNet decoder (smp's PSPDecoder): pyramid pooling over the deepest encoder feature only, a 1x1
// Conv2dReLU to the output width, Dropout2d.
import { fail } from '../../common/errors.js';
import * as v from '../../common/validate.js';
import type { Tensor } from '../../engine/index.js';
import { Dropout2d, Module, type OnnxEmitter, type OnnxValue } from '../../nn/index.js';
import { initDecoder } from '../base/blocks.js';
import { Conv2dReLU, type NormOption } from '../base/conv2d-relu.js';
import { PSP_SIZES, PSPModule } from './blocks.js';

export interface PSPDecoderOptions {
  /** Norm of the pyramid's and the output conv's Conv2dReLU (the bin-1 block never has one). Default 'batchnorm'. */
  useNorm?: NormOption;
  /** Output channels. Default 512. */
  outChannels?: number;
  /** Channel dropout on the output, in [0, 1]. Default 0.2. */
  dropout?: number;
}

export class PSPDecoder extends Module {
  readonly outChannels: number;

  /** encoderChannels: the encoder's outChannels ([input, 1/2, ...]); only the last one is used. */
  constructor(encoderChannels: number[], o: PSPDecoderOptions = {}) {
    super();
    const op = 'PSPDecoder';
    const c = encoderChannels[encoderChannels.length - 1];
    // smp's blocks are c // 4 wide and its output conv expects 2c: the concatenation has that width only when 4 divides c.
    if (!v.isInt(c) || c % PSP_SIZES.length !== 0) fail(op, `the deepest encoder feature must have a multiple of ${PSP_SIZES.length} channels, got ${c}`);
    const useNorm = o.useNorm ?? 'batchnorm';
    this.outChannels = v.int(op, 'outChannels', o.outChannels ?? 512, 1);
    this.child('psp', new PSPModule(c, PSP_SIZES, useNorm));
    this.child('conv', new Conv2dReLU(c * 2, this.outChannels, 1, { useNorm }));
    this.child('dropout', new Dropout2d(v.num(op, 'dropout', o.dropout ?? 0.2, { min: 0, max: 1 })));
    initDecoder(this);
  }

  /** features = [input, 1/2, ...]: the deepest [N, C, h, w] -> [N, outChannels, h, w]. */
  forward(features: Tensor[]): Tensor {
    const x = this.getChild<PSPModule>('psp').forward(features[features.length - 1]);
    return this.getChild<Dropout2d>('dropout').forward(this.getChild<Conv2dReLU>('conv').forward(x));
  }

  /** The eval-mode graph (Dropout2d is the identity). */
  emitOnnx(e: OnnxEmitter, name: string, ...features: OnnxValue[]): OnnxValue {
    const x = e.module(this.getChild('psp'), `${name}.psp`, features[features.length - 1]);
    return e.module(this.getChild('conv'), `${name}.conv`, x);
  }
}
