// Encoders as plain data: name -> structure, channels and preprocessing.
import { fail } from '../../common/errors.js';
import { ResNetEncoder, type ResNetSpec } from './resnet.js';
import type { Encoder, EncoderOptions, Preprocessing } from './types.js';

export interface EncoderEntry {
  family: 'resnet';
  spec: ResNetSpec;
  /** Channels of [input, 1/2, 1/4, 1/8, 1/16, 1/32]. */
  outChannels: number[];
  preprocessing: Record<string, Preprocessing>;
}

const IMAGENET: Preprocessing = { inputSpace: 'RGB', inputRange: [0, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
const BASIC = [3, 64, 64, 128, 256, 512];
const WIDE = [3, 64, 256, 512, 1024, 2048];

export const ENCODERS: Readonly<Record<string, EncoderEntry>> = {
  resnet18: { family: 'resnet', spec: { block: 'basic', layers: [2, 2, 2, 2] }, outChannels: BASIC, preprocessing: { imagenet: IMAGENET } },
  resnet34: { family: 'resnet', spec: { block: 'basic', layers: [3, 4, 6, 3] }, outChannels: BASIC, preprocessing: { imagenet: IMAGENET } },
  resnet50: { family: 'resnet', spec: { block: 'bottleneck', layers: [3, 4, 6, 3] }, outChannels: WIDE, preprocessing: { imagenet: IMAGENET } },
  resnet101: { family: 'resnet', spec: { block: 'bottleneck', layers: [3, 4, 23, 3] }, outChannels: WIDE, preprocessing: { imagenet: IMAGENET } },
  resnet152: { family: 'resnet', spec: { block: 'bottleneck', layers: [3, 8, 36, 3] }, outChannels: WIDE, preprocessing: { imagenet: IMAGENET } },
};

export function encoderNames(): string[] {
  return Object.keys(ENCODERS);
}

export function encoderEntry(name: string): EncoderEntry {
  const e = Object.hasOwn(ENCODERS, name) ? ENCODERS[name] : undefined;
  if (!e) fail('encoder', `unknown encoder '${name}'; valid encoders: ${encoderNames().join(', ')}`);
  return e;
}

/** Builds an encoder by name: `createEncoder('resnet34', { outputStride: 16 })`. */
export function createEncoder(name: string, opts: EncoderOptions = {}): Encoder {
  const e = encoderEntry(name);
  return new ResNetEncoder(e.spec, e.outChannels, opts);
}

/** The input normalization for an encoder's pretrained weights (smp's get_preprocessing_params). */
export function preprocessingParams(name: string, pretrained = 'imagenet'): Preprocessing {
  const e = encoderEntry(name);
  const p = e.preprocessing[pretrained];
  if (!p) fail('preprocessingParams', `encoder '${name}' has no '${pretrained}' weights; available: ${Object.keys(e.preprocessing).join(', ')}`);
  return p;
}
