// What every encoder family shares (smp's EncoderMixin): options checked once, outChannels and
// outputStride by the contract, dilation over the family's declared stages, the first conv patched for
// inChannels != 3, and ImageNet checkpoints loaded with the classifier dropped. A family builds its
// modules, declares stages() and the classifier's key prefixes, and implements features().
import { fail } from '../../common/errors.js';
import type { Tensor } from '../../engine/index.js';
import { type Conv2d, Module, type OnnxEmitter, type OnnxValue } from '../../nn/index.js';
import type { Encoder, EncoderOptions, OutputStride } from './types.js';
import { convLike, findFirstConv, makeDilated, moduleAt, patchFirstConv, replaceModuleAt } from './utils.js';

export abstract class EncoderBase extends Module implements Encoder {
  readonly outChannels: number[];
  readonly depth: number;
  readonly outputStride: number;
  readonly inChannels: number;
  /** The stride asked for (outputStride is this capped at 2^depth). */
  readonly requestedOutputStride: OutputStride;
  /** Path of the conv patched for inChannels != 3 (null when none was). */
  private patchedConv: string | null = null;

  /** `outChannels`: the family's full list [input, 1/2, ..., 1/32]; `op` names the class in errors. */
  protected constructor(op: string, outChannels: readonly number[], opts: EncoderOptions) {
    super();
    const depth = opts.depth ?? 5;
    const os = opts.outputStride ?? 32;
    const inChannels = opts.inChannels ?? 3;
    if (![3, 4, 5].includes(depth)) fail(op, `expected depth 3, 4 or 5 but received ${depth}`);
    if (![8, 16, 32].includes(os)) fail(op, `expected outputStride 8, 16 or 32 but received ${os}`);
    if (!Number.isInteger(inChannels) || inChannels < 1) fail(op, `expected a positive integer for inChannels but received ${inChannels}`);
    this.depth = depth;
    this.requestedOutputStride = os;
    this.outputStride = Math.min(os, 2 ** depth);
    this.inChannels = inChannels;
    // Feature 0 is the input itself (smp's set_in_channels updates it too).
    this.outChannels = [inChannels, ...outChannels.slice(1, depth + 1)];
  }

  /**
   * smp's get_stages: the modules that make the 1/16 and 1/32 stages, keyed by that stride. Output
   * stride 16 dilates the 1/32 stage by 2; 8 dilates the 1/16 stage by 2 and the 1/32 stage by 4.
   */
  abstract stages(): Map<16 | 32, Module[]>;

  /** Key prefixes of the torchvision checkpoint that the encoder has no use for ('fc.', 'classifier.'). */
  protected abstract readonly classifierKeys: readonly string[];

  abstract features(x: Tensor): Tensor[];
  abstract emitOnnxFeatures(e: OnnxEmitter, x: OnnxValue, name: string): OnnxValue[];

  /**
   * Called at the end of a family's constructor, once its modules exist and are initialized: smp's
   * get_encoder order, set_in_channels (the first conv with 3 inputs, random branch) then make_dilated.
   */
  protected finishConstruction(): void {
    if (this.inChannels !== 3) {
      this.patchedConv = findFirstConv(this, 3);
      patchFirstConv(this, this.patchedConv, this.inChannels, false);
    }
    if (this.requestedOutputStride !== 32) makeDilated(this.stages(), this.requestedOutputStride);
  }

  /**
   * Loads an ImageNet checkpoint in the family's torchvision layout (the classifier's keys are
   * ignored; every other key must match). With inChannels != 3 the RGB kernel of the first conv is
   * patched as smp does for pretrained weights (1 channel: summed; n: cycled and scaled by 3 / n).
   */
  loadImagenet(sd: Map<string, Tensor>): void {
    const own = new Map([...sd].filter(([k]) => !this.classifierKeys.some((p) => k.startsWith(p))));
    const path = this.patchedConv;
    if (path === null) {
      this.loadStateDict(own);
      return;
    }
    // Load the RGB kernel into a 3-channel conv in the patched one's place, then patch it again.
    replaceModuleAt(this, path, convLike(moduleAt(this, path) as Conv2d, 3));
    this.loadStateDict(own);
    patchFirstConv(this, path, this.inChannels, true);
  }
}
