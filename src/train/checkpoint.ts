// Training checkpoints: an smp save_pretrained directory plus optimizer state (safetensors),
// and trainer.json (epoch, iteration, scheduler, history, best score) with the RNG state.
// Each checkpoint is assembled in a temporary directory and renamed into place, so a crash
// mid-write leaves the previous checkpoint intact.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fail } from '../common/errors.js';
import { getRngState, setRngState, type Tensor } from '../engine/index.js';
import { loadSafetensors, readSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { PansegMeta, SegmentationModel } from '../models/index.js';
import type { Optimizer } from './optimizers.js';

export interface TrainerState {
  /** Epochs completed. */
  epoch: number;
  /** Optimizer steps completed (the scheduler's position). */
  iter: number;
  bestMiou: number;
  bestEpoch: number;
  history: Record<string, number>[];
  /** A hash of the options that must not change on resume. */
  configHash: string;
}

/** Writes `dir` (replacing it atomically): model files, optimizer.safetensors, trainer.json, rng.safetensors. */
export function saveCheckpoint(dir: string, model: SegmentationModel, optimizer: Optimizer, state: TrainerState, meta: PansegMeta): void {
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    model.savePretrained(tmp, meta);
    const { tensors, steps } = optimizer.stateTensors();
    saveSafetensors(join(tmp, 'optimizer.safetensors'), tensors, { steps: JSON.stringify(steps) });
    const rng = getRngState();
    try { saveSafetensors(join(tmp, 'rng.safetensors'), new Map([['cpu', rng]])); } finally { rng.dispose(); }
    writeFileSync(join(tmp, 'trainer.json'), `${JSON.stringify(state, null, 1)}\n`);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true }); // the previous checkpoint stays as it was
    throw e;
  }
  const old = `${dir}.old-${process.pid}`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/**
 * A crash between saveCheckpoint's two renames leaves only `<dir>.old-<pid>`: move the newest such
 * directory back to `dir`. Returns true when `dir` exists afterwards.
 */
export function recoverCheckpoint(dir: string): boolean {
  if (existsSync(dir)) return true;
  const parent = dirname(dir);
  if (!existsSync(parent)) return false;
  const prefix = `${basename(dir)}.old-`;
  const olds = readdirSync(parent).filter((f) => f.startsWith(prefix)).map((f) => join(parent, f))
    .filter((p) => existsSync(join(p, 'trainer.json'))).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!olds.length) return false;
  renameSync(olds[0], dir);
  return true;
}

/** Restores optimizer and RNG state from a checkpoint directory; returns the trainer state. */
export function restoreCheckpoint(dir: string, optimizer: Optimizer): TrainerState {
  const op = 'resume';
  const statePath = join(dir, 'trainer.json');
  if (!existsSync(statePath)) fail(op, `${statePath} not found: ${dir} is not a complete training checkpoint`);
  let state: TrainerState;
  try { state = JSON.parse(readFileSync(statePath, 'utf8')) as TrainerState; } catch (e) { fail(op, `${statePath}: ${(e as Error).message}`); }
  const optPath = join(dir, 'optimizer.safetensors');
  if (existsSync(optPath)) {
    const { tensors, metadata } = readSafetensors(optPath);
    const steps = JSON.parse(metadata.steps ?? '{}') as Record<string, number>;
    try { optimizer.loadStateTensors(tensors, steps); } finally { for (const t of tensors.values()) t.dispose(); }
  }
  const rngPath = join(dir, 'rng.safetensors');
  if (existsSync(rngPath)) {
    const r = loadSafetensors(rngPath);
    try { setRngState(r.get('cpu') as Tensor); } finally { for (const t of r.values()) t.dispose(); }
  }
  return state;
}
