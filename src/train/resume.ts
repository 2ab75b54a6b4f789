// Exact resume: the options a resumed run must share with the checkpoint's, and bringing model,
// optimizer, RNG and trainer state back from `<out>/checkpoints/last` after a crash or kill.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fail } from '../common/errors.js';
import { checkResumeWorld } from '../distributed/trainer.js';
import { REPORT_ASSET_DIR } from '../eval/report.js';
import { removeWriteLeftovers } from '../io/file.js';
import { loadModel, type SegmentationModel } from '../models/index.js';
import { readBestMeta, recoverCheckpoint, restoreCheckpoint, tidyCheckpoints, type TrainerState } from './checkpoint.js';
import type { Optimizer } from './optimizers.js';

/** The trainer state with, for a run stopped mid-epoch, the batches of epoch `epoch` already done. */
export type RunState = TrainerState & { epochBatches?: number };

/** The options that must not change on resume (their hash is saved in trainer.json). */
const RESUME_KEYS = ['dataset', 'arch', 'encoder', 'outputStride', 'decoderChannels', 'modelOptions', 'classes', 'batchSize', 'lr', 'optimizer', 'schedule', 'loss', 'accumulate', 'seed', 'crop', 'epochs'] as const;

/** The hash of the resolved options' RESUME_KEYS, `classes` the one the run uses. */
export function hashConfig(c: Partial<Record<(typeof RESUME_KEYS)[number], unknown>>, classes: number): string {
  const pick = Object.fromEntries(RESUME_KEYS.map((k) => [k, k === 'classes' ? classes : c[k]]));
  return createHash('sha256').update(JSON.stringify(pick)).digest('hex').slice(0, 16);
}

/**
 * Loads `<out>/checkpoints/last` into `model` and `optimizer` (and the RNG) and returns its trainer state,
 * best score taken from best/. A killed or failed run's temporaries go first (beside the run's files and its
 * report pictures); last/ and best/ come back from a rename cut short.
 * @throws when there is no checkpoint, or it was made with other options (configHash) or another world size
 */
export function restoreRun(out: string, r: { model: SegmentationModel; optimizer: Optimizer; device: string; configHash: string; worldSize: number }): RunState {
  const ckptDir = join(out, 'checkpoints');
  const last = join(ckptDir, 'last');
  tidyCheckpoints(ckptDir);
  removeWriteLeftovers(out);
  removeWriteLeftovers(join(out, REPORT_ASSET_DIR));
  if (!recoverCheckpoint(last)) fail('train', `--resume: no checkpoint at ${last}; start without --resume`);
  const fresh = loadModel(last);
  r.model.loadStateDict(fresh.stateDict());
  fresh.dispose();
  const state: RunState = restoreCheckpoint(last, r.optimizer, r.device);
  checkResumeWorld(state.configHash, r.worldSize); // [distributed]
  if (state.configHash !== r.configHash) fail('train', `--resume: the options differ from the checkpoint's run in one of ${RESUME_KEYS.join(', ')}; resume with the same options or use a new --out`);
  // best/ is written before last/ records its score, so a crash between the two leaves a best/ that
  // trainer.json does not know: best/ itself is the truth.
  const best = readBestMeta(join(ckptDir, 'best'));
  [state.bestMiou, state.bestEpoch] = best ? [best.miou, best.epoch] : [-1, -1];
  return state;
}
