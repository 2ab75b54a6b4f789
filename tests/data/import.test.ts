import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { openDataset } from '../../src/data/index.js';
import {
  cocoMask, convertCoco, convertLabelme, decodeRleString, encodeRleString, fillCircle, fillPolygon, maskToRle, paintRle, parseCoco,
} from '../../src/data/import/index.js';
import { pngColorType } from '../../src/data/png.js';
import { Rng } from '../../src/data/prng.js';
import { tmp, writeRgb, writeText } from './helpers.js';

/** A row-major mask as text rows, '1' for set pixels, for readable expectations. */
function rows(mask: Uint8Array, w: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < mask.length; i += w) out.push([...mask.subarray(i, i + w)].map((v) => (v === 255 ? 'x' : String(v))).join(''));
  return out;
}

function poly(xy: number[], h: number, w: number): string[] {
  const m = new Uint8Array(h * w);
  fillPolygon(xy, h, w, m, 1);
  return rows(m, w);
}

describe('polygon rasterization (pixel centres, even-odd), against hand-computed masks', () => {
  it('an integer-aligned rectangle covers exactly its pixels', () => {
    assert.deepEqual(poly([0, 0, 4, 0, 4, 2, 0, 2], 3, 5), ['11110', '11110', '00000']);
  });
  it('a half-pixel rectangle takes the pixels whose centres it holds (left/top edges in, right/bottom out)', () => {
    assert.deepEqual(poly([0.5, 0.5, 2.5, 0.5, 2.5, 2.5, 0.5, 2.5], 3, 3), ['110', '110', '000']);
  });
  it('a right triangle: centres on the diagonal stay out', () => {
    assert.deepEqual(poly([0, 0, 4, 0, 0, 4], 4, 4), ['1110', '1100', '1000', '0000']);
    // the same triangle listed the other way round
    assert.deepEqual(poly([0, 4, 4, 0, 0, 0], 4, 4), ['1110', '1100', '1000', '0000']);
  });
  it('a concave L and a square with a hole (even-odd, joined by a seam)', () => {
    assert.deepEqual(poly([0, 0, 2, 0, 2, 2, 4, 2, 4, 4, 0, 4], 4, 4), ['1100', '1100', '1111', '1111']);
    assert.deepEqual(poly([0, 0, 6, 0, 6, 6, 0, 6, 0, 0, 2, 2, 2, 4, 4, 4, 4, 2, 2, 2], 6, 6), ['111111', '111111', '110011', '110011', '111111', '111111']);
  });
  it('a self-intersecting bow tie fills both lobes; a centre exactly on an edge joins the span to its right', () => {
    // Row 1 (centre y 1.5): crossings at x 0, 1.5, 2.5, 4; the centre (2.5, 1.5) lies on the edge and starts a span.
    assert.deepEqual(poly([0, 0, 4, 4, 4, 0, 0, 4], 4, 4), ['0001', '1011', '1011', '0001']);
  });
  it('clips vertices outside the image, and refuses non-finite coordinates', () => {
    assert.deepEqual(poly([-2, -2, 10, -2, 10, 10, -2, 10], 2, 3), ['111', '111']);
    assert.throws(() => fillPolygon([0, 0, Number.NaN, 0, 1, 1], 2, 2, new Uint8Array(4), 1), { message: 'polygon: polygon coordinate 2 is NaN; coordinates are finite numbers' });
  });
  it('refuses a polygon with more crossings than the limit', () => {
    const zig = Array.from({ length: 2000 }, (_, i) => [i / 20, i % 2 ? 0 : 100]).flat();
    assert.throws(() => fillPolygon(zig, 100, 100, new Uint8Array(10000), 1, 'p', { maxCrossings: 500 }), /^PansegError: p: the polygon crosses the image rows more than 500 times/);
  });
  it('a disc takes the pixels whose centres are within the radius', () => {
    const m = new Uint8Array(25);
    assert.equal(fillCircle(2.5, 2.5, 1.2, 5, 5, m, 1), 5);
    assert.deepEqual(rows(m, 5), ['00000', '00100', '01110', '00100', '00000']);
  });
});

describe('COCO RLE', () => {
  it("decodes COCO's string encoding (hand-encoded examples) and round-trips random counts", () => {
    assert.deepEqual(decodeRleString('325'), [3, 2, 5]);
    assert.deepEqual(decodeRleString('325O'), [3, 2, 5, 1]); // 1 - 2 = -1: one group, sign bit set
    assert.deepEqual(decodeRleString('T3'), [100]); // 100 = 4 + 3 * 32: low group first, 0x20 = more
    assert.equal(encodeRleString([3, 2, 5, 1]), '325O');
    assert.equal(encodeRleString([100]), 'T3');
    const rng = new Rng(7);
    for (let t = 0; t < 200; t++) {
      const counts = Array.from({ length: 1 + rng.int(30) }, () => (rng.next() < 0.1 ? rng.int(2 ** 40) : rng.int(1000)));
      assert.deepEqual(decodeRleString(encodeRleString(counts)), counts);
    }
  });
  it('paints column-major runs into a row-major mask', () => {
    const m = new Uint8Array(6); // h 2, w 3: pixel order (0,0) (1,0) (0,1) (1,1) (0,2) (1,2)
    assert.equal(paintRle([1, 2, 3], 2, 3, m, 7), 2);
    assert.deepEqual(rows(m, 3), ['070', '700']);
    const rng = new Rng(3);
    const mask = Uint8Array.from({ length: 7 * 5 }, () => (rng.next() < 0.4 ? 1 : 0));
    const back = new Uint8Array(35);
    paintRle(maskToRle(mask, 7, 5), 7, 5, back, 1);
    assert.deepEqual(back, mask);
  });
  it('refuses counts that do not add up, negative runs and bad characters', () => {
    assert.throws(() => paintRle([1, 2], 2, 3, new Uint8Array(6), 1), { message: 'rle: the RLE counts add up to 3 pixels but the mask is 2x3 = 6; the counts or "size" are wrong' });
    assert.throws(() => paintRle([1e15, 2], 2, 3, new Uint8Array(6), 1), /add up to 1000000000000002 pixels/);
    assert.throws(() => paintRle([3, -1, 4], 2, 3, new Uint8Array(6), 1), { message: 'rle: RLE count 1 is -1; counts are non-negative integers' });
    assert.throws(() => decodeRleString('3 2'), { message: `rle: the RLE string has " " at character 1; COCO's alphabet is ASCII 48-111` });
    assert.throws(() => decodeRleString('O'), { message: 'rle: the RLE string decodes to a negative run (-1) at count 0' });
    assert.throws(() => decodeRleString('T'), { message: 'rle: the RLE string ends inside a count (at character 1); it is truncated' });
    assert.throws(() => decodeRleString('ooooooooooo0'), /count longer than 50 bits/);
  });
});

const box = (x: number, y: number, w: number, h: number) => [[x, y, x + w, y, x + w, y + h, x, y + h]];

describe('COCO import', () => {
  const coco = (annotations: unknown[]) => ({
    images: [{ id: 1, file_name: 'a.jpg', width: 6, height: 4 }],
    categories: [{ id: 18, name: 'dog' }, { id: 3, name: 'car' }],
    annotations,
  });

  it('maps categories in id order after background, paints small over large, crowd as ignore', () => {
    const index = parseCoco(coco([
      { id: 1, image_id: 1, category_id: 18, segmentation: box(1, 1, 2, 2), iscrowd: 0 }, // small dog, listed first
      { id: 2, image_id: 1, category_id: 3, segmentation: box(0, 0, 5, 4), iscrowd: 0 }, // large car over it in file order
      { id: 3, image_id: 1, category_id: 3, segmentation: { counts: [20, 4], size: [4, 6] }, iscrowd: 1 }, // last column: crowd
    ]));
    assert.deepEqual(index.classes, ['background', 'car', 'dog']);
    const stats = { painted: 0, ignored: 0, skipped: {} };
    const m = cocoMask(index.images[0], {}, stats);
    assert.deepEqual(rows(m, 6), ['11111x', '12211x', '12211x', '11111x']);
    assert.deepEqual(stats, { painted: 2, ignored: 1, skipped: {} });
  });

  it('reads compressed RLE strings, and unites the polygons of one annotation', () => {
    const rle = encodeRleString([4, 4, 16]); // column 1 (rows 0-3)
    const index = parseCoco(coco([
      { id: 1, image_id: 1, category_id: 18, segmentation: { counts: rle, size: [4, 6] } },
      { id: 2, image_id: 1, category_id: 3, segmentation: [...box(4, 0, 1, 1), ...box(5, 3, 1, 1)] },
    ]));
    assert.deepEqual(rows(cocoMask(index.images[0]), 6), ['020010', '020000', '020000', '020001']);
  });

  it('refuses broken files with one line naming the entry', () => {
    const bad = (a: unknown) => () => parseCoco(coco([a]), 'x.json');
    assert.throws(bad({ id: 1, image_id: 9, category_id: 3, segmentation: [] }), { message: 'coco: x.json: annotations[0] has image_id 9, which is not in "images"' });
    assert.throws(bad({ id: 1, image_id: 1, category_id: 3, segmentation: { counts: [24], size: [6, 4] } }), {
      message: 'coco: x.json: annotations[0]: RLE "size" is [6,4] but image 1 is [4, 6] ([height, width])',
    });
    assert.throws(bad({ id: 1, image_id: 1, category_id: 3, segmentation: [[0, 0, 1, 'a', 2, 2]] }), {
      message: 'coco: x.json: annotations[0].segmentation[0][3] is "a"; expected a finite number',
    });
    assert.throws(() => parseCoco({ ...coco([]), images: [{ id: 1, file_name: 'a.jpg', width: 100000, height: 100000 }] }, 'x.json'), {
      message: 'coco: x.json: image 1 (a.jpg) is 100000x100000 = 10000000000 pixels, above the limit of 100000000 (--max-pixels)',
    });
    assert.throws(() => parseCoco({ ...coco([]), images: [{ id: 1, file_name: '../a.jpg', width: 1, height: 1 }] }, 'x.json'), /leaves the images folder/);
  });

  it('converts a COCO file into a folder dataset that opens and loads', async () => {
    const { dir, cleanup } = tmp();
    try {
      await writeRgb(join(dir, 'imgs', 'a.jpg'), 6, 4, () => [10, 20, 30]);
      await writeRgb(join(dir, 'imgs', 'b.png'), 6, 4, () => [10, 20, 30]);
      const json = coco([{ id: 1, image_id: 1, category_id: 18, segmentation: box(1, 1, 2, 2) }]);
      json.images.push({ id: 2, file_name: 'b.png', width: 6, height: 4 });
      writeText(join(dir, 'instances.json'), JSON.stringify(json));
      const progress: number[] = [];
      const s = await convertCoco({ annotations: join(dir, 'instances.json'), images: join(dir, 'imgs'), out: join(dir, 'out'), onProgress: (d) => progress.push(d) });
      assert.deepEqual(progress, [1, 2]);
      assert.equal(s.images, 2);
      assert.deepEqual(s.pixels, [44, 0, 4, 0]);
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'out', 'classes.json'), 'utf8')), { classes: ['background', 'car', 'dog'], ignore_index: 255 });
      const ds = openDataset('folder', join(dir, 'out'));
      assert.deepEqual(ds.samples.map((x) => x.id), ['a', 'b']);
      assert.deepEqual(rows((await ds.load(0)).mask, 6), ['000000', '022000', '022000', '000000']);
      assert.equal(pngColorType(readFileSync(join(dir, 'out', 'masks', 'a.png'))), 3, 'a palette PNG');
      // a second conversion into the same folder is refused
      await assert.rejects(convertCoco({ annotations: join(dir, 'instances.json'), images: join(dir, 'imgs'), out: join(dir, 'out') }), {
        message: `coco: ${join(dir, 'out', 'images')} already holds files; convert into a new --out folder`,
      });
      // missing images are all named before anything is written
      await assert.rejects(convertCoco({ annotations: join(dir, 'instances.json'), images: dir, out: join(dir, 'out2') }), {
        message: `coco: 2 of the 2 images in ${join(dir, 'instances.json')} are not in ${dir}, e.g. a.jpg, b.png; check --images`,
      });
      assert.equal(existsSync(join(dir, 'out2')), false);
    } finally { cleanup(); }
  });
});

describe('labelme import', () => {
  it('converts polygon, rectangle and circle shapes, from imagePath or embedded imageData', async () => {
    const { dir, cleanup } = tmp();
    try {
      await writeRgb(join(dir, 'in', 'one.png'), 6, 5, () => [50, 60, 70]);
      const embedded = await sharp(Buffer.alloc(6 * 5 * 3, 90), { raw: { width: 6, height: 5, channels: 3 } }).png().toBuffer();
      const shape = (label: string, shape_type: string, points: number[][]) => ({ label, shape_type, points, group_id: null, flags: {} });
      writeText(join(dir, 'in', 'one.json'), JSON.stringify({
        version: '5.4.1', imagePath: 'one.png', imageData: null, imageHeight: 5, imageWidth: 6,
        shapes: [
          shape('road', 'rectangle', [[0, 3], [6, 5]]),
          shape('cat', 'polygon', [[0, 0], [3, 0], [3, 2], [0, 2]]),
          shape('__ignore__', 'rectangle', [[5, 0], [6, 1]]),
          shape('cat', 'line', [[0, 0], [5, 5]]),
        ],
      }));
      writeText(join(dir, 'in', 'two.json'), JSON.stringify({
        imagePath: 'gone.png', imageData: embedded.toString('base64'), imageHeight: 5, imageWidth: 6,
        shapes: [shape('ball', 'circle', [[2.5, 2.5], [3.7, 2.5]])],
      }));
      const s = await convertLabelme({ input: join(dir, 'in'), out: join(dir, 'out') });
      assert.deepEqual(s.classes, ['background', 'ball', 'cat', 'road']);
      assert.deepEqual(s.skipped, { 'line shape (no area)': 1 });
      assert.equal(s.painted, 3);
      assert.equal(s.ignored, 1);
      const ds = openDataset('folder', join(dir, 'out'));
      assert.deepEqual(rows((await ds.load(0)).mask, 6), ['22200x', '222000', '000000', '333333', '333333']);
      assert.deepEqual(rows((await ds.load(1)).mask, 6), ['000000', '001000', '011100', '001000', '000000']);
      assert.ok(existsSync(join(dir, 'out', 'images', 'two.png')));
      // an unknown label with a labels file is named
      writeFileSync(join(dir, 'labels.txt'), '__ignore__\n_background_\ncat\nroad\n');
      await assert.rejects(convertLabelme({ input: join(dir, 'in'), out: join(dir, 'out3'), labels: join(dir, 'labels.txt') }), {
        message: `labelme: ${join(dir, 'in', 'two.json')}: shapes[0] has label "ball", which is not in the class list; add it to --labels`,
      });
    } finally { cleanup(); }
  });
});
