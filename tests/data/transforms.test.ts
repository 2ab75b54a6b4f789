import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IMAGENET_MEAN, IMAGENET_STD, Rng, evalOptions, evalTransform, mixSeed, permutation, trainOptions, trainTransform, unpad,
} from '../../src/data/index.js';
import type { RgbImage } from '../../src/data/index.js';

// An image that encodes its own coordinates: R = x, G = y, B = 100; and a mask of 8-pixel blocks.
const W = 200;
const H = 150;
const BLOCK = 8;
const label = (x: number, y: number): number => (Math.floor(x / BLOCK) + 7 * Math.floor(y / BLOCK)) % 21;
function coordImage(): { img: RgbImage; mask: Uint8Array } {
  const data = new Uint8Array(W * H * 3);
  const mask = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    data.set([x, y, 100], 3 * (y * W + x));
    mask[y * W + x] = label(x, y);
  }
  return { img: { data, width: W, height: H }, mask };
}
const denorm = (v: number, c: number): number => (v * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255;

describe('trainTransform', () => {
  const { img, mask } = coordImage();

  it('keeps mask and image aligned through scale, crop and flip; padding is 0 and ignore', () => {
    const t = trainOptions('test', { crop: [96, 128], scaleRange: [0.4, 1.6] }, 255);
    let flips = 0;
    let padded = 0;
    for (let seed = 0; seed < 24; seed++) {
      const r = trainTransform(img, mask, t, new Rng(seed));
      assert.equal(r.image.length, 3 * 96 * 128);
      assert.equal(r.mask!.length, 96 * 128);
      const plane = 96 * 128;
      let dir = 0;
      for (let i = 0; i < plane; i++) {
        const m = r.mask![i];
        if (m === 255) {
          padded++;
          for (let c = 0; c < 3; c++) assert.equal(r.image[c * plane + i], 0, `seed ${seed}: padding is 0 after normalization`);
          continue;
        }
        const x = denorm(r.image[i], 0);
        const y = denorm(r.image[plane + i], 1);
        assert.ok(Math.abs(denorm(r.image[2 * plane + i], 2) - 100) < 1e-3);
        // Bilinear reads source (s + 0.5) / scale - 0.5; the mask takes floor((s + 0.5) / scale): the same point.
        const fx = x + 0.5;
        const fy = y + 0.5;
        const nearEdge = (f: number): boolean => Math.abs(f - Math.round(f / BLOCK) * BLOCK) < 0.01;
        if (x > 0 && x < W - 1 && y > 0 && y < H - 1 && !nearEdge(fx) && !nearEdge(fy)) {
          assert.equal(m, label(Math.floor(fx), Math.floor(fy)), `seed ${seed} pixel ${i}`);
        }
        if (i % 128 < 127 && r.mask![i + 1] !== 255) dir += denorm(r.image[i + 1], 0) - x;
      }
      if (dir < 0) flips++;
    }
    assert.ok(flips > 3 && flips < 21, `about half the crops are flipped (${flips} of 24)`);
    assert.ok(padded > 0, 'small scales pad');
  });

  it('matches a plain resize when the crop is the scaled image', () => {
    const t = trainOptions('test', { crop: [H, W], scaleRange: [1, 1], flip: false }, 255);
    const r = trainTransform(img, mask, t, new Rng(1));
    assert.deepEqual(r.mask, mask);
    for (let i = 0; i < W * H; i++) assert.ok(Math.abs(denorm(r.image[i], 0) - (i % W)) < 1e-3);
    const v0 = (100 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2];
    assert.ok(Math.abs(r.image[2 * W * H] - v0) < 1e-6, 'normalized as (x / 255 - mean) / std');
  });

  it('is deterministic under a seed and differs across seeds', () => {
    const t = trainOptions('test', { crop: 64, colorJitter: 0.3 }, 255);
    const a = trainTransform(img, mask, t, new Rng(mixSeed(7, 0, 3)));
    const b = trainTransform(img, mask, t, new Rng(mixSeed(7, 0, 3)));
    const c = trainTransform(img, mask, t, new Rng(mixSeed(7, 1, 3)));
    assert.deepEqual(a.image, b.image);
    assert.deepEqual(a.mask, b.mask);
    assert.notDeepEqual(a.image, c.image);
  });

  it('jitters colours without moving pixels or touching the padding', () => {
    const base = { crop: 256, scaleRange: [1, 1] as [number, number] };
    const plain = trainTransform(img, mask, trainOptions('test', base, 255), new Rng(5));
    const jit = trainTransform(img, mask, trainOptions('test', { ...base, colorJitter: 0.4 }, 255), new Rng(5));
    assert.deepEqual(jit.mask, plain.mask);
    let changed = 0;
    for (let i = 0; i < jit.image.length; i++) {
      if (jit.mask![i % (256 * 256)] === 255) assert.equal(jit.image[i], 0);
      else if (Math.abs(jit.image[i] - plain.image[i]) > 1e-3) changed++;
    }
    assert.ok(changed > 1000);
  });

  it('validates its options', () => {
    assert.throws(() => trainOptions('DataLoader', { scaleRange: [2, 1] }, 255), {
      message: 'DataLoader: expected [min, max] with 0 < min <= max for scaleRange but received [2,1]',
    });
    assert.throws(() => trainOptions('DataLoader', { crop: 0 }, 255), {
      message: 'DataLoader: expected an integer >= 1 or a pair of them for crop but received 0 of type number',
    });
    assert.throws(() => trainOptions('DataLoader', { std: [1, 0, 1] }, 255), {
      message: 'DataLoader: expected three finite positive numbers for std but received [1,0,1]',
    });
  });
});

describe('evalTransform', () => {
  const { img, mask } = coordImage();

  it('pads to the stride with 0 / ignore, and unpad restores the original', () => {
    const r = evalTransform(img, mask, evalOptions('test', { stride: 32 }, 255));
    assert.equal(r.height, 160);
    assert.equal(r.width, 224);
    assert.deepEqual(r.info, { mode: 'pad', height: H, width: W, inputHeight: 160, inputWidth: 224 });
    for (let y = 0; y < 160; y++) for (let x = 0; x < 224; x++) {
      const i = y * 224 + x;
      if (y >= H || x >= W) {
        assert.equal(r.mask![i], 255);
        assert.equal(r.image[i], 0);
      } else {
        assert.equal(r.mask![i], mask[y * W + x]);
        assert.ok(Math.abs(denorm(r.image[i], 0) - x) < 1e-3);
      }
    }
    assert.deepEqual(unpad(r.mask!, r.info), mask);
    const scores = unpad(r.image, r.info, 3);
    assert.equal(scores.length, 3 * W * H);
    assert.ok(Math.abs(denorm(scores[W * H + 5 * W], 1) - 5) < 1e-3);
  });

  it('resizes on request, and unpad resizes back', () => {
    const r = evalTransform(img, mask, evalOptions('test', { resize: [75, 100] }, 255));
    assert.equal(r.image.length, 3 * 75 * 100);
    assert.equal(r.info.mode, 'resize');
    const back = unpad(r.mask!, r.info);
    assert.equal(back.length, W * H);
    let same = 0;
    for (let i = 0; i < W * H; i++) same += back[i] === mask[i] ? 1 : 0;
    assert.ok(same / (W * H) > 0.85, `nearest down-and-up keeps most labels (${same / (W * H)})`);
  });

  it('works without a mask (prediction)', () => {
    const r = evalTransform(img, null, evalOptions('predict', {}, 255));
    assert.equal(r.mask, null);
    assert.deepEqual([r.height, r.width], [160, 224]);
  });
});

describe('prng', () => {
  it('is reproducible and spreads seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 1000 }, () => a.next());
    assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.next()));
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05);
    assert.notEqual(mixSeed(1, 0, 0), mixSeed(0, 1, 0));
    const p = permutation(50, new Rng(1));
    assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
  });
});
