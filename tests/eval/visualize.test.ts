import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { RGB } from '../../src/common/palette.js';
import { readIndexedPng } from '../../src/data/png.js';
import {
  classAreas, colorBar, colorBarImage, colorMask, colormapColor, encodePng, heatmap, heatmapOverlay, overlay,
  resizeBilinear, saveIndexMask, savePng, sideBySide, type RgbImage,
} from '../../src/eval/visualize.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-vis-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function img(width: number, height: number, px: number[]): RgbImage {
  return { data: new Uint8Array(px), width, height };
}
function pixel(im: RgbImage, i: number): number[] {
  return [...im.data.subarray(3 * i, 3 * i + 3)];
}
const COLORS: RGB[] = [[0, 0, 0], [200, 0, 0], [0, 100, 250]];

describe('overlay', () => {
  const image = img(4, 1, [100, 100, 100, 10, 20, 30, 50, 50, 50, 7, 8, 9]);
  const labels = new Uint8Array([1, 255, 2, 9]);

  test('blends colours at alpha and keeps ignored and colourless pixels', () => {
    const out = overlay(image, labels, COLORS);
    assert.deepEqual(pixel(out, 0), [150, 50, 50]);
    assert.deepEqual(pixel(out, 1), [10, 20, 30]); // ignore index
    assert.deepEqual(pixel(out, 2), [25, 75, 150]);
    assert.deepEqual(pixel(out, 3), [7, 8, 9]); // label 9 has no colour
    assert.equal(out.width, 4);
    assert.equal(out.height, 1);
    assert.deepEqual([...image.data.subarray(0, 3)], [100, 100, 100], 'input untouched');
  });

  test('alpha 0 and 1 give the image and the colours; ignoreIndex is configurable', () => {
    assert.deepEqual(overlay(image, labels, COLORS, { alpha: 0 }).data, image.data);
    const full = overlay(image, labels, COLORS, { alpha: 1, ignoreIndex: 1 });
    assert.deepEqual(pixel(full, 0), [100, 100, 100]); // label 1 now ignored
    assert.deepEqual(pixel(full, 2), [0, 100, 250]);
  });

  test('rejects a label map of the wrong size and a bad alpha', () => {
    assert.throws(() => overlay(image, new Uint8Array(3), COLORS), { message: 'overlay: expected 4 values (4x1) for labels but received 3' });
    assert.throws(() => overlay(image, labels, COLORS, { alpha: 2 }), { message: 'overlay: expected finite number in [0, 1] for alpha but received 2 of type number' });
  });
});

describe('colorMask', () => {
  test('paints class colours and the ignore colour', () => {
    const m = colorMask(new Uint8Array([0, 1, 2, 255]), 2, 2, COLORS);
    assert.deepEqual([...m.data], [0, 0, 0, 200, 0, 0, 0, 100, 250, 0, 0, 0]);
    const m2 = colorMask(new Uint8Array([2, 255]), 2, 1, COLORS, 255, [9, 9, 9]);
    assert.deepEqual([...m2.data], [0, 100, 250, 9, 9, 9]);
  });
});

describe('heatmap', () => {
  test('maps min and max to the ends of each colour map', () => {
    const vals = new Float32Array([0, 0.5, 1]);
    const jet = heatmap(vals, 3, 1);
    assert.deepEqual(pixel(jet, 0), [0, 0, 128]);
    assert.deepEqual(pixel(jet, 2), [128, 0, 0]);
    assert.deepEqual(colormapColor(0.5, 'jet'), [128, 255, 128]);
    const vir = heatmap(vals, 3, 1, { colormap: 'viridis' });
    assert.deepEqual(pixel(vir, 0), [68, 1, 84]);
    assert.deepEqual(pixel(vir, 2), [253, 231, 37]);
    const inf = heatmap(vals, 3, 1, { colormap: 'inferno' });
    assert.deepEqual(pixel(inf, 0), [0, 0, 4]);
    assert.deepEqual(pixel(inf, 2), [252, 255, 164]);
  });

  test('min/max clamp, NaN is black, a constant map takes the bottom colour', () => {
    const out = heatmap(new Float32Array([-5, 5, NaN, 0.5]), 2, 2, { min: 0, max: 1, colormap: 'viridis' });
    assert.deepEqual(pixel(out, 0), [68, 1, 84]);
    assert.deepEqual(pixel(out, 1), [253, 231, 37]);
    assert.deepEqual(pixel(out, 2), [0, 0, 0]);
    const flat = heatmap(new Float32Array([3, 3]), 2, 1, { colormap: 'viridis' });
    assert.deepEqual(pixel(flat, 1), [68, 1, 84]);
    assert.throws(() => heatmap(new Float32Array(2), 2, 1, { colormap: 'rainbow' as 'jet' }), {
      message: "heatmap: expected one of 'jet', 'viridis', 'inferno' for colormap but received 'rainbow' of type string",
    });
  });

  test('resizeBilinear samples pixel centres like PyTorch (align_corners=False)', () => {
    assert.deepEqual([...resizeBilinear([0, 1], 2, 1, 4, 1)], [0, 0.25, 0.75, 1]);
    const up = resizeBilinear([0, 1, 2, 3], 2, 2, 4, 4);
    assert.equal(up[0], 0);
    assert.equal(up[15], 3);
    assert.equal(up[5], 0.75); // (0.25, 0.25) between the four corners
  });

  test('heatmapOverlay upsamples to the image and blends', () => {
    const image = img(4, 4, new Array(48).fill(100));
    const out = heatmapOverlay(image, new Float32Array([0, 0, 0, 0]), 2, 2, { min: 0, max: 1, alpha: 1 });
    assert.equal(out.width, 4);
    assert.equal(out.height, 4);
    for (let i = 0; i < 16; i++) assert.deepEqual(pixel(out, i), [0, 0, 128]);
    const half = heatmapOverlay(image, new Float32Array([1]), 1, 1, { min: 0, max: 1, alpha: 0.5 });
    assert.deepEqual(pixel(half, 7), [114, 50, 50]);
    const withNan = heatmapOverlay(image, new Float32Array([NaN]), 1, 1, { alpha: 1 });
    assert.deepEqual(pixel(withNan, 0), [100, 100, 100]);
    assert.throws(() => heatmapOverlay(image, new Float32Array(3), 2, 2), { message: 'heatmapOverlay: expected 4 values (2x2) for values but received 3' });
  });

  test('colour bars: image has the max colour at the top; SVG labels escaped', () => {
    const bar = colorBarImage(2, 3, 'viridis');
    assert.deepEqual(pixel(bar, 0), [253, 231, 37]);
    assert.deepEqual(pixel(bar, 5), [68, 1, 84]);
    const svg = colorBar({ min: 0, max: 0.5, colormap: 'inferno', label: '<b>attn</b>' });
    assert.match(svg, /^<svg[^>]*>.*<\/svg>$/s);
    assert.ok(svg.includes('&lt;b&gt;attn&lt;/b&gt;'));
    assert.ok(svg.includes('>0.5<') && svg.includes('>0<'));
  });
});

describe('sideBySide', () => {
  test('concatenates with gaps, padding to the tallest', () => {
    const a = img(2, 3, new Array(18).fill(10));
    const b = img(4, 5, new Array(60).fill(20));
    const out = sideBySide([a, b], { gap: 2, background: [1, 2, 3] });
    assert.equal(out.width, 8);
    assert.equal(out.height, 5);
    assert.equal(out.data.length, 8 * 5 * 3);
    assert.deepEqual(pixel(out, 0), [10, 10, 10]);
    assert.deepEqual(pixel(out, 2), [1, 2, 3]); // gap
    assert.deepEqual(pixel(out, 4), [20, 20, 20]);
    assert.deepEqual(pixel(out, 3 * 8), [1, 2, 3]); // below the shorter image
    assert.deepEqual(pixel(out, 4 * 8 + 7), [20, 20, 20]);
    assert.equal(sideBySide([a]).width, 2);
    assert.throws(() => sideBySide([]), { message: 'sideBySide: expected a non-empty array of images' });
  });
});

describe('classAreas', () => {
  test('counts pixels per class, percent of labelled pixels', () => {
    const areas = classAreas(new Uint8Array([0, 0, 1, 255, 7]), ['a', 'b', 'c']);
    assert.deepEqual(areas.map((a) => [a.class, a.index, a.pixels]), [['a', 0, 2], ['b', 1, 1], ['c', 2, 0]]);
    assert.ok(Math.abs(areas[0].percent - 200 / 3) < 1e-9);
    assert.equal(areas[2].percent, 0);
    assert.deepEqual(classAreas(new Uint8Array([255]), ['a']).map((a) => a.percent), [0]);
  });
});

describe('PNG files', () => {
  const im = img(3, 2, [0, 1, 2, 250, 251, 252, 10, 20, 30, 40, 50, 60, 70, 80, 90, 255, 0, 128]);

  test('encodePng round-trips through sharp', async () => {
    const buf = await encodePng(im);
    const { data, info } = await sharp(buf).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [3, 2, 3]);
    assert.deepEqual(new Uint8Array(data), im.data);
  });

  test('savePng writes atomically (no temp file left) into a new folder', async () => {
    const path = join(tmp, 'nested', 'out.png');
    await savePng(path, im);
    assert.deepEqual(readdirSync(join(tmp, 'nested')), ['out.png']);
    const { data } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual(new Uint8Array(data), im.data);
  });

  test('saveIndexMask stores the labels as palette indices', async () => {
    const path = join(tmp, 'mask.png');
    const labels = new Uint8Array([0, 1, 2, 255, 1, 0]);
    await saveIndexMask(path, labels, 3, 2, COLORS);
    const png = readIndexedPng(readFileSync(path))!;
    assert.deepEqual(png.indices, labels);
    assert.deepEqual(png.palette.slice(0, 3), COLORS);
  });
});
