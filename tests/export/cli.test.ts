// `panseg export`, and `panseg predict|eval --engine onnx` against the torch engine, as a user runs them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateSynthetic, readIndexedPng, SYNTHETIC_COLORS } from '../../src/data/index.js';
import { calibratedPan, tempDir } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const tmp = tempDir();
const modelDir = join(tmp.dir, 'model');
const data = join(tmp.dir, 'synth');
const cache = join(tmp.dir, 'cache');
let images: string[] = [];

function cli(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, PANSEG_CACHE_DIR: cache },
  });
}

before(async () => {
  const s = await generateSynthetic(data, { train: 1, val: 2, size: 100, seed: 5 });
  images = readdirSync(join(data, 'val', 'images')).map((f) => join(data, 'val', 'images', f));
  const model = calibratedPan({ encoderName: 'resnet18', classes: s.classes.length }, 4);
  model.savePretrained(modelDir, { classNames: s.classes, colors: SYNTHETIC_COLORS.slice(0, s.classes.length) as [number, number, number][] });
  model.dispose();
});
after(() => tmp[Symbol.dispose]());

test('panseg export: --help, a fixed-size export, and a size error with its fix', () => {
  const help = cli(['export', '--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: panseg export --model DIR --out model\.onnx/);
  assert.match(help.stdout, /--dynamic-size/);

  const out = join(tmp.dir, 'fixed.onnx');
  const r = cli(['export', '--model', modelDir, '--out', out, '--size', '128x160', '--attention', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.path, out);
  assert.deepEqual([j.input.height, j.input.width, j.input.dynamicSize], [128, 160, false]);
  assert.deepEqual(j.outputs, { logits: 'logits', labels: null, attention: 'attention' });
  assert.ok(existsSync(`${out}.json`));

  const bad = cli(['export', '--model', modelDir, '--out', out, '--size', '100']);
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim(), 'panseg export: exportOnnx: height 100 is not a valid input size: it must be a multiple of the output stride 16 and at least 128; use 128');
  const both = cli(['export', '--model', modelDir, '--out', out, '--size', '256', '--dynamic-size']);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /--size fixes the input size; leave it out with --dynamic-size/);
});

test('panseg predict --engine onnx: the same masks as the torch engine, exported once to the cache', () => {
  const torch = cli(['predict', '--model', modelDir, '--out', join(tmp.dir, 'p-torch'), '--precision', 'fp32', '--no-overlay', ...images]);
  assert.equal(torch.status, 0, torch.stderr);
  for (let run = 0; run < 2; run++) {
    const onnx = cli(['predict', '--engine', 'onnx', '--model', modelDir, '--out', join(tmp.dir, 'p-onnx'), '--threads', '2', '--no-overlay', ...images]);
    assert.equal(onnx.status, 0, onnx.stderr);
    assert.match(onnx.stdout, /2 image\(s\) segmented .*onnxruntime, fp32/);
  }
  assert.equal(readdirSync(join(cache, 'onnx')).filter((f) => f.endsWith('.onnx')).length, 1, 'one cached export, reused');
  for (const f of readdirSync(join(tmp.dir, 'p-torch')).filter((n) => n.endsWith('_mask.png'))) {
    const a = readIndexedPng(readFileSync(join(tmp.dir, 'p-torch', f)))!;
    const b = readIndexedPng(readFileSync(join(tmp.dir, 'p-onnx', f)))!;
    let same = 0;
    for (let i = 0; i < a.indices.length; i++) same += a.indices[i] === b.indices[i] ? 1 : 0;
    assert.ok(same / a.indices.length >= 0.999, `${f}: masks agree on ${same} of ${a.indices.length} pixels`);
  }
  const stats = JSON.parse(readFileSync(join(tmp.dir, 'p-onnx', 'stats.json'), 'utf8'));
  assert.equal(stats.length, 2);

  // An explicit file, fixed size: images are padded to 128x160.
  const fixed = cli(['predict', '--engine', 'onnx', '--onnx', join(tmp.dir, 'fixed.onnx'), '--out', join(tmp.dir, 'p-fixed'), images[0]]);
  assert.equal(fixed.status, 0, fixed.stderr);
  assert.ok(existsSync(join(tmp.dir, 'p-fixed', 'stats.json')));

  const bf16 = cli(['predict', '--engine', 'onnx', '--model', modelDir, '--out', join(tmp.dir, 'x'), '--precision', 'bf16', images[0]]);
  assert.equal(bf16.status, 2);
  assert.match(bf16.stderr, /--engine onnx runs in fp32; --precision bf16 needs --engine torch/);
});

test('panseg eval --engine onnx: the metrics of the torch engine', () => {
  const args = ['eval', '--model', modelDir, '--dataset', 'folder', '--data-root', data, '--split', 'val', '--json', '--workers', '0'];
  const torch = cli([...args, '--precision', 'fp32']);
  assert.equal(torch.status, 0, torch.stderr);
  const onnx = cli([...args, '--engine', 'onnx']);
  assert.equal(onnx.status, 0, onnx.stderr);
  const [a, b] = [JSON.parse(torch.stdout), JSON.parse(onnx.stdout)];
  assert.equal(b.engine, 'onnxruntime');
  assert.equal(b.images, 2);
  assert.ok(Math.abs(a.miou - b.miou) <= 1e-3, `mIoU ${a.miou} vs ${b.miou}`);
  assert.ok(Math.abs(a.pixel_accuracy - b.pixel_accuracy) <= 1e-3);
});

test('panseg export --dtype fp16: half the file, and eval on it gives the fp32 metrics to 0.01', () => {
  const [p32, p16] = [join(tmp.dir, 'm32.onnx'), join(tmp.dir, 'm16.onnx')];
  const a = cli(['export', '--model', modelDir, '--out', p32, '--dynamic-size', '--json']);
  const b = cli(['export', '--model', modelDir, '--out', p16, '--dynamic-size', '--dtype', 'fp16', '--json']);
  assert.equal(b.status, 0, b.stderr);
  const [ja, jb] = [JSON.parse(a.stdout), JSON.parse(b.stdout)];
  assert.equal(jb.dtype, 'fp16');
  assert.match(jb.sha256, /^[0-9a-f]{64}$/);
  assert.ok(Math.abs(jb.bytes / ja.bytes - 0.5) < 0.05, `${jb.bytes} vs ${ja.bytes} bytes`);
  const args = ['eval', '--dataset', 'folder', '--data-root', data, '--split', 'val', '--json', '--workers', '0'];
  const [ea, eb] = [cli([...args, '--onnx', p32]), cli([...args, '--onnx', p16])].map((r) => JSON.parse(r.stdout));
  assert.ok(Math.abs(ea.miou - eb.miou) <= 0.01, `mIoU fp32 ${ea.miou} vs fp16 ${eb.miou}`);
  const bad = cli(['export', '--model', modelDir, '--out', p16, '--fp16-io']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--fp16-ops and --fp16-io go with --dtype fp16/);
});
