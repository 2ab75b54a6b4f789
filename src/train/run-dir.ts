// The run-directory rule: a new training run goes into a new or empty folder, so a second run never
// destroys the first one's checkpoints and logs. Continuing is --resume; replacing is --overwrite.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { fail } from '../common/errors.js';
import { join } from 'node:path';

/** Whether a name in a run directory is one panseg's training writes (and --overwrite removes). */
export function isRunFile(name: string): boolean {
  return ['checkpoints', 'metrics.jsonl', 'metrics.csv', 'config.json', 'report.html', 'report', 'report.json', 'split.json'].includes(name)
    || name.startsWith('events.out.tfevents.') || /\.(tmp|partial)-\d+/.test(name);
}

/** `out` if it is free, else the first of `out-2`, `out-3`, ... that does not exist or is empty. */
export function freeRunDir(out: string): string {
  const free = (p: string) => !existsSync(p) || (statSync(p).isDirectory() && readdirSync(p).length === 0);
  if (free(out)) return out;
  const base = out.replace(/[/\\]+$/, '');
  for (let i = 2; ; i++) if (free(`${base}-${i}`)) return `${base}-${i}`;
}

/**
 * Checks that a new (not resumed) run may write into `out`: it must not exist or be empty. With
 * `overwrite`, the files an earlier run wrote there are removed first (others are left alone) and
 * their names returned.
 * @throws one line offering --resume, --overwrite or a free folder name
 */
export function prepareRunDir(out: string, o: { overwrite?: boolean } = {}): string[] {
  const op = 'train';
  if (!existsSync(out)) return [];
  if (!statSync(out).isDirectory()) fail(op, `--out ${out} is a file; give a folder for the run`);
  const names = readdirSync(out).sort();
  if (!names.length) return [];
  const run = names.filter(isRunFile);
  if (o.overwrite) {
    for (const n of run) rmSync(join(out, n), { recursive: true, force: true });
    return run;
  }
  const other = `train into a new folder such as --out ${freeRunDir(out)}`;
  if (run.length) {
    const shown = run.filter((n) => !n.startsWith('events.out.')).slice(0, 4).join(', ');
    fail(op, `--out ${out} already holds a training run (${shown || run[0]}); continue it with --resume, replace it with --overwrite, or ${other}`);
  }
  fail(op, `--out ${out} is not empty (${names.length} entr${names.length > 1 ? 'ies' : 'y'}, e.g. ${names[0]}); ${other}, or add --overwrite to train there (only panseg's run files are replaced)`);
}
