// The `panseg` CLI, spawned as users run it (node --import tsx src/cli/main.ts): user mistakes give one
// line on stderr and exit 2; --help works everywhere; info/predict/eval outputs have the documented shape.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { DataLoader, generateSynthetic, openDataset, readIndexedPng } from '../../src/data/index.js';
import { manualSeed, setNumThreads } from '../../src/engine/index.js';
import { evaluate } from '../../src/eval/evaluate.js';
import { PAN } from '../../src/models/index.js';
import { ROOT } from '../helpers/reference.js';
import { cli, type CliRun } from '../helpers/cli.js';

setNumThreads(1);
const tmp = mkdtempSync(join(tmpdir(), 'panseg-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A user mistake: exit 2, nothing on stdout, exactly one stderr line `panseg <cmd>: ...` matching `re`, no stack. */
async function assertUsageError(args: string[], re: RegExp): Promise<void> {
  const r = await cli(args);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(r.code, 2, `exit code of panseg ${args.join(' ')}; stderr: ${r.stderr}`);
  assert.equal(lines.length, 1, `one stderr line, got:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |unexpected error/, 'no stack trace');
  assert.match(lines[0], new RegExp(`^panseg ${args[0]}: `));
  assert.match(lines[0], re);
  assert.equal(r.stdout, '');
}

// Fixtures shared by the tests below: a random 3-class model (depth 3, so 64 px inputs are valid),
// a 6-class one matching the synthetic dataset, two images, a 2-image synthetic val split.
let model3: string;
let model6: string;
let data: string;
let imgA: string;
let imgB: string;
before(async () => {
  manualSeed(0);
  model3 = join(tmp, 'model3');
  const m3 = new PAN({ encoderName: 'resnet18', encoderDepth: 3, decoderChannels: 8, classes: 3 });
  m3.savePretrained(model3);
  m3.dispose();
  model6 = join(tmp, 'model6');
  const m6 = new PAN({ encoderName: 'resnet18', encoderDepth: 3, decoderChannels: 8, classes: 6 });
  m6.savePretrained(model6, { classNames: ['bg', 'a', 'b', 'c', 'd', 'e'] });
  m6.dispose();
  data = (await generateSynthetic(join(tmp, 'shapes'), { train: 1, val: 2, size: 64, seed: 3 })).dir;
  imgA = join(tmp, 'a.png');
  imgB = join(tmp, 'b.jpg');
  const px = (w: number, h: number) => Buffer.from(Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 251));
  await sharp(px(70, 50), { raw: { width: 70, height: 50, channels: 3 } }).png().toFile(imgA);
  await sharp(px(64, 64), { raw: { width: 64, height: 64, channels: 3 } }).jpeg().toFile(imgB);
});

// More parse-level mistakes (choices, missing values, config keys) are checked in-process in args.test.ts.
describe('user mistakes: one line on stderr, exit 2', { concurrency: 2 }, () => {
  const cases: [string, () => string[], RegExp][] = [
    ['unknown command', () => ['bogus'], /unknown command 'bogus'; commands: train, eval, predict, info, demo/],
    ['unknown flag', () => ['train', '--bogus'], /unknown option '--bogus' for 'panseg train' \(see panseg train --help\)/],
    ['non-integer flag value', () => ['train', '--batch-size', 'x'], /--batch-size expects an integer, got 'x'/],
    ['missing required flag', () => ['train', '--dataset', 'folder', '--data-root', data], /'panseg train' needs --out \(see panseg train --help\)/],
    ['missing data root path', () => ['train', '--dataset', 'folder', '--data-root', join(tmp, 'no-such-dir'), '--out', join(tmp, 'o1')],
      /folder: expected the 'train' split as .*no-such-dir.*neither exists/],
    ['invalid option value in the library', () => ['train', '--dataset', 'folder', '--data-root', data, '--out', join(tmp, 'o2'), '--batch-size', '1'],
      /train: expected integer >= 2 for batchSize but received 1/],
    ['bad --config JSON', () => { writeFileSync(join(tmp, 'bad.json'), '{"epochs": '); return ['train', '--config', join(tmp, 'bad.json')]; }, /--config .*bad\.json: .*JSON/],
    ['predict without inputs', () => ['predict', '--model', model3, '--out', join(tmp, 'p0')], /needs at least one image, folder or list file/],
    ['predict with a missing model', () => ['predict', '--model', join(tmp, 'nope'), '--out', join(tmp, 'p1'), imgA], /fromPretrained: model directory .*nope.* does not exist/],
    ['unknown encoder', () => ['info', '--encoder', 'resnet9'], /unknown encoder 'resnet9'; valid encoders: resnet18, resnet34, resnet50/],
    ['--max-restarts on several machines', () => ['train', '--dataset', 'folder', '--data-root', data, '--out', join(tmp, 'o3'), '--nnodes', '2', '--max-restarts', '1'],
      /train: --max-restarts works on one machine \(--nnodes 1\)/],
    ['unknown device', () => ['train', '--dataset', 'folder', '--data-root', data, '--out', join(tmp, 'o4'), '--device', 'gpu'],
      /train: expected 'cpu' or 'cuda\[:N\]' for device but received "gpu"/],
    ['model/dataset class mismatch', () => ['eval', '--model', model3, '--dataset', 'folder', '--data-root', data, '--split', 'val'],
      /the model predicts 3 classes but the folder dataset at .* has 6/],
    ['mistyped command', () => ['trian'], /unknown command 'trian'; did you mean 'train'\?; commands: train, eval/],
    ['mistyped flag', () => ['train', '--batchsize', '4'], /unknown option '--batchsize' for 'panseg train'; did you mean --batch-size\? \(see panseg train --help\)$/],
    ['--crop below the model minimum', () => ['train', '--dataset', 'folder', '--data-root', data, '--split', 'val', '--val-split', 'none', '--batch-size', '2', '--encoder', 'resnet18', '--crop', '64', '--out', join(tmp, 'o5')],
      /train: crop 64 is smaller than the PAN-resnet18's minimum input of 128 px; use --crop 128 or more$/],
    ['--overlap without --tile', () => ['predict', '--model', model3, '--out', join(tmp, 'p2'), '--overlap', '0.5', imgA], /--overlap applies to --tile windows; add --tile N/],
    ['a run folder without checkpoints yet', () => { mkdirSync(join(tmp, 'run0', 'checkpoints'), { recursive: true }); return ['predict', '--model', join(tmp, 'run0'), '--out', join(tmp, 'p3'), imgA]; },
      /--model .*run0 is a training run without a saved model yet/],
  ];
  for (const [name, args, re] of cases) it(name, () => assertUsageError(args(), re));

  it('no command prints the usage and exits 2', async () => {
    const r = await cli([]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /Usage: panseg <command> \[options\]/);
  });
});

describe('--version and help', { concurrency: 2 }, () => {
  it('--version and -v print the version in package.json; help CMD is CMD --help', async () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const [long, short, help, flag] = await Promise.all([cli(['--version']), cli(['-v']), cli(['help', 'train']), cli(['train', '--help'])]);
    for (const r of [long, short]) {
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `panseg ${version}\n`);
    }
    assert.equal(help.code, 0);
    assert.equal(help.stdout, flag.stdout);
    assert.match(help.stdout, /^panseg train: /);
  });

  it('ships an MIT LICENSE and package.json repository and keywords', () => {
    assert.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) 2026 panseg contributors\n/);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { license: string; repository: { type: string; url: string }; keywords: string[] };
    assert.equal(pkg.license, 'MIT');
    assert.deepEqual(pkg.repository, { type: 'git', url: 'git+https://github.com/panseg/panseg.git' });
    assert.ok(pkg.keywords.includes('semantic-segmentation'));
  });
});

describe('--help', { concurrency: 2 }, () => {
  it('lists the commands, and every command has help (exit 0, Usage on stdout, nothing on stderr)', async () => {
    const top = await cli(['--help']);
    assert.equal(top.code, 0);
    const commands = top.stdout.split('Commands:\n')[1].split('\n\n')[0].split('\n').map((l) => l.trim().split(/\s+/)[0]);
    for (const c of ['train', 'eval', 'predict', 'info', 'demo']) assert.ok(commands.includes(c), `${c} listed`);
    const runs: { c: string; r: CliRun }[] = [];
    for (let i = 0; i < commands.length; i += 2) { // two at a time: the machine has 2 cores
      runs.push(...await Promise.all(commands.slice(i, i + 2).map(async (c) => ({ c, r: await cli([c, '--help']) }))));
    }
    for (const { c, r } of runs) {
      assert.equal(r.code, 0, `panseg ${c} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^panseg ${c}: .*\\n\\nUsage: panseg ${c}`), `panseg ${c} --help`);
      assert.match(r.stdout, /--help/);
      assert.equal(r.stderr, '');
    }
    const short = await cli(['train', '-h']);
    assert.equal(short.code, 0);
    assert.match(short.stdout, /Usage: panseg train/);
  });
});

describe('outputs', { concurrency: 2 }, () => {
  it('info --json describes the model and the engine', async () => {
    const r = await cli(['info', '--json', '--encoder', 'resnet18', '--classes', '2', '--size', '128']);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    const m = new PAN({ encoderName: 'resnet18', classes: 2 });
    assert.equal(info.model.parameters, m.numParameters());
    m.dispose();
    assert.equal(info.model.encoderName, 'resnet18');
    assert.equal(info.model.classes, 2);
    assert.equal(info.model.outputStride, 16);
    assert.equal(info.model.minInputSize, 128);
    assert.equal(info.gflops.size, 128);
    assert.ok(info.gflops.value > 0);
    assert.equal(typeof info.engine.libtorch, 'string');
    assert.equal(typeof info.engine.threads, 'number');
    assert.equal(typeof info.engine.cores, 'number');
  });

  it('predict writes palette masks, overlays and stats.json at the input sizes', async () => {
    const out = join(tmp, 'pred');
    const r = await cli(['predict', '--model', model3, '--out', out, '--threads', '1', '--json', imgA, imgB]);
    assert.equal(r.code, 0, r.stderr);
    const printed = JSON.parse(r.stdout) as { input: string; mask: string; overlay: string; width: number; height: number }[];
    assert.equal(printed.length, 2);
    for (const [stem, w, h] of [['a', 70, 50], ['b', 64, 64]] as const) {
      const mask = join(out, `${stem}_mask.png`);
      const overlay = join(out, `${stem}_overlay.png`);
      const mm = await sharp(mask).metadata();
      assert.equal(mm.format, 'png');
      assert.deepEqual([mm.width, mm.height], [w, h], `${stem} mask size`);
      const om = await sharp(overlay).metadata();
      assert.equal(om.format, 'png');
      assert.deepEqual([om.width, om.height, om.channels], [w, h, 3], `${stem} overlay size`);
      const idx = readIndexedPng(readFileSync(mask));
      assert.ok(idx && idx.palette.length > 0, `${stem} mask is a palette PNG`);
      assert.deepEqual([idx.width, idx.height], [w, h]);
      assert.ok(idx.indices.every((v) => v < 3), 'mask values are class indices');
    }
    const stats = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8')) as { input: string; width: number; height: number; areas: { class: string; percent: number }[] }[];
    assert.deepEqual(stats.map((s) => [s.input, s.width, s.height]), [[imgA, 70, 50], [imgB, 64, 64]]);
    for (const s of stats) assert.ok(Math.abs(s.areas.reduce((a, x) => a + x.percent, 0) - 100) < 1e-6, 'areas sum to 100%');
    assert.ok(!existsSync(join(out, 'a_probs.npy')), 'no probabilities unless --probs');
  });

  it("predict --model RUN --tile: the run's best checkpoint, windows, EXIF orientation, output paths kept per input folder", async () => {
    const run = join(tmp, 'run1');
    cpSync(model3, join(run, 'checkpoints', 'best'), { recursive: true });
    const inDir = join(tmp, 'in');
    for (const sub of ['a', 'b']) mkdirSync(join(inDir, sub), { recursive: true });
    cpSync(imgA, join(inDir, 'a', 'x.png'));
    await sharp(imgB).png().toFile(join(inDir, 'b', 'x.png'));
    // Stored 40 wide x 24 high, EXIF orientation 6 (rotate 90 degrees clockwise to show): shown 24 x 40.
    const raw = Buffer.from(Array.from({ length: 40 * 24 * 3 }, (_, i) => (i * 11) % 253));
    await sharp(raw, { raw: { width: 40, height: 24, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toFile(join(inDir, 'b', 'rot.jpg'));
    const out = join(tmp, 'pred-tiled');
    const r = await cli(['predict', '--model', run, '--out', out, '--threads', '1', '--tile', '64', '--overlap', '0.25', '--json', join(inDir, 'a', 'x.png'), join(inDir, 'b')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^panseg predict: --model ${run} is a training run; using its best checkpoint, ${join(run, 'checkpoints', 'best')}\n`));
    const printed = JSON.parse(r.stdout) as { input: string; mask: string; width: number; height: number }[];
    assert.deepEqual(printed.map((p) => [p.mask, p.width, p.height]), [
      [join(out, 'a', 'x_mask.png'), 70, 50], [join(out, 'b', 'rot_mask.png'), 24, 40], [join(out, 'b', 'x_mask.png'), 64, 64],
    ]);
    for (const p of printed) {
      const m = await sharp(p.mask).metadata();
      assert.deepEqual([m.width, m.height], [p.width, p.height]);
    }
  });

  it('eval --json prints miou, pixel_accuracy and per_class_iou (as the library computes them)', async () => {
    const r = await cli(['eval', '--model', model6, '--dataset', 'folder', '--data-root', data, '--split', 'val', '--json', '--precision', 'fp32', '--threads', '1', '--workers', '0']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.equal(typeof res.miou, 'number');
    assert.equal(typeof res.pixel_accuracy, 'number');
    const ds = openDataset('folder', data, { split: 'val' });
    assert.deepEqual(Object.keys(res.per_class_iou), [...ds.classes]);
    for (const v of Object.values(res.per_class_iou)) assert.ok(v === null || (typeof v === 'number' && v >= 0 && v <= 1));
    assert.equal(res.images, 2);

    const model = PAN.fromPretrained(model6);
    const loader = new DataLoader(ds, { mode: 'eval', stride: model.outputStride, mean: model.preprocessing.mean, std: model.preprocessing.std, workers: 0 });
    const lib = await evaluate(model, loader, { precision: 'fp32' });
    await loader.close();
    model.dispose();
    // Same code, same thread count: the only possible difference is the JSON round trip.
    assert.ok(Math.abs(res.miou - lib.miou) <= 1e-12, `cli ${res.miou} vs library ${lib.miou}`);
    assert.ok(Math.abs(res.pixel_accuracy - lib.pixelAccuracy) <= 1e-12);
  });
});
