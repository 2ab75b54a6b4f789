// PAN decoder: FPA on the deepest feature, then GAU steps up to 1/4 resolution.
import { fail } from '../../common/errors.js';
import type { Tensor } from '../../engine/index.js';
import { Module, type OnnxEmitter, type OnnxValue } from '../../nn/index.js';
import { initDecoder } from '../base/blocks.js';
import { FPABlock, type FPATrace, GAUBlock, type GAUTrace } from './blocks.js';

export type DecoderInterpolation = 'bilinear' | 'nearest' | 'bicubic' | 'nearest-exact';

/** Attention captured during one forward pass (see `PAN.forwardWithAttention`). */
export interface AttentionTrace {
  fpa?: FPATrace;
  /** GAU channel weights [N, C, 1, 1] by block name, deepest first (gau3, gau2, gau1). */
  gau: Record<string, Tensor>;
  /** Each GAU's inputs to the sum (deep feature, low-level feature before gating, upsampled path), by block name. */
  gauParts?: Record<string, GAUTrace>;
}

export class PANDecoder extends Module {
  readonly gauNames: string[];
  /** FPA and the GAUs open with convolutions and pooling: blocked encoder features go in as they are. */
  readonly acceptsBlockedFeatures = true;

  constructor(encoderChannels: number[], readonly depth: number, readonly channels: number, mode: DecoderInterpolation) {
    super();
    if (depth < 3) fail('PANDecoder', `encoder depth must be at least 3, got ${depth}`);
    const ch = encoderChannels.slice(2); // 1/4 and deeper
    this.child('fpa', new FPABlock(ch[ch.length - 1], channels));
    this.gauNames = [];
    if (depth === 5) this.gauNames.push('gau3');
    if (depth >= 4) this.gauNames.push('gau2');
    this.gauNames.push('gau1');
    for (const name of this.gauNames) {
      const level = Number(name.slice(3)) - 1; // gau1 -> 1/4 feature, gau2 -> 1/8, gau3 -> 1/16
      this.child(name, new GAUBlock(ch[level], channels, mode));
    }
    initDecoder(this);
  }

  forward(features: Tensor[], trace?: AttentionTrace): Tensor {
    const f = features.slice(2);
    let out = this.getChild<FPABlock>('fpa').forward(f[f.length - 1], trace && ((t) => { trace.fpa = t; }));
    for (const name of this.gauNames) {
      const level = Number(name.slice(3)) - 1;
      out = this.getChild<GAUBlock>(name).forward(f[level], out, trace && ((w, parts) => { trace.gau[name] = w; (trace.gauParts ??= {})[name] = parts; }));
    }
    return out;
  }

  emitOnnx(e: OnnxEmitter, name: string, ...features: OnnxValue[]): OnnxValue {
    const f = features.slice(2);
    let out = e.module(this.getChild('fpa'), `${name}.fpa`, f[f.length - 1]);
    for (const g of this.gauNames) out = e.module(this.getChild(g), `${name}.${g}`, f[Number(g.slice(3)) - 1], out);
    return out;
  }
}
