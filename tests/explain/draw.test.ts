// The pure drawing helpers: maps line up with the image pixels they were computed from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resizeBilinear } from '../../src/eval/visualize.js';
import { cellsImage, coveringCells, mapOverlay, sampleMap } from '../../src/explain/draw.js';

const map = { width: 5, height: 4, values: Array.from({ length: 20 }, (_, i) => (i * 7) % 11) };

test('sampleMap equals resizing to the padded input and cropping the image out of it', () => {
  const sizes = { image: { width: 70, height: 50 }, input: { width: 80, height: 64 } };
  const full = resizeBilinear(map.values, 5, 4, 80, 64);
  const got = sampleMap(map, sizes, 70, 50);
  for (let y = 0; y < 50; y++) for (let x = 0; x < 70; x++) assert.ok(Math.abs(got[y * 70 + x] - full[y * 80 + x]) < 1e-5, `${x},${y}`);
  // Drawn smaller, a pixel samples the same place as the full-size pixel under its centre.
  const half = sampleMap(map, sizes, 35, 25);
  assert.ok(Math.abs(half[0] - sampleMap(map, sizes, 70, 50)[0]) < 0.6);
});

test('coveringCells drops padding cells; cellsImage and mapOverlay draw the right sizes', () => {
  const c = coveringCells(map, { image: { width: 70, height: 50 }, input: { width: 80, height: 64 } });
  assert.deepEqual([c.width, c.height], [5, 4]);
  const d = coveringCells(map, { image: { width: 40, height: 20 }, input: { width: 80, height: 64 } });
  assert.deepEqual([d.width, d.height, d.values], [3, 2, [0, 7, 3, 2, 9, 5]]);
  const cells = cellsImage(map, 50, 40, 0, 10, 'jet');
  assert.equal(cells.data.length, 50 * 40 * 3);
  const img = { data: new Uint8Array(70 * 50 * 3).fill(128), width: 70, height: 50 };
  const o = mapOverlay(img, map, { image: { width: 70, height: 50 }, input: { width: 80, height: 64 } }, 'viridis', 0.5);
  assert.equal(o.image.data.length, img.data.length);
  assert.ok(o.range[0] >= 0 && o.range[1] <= 10 && o.range[1] > o.range[0]);
});
