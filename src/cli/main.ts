#!/usr/bin/env node
// The `panseg` command: a thin shell over the library. User mistakes print one line and exit 2.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PansegError } from '../common/errors.js';
import { packageRoot } from '../common/package-root.js';
import { type CommandSpec, didYouMean, helpText, parse, UsageError } from './args.js';
import { resolveModelDir } from './model-dir.js';

type Runner = (opts: Record<string, unknown>, positionals: string[]) => Promise<void>;
const COMMANDS: Record<string, () => Promise<{ spec: CommandSpec; run: Runner }>> = {
  train: () => import('./commands/train.js'),
  eval: () => import('./commands/eval.js'),
  predict: () => import('./commands/predict.js'),
  info: () => import('./commands/info.js'),
  demo: () => import('./commands/demo.js'),
  serve: () => import('./commands/serve.js'),
  explain: () => import('./commands/explain.js'),
  export: () => import('./commands/export.js'),
  compare: () => import('./commands/compare.js'),
  'check-data': () => import('./commands/check-data.js'),
  convert: () => import('./commands/convert.js'),
  report: () => import('./commands/report.js'),
};

const SUMMARIES: Record<string, string> = {
  train: 'train PAN, UNet, FPN, PSPNet or DeepLab on a dataset (VOC, CamVid, Cityscapes, folder)',
  eval: 'measure mIoU and per-class IoU on a dataset split',
  predict: 'segment images into masks, overlays and class-area stats',
  info: 'model parameters, FLOPs and the compute engine',
  demo: 'synthetic dataset -> train a small model (PAN by default) -> evaluate -> report',
  serve: 'web page that segments in the browser, plus POST /api/segment',
  explain: "draw PAN's attention (FPA map, pyramid, GAU channel weights) with an HTML page",
  export: 'export a model to ONNX (+ sidecar JSON) for onnxruntime in Node and the browser',
  compare: 'train several architectures with one recipe; compare mIoU, GFLOPs, latency, speed',
  'check-data': 'check a dataset: counts, image sizes, mask values, class shares, unmatched and unreadable files',
  convert: 'COCO or labelme annotations -> a folder dataset (images/, masks/, classes.json)',
  report: "rebuild a training run's report.html from its run directory (during training too)",
};

// Commands whose --model is a trained model to run (train's is a starting point, taken as given).
const MODEL_IS_A_MODEL = new Set(['eval', 'predict', 'info', 'serve', 'explain', 'export']);

/** The version in package.json. */
function version(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

function usage(): string {
  return [
    'panseg: semantic segmentation with the Pyramid Attention Network (PAN) and its family (UNet, FPN, PSPNet, DeepLab) on libtorch', '',
    'Usage: panseg <command> [options]', '', 'Commands:',
    ...Object.entries(SUMMARIES).map(([k, v]) => `  ${k.padEnd(12)}${v}`),
    '', "Run 'panseg <command> --help' (or 'panseg help <command>') for a command's options; 'panseg --version' for the version.", '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  // `panseg help train` is `panseg train --help`.
  if (cmd === 'help' && rest.length) return main([rest[0], '--help']);
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage());
    return cmd ? 0 : 2;
  }
  if (cmd === '--version' || cmd === '-v') {
    console.log(`panseg ${version()}`);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  try {
    if (!load) throw new UsageError(`unknown command '${cmd}'${didYouMean(cmd, Object.keys(COMMANDS), (c) => `'${c}'`)}; commands: ${Object.keys(COMMANDS).join(', ')}`);
    const { spec, run } = await load();
    const { opts, positionals, help } = parse(spec, rest);
    if (help) {
      process.stdout.write(helpText(spec));
      return 0;
    }
    if (typeof opts.model === 'string' && MODEL_IS_A_MODEL.has(cmd)) opts.model = resolveModelDir(opts.model, (line) => console.error(`panseg ${cmd}: ${line}`));
    await run(opts, positionals);
    return 0;
  } catch (e) {
    if (e instanceof PansegError || (e instanceof Error && /^[a-zA-Z]+: /.test(e.message) && !(e instanceof TypeError))) {
      const msg = (e as Error).message.split('\n')[0];
      console.error(`panseg ${cmd}: ${msg.startsWith(`${cmd}: `) ? msg.slice(cmd.length + 2) : msg}`);
      return 2;
    }
    console.error(`panseg ${cmd}: unexpected error: ${(e as Error)?.stack ?? String(e)}`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
