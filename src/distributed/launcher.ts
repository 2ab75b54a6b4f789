// The launcher behind `panseg train --nproc-per-node N`: starts N workers on this machine with
// torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT) and cores / N libtorch threads each, and watches them: when one fails, it says
// which, gives the others a moment to stop on their own, then ends them. With maxRestarts (as
// torchrun's --max-restarts) it then starts the whole group again, up to that many times.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import * as v from '../common/validate.js';
import { DEFAULT_MASTER_ADDR, DEFAULT_MASTER_PORT } from './env.js';

export interface LaunchOptions {
  /** Workers on this machine. */
  nprocPerNode: number;
  /** Machines in the job. Default 1. */
  nnodes?: number;
  /** This machine's index, 0..nnodes-1. Default 0. */
  nodeRank?: number;
  /** Default '127.0.0.1' (one machine); with several machines, node 0's address. */
  masterAddr?: string;
  /** Default 29500. */
  masterPort?: number;
  /**
   * The job's rendezvous token, given to the workers as PANSEG_RDZV_TOKEN: the store refuses
   * processes without it. Default: PANSEG_RDZV_TOKEN (in `env` or this process's environment);
   * on one machine, else a fresh random one. Several machines need the same token on each.
   */
  rdzvToken?: string;
  /** What each worker runs, [program, ...args]. Default: this process's own command line. */
  command?: string[];
  /** Extra environment for the workers. */
  env?: NodeJS.ProcessEnv;
  /** libtorch threads per worker. Default max(1, floor(cores / nprocPerNode)). */
  threadsPerProcess?: number;
  /** After a worker fails, the others get this long to stop by themselves before SIGTERM. Default 5000 ms. */
  graceMs?: number;
  /** Where the launcher's own messages go. Default: stderr. */
  log?: (line: string) => void;
  /** Receives every worker's output lines instead of the terminal (all ranks piped). */
  output?: (rank: number, line: string, stream: 'stdout' | 'stderr') => void;
  /**
   * After a failure, start all workers again, at most this many times (not after Ctrl-C). Workers
   * see PANSEG_RESTART_COUNT (0 on the first start). Default 0.
   */
  maxRestarts?: number;
  /** The command for restart `n` (1, 2, ...), e.g. the first one plus --resume. Default: the same command. */
  restartCommand?: (n: number, failed: WorkerExit) => string[];
}

/** How each worker ended. */
export interface WorkerExit {
  rank: number;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LaunchResult {
  /** 0 when every worker succeeded, else the first failure's exit code (1 for a signal). */
  code: number;
  /** The rank that failed first, if any (in the last attempt). */
  failedRank: number | null;
  /** How each worker of the last attempt ended. */
  workers: WorkerExit[];
  /** Restarts used. */
  restarts: number;
}

const describeExit = (w: WorkerExit) => (w.signal ? `was killed by ${w.signal}` : `exited with code ${w.code}`);

/**
 * Spawns this machine's workers and resolves when all have ended.
 * Output of local rank 0 passes through; the others' lines are prefixed with `[rank N]`.
 * @example
 * const r = await launch({ nprocPerNode: 2, command: [process.execPath, 'train.js'] });
 * process.exitCode = r.code;
 */
export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  const maxRestarts = v.int('launch', 'maxRestarts', o.maxRestarts ?? 0, 0);
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  let command = o.command;
  // One machine: a random token nobody else knows, so no other local process can join or write keys.
  // Several: the user's (rank 0 warns when there is none: the store then takes anyone who reaches it).
  const rdzvToken = o.rdzvToken ?? o.env?.PANSEG_RDZV_TOKEN ?? process.env.PANSEG_RDZV_TOKEN ?? ((o.nnodes ?? 1) === 1 ? randomBytes(16).toString('hex') : undefined);
  for (let restart = 0; ; restart++) {
    const r = await launchOnce({ ...o, rdzvToken, command, log }, restart);
    if (r.code === 0 || r.interrupted || restart >= maxRestarts) return { code: r.code, failedRank: r.failedRank, workers: r.workers, restarts: restart };
    const failed = r.workers.find((w) => w.rank === r.failedRank)!;
    command = o.restartCommand?.(restart + 1, failed) ?? command;
    log(`panseg launch: restarting all ${r.workers.length} workers (restart ${restart + 1} of ${maxRestarts})`);
  }
}

function launchOnce(o: LaunchOptions & { log: (line: string) => void }, restart: number): Promise<Omit<LaunchResult, 'restarts'> & { interrupted: boolean }> {
  const op = 'launch';
  const nproc = v.int(op, 'nprocPerNode', o.nprocPerNode, 1);
  const nnodes = v.int(op, 'nnodes', o.nnodes ?? 1, 1);
  const nodeRank = v.int(op, 'nodeRank', o.nodeRank ?? 0, 0, nnodes - 1);
  const masterAddr = o.masterAddr ?? DEFAULT_MASTER_ADDR;
  const masterPort = v.int(op, 'masterPort', o.masterPort ?? DEFAULT_MASTER_PORT, 1, 65535);
  const threads = v.int(op, 'threadsPerProcess', o.threadsPerProcess ?? Math.max(1, Math.floor(availableParallelism() / nproc)), 1);
  const graceMs = v.int(op, 'graceMs', o.graceMs ?? 5000, 0);
  const { log } = o;
  const [prog, ...args] = o.command ?? [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  const world = nproc * nnodes;
  // One machine: a fresh run id keeps a stray worker from joining another run's store on a busy port.
  const runId = nnodes === 1 ? randomBytes(6).toString('hex') : undefined;

  return new Promise((resolve) => {
    const children: { rank: number; proc: ChildProcess; exit: WorkerExit | null }[] = [];
    let failed: WorkerExit | null = null;
    let killTimer: NodeJS.Timeout | null = null;
    let interrupted = false;
    const forward = (sig: NodeJS.Signals) => () => {
      interrupted = true;
      for (const c of children) if (!c.exit) c.proc.kill(sig);
    };
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);

    const finish = (): void => {
      if (children.some((c) => !c.exit)) return;
      if (killTimer) clearTimeout(killTimer);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      const workers = children.map((c) => c.exit!);
      resolve({ code: failed ? (failed.code || 1) : 0, failedRank: failed?.rank ?? null, workers, interrupted });
    };

    for (let local = 0; local < nproc; local++) {
      const rank = nodeRank * nproc + local;
      const env: NodeJS.ProcessEnv = {
        ...process.env, ...o.env,
        RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(local), LOCAL_WORLD_SIZE: String(nproc),
        GROUP_RANK: String(nodeRank), MASTER_ADDR: masterAddr, MASTER_PORT: String(masterPort),
        PANSEG_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), PANSEG_RESTART_COUNT: String(restart),
        ...(runId ? { PANSEG_RUN_ID: runId } : {}),
        ...(o.rdzvToken ? { PANSEG_RDZV_TOKEN: o.rdzvToken } : {}),
      };
      const piped = local !== 0 || o.output !== undefined;
      const proc = spawn(prog, args, { env, stdio: piped ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
      const entry = { rank, proc, exit: null as WorkerExit | null };
      children.push(entry);
      if (piped) {
        for (const [stream, name, out] of [[proc.stdout!, 'stdout', process.stdout], [proc.stderr!, 'stderr', process.stderr]] as const) {
          createInterface({ input: stream }).on('line', (l) => (o.output ? o.output(rank, l, name) : out.write(`[rank ${rank}] ${l}\n`)));
        }
      }
      proc.on('error', (e) => log(`panseg launch: rank ${rank} could not start: ${e.message}`));
      proc.on('close', (code, signal) => { // 'close': after its output is drained
        entry.exit = { rank, pid: proc.pid ?? -1, code, signal };
        if ((code !== 0 || signal) && !failed) {
          failed = entry.exit;
          const alive = children.filter((c) => !c.exit);
          log(`panseg launch: rank ${rank} (pid ${proc.pid}) ${describeExit(entry.exit)}${alive.length ? `; stopping rank${alive.length > 1 ? 's' : ''} ${alive.map((c) => c.rank).join(', ')} in ${graceMs / 1000} s unless they stop first` : ''}`);
          killTimer = setTimeout(() => {
            for (const c of children) if (!c.exit) c.proc.kill('SIGTERM');
            killTimer = setTimeout(() => { for (const c of children) if (!c.exit) c.proc.kill('SIGKILL'); }, 5000);
          }, graceMs);
        }
        finish();
      });
    }
  });
}
