// Training checkpoints: an smp save_pretrained directory plus optimizer state (safetensors),
// and trainer.json (epoch, iteration, scheduler, history, best score) with the RNG state.
// Each checkpoint is assembled in a temporary directory and renamed into place, every file and
// directory fsynced, so a crash, kill -9, full disk or power loss leaves the previous checkpoint intact.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fail, PansegError } from '../common/errors.js';
import { ioReason, removeWriteLeftovers, syncDir, writeFileDurable } from '../io/file.js';
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
  /** The float16 loss scaler's state (GradScaler.state()), so a resumed run scales as the uninterrupted one. */
  scaler?: { scale: number; goodSteps: number };
  /** Files of the training set skipped as unreadable or invalid so far. */
  skipped?: string[];
}

/**
 * Writes `dir` (replacing it atomically): model files, optimizer.safetensors, trainer.json, rng.safetensors
 * (the CPU generator's state, and on a CUDA `device` that device's too).
 */
export function saveCheckpoint(dir: string, model: SegmentationModel, optimizer: Optimizer, state: TrainerState, meta: PansegMeta, device = 'cpu'): void {
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    model.savePretrained(tmp, meta);
    const { tensors, steps } = optimizer.stateTensors();
    saveSafetensors(join(tmp, 'optimizer.safetensors'), tensors, { steps: JSON.stringify(steps) });
    const rng = new Map([['cpu', getRngState()]]);
    try {
      if (device.startsWith('cuda')) rng.set('cuda', getRngState(device)); // dropout on the GPU draws from it
      saveSafetensors(join(tmp, 'rng.safetensors'), rng);
    } finally { for (const t of rng.values()) t.dispose(); }
    writeFileDurable(join(tmp, 'trainer.json'), `${JSON.stringify(state, null, 1)}\n`);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true }); // the previous checkpoint stays as it was
    removeWriteLeftovers(dirname(dir));
    if (!(e instanceof PansegError) && (e as NodeJS.ErrnoException)?.code === undefined) throw e; // a bug, not the disk
    const intact = existsSync(dir) ? `; the previous checkpoint in ${dir} is intact` : '';
    fail('saveCheckpoint', `cannot write ${dir}: ${e instanceof PansegError ? e.message : ioReason(e)}${intact}`);
  }
  const old = `${dir}.old-${process.pid}`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  syncDir(dirname(dir));
  rmSync(old, { recursive: true, force: true });
}

/**
 * A crash between saveCheckpoint's (or savePretrained's) two renames leaves only `<dir>.old-<pid>`: move
 * the newest such directory holding `marker` back to `dir`. Returns true when `dir` exists afterwards.
 */
export function recoverCheckpoint(dir: string, marker = 'trainer.json'): boolean {
  if (existsSync(dir)) return true;
  const parent = dirname(dir);
  if (!existsSync(parent)) return false;
  const prefix = `${basename(dir)}.old-`;
  const olds = readdirSync(parent).filter((f) => f.startsWith(prefix)).map((f) => join(parent, f))
    .filter((p) => existsSync(join(p, marker))).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!olds.length) return false;
  renameSync(olds[0], dir);
  return true;
}

/**
 * Before a resume, undoes what a crash or a full disk interrupted in `ckptDir`: last/ and best/ come back
 * from their `.old-` copies, and temporaries (`*.partial-*`, `*.tmp-*`, stale `.old-*`) are removed.
 * Returns the removed paths.
 */
export function tidyCheckpoints(ckptDir: string): string[] {
  if (!existsSync(ckptDir)) return [];
  recoverCheckpoint(join(ckptDir, 'last'));
  recoverCheckpoint(join(ckptDir, 'best'), 'model.safetensors');
  const removed = removeWriteLeftovers(ckptDir);
  for (const f of readdirSync(ckptDir)) {
    const m = /^(.+)\.old-\d+$/.exec(f);
    if (m && existsSync(join(ckptDir, m[1]))) {
      rmSync(join(ckptDir, f), { recursive: true, force: true });
      removed.push(join(ckptDir, f));
    }
  }
  return removed;
}

/** best/'s score and epoch from its panseg.json, or null when there is no readable best/. */
export function readBestMeta(bestDir: string): { miou: number; epoch: number } | null {
  try {
    const m = JSON.parse(readFileSync(join(bestDir, 'panseg.json'), 'utf8')) as { miou?: unknown; epoch?: unknown };
    if (!existsSync(join(bestDir, 'model.safetensors')) || typeof m.miou !== 'number' || typeof m.epoch !== 'number') return null;
    return { miou: m.miou, epoch: m.epoch };
  } catch { return null; }
}

/** Restores optimizer and RNG state (CPU, and `device`'s when it is CUDA) from a checkpoint directory; returns the trainer state. */
export function restoreCheckpoint(dir: string, optimizer: Optimizer, device = 'cpu'): TrainerState {
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
    try {
      setRngState(r.get('cpu') as Tensor);
      const cuda = r.get('cuda');
      if (cuda && device.startsWith('cuda')) setRngState(cuda, device);
    } finally { for (const t of r.values()) t.dispose(); }
  }
  return state;
}
