// Exported models cached per model directory, so `--engine onnx` exports once and reuses the file.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fail } from '../common/errors.js';
import { loadModelWithMeta } from '../models/registry.js';
import { exportOnnx, pansegVersion } from './export-onnx.js';
import { sidecarPathFor } from './sidecar.js';

/** Bumped when the exporter's output changes, so older cached files are not reused. */
const EXPORTER_REVISION = 2;

/** $PANSEG_CACHE_DIR, else $XDG_CACHE_HOME/panseg, else ~/.cache/panseg. */
export function cacheDir(): string {
  return process.env.PANSEG_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'panseg');
}

/**
 * The path of a dynamic-size ONNX export of the model directory `dir`, exporting it on first use.
 * The cache key hashes the directory's config, weights and metadata, the opset and panseg's version.
 */
export function cachedOnnx(dir: string, o: { opset?: number; attention?: boolean; cacheDir?: string } = {}): string {
  const files = ['config.json', 'model.safetensors'].map((f) => join(dir, f));
  for (const f of files) if (!existsSync(f)) fail('cachedOnnx', `${f} not found; expected a model directory written by savePretrained`);
  const h = createHash('sha256');
  for (const f of [...files, join(dir, 'panseg.json')]) if (existsSync(f)) h.update(readFileSync(f));
  h.update(JSON.stringify({ opset: o.opset ?? 17, attention: o.attention ?? false, version: pansegVersion(), rev: EXPORTER_REVISION }));
  const path = join(o.cacheDir ?? cacheDir(), 'onnx', `model-${h.digest('hex').slice(0, 24)}.onnx`);
  if (existsSync(path) && existsSync(sidecarPathFor(path))) return path;
  const { model, meta } = loadModelWithMeta(dir);
  try {
    exportOnnx(model, { path, dynamicSize: true, opset: o.opset, attention: o.attention, meta });
  } finally {
    model.dispose();
  }
  return path;
}
