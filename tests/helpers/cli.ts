// The `panseg` CLI spawned as users run it (node --import tsx src/cli/main.ts), for the CLI tests.
import { spawn } from 'node:child_process';
import { ROOT } from './reference.js';

export interface CliRun { code: number | null; stdout: string; stderr: string }

/** Runs `panseg ...args` from the repository root (one libtorch thread unless `env` says otherwise). */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: ROOT, env: { ...process.env, OMP_NUM_THREADS: '1', NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d; });
    p.stderr.on('data', (d: Buffer) => { stderr += d; });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
