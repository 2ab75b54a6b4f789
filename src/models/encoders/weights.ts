// Pretrained encoder weights by name, as smp's `pretrained_settings`: encoder -> weights name ->
// the Hub repo (config.json + model.safetensors) and the revision smp pins. Plain data; users add
// entries with registerEncoderWeights. The files come through io/hub.ts into the Hugging Face cache.
import { existsSync } from 'node:fs';
import { describe, fail, PansegError } from '../../common/errors.js';
import { hubDownloadSync, isRepoId } from '../../io/hub.js';
import { loadWeights } from '../../io/weights.js';
import { encoderNames } from './registry.js';
import type { Encoder } from './types.js';

/** Where a named set of encoder weights lives on the Hub. */
export interface EncoderWeightsSource {
  /** 'org/name', e.g. 'smp-hub/resnet34.imagenet'. */
  repoId: string;
  /** A commit hash (smp pins these), tag or branch. */
  revision: string;
}

const hub = (encoder: string, weights: string, revision: string): EncoderWeightsSource => ({ repoId: `smp-hub/${encoder}.${weights}`, revision });

// smp 0.5's encoders/resnet.py and mobilenet.py, with their pinned revisions.
const WEIGHTS: Record<string, Record<string, EncoderWeightsSource>> = {
  resnet18: {
    imagenet: hub('resnet18', 'imagenet', '3f2325ff978283d47aa6a1d6878ca20565622683'),
    ssl: hub('resnet18', 'ssl', 'd600d5116aac2e6e595f99f40612074c723c00b2'),
    swsl: hub('resnet18', 'swsl', '0e3a35d4d8e344088c14a96eee502a88ac70eae1'),
  },
  resnet34: { imagenet: hub('resnet34', 'imagenet', '7a57b34f723329ff020b3f8bc41771163c519d0c') },
  resnet50: {
    imagenet: hub('resnet50', 'imagenet', '00cb74e366966d59cd9a35af57e618af9f88efe9'),
    ssl: hub('resnet50', 'ssl', 'd07daf5b4377f3700c6ac61906b0aafbc4eca46b'),
    swsl: hub('resnet50', 'swsl', 'b9520cce124f91c6fe7eee45721a2c7954f0d8c0'),
  },
  resnet101: { imagenet: hub('resnet101', 'imagenet', 'cd7c15e8c51da86ae6a084515fdb962d0c94e7d1') },
  resnet152: { imagenet: hub('resnet152', 'imagenet', '951dd835e9d086628e447b484584c8983f9e1dd0') },
  resnext50_32x4d: {
    imagenet: hub('resnext50_32x4d', 'imagenet', '329793c85d62fd340ae42ae39fb905a63df872e7'),
    ssl: hub('resnext50_32x4d', 'ssl', '9b67cff77d060c7044493a58c24d1007c1eb06c3'),
    swsl: hub('resnext50_32x4d', 'swsl', '52e6e49da61b8e26ca691e1aef2cbb952884057d'),
  },
  resnext101_32x4d: {
    ssl: hub('resnext101_32x4d', 'ssl', 'b39796c8459084d13523b7016c3ef13a2e9e472b'),
    swsl: hub('resnext101_32x4d', 'swsl', '3f8355b4892a31f001a832b49b2b01484d48516a'),
  },
  resnext101_32x8d: {
    imagenet: hub('resnext101_32x8d', 'imagenet', '221af6198d03a4ee88992f78a1ee81b46a52d339'),
    instagram: hub('resnext101_32x8d', 'instagram', '44cd927aa6e64673ffe9d31230bad44abc18b823'),
    ssl: hub('resnext101_32x8d', 'ssl', '723a95ddeed335c9488c37c6cbef13d779ac8f97'),
    swsl: hub('resnext101_32x8d', 'swsl', '58cf0bb65f91365470398080d9588b187d1777c4'),
  },
  resnext101_32x16d: {
    instagram: hub('resnext101_32x16d', 'instagram', '64e8e320eeae6501185b0627b2429a68e52d050c'),
    ssl: hub('resnext101_32x16d', 'ssl', '1283fe03fbb6aa2599b2df24095255acb93c3d5c'),
    swsl: hub('resnext101_32x16d', 'swsl', '30ba61bbd4d6af0d955c513dbb4f557b84eb094f'),
  },
  resnext101_32x32d: { instagram: hub('resnext101_32x32d', 'instagram', 'c9405de121fdaa275a89de470fb19409e3eeaa86') },
  resnext101_32x48d: { instagram: hub('resnext101_32x48d', 'instagram', '53e61a962b824ad7027409821f9ac3e3336dd024') },
  mobilenet_v2: { imagenet: hub('mobilenet_v2', 'imagenet', 'e67aa804e17f7b404b629127eabbd224c4e0690b') },
};

const NAME = /^[A-Za-z0-9][\w.-]*$/;

/**
 * Registers (or replaces) a named set of weights for an encoder: a Hub repo holding config.json and
 * model.safetensors with the encoder's state_dict keys.
 * @example
 * registerEncoderWeights('resnet34', 'my-lab', { repoId: 'my-lab/resnet34.ct-scans', revision: 'v1' });
 * const model = createModel('unet', { encoderName: 'resnet34', encoderWeights: 'my-lab' });
 */
export function registerEncoderWeights(encoder: string, name: string, source: EncoderWeightsSource): void {
  const op = 'registerEncoderWeights';
  if (typeof encoder !== 'string' || !encoderNames().includes(encoder)) fail(op, `unknown encoder ${describe(encoder)}; valid encoders: ${encoderNames().join(', ')}`);
  if (typeof name !== 'string' || !NAME.test(name) || /\.(safetensors|pth|pt|bin|ckpt)$/i.test(name)) fail(op, `expected a weights name like 'imagenet' (letters, digits, '_', '-', '.'; not a file name) but received ${describe(name)}`);
  if (typeof source !== 'object' || source === null) fail(op, `expected { repoId, revision } but received ${describe(source)}`);
  if (!isRepoId(source.repoId)) fail(op, `expected a Hub repo id like 'org/name' for repoId but received ${describe(source.repoId)}`);
  if (typeof source.revision !== 'string' || !source.revision) fail(op, `expected a branch, tag or commit hash for revision but received ${describe(source.revision)}`);
  (WEIGHTS[encoder] ??= {})[name] = { repoId: source.repoId, revision: source.revision };
}

/** The weights names an encoder has ('imagenet', 'ssl', ...), in registry order. */
export function encoderWeightsNames(encoder: string): string[] {
  return Object.keys(WEIGHTS[encoder] ?? {});
}

/** The Hub source of an encoder's named weights, or undefined. */
export function encoderWeightsSource(encoder: string, name: string): EncoderWeightsSource | undefined {
  const e = Object.hasOwn(WEIGHTS, encoder) ? WEIGHTS[encoder] : undefined;
  const src = e && Object.hasOwn(e, name) ? e[name] : undefined;
  return src ? { ...src } : undefined;
}

/** A value that can only be meant as a file: it has a folder or a weight-file extension, or exists. */
const looksLikePath = (s: string): boolean => /[/\\]/.test(s) || /\.(safetensors|pth|pt|bin|ckpt)$/i.test(s) || existsSync(s);

/**
 * The local file for `encoderWeights`: a registered name ('imagenet') is downloaded from the Hub
 * into its cache (or found there); anything else is a path to a .safetensors/.pth file.
 */
export function encoderWeightsFile(encoder: string, weights: string, op = 'encoderWeights'): string {
  const src = encoderWeightsSource(encoder, weights);
  if (src) {
    // smp fetches config.json too (preprocessing); doing the same keeps the two caches identical.
    hubDownloadSync(src.repoId, 'config.json', { revision: src.revision, op });
    return hubDownloadSync(src.repoId, 'model.safetensors', { revision: src.revision, op }).path;
  }
  if (looksLikePath(weights)) return weights;
  const names = encoderWeightsNames(encoder);
  return fail(op, `'${weights}' is neither a weights name of ${encoder} (${names.length ? `available: ${names.join(', ')}` : 'it has none registered'}) nor a weight file (.safetensors, .pth, .pt, .bin)`);
}

/**
 * Loads `weights` (a registered name or a file) into `encoder` with its `loadImagenet`. BatchNorm
 * counters (`num_batches_tracked`) the file lacks, as torchvision files before 0.4 and the Hub's
 * converted ones do, start at 0 as PyTorch fills them.
 */
export function loadEncoderWeights(encoder: Encoder, encoderName: string, weights: string): void {
  const path = encoderWeightsFile(encoderName, weights);
  const sd = loadWeights(path);
  try {
    for (const [k, t] of encoder.stateDict()) if (k.endsWith('.num_batches_tracked') && !sd.has(k)) sd.set(k, t.clone().zero_());
    encoder.loadImagenet(sd);
  } catch (e) {
    if (!(e instanceof PansegError) || path === weights) throw e;
    fail('encoderWeights', `'${weights}' (${path}): ${e.message}`);
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}
