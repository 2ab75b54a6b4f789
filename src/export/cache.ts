// Exported models cached per model directory, so `--engine onnx` exports once and reuses the file.
// The cache lives in a per-user directory (mode 0700, checked when it exists) and every file is written in a
// fresh private temp directory (mkdtemp: exclusive create, random name) and renamed into place, so nobody else can
// plant a file or a symlink where panseg writes.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fail } from '../common/errors.js';
import { loadModelWithMeta } from '../models/registry.js';
import { exportOnnx, pansegVersion } from './export-onnx.js';
import { sidecarPathFor } from './sidecar.js';

/** Bumped when the exporter's output changes, so older cached files are not reused. */
const EXPORTER_REVISION = 2;

/** $PANSEG_CACHE_DIR, else $XDG_CACHE_HOME/panseg, else ~/.cache/panseg. Never the shared temp directory. */
export function cacheDir(): string {
  return resolve(process.env.PANSEG_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'panseg'));
}

const octal = (mode: number): string => `0${(mode & 0o777).toString(8)}`;

/**
 * Creates `dir` (and missing parents) with mode 0700, or checks the existing one: a directory owned by this user and
 * not writable by others (a symlink must be this user's too). Returns `dir`.
 * @throws PansegError naming the directory and the fix
 */
export function ensurePrivateDir(dir: string, op = 'cache'): string {
  if (!existsSync(dir)) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') fail(op, `cannot create the cache directory ${dir}: ${(e as Error).message}; set PANSEG_CACHE_DIR to a writable directory`);
    }
  }
  const uid = process.getuid?.();
  const link = lstatSync(dir);
  const st = statSync(dir);
  if (!st.isDirectory()) fail(op, `the cache directory ${dir} is not a directory; remove it or set PANSEG_CACHE_DIR`);
  if (uid === undefined) return dir; // Windows: no POSIX owners or modes
  for (const [what, s] of [['directory', st], ['symlink', link]] as const) {
    if (what === 'symlink' && !link.isSymbolicLink()) continue;
    if (s.uid !== uid) fail(op, `the cache ${what} ${dir} belongs to user ${s.uid}, not to you (${uid}); remove it or set PANSEG_CACHE_DIR to a directory of your own`);
  }
  if (st.mode & 0o022) fail(op, `the cache directory ${dir} is writable by other users (mode ${octal(st.mode)}); run 'chmod 700 ${dir}' or set PANSEG_CACHE_DIR`);
  return dir;
}

/**
 * Writes `path` (and its `<path>.json` sidecar when `write` makes one) without following anything planted beside it:
 * `write` gets a path of the same name inside a fresh private temp directory next to `path`, and the files are renamed
 * into place (the sidecar first, so a reader that finds the model finds its sidecar).
 */
export function writeBeside(path: string, write: (tmpPath: string) => void): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmpDir = mkdtempSync(join(dir, `.${basename(path)}.tmp-`));
  try {
    const tmp = join(tmpDir, basename(path));
    write(tmp);
    if (existsSync(sidecarPathFor(tmp))) renameSync(sidecarPathFor(tmp), sidecarPathFor(path));
    renameSync(tmp, path);
  } finally {
    rmSync(tmpDir, { recursive: true, force: true });
  }
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
  const root = ensurePrivateDir(o.cacheDir ?? cacheDir(), 'cachedOnnx');
  const path = join(ensurePrivateDir(join(root, 'onnx'), 'cachedOnnx'), `model-${h.digest('hex').slice(0, 24)}.onnx`);
  if (existsSync(path) && existsSync(sidecarPathFor(path))) return path;
  const { model, meta } = loadModelWithMeta(dir);
  try {
    writeBeside(path, (tmp) => exportOnnx(model, { path: tmp, dynamicSize: true, opset: o.opset, attention: o.attention, meta }));
  } finally {
    model.dispose();
  }
  return path;
}
