// `panseg/onnx` (src/onnx): an exported model segmented on onnxruntime-node in a process that never loads
// libtorch or panseg's addon, with the labels of the libtorch-side OnnxSegmenter; and the one-line message
// when an optional dependency (onnxruntime-node / -web) is missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { importOptional } from '../../src/common/optional.js';
import { decodeImage } from '../../src/data/decode.js';
import { OnnxSegmenter } from '../../src/eval/onnx-engine.js';
import { segment } from '../../src/eval/predict.js';
import { exportOnnx } from '../../src/export/index.js';
import { calibratedPan, tempDir } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const tmp = tempDir();
const [W, H] = [150, 100];
let onnxPath: string;
let fixedPath: string;
let torchSide: Uint8Array;

/** An RGB test image with structure, so a random model predicts several classes. */
function pixels(w: number, h: number): Buffer {
  const d = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = 3 * (y * w + x);
    const disc = (x - w / 3) ** 2 + (y - h / 2) ** 2 < (h / 3) ** 2;
    d[i] = (255 * x) / w; d[i + 1] = disc ? 230 : (255 * y) / h; d[i + 2] = x > (2 * w) / 3 ? 200 : 60;
  }
  return d;
}

before(async () => {
  const model = calibratedPan({ encoderName: 'resnet18', classes: 4, decoderChannels: 16 });
  try {
    onnxPath = join(tmp.dir, 'pan.onnx');
    exportOnnx(model, { path: onnxPath, dynamicSize: true, meta: { classNames: ['a', 'b', 'c', 'd'] } });
    fixedPath = join(tmp.dir, 'pan-128.onnx');
    exportOnnx(model, { path: fixedPath, height: 128, width: 128 });
  } finally {
    model.dispose();
  }
  const raw = { raw: { width: W, height: H, channels: 3 as const } };
  await sharp(pixels(W, H), raw).png().toFile(join(tmp.dir, 'image.png'));
  // The same picture stored sideways (as a phone does), with EXIF orientation 6 (rotate 90° clockwise to show).
  await sharp(pixels(W, H), raw).rotate(-90).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toFile(join(tmp.dir, 'sideways.jpg'));
  const seg = await OnnxSegmenter.create(onnxPath, { threads: 2 });
  try {
    torchSide = (await segment(seg, await decodeImage(join(tmp.dir, 'image.png')))).labels;
  } finally {
    await seg.release();
  }
});
after(() => tmp[Symbol.dispose]());

/**
 * Runs `code` (an ES module body, with `onnx` = the entry module) in a fresh Node started in the package root
 * (so 'panseg/onnx' resolves to the package itself), under tsx for a .ts entry; returns its last stdout line as JSON.
 */
function child(code: string, entry: string): Record<string, unknown> {
  const src = `const onnx = await import(${JSON.stringify(entry)});\n${code}`;
  const r = spawnSync(process.execPath, [...(entry.endsWith('.ts') ? ['--import', 'tsx'] : []), '--input-type=module', '-e', src], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `child failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

const SEGMENT = (dir: string, onnx: string, fixed: string) => `
import { readFileSync } from 'node:fs';
const m = await onnx.OnnxModel.load(${JSON.stringify(onnx)}, { threads: 2 });
const s = await m.segmentFile(${JSON.stringify(join(dir, 'image.png'))});
const side = await m.segmentFile(${JSON.stringify(join(dir, 'sideways.jpg'))});
const half = await m.segmentFile(${JSON.stringify(join(dir, 'image.png'))}, { resizeLong: 75, withProbs: true });
await m.release();
const f = await onnx.OnnxModel.load(${JSON.stringify(fixed)});
const big = await f.segment({ data: new Uint8Array(300 * 200 * 3).fill(90), width: 300, height: 200 });
await f.release();
const maps = readFileSync('/proc/self/maps', 'utf8');
console.log(JSON.stringify({
  labels: Buffer.from(s.labels).toString('base64'), size: [s.width, s.height, s.inputWidth, s.inputHeight], classes: m.classes,
  side: [side.width, side.height], half: [half.width, half.height, half.inputWidth, half.inputHeight, half.probs.length],
  big: [big.width, big.height, big.inputWidth, big.inputHeight, big.labels.length],
  addon: maps.includes('panseg.node'), torch: /libtorch|libc10/.test(maps), ort: maps.includes('onnxruntime'),
}));`;

test('panseg/onnx segments an exported model without loading libtorch or the addon, with the labels of OnnxSegmenter', { timeout: 180_000 }, () => {
  const r = child(SEGMENT(tmp.dir, onnxPath, fixedPath), join(ROOT, 'src/onnx/index.ts'));
  assert.equal(r.ort, true, 'onnxruntime-node is in the process (so /proc/self/maps is read right)');
  assert.equal(r.addon, false, 'build/Release/panseg.node was loaded');
  assert.equal(r.torch, false, 'libtorch was loaded');
  assert.deepEqual(r.size, [W, H, 160, 128]);
  assert.deepEqual(r.classes, ['a', 'b', 'c', 'd']);
  const labels = new Uint8Array(Buffer.from(r.labels as string, 'base64'));
  assert.ok(new Set(labels).size > 1, 'the test image should give more than one class');
  assert.deepEqual(labels, torchSide);
  // EXIF orientation 6: the stored 100x150 comes out upright, 150x100.
  assert.deepEqual(r.side, [W, H]);
  // resizeLong 75: run at 75x50 (padded to 128x128), labels and probabilities back at 150x100.
  assert.deepEqual(r.half, [W, H, 128, 128, 4 * W * H]);
  // A fixed 128x128 model takes a 300x200 image scaled into it (128x85), labels at 300x200.
  assert.deepEqual(r.big, [300, 200, 128, 128, 300 * 200]);
});

test("package.json exports './onnx' to the build of src/onnx/index.ts", { timeout: 120_000 }, (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { import: string; types: string }> };
  assert.deepEqual(pkg.exports['./onnx'], { types: './dist/src/onnx/index.d.ts', import: './dist/src/onnx/index.js' });
  // scripts/setup.sh builds dist/ before the tests; without a build (a bare checkout), the source test above stands alone.
  if (!existsSync(join(ROOT, 'dist/src/onnx/index.js'))) { t.skip('no dist/ build (npm run build)'); return; }
  const r = child(SEGMENT(tmp.dir, onnxPath, fixedPath), 'panseg/onnx');
  assert.equal(r.addon, false);
  assert.equal(r.torch, false);
  assert.deepEqual(new Uint8Array(Buffer.from(r.labels as string, 'base64')), torchSide);
});

test('a missing optional dependency is one line naming the package and the install command', async () => {
  await assert.rejects(importOptional('panseg-no-such-runtime', 'OnnxModel'), {
    name: 'PansegError',
    message: "OnnxModel: panseg-no-such-runtime is not installed; panseg needs it to run ONNX models: install it with 'npm install panseg-no-such-runtime' (an optional dependency of panseg)",
  });
  const ort = await importOptional<{ InferenceSession: unknown }>('onnxruntime-node', 'test');
  assert.equal(typeof ort.InferenceSession, 'function');
});
