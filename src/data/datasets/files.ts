// File-system helpers for the dataset layouts: checked folders with errors that say what was
// expected, what is there instead, and where the expected folder was found when it is nested deeper.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join, relative } from 'node:path';
import { fail } from '../../common/errors.js';

/** Image extensions the layouts list (everything sharp decodes that datasets use). */
export const IMAGE_EXTS = ['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff'];

function isDir(p: string): boolean {
  try { return statSync(p).isDirectory(); } catch { return false; }
}

/** `a/, b/, c.txt` (at most 12 entries), or `nothing`. */
export function contents(dir: string): string {
  let names: string[];
  try { names = readdirSync(dir).sort(); } catch { return 'nothing (it does not exist)'; }
  if (!names.length) return 'nothing (it is empty)';
  const shown = names.slice(0, 12).map((n) => (isDir(join(dir, n)) ? `${n}/` : n));
  return shown.join(', ') + (names.length > 12 ? `, ... (${names.length} entries)` : '');
}

/** Searches a few levels below `root` for a folder whose path ends with `rel`, e.g. VOCdevkit/VOC2012/JPEGImages. */
function findNested(root: string, rel: string, depth = 3): string | null {
  let frontier = [root];
  let visited = 0;
  for (let d = 0; d < depth && frontier.length; d++) {
    const next: string[] = [];
    for (const dir of frontier) {
      let entries;
      try { entries = readdirSync(dir, { withFileTypes: true }); } catch { continue; }
      for (const e of entries) {
        if (!e.isDirectory() || e.name.startsWith('.')) continue;
        const p = join(dir, e.name);
        if (isDir(join(p, rel))) return p;
        if (++visited > 500) return null;
        next.push(p);
      }
    }
    frontier = next;
  }
  return null;
}

/**
 * Returns `root/rel`, or fails with one message naming the expected folder, what `root` holds instead,
 * and the right root when the folder sits deeper (e.g. inside VOCdevkit/VOC2012).
 */
export function requireDir(op: string, root: string, rel: string, what: string): string {
  const p = join(root, rel);
  if (isDir(p)) return p;
  if (!isDir(root)) fail(op, `expected the dataset folder ${root} but it does not exist`);
  let msg = `expected ${what} in ${p} but it does not exist; ${root} contains: ${contents(root)}`;
  const nested = findNested(root, rel);
  if (nested) msg += `. Found ${rel}/ in ${nested}: use ${nested} as the dataset root`;
  fail(op, msg);
}

/** Image files directly in `dir`, sorted, keyed by stem. */
export function imagesByStem(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of readdirSync(dir).sort()) {
    const ext = extname(f).toLowerCase();
    if (IMAGE_EXTS.includes(ext) && !isDir(join(dir, f))) out.set(basename(f, extname(f)), join(dir, f));
  }
  return out;
}

/** Fails when paths are missing, naming how many and the first few. */
export function requireFiles(op: string, paths: string[], context: string): void {
  const missing = paths.filter((p) => !existsSync(p));
  if (!missing.length) return;
  const shown = missing.slice(0, 3).join(', ');
  fail(op, `${missing.length} of the ${paths.length} files listed by ${context} do not exist, e.g. ${shown}`);
}

/** The first existing path among candidates, or null. */
export function firstExisting(paths: string[]): string | null {
  return paths.find((p) => existsSync(p)) ?? null;
}

/** `path` relative to `root` for messages when inside it, else `path`. */
export function shortPath(root: string, path: string): string {
  const r = relative(root, path);
  return r && !r.startsWith('..') ? r : path;
}
