// Sliding-window inference and resize-long. The blend weights are a partition of unity (sum to 1 at every
// pixel, so no seams); tiling an image the size of one window changes nothing (exactly); on a large image a
// translation-equivariant engine (a 3x3 conv, exact away from window borders) gives the untiled labels at
// > 99.9% of pixels; resize-long equals the spelled-out resize -> infer -> resize back -> argmax.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { F, full, liveTensors, manualSeed, randn, setNumThreads, type Tensor, tensor, tidy } from '../../src/engine/index.js';
import { segment, segmentImage } from '../../src/eval/predict.js';
import { type LogitsSource, probs, probsSync, probsToLabels } from '../../src/eval/segmenter.js';
import { axisWindows, bilinearRows, blendWindows, checkTiling, driveSync } from '../../src/eval/tiles.js';
import { evalOptions, evalTransform, type RgbImage } from '../../src/data/index.js';
import { PAN } from '../../src/models/index.js';

setNumThreads(1);

/** An engine whose logits are a fixed 3x3 convolution of the input: translation-equivariant. */
function convSource(classes = 4, stride = 8, min = 16): LogitsSource & { dispose(): void } {
  manualSeed(1);
  const w = randn([classes, 3, 3, 3]);
  return {
    numClasses: classes, activation: null, outputStride: stride, preprocessing: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    paddedSize: (h, wd) => [Math.max(min, Math.ceil(h / stride) * stride), Math.max(min, Math.ceil(wd / stride) * stride)],
    logits: (x: Tensor) => tidy(() => F.conv2d(x, w, null, { padding: 1 }).mul(3)),
    dispose: () => w.dispose(),
  };
}

function image(width: number, height: number, seed = 0): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      // Smooth regions with some texture, so classes form blobs.
      data[i] = (128 + 100 * Math.sin((x + seed) / 23) * Math.cos(y / 31)) & 255;
      data[i + 1] = (128 + 90 * Math.cos((x * 0.7 + y) / 19)) & 255;
      data[i + 2] = ((x * 13 + y * 7 + seed) % 64) + 96;
    }
  }
  return { data, width, height };
}

const agreement = (a: Uint8Array, b: Uint8Array): number => { let n = 0; for (let i = 0; i < a.length; i++) if (a[i] === b[i]) n++; return n / a.length; };

describe('axisWindows', () => {
  it('covers the axis, ends at the edge, keeps the overlap, and its weights sum to 1 at every pixel', () => {
    for (const [len, tile, ov] of [[1000, 256, 0.25], [513, 512, 0.25], [2000, 512, 0], [777, 100, 0.5], [4000, 512, 0.9], [300, 64, 0.1]] as const) {
      const ws = axisWindows(len, tile, ov);
      assert.equal(ws[0].start, 0);
      assert.equal(ws.at(-1)!.start + ws.at(-1)!.size, len, `${len}/${tile}: last window ends at the edge`);
      for (let k = 1; k < ws.length; k++) assert.ok(ws[k - 1].start + tile - ws[k].start >= Math.round(tile * ov), 'overlap at least as asked');
      const sum = new Float64Array(len);
      for (const w of ws) { assert.equal(w.size, tile); w.weights.forEach((x, t) => { assert.ok(x >= 0); sum[w.start + t] += x; }); }
      for (let i = 0; i < len; i++) assert.ok(Math.abs(sum[i] - 1) < 1e-6, `${len}/${tile}/${ov}: weights sum to ${sum[i]} at ${i}`);
    }
    assert.deepEqual(axisWindows(300, 512, 0.25).map((w) => [w.start, w.size, w.weights.every((x) => x === 1)]), [[0, 300, true]]);
  });

  it('a separable 2-D blend of a known field gives the field back (no seams); blocks tile the image once, in raster order', () => {
    for (const [H, W, th, tw, ov] of [[300, 410, 128, 96, 0.3], [250, 260, 64, 64, 0.7], [200, 90, 64, 128, 0.25], [64, 500, 64, 100, 0]] as const) {
      const field = tidy(() => randn([1, 2, H, W]));
      const out = full([1, 2, H, W], 0);
      const count = full([H, W], 0);
      let last = [-1, -1];
      driveSync(blendWindows(H, W, th, tw, ov, (y, x, block) => {
        assert.ok(y > last[0] || (y === last[0] && x > last[1]), 'raster order');
        last = [y, x];
        tidy(() => {
          out.narrow(2, y, block.shape[2]).narrow(3, x, block.shape[3]).add_(block);
          count.narrow(0, y, block.shape[2]).narrow(1, x, block.shape[3]).add_(1);
        });
      }), (r) => tidy(() => field.narrow(2, r.y, r.height).narrow(3, r.x, r.width).clone()));
      assert.equal(count.min().item(), 1, `${H}x${W}: every pixel emitted`);
      assert.equal(count.max().item(), 1, `${H}x${W}: once`);
      assert.ok(out.sub(field).abs().max().item() < 1e-5, `${H}x${W} tile ${th}x${tw} overlap ${ov}`);
      for (const t of [field, out, count]) t.dispose();
    }
  });

  it('checks tile and overlap', () => {
    assert.equal(checkTiling('segment', undefined, undefined), null);
    assert.deepEqual(checkTiling('segment', 512, undefined), { tile: 512, overlap: 0.25 });
    assert.throws(() => checkTiling('segment', 1.5, undefined), /^PansegError: segment: expected positive integer for tile but received 1.5 of type number$/);
    assert.throws(() => checkTiling('segment', 512, 0.95), /^PansegError: segment: expected finite number in \[0, 0.9\] for overlap but received 0.95 of type number$/);
  });
});

describe('sliding-window inference', () => {
  it('an image the size of one window: tiled equals untiled exactly (a real PAN)', () => {
    manualSeed(0);
    const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, decoderChannels: 8, classes: 3 });
    const img = image(96, 80);
    const live = liveTensors();
    const a = segmentImage(m, img, { withProbs: true, precision: 'fp32' });
    const b = segmentImage(m, img, { withProbs: true, precision: 'fp32', tile: 96, overlap: 0.25 });
    assert.deepEqual(b.labels, a.labels);
    assert.deepEqual(b.probs, a.probs);
    assert.equal(liveTensors(), live, 'no tensor left behind');
    m.dispose();
  });

  it('a large image: tiled labels agree with untiled at > 99.9% of pixels (translation-equivariant engine)', async () => {
    const src = convSource();
    const img = image(700, 530);
    const live = liveTensors();
    const whole = await segment(src, img, { withProbs: true });
    const tiled = await segment(src, img, { withProbs: true, tile: 128, overlap: 0.25 });
    assert.equal(tiled.width, 700);
    assert.equal(tiled.labels.length, 700 * 530);
    const agree = agreement(whole.labels, tiled.labels);
    assert.ok(agree > 0.999, `agreement ${agree}`);
    // Away from window borders the probabilities are the same; blended ones stay probabilities.
    let maxDiff = 0;
    for (let i = 0; i < whole.probs!.length; i++) maxDiff = Math.max(maxDiff, Math.abs(whole.probs![i] - tiled.probs![i]));
    assert.ok(maxDiff < 0.1, `max prob diff ${maxDiff}`); // 0.025 measured: window borders see zero padding
    const hw = 700 * 530;
    for (const i of [0, 12345, hw - 1]) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += tiled.probs![k * hw + i];
      assert.ok(Math.abs(s - 1) < 1e-5);
    }
    assert.equal(liveTensors(), live, 'no tensor left behind');
    src.dispose();
  });

  it('probs()/probsSync() take tile too: the whole [N, K, H, W] from windows', async () => {
    const src = convSource(3);
    const x = randn([2, 3, 150, 230]);
    const a = probsSync(src, x);
    const b = probsSync(src, x, { tile: 64, overlap: 0.5 });
    const c = await probs(src, x, { tile: 64, overlap: 0.5 });
    assert.deepEqual(b.shape, [2, 3, 150, 230]);
    const la = probsToLabels(a);
    const agree = la.eq(probsToLabels(b)).to('float32').mean().item();
    assert.ok(agree > 0.99, `agreement ${agree}`);
    assert.ok(b.sub(c).abs().max().item() < 1e-6);
    for (const t of [x, a, b, c, la]) t.dispose();
    src.dispose();
  });
});

describe('resize-long', () => {
  it('bilinearRows equals the rows of F.interpolate', () => {
    const p = randn([1, 3, 37, 53]);
    const full = F.interpolate(p, { size: [301, 410], mode: 'bilinear', alignCorners: false });
    for (const [y0, y1] of [[0, 301], [0, 7], [100, 188], [290, 301]]) {
      const rows = bilinearRows(p, 301, 410, y0, y1);
      const ref = full.narrow(2, y0, y1 - y0);
      assert.ok(rows.sub(ref).abs().max().item() < 1e-5);
      rows.dispose(); ref.dispose();
    }
    p.dispose(); full.dispose();
  });

  it('infers at the given long side and brings the probabilities back before the argmax', async () => {
    const src = convSource(3);
    const img = image(400, 300);
    const got = await segment(src, img, { resizeLong: 200, withProbs: true });
    assert.equal(got.width, 400);
    // Spelled out: resize to 200x150, segment, resize the probabilities back, argmax.
    const pre = src.preprocessing;
    const t = evalTransform(img, null, evalOptions('t', { stride: 8, mean: pre.mean, std: pre.std, resize: [150, 200] }, 255));
    const ref = tidy(() => {
      const x = tensor(t.image, [1, 3, 150, 200]);
      const p = F.interpolate(probsSync(src, x), { size: [300, 400], mode: 'bilinear', alignCorners: false });
      return { labels: probsToLabels(p).to('uint8').toArray() as Uint8Array, probs: p.toArray() as Float32Array };
    });
    assert.ok(agreement(got.labels, ref.labels) > 0.9999);
    let maxDiff = 0;
    for (let i = 0; i < ref.probs.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref.probs[i] - got.probs![i]));
    assert.ok(maxDiff < 1e-5, `max diff ${maxDiff}`);
    // With tiles at the reduced scale too.
    const both = await segment(src, img, { resizeLong: 200, tile: 64 });
    assert.ok(agreement(both.labels, ref.labels) > 0.99);
    src.dispose();
  });
});
