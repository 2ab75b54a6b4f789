import { rewriteTrainingReport } from '../../train/report.js';
import { setNumThreads } from '../../engine/index.js';
import { type CommandSpec, UsageError } from '../args.js';

export const spec: CommandSpec = {
  name: 'report',
  summary: "rebuild a training run's report.html from its metrics.jsonl, report.json and checkpoints (also while it trains, or after Ctrl-C)",
  usage: 'panseg report RUN_DIR [options]',
  positionals: true,
  flags: [
    { name: 'checkpoint', type: 'string', desc: 'the checkpoint whose predictions the pictures show (default: last, else best)', choices: ['best', 'last'] },
    { name: 'images', type: 'int', desc: 'worst validation images to show', default: 6 },
    { name: 'threads', type: 'int', desc: 'libtorch threads (default: all cores)' },
  ],
  examples: ['panseg report runs/voc', 'panseg report runs/voc --checkpoint best --images 12'],
};

export async function run(o: Record<string, unknown>, positionals: string[]): Promise<void> {
  if (positionals.length !== 1) throw new UsageError(`'panseg report' takes one run directory (the --out of panseg train), got ${positionals.length ? positionals.join(' ') : 'none'}`);
  if ((o.images as number) < 0) throw new UsageError(`--images expects 0 or more, got ${String(o.images)}`);
  if (o.threads !== undefined) setNumThreads(o.threads as number);
  const path = await rewriteTrainingReport(positionals[0], { checkpoint: o.checkpoint as 'best' | 'last' | undefined, samples: o.images as number });
  console.log(`report: ${path}`);
}
