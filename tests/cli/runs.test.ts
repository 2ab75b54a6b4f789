// Runs that never lose each other, as users run them (`panseg train` spawned): a non-empty --out is
// refused without --resume/--overwrite, config.json replays the run bit for bit, every TrainOptions
// setting has a flag, the final lines name only checkpoints that exist, and `panseg report` rebuilds
// a run's report. Runs use 1 thread and fp32, so a replay gives identical weights.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from '../../src/cli/args.js';
import { spec as compareSpec } from '../../src/cli/commands/compare.js';
import { savedFlags, spec as trainSpec } from '../../src/cli/commands/train.js';
import { recipeFromFlags } from '../../src/cli/flags.js';
import { generateSynthetic } from '../../src/data/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { PAN } from '../../src/models/index.js';
import type { TrainOptions } from '../../src/train/train.js';
import { cli, type CliRun } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-runs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** One stderr line `panseg <cmd>: ...` matching `re`, exit 2. */
function assertRefused(r: CliRun, cmd: string, re: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line:\n${r.stderr}`);
  assert.match(lines[0], new RegExp(`^panseg ${cmd}: `));
  assert.match(lines[0], re);
}

const bytes = (p: string) => readFileSync(p);
const records = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')
  .map((l) => JSON.parse(l) as Record<string, unknown>).map(({ imgPerSec: _i, ...r }) => r);

let data: string;
let init: string;
let first: string;
let firstArgs: string[];
before(async () => {
  // 12 train images / batch 4 = 3 steps per epoch, so --max-steps 2 stops mid-epoch.
  data = (await generateSynthetic(join(tmp, 'shapes'), { train: 12, val: 2, size: 64, seed: 4 })).dir;
  manualSeed(2);
  const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, decoderChannels: 8, classes: 6 });
  init = join(tmp, 'init');
  m.savePretrained(init);
  m.dispose();
  first = join(tmp, 'first');
  // The hyperparameters that had no flag before, all given: the replay must carry them.
  firstArgs = ['train', '--model', init, '--dataset', 'folder', '--data-root', data, '--out', first, '--crop', '64', '--batch-size', '4',
    '--epochs', '1', '--max-steps', '2', '--optimizer', 'sgd', '--lr', '0.02', '--momentum', '0.8', '--weight-decay', '0.001',
    '--scale-range', '0.75,1.25', '--color-jitter', '0.1', '--class-weights', '1,1,1,1,1,2.5', '--channels-last', 'false',
    '--threads', '1', '--workers', '0', '--precision', 'fp32', '--quiet', '--log', 'csv', '--report-images', '2', '--json'];
});

describe('panseg train: runs that never lose each other', () => {
  it('trains, stopped by --max-steps mid-epoch: last/ exists and the output names the checkpoints that exist', async () => {
    const r = await cli(firstArgs);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { best_miou: number; checkpoints: string[] };
    assert.deepEqual(res.checkpoints, [join(first, 'checkpoints', 'best'), join(first, 'checkpoints', 'last')]);
    assert.ok(existsSync(join(first, 'checkpoints', 'last', 'trainer.json')));
    assert.ok(existsSync(join(first, 'metrics.csv')) && existsSync(join(first, 'report.html')));
  });

  it('refuses a second run into the same --out, offering --resume, --overwrite or a free name; the first run is untouched', async () => {
    const best = bytes(join(first, 'checkpoints', 'best', 'model.safetensors'));
    const metrics = bytes(join(first, 'metrics.jsonl'));
    const again = firstArgs.filter((a) => a !== '--json');
    assertRefused(await cli(again), 'train',
      /--out .*first already holds a training run \(checkpoints, config\.json, .*\); continue it with --resume, replace it with --overwrite, or train into a new folder such as --out .*first-2$/);
    assert.ok(bytes(join(first, 'checkpoints', 'best', 'model.safetensors')).equals(best), 'best/ untouched');
    assert.ok(bytes(join(first, 'metrics.jsonl')).equals(metrics), 'metrics.jsonl untouched');
    assertRefused(await cli([...again, '--resume', '--overwrite']), 'train', /--resume continues the run in --out and --overwrite replaces it; give one of them/);
    const other = join(tmp, 'notes');
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'mine');
    assertRefused(await cli(['train', '--dataset', 'folder', '--data-root', data, '--out', other]), 'train',
      /--out .*notes is not empty \(1 entry, e.g\. notes\.txt\); train into a new folder such as --out .*notes-2, or add --overwrite to train there \(only panseg's run files are replaced\)/);
  });

  it('saves config.json as exactly what --config reads back, and replaying it reproduces the run', async () => {
    const saved = JSON.parse(readFileSync(join(first, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(saved['scale-range'], [0.75, 1.25]);
    assert.deepEqual(saved['class-weights'], [1, 1, 1, 1, 1, 2.5]);
    assert.equal(saved.momentum, 0.8);
    const given = parse(trainSpec, firstArgs.slice(1)).opts;
    const replayed = parse(trainSpec, ['--config', join(first, 'config.json')]).opts;
    assert.deepEqual(replayed, given, '--config gives back the same options');
    assert.deepEqual(savedFlags(replayed), saved);

    const replay = join(tmp, 'replay');
    const r = await cli(['train', '--config', join(first, 'config.json'), '--out', replay]);
    assert.equal(r.code, 0, r.stderr);
    for (const ck of ['best', 'last']) {
      assert.ok(bytes(join(replay, 'checkpoints', ck, 'model.safetensors')).equals(bytes(join(first, 'checkpoints', ck, 'model.safetensors'))), `${ck}/ weights identical`);
    }
    assert.deepEqual(records(replay), records(first), 'the same metrics');
    // Without a new --out the replay targets the first run's folder, which is refused.
    assertRefused(await cli(['train', '--config', join(first, 'config.json')]), 'train', /already holds a training run/);
  });

  it('--overwrite replaces the run, removing only its files', async () => {
    writeFileSync(join(first, 'notes.txt'), 'mine');
    mkdirSync(join(first, 'report'), { recursive: true });
    const r = await cli(['train', '--config', join(first, 'config.json'), '--overwrite', '--val-split', 'none', '--log', 'tensorboard', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /train: --overwrite: removed the earlier run in .*first \(checkpoints, config\.json, metrics\.csv, metrics\.jsonl, .*\)/);
    assert.equal(readFileSync(join(first, 'notes.txt'), 'utf8'), 'mine');
    assert.ok(!existsSync(join(first, 'metrics.csv')), "the earlier run's metrics.csv is gone");
    assert.ok(readdirSync(first).some((f) => f.startsWith('events.out.tfevents.')));
    const res = JSON.parse(r.stdout) as { best_miou: number | null; checkpoints: string[] };
    assert.equal(res.best_miou, null);
    assert.deepEqual(res.checkpoints, [join(first, 'checkpoints', 'last')]);
  });

  it('with --val-split none prints no best mIoU and names last/ as the model to use', async () => {
    const out = join(tmp, 'noval');
    const r = await cli(['train', '--model', init, '--dataset', 'folder', '--data-root', data, '--val-split', 'none', '--out', out, '--crop', '64',
      '--batch-size', '4', '--epochs', '1', '--max-steps', '2', '--threads', '1', '--workers', '0', '--precision', 'fp32', '--quiet', '--report-images', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /best val mIoU|-1\.0000|epoch -1/);
    assert.match(r.stdout, new RegExp(`trained in \\d+ s without validation \\(--val-split none\\); the model to use is ${join(out, 'checkpoints', 'last').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(r.stdout, new RegExp(`checkpoints: ${join(out, 'checkpoints', 'last').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}   report: `));
    assert.ok(!existsSync(join(out, 'checkpoints', 'best')));
  });
});

describe('panseg report', () => {
  it('rebuilds report.html from a run directory; --help; one-line mistakes', async () => {
    const replay = join(tmp, 'replay');
    rmSync(join(replay, 'report.html'));
    const r = await cli(['report', replay, '--images', '1', '--threads', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `report: ${join(replay, 'report.html')}`);
    assert.match(readFileSync(join(replay, 'report.html'), 'utf8'), /Worst 1 of 2 validation images/);
    const h = await cli(['report', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /Usage: panseg report RUN_DIR/);
    assert.match(h.stdout, /--checkpoint <best\|last>/);
    assertRefused(await cli(['report']), 'report', /'panseg report' takes one run directory \(the --out of panseg train\), got none/);
    assertRefused(await cli(['report', join(tmp, 'missing')]), 'report', /missing does not exist; give the --out folder of a training run/);
  });
});

describe('panseg train: a flag for every training option', () => {
  // Keyed by every TrainOptions field, so a new option without a flag fails the type check of this file.
  const FLAG_OF: Record<keyof TrainOptions, string | null> = {
    dataset: 'dataset', dataRoot: 'data-root', split: 'split', valSplit: 'val-split', valRoot: 'val-root', datasetOptions: 'ignore-index',
    valFraction: 'val-fraction', splitFile: 'split-file', model: 'model', arch: 'arch', encoder: 'encoder', outputStride: 'output-stride',
    decoderChannels: 'decoder-channels', modelOptions: 'arch-options', classes: 'classes', encoderWeights: 'encoder-weights', auxWeight: 'aux-weight',
    crop: 'crop', scaleRange: 'scale-range', colorJitter: 'color-jitter', batchSize: 'batch-size', epochs: 'epochs', lr: 'lr', optimizer: 'optimizer',
    momentum: 'momentum', weightDecay: 'weight-decay', schedule: 'schedule', warmupIters: 'warmup-iters', loss: 'loss', labelSmoothing: 'label-smoothing',
    classWeights: 'class-weights', accumulate: 'accumulate', freezeEncoderEpochs: 'freeze-encoder-epochs', valEvery: 'val-every', precision: 'precision',
    channelsLast: 'channels-last', winograd: 'winograd', fusedKernels: 'fused-kernels', device: 'device', cudaGraphs: 'cuda-graphs', out: 'out', resume: 'resume', threads: 'threads', seed: 'seed', workers: 'workers', quiet: 'quiet',
    maxSteps: 'max-steps', log: 'log', report: 'report-images', config: 'config', distributed: 'nproc-per-node',
    onLog: null, // a callback: the CLI's output
  };
  it('each TrainOptions field maps to a flag of panseg train', () => {
    const names = new Set([...trainSpec.flags.map((f) => f.name), 'config']);
    for (const [k, flag] of Object.entries(FLAG_OF)) if (flag !== null) assert.ok(names.has(flag), `TrainOptions.${k}: --${flag} exists`);
  });
  it('refuses malformed number lists with an example', () => {
    const recipe = (args: string[]) => recipeFromFlags(parse(trainSpec, ['--dataset', 'folder', '--data-root', data, ...args]).opts, 'train');
    assert.deepEqual(recipe(['--scale-range', '0.5,1.5', '--class-weights', '1,2']).scaleRange, [0.5, 1.5]);
    assert.throws(() => recipe(['--scale-range', '0.5']), /--scale-range expects two numbers MIN,MAX, e.g\. 0\.5,2, got '0\.5'/);
    assert.throws(() => recipe(['--class-weights', '1,x']), /--class-weights expects a comma list of numbers, e\.g\. 1,2\.5,0\.8, got '1,x'/);
    assert.equal(recipe(['--channels-last', 'false']).channelsLast, false);
    assert.equal(recipe(['--winograd', 'false']).winograd, false);
    assert.equal(recipe(['--fused-kernels', 'false']).fusedKernels, false);
  });
});

describe('panseg compare: the recipe flags of panseg train', () => {
  // The train flags a comparison leaves out, and why; every other one is a compare flag with train's text.
  const NOT_COMPARED = new Set([
    'arch', 'output-stride', 'decoder-channels', 'arch-options', // per architecture: compare's --arch-options
    'model', // architectures are compared from scratch
    'overwrite', 'log', 'report-images', // the run folder: compare makes one per architecture
    'nproc-per-node', 'nnodes', 'node-rank', 'master-addr', 'master-port', 'rdzv-token', 'sync-bn', 'max-restarts', // one process per run
  ]);
  // compare's, with its own text (--val-split has no default there: given with --val-fraction or --split-file, it is refused)
  const OWN = new Set(['out', 'resume', 'json', 'val-split']);

  it("takes every recipe flag of train, with train's text and default", () => {
    for (const f of trainSpec.flags) {
      if (NOT_COMPARED.has(f.name)) continue;
      const c = compareSpec.flags.find((x) => x.name === f.name);
      assert.ok(c, `panseg compare --${f.name}`);
      if (!OWN.has(f.name)) assert.deepEqual(c, f, `--${f.name}`);
    }
  });

  it("a recipe flag reaches each run's config.json and the comparison's recipe", async () => {
    const out = join(tmp, 'compare');
    const r = await cli(['compare', '--archs', 'unet', '--arch-options', '{"unet":{"encoderDepth":3,"decoderChannels":[16,8,8]}}', '--dataset', 'folder',
      '--data-root', data, '--encoder', 'resnet18', '--crop', '64', '--batch-size', '4', '--epochs', '1', '--max-steps', '1', '--bench-size', '64',
      '--bench-repeats', '1', '--threads', '1', '--workers', '0', '--precision', 'fp32', '--quiet', '--out', out,
      '--weight-decay', '0.003', '--scale-range', '0.75,1.25', '--channels-last', 'false']);
    assert.equal(r.code, 0, r.stderr);
    const run = JSON.parse(readFileSync(join(out, 'unet', 'config.json'), 'utf8')) as TrainOptions;
    const { recipe } = JSON.parse(readFileSync(join(out, 'compare-config.json'), 'utf8')) as { recipe: TrainOptions };
    for (const o of [run, recipe]) assert.deepEqual([o.weightDecay, o.scaleRange, o.channelsLast], [0.003, [0.75, 1.25], false]);
  });
});
