// FPN decoder (smp's FPNDecoder): a top-down pyramid over the four deepest encoder features, each
// level turned into a segmentation branch at the finest level's resolution, merged, then Dropout2d.
import { fail } from '../../common/errors.js';
import * as v from '../../common/validate.js';
import type { Tensor } from '../../engine/index.js';
import { Conv2d, Dropout2d, Module, type OnnxEmitter, type OnnxValue } from '../../nn/index.js';
import { initDecoder } from '../base/blocks.js';
import { FPNBlock, type FPNInterpolation, MergeBlock, type MergePolicy, SegmentationBlock } from './blocks.js';

export interface FPNDecoderOptions {
  /** Channels of the pyramid levels (default 256). */
  pyramidChannels?: number;
  /** Channels of each segmentation branch, a multiple of 32 for GroupNorm(32) (default 128). */
  segmentationChannels?: number;
  /** Channel dropout on the merged map (default 0.2). */
  dropout?: number;
  /** Default 'add'; 'cat' gives 4 x segmentationChannels out. */
  mergePolicy?: MergePolicy;
  /** How each pyramid level is upsampled x2 (default 'nearest'). */
  interpolation?: FPNInterpolation;
}

/** Children '0', '1', ... held but not chained, as torch.nn.ModuleList. */
class ModuleList<M extends Module> extends Module {
  constructor(readonly items: M[]) {
    super();
    items.forEach((m, i) => this.child(String(i), m));
  }
}

/** The pyramid levels' branch depths, deepest level first: each upsamples until it reaches the finest level. */
const UPSAMPLES = [3, 2, 1, 0];

export class FPNDecoder extends Module {
  /** Channels of the merged map the head receives. */
  readonly outChannels: number;
  /** The features go straight into 1x1 convolutions, which take oneDNN-blocked tensors. */
  readonly acceptsBlockedFeatures = true;
  private readonly segBlocks: ModuleList<SegmentationBlock>;

  /**
   * encoderChannels: the encoder's outChannels ([input, 1/2, ...], depth + 1 entries). As smp, the four
   * last features are the pyramid's inputs whatever the depth: at depth 4 the finest level is the 1/2
   * feature, at depth 3 the input itself.
   */
  constructor(encoderChannels: number[], readonly depth: number, o: FPNDecoderOptions = {}) {
    super();
    const op = 'FPNDecoder';
    if (!Number.isInteger(depth) || depth < 3) fail(op, `encoder depth must be at least 3, got ${depth}`);
    if (encoderChannels.length < depth + 1) fail(op, `expected ${depth + 1} encoder channel counts for depth ${depth}, got [${encoderChannels.join(', ')}]`);
    const pyramid = v.int(op, 'pyramidChannels', o.pyramidChannels ?? 256, 1);
    const seg = v.int(op, 'segmentationChannels', o.segmentationChannels ?? 128, 1);
    if (seg % 32 !== 0) fail(op, `segmentationChannels must be a multiple of 32 (GroupNorm uses 32 groups), got ${seg}`);
    const policy = o.mergePolicy ?? 'add';
    const mode = o.interpolation ?? 'nearest';
    const ch = encoderChannels.slice(0, depth + 1).reverse(); // deepest first
    this.child('p5', new Conv2d(ch[0], pyramid, 1));
    this.child('p4', new FPNBlock(pyramid, ch[1], mode));
    this.child('p3', new FPNBlock(pyramid, ch[2], mode));
    this.child('p2', new FPNBlock(pyramid, ch[3], mode));
    this.segBlocks = this.child('seg_blocks', new ModuleList(UPSAMPLES.map((n) => new SegmentationBlock(pyramid, seg, n))));
    this.child('merge', new MergeBlock(policy));
    this.child('dropout', new Dropout2d(v.num(op, 'dropout', o.dropout ?? 0.2, { min: 0, max: 1 })));
    this.outChannels = policy === 'add' ? seg : seg * 4;
    initDecoder(this);
  }

  /** features = [input, 1/2, 1/4, ...] (depth + 1 entries) -> the merged map at the finest level's size. */
  forward(features: Tensor[]): Tensor {
    const [c2, c3, c4, c5] = features.slice(-4);
    const p5 = this.getChild<Conv2d>('p5').forward(c5);
    const p4 = this.getChild<FPNBlock>('p4').forward(p5, c4);
    const p3 = this.getChild<FPNBlock>('p3').forward(p4, c3);
    const p2 = this.getChild<FPNBlock>('p2').forward(p3, c2);
    const branches = [p5, p4, p3, p2].map((p, i) => this.segBlocks.items[i].forward(p));
    return this.getChild<Dropout2d>('dropout').forward(this.getChild<MergeBlock>('merge').forward(branches));
  }

  /** The eval-mode graph (Dropout2d is the identity). */
  emitOnnx(e: OnnxEmitter, name: string, ...features: OnnxValue[]): OnnxValue {
    const [c2, c3, c4, c5] = features.slice(-4);
    const p5 = e.conv(c5, this.getChild<Conv2d>('p5'), null, false, `${name}.p5`);
    const p4 = e.module(this.getChild('p4'), `${name}.p4`, p5, c4);
    const p3 = e.module(this.getChild('p3'), `${name}.p3`, p4, c3);
    const p2 = e.module(this.getChild('p2'), `${name}.p2`, p3, c2);
    const branches = [p5, p4, p3, p2].map((p, i) => e.module(this.segBlocks.items[i], `${name}.seg_blocks.${i}`, p));
    return e.module(this.getChild('merge'), `${name}.merge`, ...branches);
  }
}
