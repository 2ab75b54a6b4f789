// The page's pure modules (web/lib) against the library they copy: the same input tensor as panseg's
// preprocessing, the same labels as its argmax, the same palette, colour map and class areas.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { VOC_PALETTE } from '../../src/common/palette.js';
import { evalOptions, evalTransform } from '../../src/data/index.js';
import { randn, tensor, tidy } from '../../src/engine/index.js';
import { probsToLabels } from '../../src/eval/inference.js';
import { classAreas as libClassAreas, colormapColor } from '../../src/eval/visualize.js';
import { exportOnnx } from '../../src/export/index.js';
import { PAN } from '../../src/models/index.js';
import { CLASSES, COLORS, saveTinyModel, testPixels, tmp } from './helpers.js';

// The page's modules are plain JS for the browser (typed through web/tsconfig.json); load them untyped here.
type Any = any;
const web = (f: string): Promise<Any> => import(new URL(`../../web/lib/${f}`, import.meta.url).href);
let pre: Any;
let render: Any;
let sidecarMod: Any;
let model: PAN;
let dir: string;
let cleanup: () => void;

before(async () => {
  [pre, render, sidecarMod] = await Promise.all([web('preprocess.js'), web('render.js'), web('sidecar.js')]);
  const t = tmp('panseg-page-');
  cleanup = t.cleanup;
  dir = t.dir;
  model = PAN.fromPretrained(saveTinyModel(dir));
});
after(() => {
  model?.dispose();
  cleanup?.();
});

const SPEC = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], inputRange: [0, 1], outputStride: 16, minInputSize: 128, fixedSize: null };

function rgba(rgb: Uint8Array): Uint8ClampedArray {
  const out = new Uint8ClampedArray((rgb.length / 3) * 4);
  for (let i = 0; i < rgb.length / 3; i++) out.set([rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255], 4 * i);
  return out;
}

describe('web/lib/preprocess', () => {
  test('pads like panseg: a multiple of the output stride, at least minInputSize', () => {
    for (const [w, h] of [[200, 150], [16, 16], [129, 300], [512, 512], [1000, 37], [1, 1]]) {
      const p = pre.planInput(w, h, SPEC);
      const info = evalTransform({ data: new Uint8Array(w * h * 3), width: w, height: h }, null, evalOptions('t', { stride: model.outputStride }, 255)).info;
      assert.deepEqual(p, {
        width: w, height: h, scaled: false,
        inputWidth: Math.max(model.minInputSize, info.inputWidth), inputHeight: Math.max(model.minInputSize, info.inputHeight),
      }, `${w}x${h}`);
    }
  });

  test('scales down only past maxSide or a fixed model size, keeping the aspect ratio', () => {
    assert.deepEqual(pre.planInput(2000, 1000, SPEC, 1024), { width: 1024, height: 512, inputWidth: 1024, inputHeight: 512, scaled: true });
    assert.deepEqual(pre.planInput(300, 200, SPEC, 1024).scaled, false);
    const fixed = { ...SPEC, fixedSize: { height: 256, width: 256 } };
    assert.deepEqual(pre.planInput(200, 100, fixed), { width: 200, height: 100, inputWidth: 256, inputHeight: 256, scaled: false });
    assert.deepEqual(pre.planInput(1024, 512, fixed), { width: 256, height: 128, inputWidth: 256, inputHeight: 256, scaled: true });
    assert.throws(() => pre.planInput(0, 10, SPEC), /planInput: expected a positive image size but received 0x10/);
  });

  test('builds the same normalized input tensor as evalTransform, zeros in the padding', () => {
    const [w, h] = [37, 21];
    const rgb = testPixels(w, h);
    const plan = pre.planInput(w, h, SPEC);
    const x: Float32Array = pre.toInputTensor(rgba(rgb), plan, SPEC);
    const ref = evalTransform({ data: rgb, width: w, height: h }, null, evalOptions('t', { stride: 16 }, 255));
    assert.equal(x.length, 3 * plan.inputHeight * plan.inputWidth);
    let maxDiff = 0;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < plan.inputHeight; y++) {
        for (let xx = 0; xx < plan.inputWidth; xx++) {
          const v = x[(c * plan.inputHeight + y) * plan.inputWidth + xx];
          const r = y < ref.height && xx < ref.width ? ref.image[(c * ref.height + y) * ref.width + xx] : 0;
          maxDiff = Math.max(maxDiff, Math.abs(v - r));
        }
      }
    }
    assert.ok(maxDiff <= 1e-6, `max |page - panseg| = ${maxDiff}`);
    assert.throws(() => pre.toInputTensor(new Uint8ClampedArray(10), plan, SPEC), /toInputTensor: expected 3108 RGBA bytes \(37x21\) but received 10/);
  });

  test('takes the argmax of the logits (logit > 0 for one class) and crops, as probsToLabels', () => {
    for (const classes of [3, 1]) {
      const [H, W, h, w] = [32, 48, 29, 41];
      const logits = randn([1, classes, H, W]);
      const data = logits.toArray() as Float32Array;
      const ref = tidy(() => {
        const p = logits.narrow(2, 0, h).narrow(3, 0, w);
        return probsToLabels(classes === 1 ? p.sigmoid() : p.softmax(1)).to('uint8').toArray() as Uint8Array;
      });
      logits.dispose();
      assert.deepEqual(pre.labelsFromLogits(data, classes, H, W, h, w), ref, `${classes} class(es)`);
    }
    // Ties go to the first class, as torch's argmax.
    assert.deepEqual(pre.labelsFromLogits(new Float32Array([2, 1, 0, 2, 2, 2]), 3, 1, 2, 1, 2), new Uint8Array([0, 1]));
  });

  test('class areas equal the library classAreas', () => {
    const labels = new Uint8Array([0, 1, 1, 2, 2, 2, 2, 0]);
    assert.deepEqual(pre.classAreas(labels, CLASSES), libClassAreas(labels, CLASSES));
  });
});

describe('web/lib/render', () => {
  test('the fallback palette is the VOC palette and jet is the library colour map', () => {
    assert.deepEqual(render.vocPalette(256), VOC_PALETTE.map((c) => [...c]));
    for (let i = 0; i <= 64; i++) assert.deepEqual(render.jet(i / 64), colormapColor(i / 64, 'jet'));
  });

  test('a mask drawn with class colours reads back to the same labels', () => {
    const labels = new Uint8Array([0, 1, 2, 2, 1, 0, 7]);
    const px = render.maskRgba(labels, COLORS);
    assert.deepEqual([...px.subarray(4, 8)], [...COLORS[1], 255]);
    assert.deepEqual([...px.subarray(24, 28)], [0, 0, 0, 0], 'a label without a colour stays transparent');
    assert.deepEqual(render.labelsFromRgba(px, COLORS), new Uint8Array([0, 1, 2, 2, 1, 0, 255]));
  });

  test('the heatmap range covers only the cells over the image', () => {
    const v = new Float32Array([1, 2, 9, 3, 4, 9, 9, 9, 9]);
    assert.deepEqual(render.valueRange(v, 3, 3, 2, 2), [1, 4]);
    const px = render.heatmapRgba(new Float32Array([0, 1]), 0, 1);
    assert.deepEqual([...px], [...colormapColor(0, 'jet'), 255, ...colormapColor(1, 'jet'), 255]);
  });
});

describe('web/lib/sidecar', () => {
  test('reads what exportOnnx writes', () => {
    const r = exportOnnx(model, { path: join(dir, 'm.onnx'), dynamicSize: true, attention: true, meta: { classNames: CLASSES, colors: COLORS } });
    const spec = sidecarMod.parseSidecar(JSON.parse(JSON.stringify(r.sidecar)));
    assert.deepEqual(spec.input, { ...SPEC, bgr: false });
    assert.equal(spec.inputName, 'input');
    assert.equal(spec.logitsName, 'logits');
    assert.equal(spec.attentionName, 'attention');
    assert.equal(spec.numClasses, 3);
    assert.deepEqual(spec.classes, CLASSES);
    assert.deepEqual(spec.colors, COLORS);
    const fixed = sidecarMod.parseSidecar({ ...r.sidecar, attention: false, input: { ...r.sidecar.input, dynamicSize: false, height: 256, width: 320 } });
    assert.deepEqual(fixed.input.fixedSize, { height: 256, width: 320 });
    assert.equal(fixed.attentionName, null);
    // The Cache API key and the weights' type; older sidecars have no hash (the page then just downloads).
    assert.equal(spec.sha256, r.sidecar.sha256);
    assert.match(spec.sha256, /^[0-9a-f]{64}$/);
    assert.equal(spec.dtype, 'fp32');
    const { sha256: _, ...older } = r.sidecar;
    assert.equal(sidecarMod.parseSidecar(older).sha256, null);
  });

  test('an fp16 export loads (float32 input); float16 input is refused with the fix', () => {
    const r = exportOnnx(model, { path: join(dir, 'm16.onnx'), dynamicSize: true, dtype: 'fp16' });
    assert.equal(sidecarMod.parseSidecar(JSON.parse(JSON.stringify(r.sidecar))).dtype, 'fp16');
    assert.throws(() => sidecarMod.parseSidecar({ ...r.sidecar, input: { ...r.sidecar.input, dtype: 'float16' } }), /the model takes float16 input; the page feeds float32: export it without --fp16-io/);
  });

  test('refuses files that are not panseg sidecars, naming the problem', () => {
    assert.throws(() => sidecarMod.parseSidecar({ format: 'other' }), /not a panseg ONNX sidecar \(format is "other"\)/);
    assert.throws(() => sidecarMod.parseSidecar({ format: 'panseg-onnx', formatVersion: 2 }), /formatVersion 2 is newer than this page reads/);
    assert.throws(() => sidecarMod.parseSidecar({ format: 'panseg-onnx', formatVersion: 1, preprocessing: { mean: [0, 0], std: [1, 1, 1] } }), /expected 3 numbers for preprocessing\.mean but received \[0,0\]/);
  });
});

describe('web page sources', () => {
  test('type-check with web/tsconfig.json (JSDoc types, strict)', () => {
    const root = new URL('../..', import.meta.url).pathname;
    const r = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'web/tsconfig.json')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  test('the page never imports the engine, the native addon or Node modules', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const root = new URL('../../web/', import.meta.url).pathname;
    const files = [...readdirSync(root).filter((f) => f.endsWith('.js')), ...readdirSync(join(root, 'lib')).map((f) => `lib/${f}`)];
    for (const f of files) {
      const src = readFileSync(join(root, f), 'utf8');
      const imports = [...src.matchAll(/(?:import|from)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]);
      for (const spec of imports) assert.ok(spec === 'onnxruntime-web' || spec.startsWith('./'), `${f} imports ${spec}`);
    }
  });
});
