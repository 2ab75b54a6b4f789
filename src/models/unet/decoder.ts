// Unet decoder as smp >= 0.5 (decoders/unet/decoder.py): from the deepest feature up, each block
// resamples to the next skip's size (the input's for the last block) and fuses the skip. smp <= 0.4
// upsampled by a fixed factor 2 instead; 0.5 matches it on sizes divisible by 2^depth and also takes
// any other size (its Unet sets requires_divisible_input_shape = False).
import { fail } from '../../common/errors.js';
import type { Tensor } from '../../engine/index.js';
import { Identity, type Layer, Module, type OnnxEmitter, type OnnxValue } from '../../nn/index.js';
import { initDecoder } from '../base/blocks.js';
import type { NormOption } from '../base/conv2d-relu.js';
import { type UnetAttention, UnetCenterBlock, UnetDecoderBlock, type UnetInterpolation } from './blocks.js';

export interface UnetDecoderOptions {
  /** Default 'batchnorm'. */
  useNorm?: NormOption;
  /** Default null. */
  attention?: UnetAttention | null;
  /** Default 'nearest'. */
  interpolation?: UnetInterpolation;
  /** Two convs on the deepest feature before the blocks (smp: vgg encoders only). Default false. */
  addCenterBlock?: boolean;
}

export class UnetDecoder extends Module {
  readonly blocks: UnetDecoderBlock[];

  /**
   * @param encoderChannels the encoder's outChannels, input first ([3, 64, 64, 128, 256, 512]).
   * @param decoderChannels one output width per block; as many blocks as encoder stages.
   */
  constructor(encoderChannels: number[], decoderChannels: number[], o: UnetDecoderOptions = {}) {
    super();
    const depth = encoderChannels.length - 1;
    if (decoderChannels.length !== depth) fail('UnetDecoder', `model depth is ${depth}, but decoderChannels has ${decoderChannels.length} entries; give one per encoder stage`);
    const enc = encoderChannels.slice(1).reverse(); // the input itself is no skip; deepest first
    const head = enc[0];
    const ins = [head, ...decoderChannels.slice(0, -1)];
    const skips = [...enc.slice(1), 0];
    const useNorm = o.useNorm ?? 'batchnorm';
    this.child('center', o.addCenterBlock ? new UnetCenterBlock(head, head, useNorm) : new Identity());
    const list = this.child('blocks', new BlockList());
    this.blocks = decoderChannels.map((out, i) => list.add(new UnetDecoderBlock(ins[i], skips[i], out, {
      useNorm, attention: o.attention ?? null, interpolation: o.interpolation ?? 'nearest',
    })));
    initDecoder(this);
  }

  /** features: [input, 1/2, 1/4, ..., deepest] (depth + 1 entries) -> [N, decoderChannels[-1], H, W]. */
  forward(features: Tensor[]): Tensor {
    if (features.length !== this.blocks.length + 1) fail('UnetDecoder', `expected ${this.blocks.length + 1} features (the input and one per stage), got ${features.length}`);
    const f = features.slice(1).reverse();
    let x = this.getChild<Layer>('center').forward(f[0]);
    this.blocks.forEach((block, i) => {
      const target = features[features.length - 2 - i]; // the skip's size; the input's for the last block
      x = block.forward(x, [target.shape[2], target.shape[3]], f[i + 1]);
    });
    return x;
  }

  emitOnnx(e: OnnxEmitter, name: string, ...features: OnnxValue[]): OnnxValue {
    const f = features.slice(1).reverse();
    let x = e.module(this.getChild('center'), `${name}.center`, f[0]);
    this.blocks.forEach((block, i) => {
      x = block.emitOnnx(e, `${name}.blocks.${i}`, x, features[features.length - 2 - i], f[i + 1]);
    });
    return x;
  }
}

/** torch.nn.ModuleList: children "0", "1", ... with no forward of its own. */
class BlockList extends Module {
  add<M extends Module>(m: M): M {
    return this.child(String(this._children.size), m);
  }
}
