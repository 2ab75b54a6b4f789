// Runs a reference-data generator under Debian's PyTorch (/usr/bin/python3) once per
// script content + arguments, caching its output directory in tests/.cache/.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const PYTHON = process.env.PANSEG_PYTHON ?? '/usr/bin/python3';

/**
 * Returns a directory holding the output of `python3 scripts/reference/<script> <outDir> ...args`.
 * The script is rerun only when its text (or a file it names in `deps`) or the arguments change.
 */
export function reference(script: string, args: string[] = [], deps: string[] = []): string {
  const path = join(ROOT, 'scripts', 'reference', script);
  const h = createHash('sha256');
  for (const f of [path, ...deps.map((d) => join(ROOT, 'scripts', 'reference', d))]) h.update(readFileSync(f));
  h.update(JSON.stringify(args));
  const out = join(ROOT, 'tests', '.cache', `${script.replace(/\W/g, '_')}-${h.digest('hex').slice(0, 16)}`);
  if (existsSync(join(out, '.done'))) return out;
  const tmp = `${out}.tmp${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  execFileSync(PYTHON, [path, tmp, ...args], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, OMP_NUM_THREADS: '2' } });
  execFileSync('touch', [join(tmp, '.done')]);
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
  return out;
}
