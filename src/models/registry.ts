// The architecture registry: plain data, one line per architecture. createModel builds by name;
// loadModel reads an smp save_pretrained directory and dispatches on its `_model_class`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../common/errors.js';
import type { ArchitectureSpec, ResolvedCommon } from './base/config.js';
import { loadPretrainedAs, type SegmentationModel } from './base/model.js';
import { type PansegMeta, readPretrained } from './base/pretrained.js';
import { pretrainedDir, type PretrainedSourceOptions } from './base/pretrained-source.js';
import { DEEPLABV3_SPEC, DEEPLABV3PLUS_SPEC } from './deeplabv3/model.js';
import { FPN_SPEC } from './fpn/model.js';
import { PAN_SPEC } from './pan/model.js';
import { PSPNET_SPEC } from './pspnet/model.js';
import { UNET_SPEC } from './unet/model.js';

const ARCHITECTURES: readonly ArchitectureSpec<any>[] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
  PAN_SPEC,
  UNET_SPEC,
  FPN_SPEC,
  PSPNET_SPEC,
  DEEPLABV3_SPEC,
  DEEPLABV3PLUS_SPEC,
];

/** The registered architectures, in registry order. */
export function architectures(): readonly ArchitectureSpec<ResolvedCommon>[] {
  return ARCHITECTURES;
}

/** CLI ids ('pan', 'unet', ...) of the registered architectures. */
export function architectureIds(): string[] {
  return ARCHITECTURES.map((a) => a.id);
}

/** An architecture by CLI id or smp class name, case-insensitively ('unet', 'Unet', 'FPN'). */
export function architecture(name: string): ArchitectureSpec<ResolvedCommon> {
  const key = typeof name === 'string' ? name.toLowerCase() : '';
  const spec = ARCHITECTURES.find((a) => a.id === key || a.name.toLowerCase() === key);
  if (!spec) fail('createModel', `unknown architecture '${String(name)}'; valid architectures: ${architectureIds().join(', ')}`);
  return spec;
}

/**
 * Builds an architecture by name with smp's option names in camelCase.
 * @example
 * const unet = createModel('unet', { encoderName: 'resnet34', classes: 21 });
 */
export function createModel(arch: string, options: Record<string, unknown> = {}): SegmentationModel {
  return architecture(arch).create(options as Partial<ResolvedCommon>);
}

// smp before 0.4 wrote no `_model_class`; its configs are PANs.
const PRE_SMP_04_CLASS = 'PAN';

/**
 * Loads an smp `save_pretrained` directory (config.json + model.safetensors) of any registered
 * architecture, with panseg.json's metadata. A config without `_model_class` (smp < 0.4) is a PAN.
 * A name that is not a local directory but reads 'org/name' is a Hugging Face Hub repo, downloaded
 * into the Hub's cache (or found there) at `revision` (default 'main').
 * @example
 * const { model, meta } = loadModelWithMeta('runs/camvid/best');
 * const unet = loadModel('my-org/unet-camvid', { revision: 'v1' });
 */
export function loadModelWithMeta(dirOrRepo: string, options: PretrainedSourceOptions = {}): { model: SegmentationModel; meta: PansegMeta } {
  const dir = pretrainedDir(dirOrRepo, options, 'loadModel');
  const files = readPretrained(dir);
  const cls = files.modelClass ?? PRE_SMP_04_CLASS;
  const spec = ARCHITECTURES.find((a) => a.name === cls);
  if (!spec) {
    for (const t of files.weights.values()) t.dispose();
    fail('loadModel', `${files.configPath}: _model_class '${cls}' is not an architecture panseg implements; known: ${ARCHITECTURES.map((a) => a.name).join(', ')}`);
  }
  return loadPretrainedAs(spec, dir, files);
}

/** The architecture a local model directory holds (config.json's `_model_class`; none = PAN), without loading weights; null if unreadable. */
export function architectureOfDir(dir: string): ArchitectureSpec<ResolvedCommon> | null {
  try {
    const cls = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { _model_class?: string })._model_class ?? PRE_SMP_04_CLASS;
    return ARCHITECTURES.find((a) => a.name === cls) ?? null;
  } catch {
    return null;
  }
}

/** loadModelWithMeta without the metadata. */
export function loadModel(dirOrRepo: string, options: PretrainedSourceOptions = {}): SegmentationModel {
  return loadModelWithMeta(dirOrRepo, options).model;
}
