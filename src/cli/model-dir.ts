// `--model` may name a model directory, a Hugging Face Hub repo, or a training run (its output folder):
// a run means its best checkpoint, or its last when it has no best (no validation, or stopped early).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './args.js';

/**
 * The model directory `--model path` means: for a run folder (one with checkpoints/) `checkpoints/best`,
 * or `checkpoints/last` when there is no best; anything else is passed on unchanged (a Hub repo, or a path the loader will report). `say` gets one line when a run was resolved.
 */
export function resolveModelDir(path: string, say: (line: string) => void = () => {}): string {
  // A run folder holds a config.json too (its flags): checkpoints/ tells it from a model directory.
  if (!existsSync(join(path, 'checkpoints'))) return path;
  for (const [name, what] of [['best', 'its best checkpoint'], ['last', 'its last checkpoint (it has no best)']] as const) {
    const dir = join(path, 'checkpoints', name);
    if (existsSync(join(dir, 'config.json'))) {
      say(`--model ${path} is a training run; using ${what}, ${dir}`);
      return dir;
    }
  }
  throw new UsageError(`--model ${path} is a training run without a saved model yet (no checkpoints/best or checkpoints/last with a config.json); let it train to its first checkpoint, or pass a model directory`);
}
