// smp's save_pretrained directory: config.json (snake_case init arguments + _model_class) and
// model.safetensors. panseg's own extras (class names, colors) go to panseg.json, which smp ignores.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, fail } from '../../common/errors.js';
import { loadSafetensors, saveSafetensors } from '../../io/safetensors.js';
import type { AuxParams } from '../heads.js';
import type { PANOptions, ResolvedPANOptions } from './model.js';
import type { Tensor } from '../../engine/index.js';

/** smp's config.json, as written by PAN.save_pretrained. */
export interface SmpPANConfig {
  _model_class?: string;
  encoder_name?: string;
  encoder_depth?: number;
  encoder_output_stride?: number;
  encoder_weights?: string | null;
  decoder_channels?: number;
  decoder_interpolation?: string;
  in_channels?: number;
  classes?: number;
  activation?: string | null;
  upsampling?: number;
  aux_params?: { classes: number; pooling?: string; dropout?: number | null; activation?: string | null } | null;
}

/** Extra metadata panseg keeps beside an smp directory. */
export interface PansegMeta {
  classNames?: string[];
  colors?: [number, number, number][];
  ignoreIndex?: number;
  [k: string]: unknown;
}

export function optionsFromSmpConfig(cfg: SmpPANConfig, where = 'config.json'): PANOptions {
  const op = 'fromPretrained';
  if (typeof cfg !== 'object' || cfg === null) fail(op, `${where}: expected a JSON object`);
  if (cfg._model_class !== undefined && cfg._model_class !== 'PAN') fail(op, `${where}: _model_class is '${cfg._model_class}', but panseg implements PAN only`);
  const known = new Set(['_model_class', 'encoder_name', 'encoder_depth', 'encoder_output_stride', 'encoder_weights', 'decoder_channels', 'decoder_interpolation', 'in_channels', 'classes', 'activation', 'upsampling', 'aux_params']);
  const unknown = Object.keys(cfg).filter((k) => !known.has(k));
  if (unknown.length) fail(op, `${where}: unknown PAN options ${unknown.join(', ')}`);
  const aux = cfg.aux_params;
  return {
    encoderName: cfg.encoder_name,
    encoderDepth: cfg.encoder_depth as PANOptions['encoderDepth'],
    encoderOutputStride: cfg.encoder_output_stride as PANOptions['encoderOutputStride'],
    // The weights follow in model.safetensors; never re-read ImageNet weights.
    encoderWeights: null,
    decoderChannels: cfg.decoder_channels,
    decoderInterpolation: cfg.decoder_interpolation as PANOptions['decoderInterpolation'],
    inChannels: cfg.in_channels,
    classes: cfg.classes,
    activation: (cfg.activation ?? null) as PANOptions['activation'],
    upsampling: cfg.upsampling,
    auxParams: aux ? { classes: aux.classes, pooling: aux.pooling, dropout: aux.dropout, activation: aux.activation } as AuxParams : null,
  };
}

export function smpConfigFromOptions(c: ResolvedPANOptions): SmpPANConfig {
  return {
    encoder_name: c.encoderName,
    encoder_depth: c.encoderDepth,
    encoder_weights: null,
    encoder_output_stride: c.encoderOutputStride,
    decoder_channels: c.decoderChannels,
    decoder_interpolation: c.decoderInterpolation,
    in_channels: c.inChannels,
    classes: c.classes,
    activation: c.activation,
    upsampling: c.upsampling,
    aux_params: c.auxParams ? { classes: c.auxParams.classes, pooling: c.auxParams.pooling ?? 'avg', dropout: c.auxParams.dropout === undefined ? 0.2 : c.auxParams.dropout, activation: c.auxParams.activation ?? null } : null,
    _model_class: 'PAN',
  };
}

function readJson(path: string, op: string): unknown {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { fail(op, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  try { return JSON.parse(text); } catch (e) { fail(op, `${path} is not valid JSON: ${(e as Error).message}`); }
}

/** Reads an smp `save_pretrained` directory: PAN options, the state dict and panseg's metadata. */
export function readPretrained(dir: string): { options: PANOptions; weights: Map<string, Tensor>; meta: PansegMeta; weightsPath: string } {
  const op = 'fromPretrained';
  if (typeof dir !== 'string' || !existsSync(dir)) fail(op, `model directory ${describe(dir)} does not exist`);
  const cfgPath = join(dir, 'config.json');
  const weightsPath = join(dir, 'model.safetensors');
  for (const p of [cfgPath, weightsPath]) if (!existsSync(p)) fail(op, `${p} not found; expected a directory written by save_pretrained / savePretrained`);
  const options = optionsFromSmpConfig(readJson(cfgPath, op) as SmpPANConfig, cfgPath);
  const metaPath = join(dir, 'panseg.json');
  const meta = existsSync(metaPath) ? (readJson(metaPath, op) as PansegMeta) : {};
  return { options, weights: loadSafetensors(weightsPath), meta, weightsPath };
}

/**
 * Writes config.json, model.safetensors, panseg.json and a README model card into `dir`.
 * The directory is assembled beside the target and renamed into place, so a crash never leaves it half-written.
 */
export function writePretrained(dir: string, config: SmpPANConfig, stateDict: Map<string, Tensor>, meta: PansegMeta = {}): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  saveSafetensors(join(tmp, 'model.safetensors'), stateDict, { format: 'pt' });
  writeFileSync(join(tmp, 'panseg.json'), `${JSON.stringify(meta, null, 2)}\n`);
  writeFileSync(join(tmp, 'README.md'), [
    '# PAN model card', '', 'Written by panseg; loadable with segmentation_models.pytorch:', '',
    '```python', 'import segmentation_models_pytorch as smp', `model = smp.from_pretrained("${dir}")`, '```', '',
    '```ts', "import { PAN } from 'panseg';", `const model = PAN.fromPretrained('${dir}');`, '```', '',
  ].join('\n'));
  const old = `${dir}.old-${process.pid}`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}
