// `panseg compare --val-fraction` on a flat folder dataset without a val split: one seeded split, saved once as
// <out>/split.json and read by every architecture's run; a resume after files were added reuses it rather than
// drawing anew; --split-file, and the refusals of a validation source given twice or a bad one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareArchitectures, type Comparison } from '../../src/compare/index.js';
import { generateSynthetic, openDataset, readSplitFile, splitDataset } from '../../src/data/index.js';
import type { TrainOptions } from '../../src/train/train.js';
import { parse } from '../../src/cli/args.js';
import { run as runCompare, spec as compareSpec } from '../../src/cli/commands/compare.js';
import { cli } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-compare-split-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let data: string;
const out = join(tmp, 'cmp');
// Small and quick: UNet three stages deep and PSPNet (three by default) at 64 px, one step each, one thread.
const recipe = (dir = out): string[] => ['--dataset', 'folder', '--data-root', data, '--split', 'all', '--encoder', 'resnet18', '--crop', '64',
  '--batch-size', '2', '--epochs', '1', '--max-steps', '1', '--bench-size', '64', '--bench-repeats', '1', '--workers', '0', '--threads', '1',
  '--precision', 'fp32', '--quiet', '--out', dir];
const SMALL_UNET = ['--arch-options', '{"unet":{"encoderDepth":3,"decoderChannels":[16,8,8]}}'];
const json = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

/** Adds `n` synthetic images (made in `from`), named `<prefix>train_0000i.png`, to the flat `images/` + `masks/` of `to`. */
async function addFlat(to: string, from: string, n: number, seed: number, prefix = ''): Promise<void> {
  const gen = (await generateSynthetic(from, { train: n, val: 0, size: 64, seed })).dir;
  for (const sub of ['images', 'masks']) {
    mkdirSync(join(to, sub), { recursive: true });
    for (const f of readdirSync(join(gen, 'train', sub))) renameSync(join(gen, 'train', sub, f), join(to, sub, `${prefix}${f}`));
  }
  copyFileSync(join(gen, 'classes.json'), join(to, 'classes.json'));
}

/** The error message of `panseg compare ARGS` run in this process (parsing and run, as the CLI does), or null. */
async function refusal(args: string[]): Promise<string | null> {
  try {
    await runCompare(parse(compareSpec, args).opts);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

before(async () => {
  data = join(tmp, 'flat');
  await addFlat(data, join(tmp, 'gen'), 8, 5); // 8 images, no val split: 6 train and 2 val at 0.25
});

describe('panseg compare --val-fraction: one split for every architecture', () => {
  let drawn: string[] = [];
  let splitText = '';
  let splitMtime = 0;

  it('a folder dataset without a val split needs --val-fraction, and the error says so', async () => {
    assert.match(await refusal(['--archs', 'unet', ...recipe(join(tmp, 'no-val')), '--split', 'train']) ?? '', /use --split all \(and --val-fraction for a validation share\)$/);
    assert.ok(!existsSync(join(tmp, 'no-val')), 'nothing written');
  });

  it('draws the split once as train would, saves it in the comparison, and the run reads it', async () => {
    const r = await cli(['compare', '--archs', 'unet', ...SMALL_UNET, ...recipe(), '--val-fraction', '0.25']);
    assert.equal(r.code, 0, r.stderr);
    const split = readSplitFile(join(out, 'split.json'));
    // train's own draw with the seed every run gets (0, train's default).
    drawn = splitDataset(openDataset('folder', data, { split: 'all' }), { valFraction: 0.25, seed: 0 }).file.val;
    assert.deepEqual([split.split, split.seed, split.valFraction, split.train.length, split.val], ['all', 0, 0.25, 6, drawn]);
    assert.deepEqual(readSplitFile(join(out, 'unet', 'split.json')).val, drawn, "the run's copy");
    const cfg = json<TrainOptions>(join(out, 'unet', 'config.json'));
    assert.deepEqual([cfg.splitFile, cfg.valFraction], [join(out, 'split.json'), 0.25]);
    // The class list and the sample picture come from the split's val images.
    const c = json<Comparison>(join(out, 'compare.json'));
    assert.deepEqual([c.split, c.valSplit, c.classes.length], ['split.json train', 'split.json val', 6]);
    assert.ok(readFileSync(join(out, 'compare.html'), 'utf8').includes(`The first validation image, ${drawn[0]} (64×64)`));
    assert.equal(json<{ recipe: Record<string, unknown> }>(join(out, 'compare-config.json')).recipe.valFraction, 0.25);
    splitText = readFileSync(join(out, 'split.json'), 'utf8');
    splitMtime = statSync(join(out, 'split.json')).mtimeMs;
  });

  it('--resume keeps the split after files were added: the second architecture validates on the same images', async () => {
    assert.match(await refusal(['--archs', 'unet,pspnet', ...SMALL_UNET, ...recipe(), '--resume']) ?? '',
      /^compare: --resume: the options differ from the interrupted comparison's in valFraction, valSplit; /);
    // A new draw would now take 3 of 12 images and might pick new ones; the comparison must not draw again.
    await addFlat(data, join(tmp, 'gen-more'), 4, 9, 'new-');
    assert.equal(openDataset('folder', data, { split: 'all' }).length, 12);
    const r = await cli(['compare', '--archs', 'unet,pspnet', ...SMALL_UNET, ...recipe(), '--val-fraction', '0.25', '--resume']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^unet: finished in an earlier run, skipped;/);
    assert.equal(readFileSync(join(out, 'split.json'), 'utf8'), splitText, 'the split is not drawn again');
    assert.equal(statSync(join(out, 'split.json')).mtimeMs, splitMtime, 'nor rewritten');
    for (const arch of ['unet', 'pspnet']) {
      assert.deepEqual(readSplitFile(join(out, arch, 'split.json')).val, drawn, arch);
      assert.equal(json<TrainOptions>(join(out, arch, 'config.json')).splitFile, join(out, 'split.json'), arch);
    }
    assert.deepEqual(json<Comparison>(join(out, 'compare.json')).rows.map((x) => x.arch), ['unet', 'pspnet']);
  });

  it("--split-file: a new comparison on another comparison's lists", async () => {
    const other = join(tmp, 'from-file');
    const r = await cli(['compare', '--archs', 'pspnet', ...recipe(other), '--split-file', join(out, 'split.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(other, 'split.json'), 'utf8'), splitText, 'copied');
    assert.deepEqual(readSplitFile(join(other, 'pspnet', 'split.json')).val, drawn);
  });
});

describe('panseg compare: refusals of the validation source, before anything is written', () => {
  const dir = () => join(tmp, 'refused');

  it('--val-fraction or --split-file with --val-split, in one line', async () => {
    const r = await cli(['compare', '--archs', 'unet', ...recipe(dir()), '--val-fraction', '0.2', '--val-split', 'val']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'panseg compare: valFraction (--val-fraction) validates on a share of split (--split); drop valSplit (--val-split val), or drop valFraction to validate on that split\n');
    assert.equal(await refusal(['--archs', 'unet', ...recipe(dir()), '--split-file', join(out, 'split.json'), '--val-split', 'val']),
      'compare: splitFile (--split-file) names the validation images; drop valSplit (--val-split val), or drop splitFile to validate on that split');
    assert.equal(await refusal(['--archs', 'unet', ...recipe(dir()), '--split-file', join(out, 'split.json'), '--val-fraction', '0.2']),
      '--split-file already holds a train/val split; drop --val-fraction');
    assert.ok(!existsSync(dir()));
  });

  it('a --val-fraction of 0, 1, below 0 or not a number', async () => {
    for (const f of ['0', '1', '-0.1']) {
      assert.equal(await refusal(['--archs', 'unet', ...recipe(dir()), `--val-fraction=${f}`]), `--val-fraction expects a number between 0 and 1, e.g. 0.1, got ${Number(f)}`);
    }
    assert.equal(await refusal(['--archs', 'unet', ...recipe(dir()), '--val-fraction', 'a tenth']), "--val-fraction expects a number, got 'a tenth'");
    const base = { dataset: 'folder', dataRoot: data, split: 'all', encoder: 'resnet18', crop: 64, archs: ['unet'], out: dir(), quiet: true };
    await assert.rejects(compareArchitectures({ ...base, valFraction: 1 }), {
      message: 'compare: expected a number between 0 and 1 (exclusive) for valFraction (--val-fraction), e.g. 0.1, but received 1 of type number',
    });
    assert.ok(!existsSync(dir()));
  });

  it('a split file that does not exist', async () => {
    const missing = join(tmp, 'nope', 'split.json');
    const r = await cli(['compare', '--archs', 'unet', ...recipe(dir()), '--split-file', missing]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `panseg compare: split: expected the split file ${missing} but it does not exist (train with --val-fraction writes <out>/split.json)\n`);
    const base = { dataset: 'folder', dataRoot: data, split: 'all', encoder: 'resnet18', crop: 64, archs: ['unet'], out: dir(), quiet: true };
    await assert.rejects(compareArchitectures({ ...base, splitFile: missing }), {
      message: `compare: the split file ${missing} (--split-file) does not exist; give the split.json of a training run (train --val-fraction writes <out>/split.json) or use --val-fraction`,
    });
    assert.ok(!existsSync(dir()));
  });
});
