// The ONNX model the page runs: a given file, or the model directory exported on start and cached
// beside the weights (in the per-user cache directory when the model directory is read-only).
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../common/errors.js';
import { cacheDir, ensurePrivateDir, writeBeside } from '../export/cache.js';
import { exportOnnx, type OnnxSidecar, pansegVersion, readSidecar, sidecarPathFor } from '../export/index.js';
import { architectureOfDir, loadModelWithMeta } from '../models/index.js';

/** How `panseg serve` exports the model for the page. */
export interface ExportSettings {
  /** Any input size (default true); false fixes it to `height` x `width`, and the page scales larger images down. */
  dynamicSize?: boolean;
  height?: number;
  width?: number;
  /** Default 17. */
  opset?: number;
  /** Export FPA's attention map too, for the page's heatmap layer. Default true. */
  attention?: boolean;
}

/** An ONNX model with its sidecar, ready to serve. */
export interface OnnxModel {
  path: string;
  sidecarPath: string;
  sidecar: OnnxSidecar;
  bytes: number;
  /** Whether this start exported it (false: a given file or a fresh cache). */
  exported: boolean;
}

const SOURCES = ['config.json', 'model.safetensors', 'panseg.json'];

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the export of `modelDir` is cached: `<modelDir>/model.onnx`, or, when that directory is not writable,
 * `<cacheDir>/serve/<hash of the path>/model.onnx` in the per-user cache (mode 0700; never the shared temp folder).
 */
export function onnxCachePath(modelDir: string, canWrite = writable(modelDir)): string {
  if (canWrite) return join(modelDir, 'model.onnx');
  const key = createHash('sha256').update(modelDir).digest('hex').slice(0, 16);
  const root = ensurePrivateDir(cacheDir(), 'serve');
  return join(ensurePrivateDir(join(ensurePrivateDir(join(root, 'serve'), 'serve'), key), 'serve'), 'model.onnx');
}

/** Whether the cached export is newer than the model's files and was made by this panseg with these settings. */
function cacheIsFresh(path: string, modelDir: string, s: Required<Omit<ExportSettings, 'height' | 'width'>> & ExportSettings): boolean {
  if (!existsSync(path) || !existsSync(sidecarPathFor(path))) return false;
  let sc: OnnxSidecar;
  try { sc = readSidecar(path); } catch { return false; }
  const built = statSync(path).mtimeMs;
  if (SOURCES.some((f) => existsSync(join(modelDir, f)) && statSync(join(modelDir, f)).mtimeMs > built)) return false;
  if (sc.pansegVersion !== pansegVersion() || sc.opset !== s.opset || sc.attention !== s.attention || sc.input.dynamicSize !== s.dynamicSize) return false;
  if (!s.dynamicSize) {
    // exportOnnx's defaults: height 512 (or the width), width the height.
    const h = s.height ?? s.width ?? 512;
    if (sc.input.height !== h || sc.input.width !== (s.width ?? h)) return false;
  }
  return true;
}

/**
 * The ONNX model to serve: `onnxPath` with its sidecar when given, else `modelDir` exported with `settings`
 * (dynamic size and, for PAN, the attention output by default) into {@link onnxCachePath}, reusing a fresh cache.
 */
export async function prepareOnnx(modelDir: string, onnxPath: string | undefined, settings: ExportSettings, log: (line: string) => void): Promise<OnnxModel> {
  if (onnxPath) {
    const sidecar = readSidecar(onnxPath);
    return { path: onnxPath, sidecarPath: sidecarPathFor(onnxPath), sidecar, bytes: statSync(onnxPath).size, exported: false };
  }
  // The page's attention layer: on by default for architectures that have attention maps (PAN).
  const attention = settings.attention ?? architectureOfDir(modelDir)?.attentionMaps === true;
  const s = { dynamicSize: settings.dynamicSize ?? true, opset: settings.opset ?? 17, attention, height: settings.height, width: settings.width };
  if (s.dynamicSize && (s.height !== undefined || s.width !== undefined)) fail('serve', 'an export height/width fixes the input size; set dynamicSize: false with them');
  const path = onnxCachePath(modelDir);
  if (cacheIsFresh(path, modelDir, s)) {
    log(`serve: using the cached ONNX export ${path}`);
    return { path, sidecarPath: sidecarPathFor(path), sidecar: readSidecar(path), bytes: statSync(path).size, exported: false };
  }
  const t0 = performance.now();
  const { model, meta } = loadModelWithMeta(modelDir);
  try {
    let r: ReturnType<typeof exportOnnx> | undefined;
    writeBeside(path, (tmp) => {
      r = exportOnnx(model, {
        path: tmp, opset: s.opset, dynamicSize: s.dynamicSize, attention: s.attention, meta,
        ...(s.dynamicSize ? {} : { height: s.height, width: s.width }),
      });
    });
    const { bytes, sidecar } = r as ReturnType<typeof exportOnnx>;
    log(`serve: exported ${modelDir} to ${path} (${(bytes / 1e6).toFixed(1)} MB, ${(performance.now() - t0).toFixed(0)} ms)`);
    return { path, sidecarPath: sidecarPathFor(path), sidecar, bytes, exported: true };
  } finally {
    model.dispose();
  }
}
