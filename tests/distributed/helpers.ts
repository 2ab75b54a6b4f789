// Shared pieces of the distributed tests: free ports, and running fixture workers through the launcher.
import { createServer } from 'node:net';
import { join } from 'node:path';
import { launch, type LaunchResult } from '../../src/distributed/index.js';

export const FIXTURES = join(import.meta.dirname, 'fixtures');

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface Run extends LaunchResult {
  /** Every output line, prefixed `[rank N] `. */
  lines: string[];
  ms: number;
}

/** Runs `fixtures/<script>` on `nproc` local workers (1 libtorch thread each) and collects their output. */
export async function runWorkers(script: string, args: string[], o: {
  nproc: number; port?: number; env?: NodeJS.ProcessEnv; graceMs?: number; onLine?: (rank: number, line: string) => void;
  /** Restart all workers after a failure, with `restartArgs` appended to args. */
  maxRestarts?: number; restartArgs?: string[];
}): Promise<Run> {
  const lines: string[] = [];
  const t0 = performance.now();
  const port = o.port ?? await freePort();
  const command = [process.execPath, '--import', 'tsx', join(FIXTURES, script), ...args];
  const r = await launch({
    nprocPerNode: o.nproc, masterPort: port, threadsPerProcess: 1, graceMs: o.graceMs ?? 20_000,
    command, maxRestarts: o.maxRestarts, restartCommand: () => [...command, ...(o.restartArgs ?? [])],
    env: o.env, log: (l) => lines.push(`[launch] ${l}`),
    output: (rank, line) => { lines.push(`[rank ${rank}] ${line}`); o.onLine?.(rank, line); },
  });
  return { ...r, lines, ms: performance.now() - t0 };
}
