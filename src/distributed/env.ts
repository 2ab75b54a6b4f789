// Where a worker learns its place: the torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT) that the launcher sets, or SLURM's (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID) when started by srun.
import { fail } from '../common/errors.js';

/** A worker's position in the job, as read from the environment. */
export interface WorkerEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
}

export const DEFAULT_MASTER_ADDR = '127.0.0.1';
export const DEFAULT_MASTER_PORT = 29500;

function int(env: NodeJS.ProcessEnv, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  const n = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    fail('distributed', `expected an integer from ${min} to ${max} in ${name} but received '${raw}'`);
  }
  return n;
}

/**
 * The distributed position from the environment, or null when this process is not one of
 * several (no RANK/WORLD_SIZE and no multi-task SLURM step, or a world size of 1).
 * @example
 * const w = workerEnv(); // RANK=1 WORLD_SIZE=2 MASTER_ADDR=10.0.0.1 -> { rank: 1, worldSize: 2, ... }
 */
export function workerEnv(env: NodeJS.ProcessEnv = process.env): WorkerEnv | null {
  let rank: number;
  let worldSize: number;
  let localRank: number;
  let localWorldSize: number;
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    worldSize = int(env, 'WORLD_SIZE', 1);
    rank = int(env, 'RANK', 0, worldSize - 1);
    localRank = env.LOCAL_RANK !== undefined ? int(env, 'LOCAL_RANK', 0) : rank;
    localWorldSize = env.LOCAL_WORLD_SIZE !== undefined ? int(env, 'LOCAL_WORLD_SIZE', 1) : worldSize;
  } else if (env.SLURM_PROCID !== undefined && env.SLURM_NTASKS !== undefined && Number(env.SLURM_NTASKS) > 1) {
    worldSize = int(env, 'SLURM_NTASKS', 1);
    rank = int(env, 'SLURM_PROCID', 0, worldSize - 1);
    localRank = env.SLURM_LOCALID !== undefined ? int(env, 'SLURM_LOCALID', 0) : 0;
    localWorldSize = env.SLURM_NTASKS_PER_NODE !== undefined && /^\d+$/.test(env.SLURM_NTASKS_PER_NODE) ? Number(env.SLURM_NTASKS_PER_NODE) : 1;
    if (env.MASTER_ADDR === undefined) {
      fail('distributed', 'SLURM_PROCID/SLURM_NTASKS are set but MASTER_ADDR is not; export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1) before srun');
    }
  } else return null;
  if (worldSize === 1) return null;
  return {
    rank, worldSize, localRank, localWorldSize,
    masterAddr: env.MASTER_ADDR || DEFAULT_MASTER_ADDR,
    masterPort: env.MASTER_PORT !== undefined ? int(env, 'MASTER_PORT', 1, 65535) : DEFAULT_MASTER_PORT,
  };
}
