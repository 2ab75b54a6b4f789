// Encoders as plain data: name -> family + the family's spec, channels and preprocessing (smp's
// `encoders` table). A family is one class (see base.ts); adding one is a file and a line in FAMILIES.
import { fail } from '../../common/errors.js';
import { MobileNetV2Encoder } from './mobilenet.js';
import { ResNetEncoder } from './resnet.js';
import type { Encoder, EncoderOptions, Preprocessing } from './types.js';

/** Encoder families by name: each builds from its spec, the entry's outChannels and the options. */
const FAMILIES = {
  resnet: ResNetEncoder,
  mobilenet: MobileNetV2Encoder,
} as const;

export type EncoderFamily = keyof typeof FAMILIES;
type SpecOf<F extends EncoderFamily> = ConstructorParameters<(typeof FAMILIES)[F]>[0];

export type EncoderEntry = { [F in EncoderFamily]: {
  family: F;
  spec: SpecOf<F>;
  /** Channels of [input, 1/2, 1/4, 1/8, 1/16, 1/32]. */
  outChannels: number[];
  /** By weights name (smp's pretrained_settings keys): the input normalization those weights expect. */
  preprocessing: Record<string, Preprocessing>;
} }[EncoderFamily];

const IMAGENET: Preprocessing = { inputSpace: 'RGB', inputRange: [0, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
// smp's ssl/swsl (Yalniz et al.) and instagram (Mahajan et al.) weights take ImageNet's normalization too.
const only = (...names: string[]) => Object.fromEntries(names.map((n) => [n, IMAGENET]));
const BASIC = [3, 64, 64, 128, 256, 512];
const WIDE = [3, 64, 256, 512, 1024, 2048];

export const ENCODERS: Readonly<Record<string, EncoderEntry>> = {
  resnet18: { family: 'resnet', spec: { block: 'basic', layers: [2, 2, 2, 2] }, outChannels: BASIC, preprocessing: only('imagenet', 'ssl', 'swsl') },
  resnet34: { family: 'resnet', spec: { block: 'basic', layers: [3, 4, 6, 3] }, outChannels: BASIC, preprocessing: only('imagenet') },
  resnet50: { family: 'resnet', spec: { block: 'bottleneck', layers: [3, 4, 6, 3] }, outChannels: WIDE, preprocessing: only('imagenet', 'ssl', 'swsl') },
  resnet101: { family: 'resnet', spec: { block: 'bottleneck', layers: [3, 4, 23, 3] }, outChannels: WIDE, preprocessing: only('imagenet') },
  resnet152: { family: 'resnet', spec: { block: 'bottleneck', layers: [3, 8, 36, 3] }, outChannels: WIDE, preprocessing: only('imagenet') },
  resnext50_32x4d: {
    family: 'resnet', spec: { block: 'bottleneck', layers: [3, 4, 6, 3], groups: 32, widthPerGroup: 4 }, outChannels: WIDE, preprocessing: only('imagenet', 'ssl', 'swsl'),
  },
  resnext101_32x4d: {
    family: 'resnet', spec: { block: 'bottleneck', layers: [3, 4, 23, 3], groups: 32, widthPerGroup: 4 }, outChannels: WIDE, preprocessing: only('ssl', 'swsl'),
  },
  resnext101_32x8d: {
    family: 'resnet', spec: { block: 'bottleneck', layers: [3, 4, 23, 3], groups: 32, widthPerGroup: 8 }, outChannels: WIDE, preprocessing: only('imagenet', 'instagram', 'ssl', 'swsl'),
  },
  resnext101_32x16d: {
    family: 'resnet', spec: { block: 'bottleneck', layers: [3, 4, 23, 3], groups: 32, widthPerGroup: 16 }, outChannels: WIDE, preprocessing: only('instagram', 'ssl', 'swsl'),
  },
  resnext101_32x32d: {
    family: 'resnet', spec: { block: 'bottleneck', layers: [3, 4, 23, 3], groups: 32, widthPerGroup: 32 }, outChannels: WIDE, preprocessing: only('instagram'),
  },
  resnext101_32x48d: {
    family: 'resnet', spec: { block: 'bottleneck', layers: [3, 4, 23, 3], groups: 32, widthPerGroup: 48 }, outChannels: WIDE, preprocessing: only('instagram'),
  },
  mobilenet_v2: { family: 'mobilenet', spec: {}, outChannels: [3, 16, 24, 32, 96, 1280], preprocessing: only('imagenet') },
};

export function encoderNames(): string[] {
  return Object.keys(ENCODERS);
}

export function encoderEntry(name: string): EncoderEntry {
  const e = Object.hasOwn(ENCODERS, name) ? ENCODERS[name] : undefined;
  if (!e) fail('encoder', `unknown encoder '${name}'; valid encoders: ${encoderNames().join(', ')}`);
  return e;
}

/** Builds an encoder by name: `createEncoder('mobilenet_v2', { outputStride: 16 })`. */
export function createEncoder(name: string, opts: EncoderOptions = {}): Encoder {
  const e = encoderEntry(name);
  const Family = FAMILIES[e.family] as new (spec: typeof e.spec, outChannels: number[], o: EncoderOptions) => Encoder;
  return new Family(e.spec, e.outChannels, opts);
}

/**
 * The input normalization for an encoder's pretrained weights (smp's get_preprocessing_params).
 * `pretrained` defaults to 'imagenet', or to the encoder's first weights when it has no ImageNet ones
 * (resnext101_32x4d: 'ssl'), so that every model has a normalization.
 */
export function preprocessingParams(name: string, pretrained?: string): Preprocessing {
  const e = encoderEntry(name);
  const available = Object.keys(e.preprocessing);
  if (pretrained === undefined) pretrained = available.includes('imagenet') ? 'imagenet' : available[0];
  const p = e.preprocessing[pretrained];
  if (!p) fail('preprocessingParams', `encoder '${name}' has no '${pretrained}' weights; available: ${Object.keys(e.preprocessing).join(', ')}`);
  return p;
}
