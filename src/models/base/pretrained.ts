// smp's save_pretrained directory: config.json (snake_case init arguments + _model_class) and
// model.safetensors, for every architecture. panseg's own extras (class names, colors) go to panseg.json, which smp ignores.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, fail } from '../../common/errors.js';
import { loadSafetensors, saveSafetensors } from '../../io/safetensors.js';
import { syncDir, writeFileDurable } from '../../io/file.js';
import type { Tensor } from '../../engine/index.js';

/** Extra metadata panseg keeps beside an smp directory. */
export interface PansegMeta {
  classNames?: string[];
  colors?: [number, number, number][];
  ignoreIndex?: number;
  [k: string]: unknown;
}

function readJson(path: string, op: string): unknown {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { fail(op, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  try { return JSON.parse(text); } catch (e) { fail(op, `${path} is not valid JSON: ${(e as Error).message}`); }
}

/** An smp `save_pretrained` directory as read: its config.json, the state dict and panseg's metadata. */
export interface PretrainedFiles {
  config: Record<string, unknown>;
  /** config.json's `_model_class`; smp before 0.4 wrote none (panseg reads those as PAN). */
  modelClass: string | undefined;
  configPath: string;
  weights: Map<string, Tensor>;
  weightsPath: string;
  meta: PansegMeta;
}

/** Reads an smp `save_pretrained` directory. Dispose `weights` when done. */
export function readPretrained(dir: string): PretrainedFiles {
  const op = 'fromPretrained';
  if (typeof dir !== 'string' || !existsSync(dir)) fail(op, `model directory ${describe(dir)} does not exist`);
  const cfgPath = join(dir, 'config.json');
  const weightsPath = join(dir, 'model.safetensors');
  for (const p of [cfgPath, weightsPath]) if (!existsSync(p)) fail(op, `${p} not found; expected a directory written by save_pretrained / savePretrained`);
  const config = readJson(cfgPath, op) as Record<string, unknown>;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) fail(op, `${cfgPath}: expected a JSON object`);
  const modelClass = config._model_class;
  if (modelClass !== undefined && typeof modelClass !== 'string') fail(op, `${cfgPath}: _model_class must be a string, got ${describe(modelClass)}`);
  const metaPath = join(dir, 'panseg.json');
  const meta = existsSync(metaPath) ? (readJson(metaPath, op) as PansegMeta) : {};
  return { config, modelClass, configPath: cfgPath, weights: loadSafetensors(weightsPath), weightsPath, meta };
}

/**
 * Writes config.json, model.safetensors, panseg.json and a README model card into `dir`.
 * The directory is assembled beside the target and renamed into place, so a crash never leaves it half-written.
 */
export function writePretrained(dir: string, config: Record<string, unknown>, stateDict: Map<string, Tensor>, meta: PansegMeta = {}): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  // Every file is fsynced and the directories too, so after a power loss `dir` is the old or the new one, whole.
  try {
    writeFileDurable(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    saveSafetensors(join(tmp, 'model.safetensors'), stateDict, { format: 'pt' });
    writeFileDurable(join(tmp, 'panseg.json'), `${JSON.stringify(meta, null, 2)}\n`);
    writeFileDurable(join(tmp, 'README.md'), [
      `# ${String(config._model_class)} model card`, '', 'Written by panseg; loadable with segmentation_models.pytorch:', '',
      '```python', 'import segmentation_models_pytorch as smp', `model = smp.from_pretrained("${dir}")`, '```', '',
      '```ts', "import { loadModel } from 'panseg';", `const model = loadModel('${dir}');`, '```', '',
    ].join('\n'));
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true }); // a full disk leaves no half-written directory behind
    throw e;
  }
  const old = `${dir}.old-${process.pid}`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  syncDir(dirname(dir));
  rmSync(old, { recursive: true, force: true });
}
