// The encoder contract every backbone keeps (as smp's EncoderMixin); families share its implementation in base.ts.
import type { Tensor } from '../../engine/index.js';
import type { Module, OnnxEmitter, OnnxValue } from '../../nn/index.js';

export type OutputStride = 8 | 16 | 32;

export interface EncoderOptions {
  /** Input channels (default 3). Other counts patch the first conv as smp does. */
  inChannels?: number;
  /** Number of stages whose features are returned: 3, 4 or 5 (default 5). */
  depth?: 3 | 4 | 5;
  /** 32 (plain), 16 (the 1/32 stage dilated by 2) or 8 (the 1/16 stage by 2, the 1/32 stage by 4). Default 32. */
  outputStride?: OutputStride;
}

export interface Encoder extends Module {
  /** Channels of each returned feature, starting with the input: [3, 64, 64, 128, 256, 512] for resnet34. */
  readonly outChannels: number[];
  /** Spatial reduction of the deepest returned feature: min(outputStride, 2^depth). */
  readonly outputStride: number;
  readonly depth: number;
  /** [input, 1/2, 1/4, 1/8, 1/16, 1/32] (deeper ones dilated per outputStride), depth + 1 entries. */
  features(x: Tensor): Tensor[];
  /**
   * False when the encoder runs faster strided than in oneDNN's blocked layout (MobileNetV2: ATen has no
   * blocked ReLU6, so each one converts and back); inference copies then default to channels-last.
   */
  readonly prefersBlockedLayout?: boolean;
  /** Emits features() into an ONNX graph (absent for encoders that cannot be exported yet). */
  emitOnnxFeatures?(e: OnnxEmitter, x: OnnxValue, name: string): OnnxValue[];
  /** Loads an ImageNet checkpoint in the backbone's torchvision key layout (its classifier's keys ignored). */
  loadImagenet(sd: Map<string, Tensor>): void;
}

/** Input normalization the pretrained weights expect (smp's get_preprocessing_params). */
export interface Preprocessing {
  inputSpace: 'RGB' | 'BGR';
  inputRange: [number, number];
  mean: [number, number, number];
  std: [number, number, number];
}
