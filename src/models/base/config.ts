// Architectures as data: each declares its smp class name, its options with defaults (the config keys
// smp writes to config.json, camelCased) and a check. Options shared by every architecture are resolved
// and checked here once.
import { describe, fail } from '../../common/errors.js';
import * as v from '../../common/validate.js';
import { encoderEntry } from '../encoders/index.js';
import { type ActivationName, ACTIVATIONS, type AuxParams } from './heads.js';
import type { SegmentationModel } from './model.js';

/** Options every architecture takes, with smp's names in camelCase. */
export interface CommonOptions {
  /** Default 'resnet34'. */
  encoderName?: string;
  /** Encoder stages used, 3..5 (default 5). */
  encoderDepth?: number;
  /** null (random init, default) or a path to a torchvision checkpoint (.pth or .safetensors). */
  encoderWeights?: string | null;
  /** Default 3. Other counts patch the encoder's first conv as smp does. */
  inChannels?: number;
  /** Output channels (default 1). */
  classes?: number;
  /** Applied to the logits; default null (identity). */
  activation?: ActivationName | null;
  /** Auxiliary classification head on the deepest feature; default null. */
  auxParams?: AuxParams | null;
}

export interface ResolvedCommon {
  encoderName: string;
  encoderDepth: number;
  encoderWeights: string | null;
  inChannels: number;
  classes: number;
  activation: ActivationName | null;
  auxParams: AuxParams | null;
}

/** What the registry knows about an architecture. `R` is its fully resolved options. */
export interface ArchitectureSpec<R extends ResolvedCommon = ResolvedCommon> {
  /** smp's class name, written to config.json as `_model_class`: 'PAN', 'Unet', 'FPN', ... */
  readonly name: string;
  /** The CLI's name (`--arch`), lower case. */
  readonly id: string;
  /** One line for `--help` and `panseg info`. */
  readonly description: string;
  /** True when the model has attention maps to show (PAN's FPA: forwardWithAttention, the ONNX `attention` output). */
  readonly attentionMaps?: boolean;
  /** Every option with its default: the config keys, in smp's order. */
  readonly defaults: R;
  /** Checks the architecture's own options (common ones are checked already); throws with `op: ...`. */
  check(r: R, op: string): void;
  /** Builds the model. */
  create(options: Partial<R>): SegmentationModel<R>;
}

/** Merges defaults, refuses unknown keys, checks common and architecture options. */
export function resolveOptions<R extends ResolvedCommon>(spec: ArchitectureSpec<R>, o: Partial<R> = {}): R {
  const op = spec.name;
  if (typeof o !== 'object' || o === null) fail(op, `expected an options object but received ${describe(o)}`);
  const unknown = Object.keys(o).filter((k) => !Object.hasOwn(spec.defaults, k));
  if (unknown.length) fail(op, `unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; valid options: ${Object.keys(spec.defaults).join(', ')}`);
  const r = { ...spec.defaults } as R;
  for (const [k, val] of Object.entries(o)) if (val !== undefined) (r as Record<string, unknown>)[k] = val;
  encoderEntry(r.encoderName);
  v.int(op, 'encoderDepth', r.encoderDepth, 3, 5);
  v.int(op, 'inChannels', r.inChannels, 1);
  v.int(op, 'classes', r.classes, 1);
  if (r.activation !== null) v.oneOf(op, 'activation', r.activation, ACTIVATIONS);
  if (r.encoderWeights !== null && typeof r.encoderWeights !== 'string') fail(op, `expected null, a weights name ('imagenet') or a file path for encoderWeights but received ${describe(r.encoderWeights)}`);
  if (r.auxParams !== null && (typeof r.auxParams !== 'object' || Array.isArray(r.auxParams))) fail(op, `expected null or { classes, pooling, dropout, activation } for auxParams but received ${describe(r.auxParams)}`);
  spec.check(r, op);
  return r;
}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** smp's config.json for a model: snake_case options + `_model_class`; encoder weights are in the checkpoint. */
export function smpConfig<R extends ResolvedCommon>(spec: ArchitectureSpec<R>, r: R): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(spec.defaults)) {
    const val = (r as Record<string, unknown>)[k];
    if (k === 'encoderWeights') out.encoder_weights = null;
    else if (k === 'auxParams') {
      const a = val as AuxParams | null;
      out.aux_params = a ? { classes: a.classes, pooling: a.pooling ?? 'avg', dropout: a.dropout === undefined ? 0.2 : a.dropout, activation: a.activation ?? null } : null;
    } else out[snake(k)] = val;
  }
  out._model_class = spec.name;
  return out;
}

/** Options from smp's config.json (any `_model_class` check is the caller's). Unknown keys are refused. */
export function optionsFromSmp<R extends ResolvedCommon>(spec: ArchitectureSpec<R>, cfg: Record<string, unknown>, where = 'config.json'): Partial<R> {
  const op = 'fromPretrained';
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) fail(op, `${where}: expected a JSON object`);
  const out: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [k, val] of Object.entries(cfg)) {
    if (k === '_model_class') continue;
    const key = camel(k);
    if (!Object.hasOwn(spec.defaults, key)) { unknown.push(k); continue; }
    if (key === 'encoderWeights') continue; // the weights follow in model.safetensors; never re-read ImageNet weights
    out[key] = val;
  }
  if (unknown.length) fail(op, `${where}: unknown ${spec.name} options ${unknown.join(', ')}; valid: ${Object.keys(spec.defaults).map(snake).join(', ')}`);
  out.encoderWeights = null;
  return out as Partial<R>;
}
