import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { CAMVID_COLORS, CITYSCAPES_COLORS, VOC_PALETTE, colorize, vocPalette } from '../../src/common/palette.js';
import { encodeIndexedPng, readIndexedPng } from '../../src/data/png.js';

describe('palette', () => {
  it('builds the VOC palette bit by bit', () => {
    assert.deepEqual(vocPalette(5), [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]);
    assert.deepEqual(VOC_PALETTE[15], [192, 128, 128]); // person
    assert.deepEqual(VOC_PALETTE[255], [224, 224, 192]); // the void border
    assert.equal(new Set(VOC_PALETTE.map((c) => c.join())).size, 256, 'all 256 colours are distinct');
  });
  it('has 11 CamVid and 19 Cityscapes colours', () => {
    assert.equal(CAMVID_COLORS.length, 11);
    assert.equal(CITYSCAPES_COLORS.length, 19);
    assert.deepEqual(CITYSCAPES_COLORS[0], [128, 64, 128]);
  });
  it('colorizes labels, unknown labels in the ignore colour', () => {
    assert.deepEqual([...colorize([1, 0, 255], VOC_PALETTE.slice(0, 21), [9, 9, 9])], [128, 0, 0, 0, 0, 0, 9, 9, 9]);
  });
});

describe('indexed PNG', () => {
  it('round-trips every index exactly, and viewers see the palette colours', async () => {
    const w = 37;
    const h = 11;
    const idx = Uint8Array.from({ length: w * h }, (_, i) => (i * 7) % 256);
    const png = encodeIndexedPng(idx, w, h, VOC_PALETTE);
    const back = readIndexedPng(png)!;
    assert.equal(back.width, w);
    assert.equal(back.height, h);
    assert.deepEqual(back.indices, idx);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 3);
    for (let i = 0; i < w * h; i++) assert.deepEqual([...data.subarray(3 * i, 3 * i + 3)], VOC_PALETTE[idx[i]]);
  });

  it('reads palette PNGs written by libvips (filters, low bit depths) like sharp does', async () => {
    for (const colours of [2, 4, 16, 200]) {
      const w = 45;
      const h = 23;
      const rgb = new Uint8Array(w * h * 3);
      for (let i = 0; i < w * h; i++) {
        const k = (i * 13 + Math.floor(i / w) * 5) % colours;
        rgb.set([(k * 37) % 256, (k * 91) % 256, (k * 53) % 256], 3 * i);
      }
      const png = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).png({ palette: true, colours, dither: 0 }).toBuffer();
      const mine = readIndexedPng(png)!;
      assert.ok(mine, `colours=${colours} gave an indexed PNG`);
      const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
      for (let i = 0; i < w * h; i++) {
        assert.deepEqual(mine.palette[mine.indices[i]], [...data.subarray(3 * i, 3 * i + 3)], `colours=${colours} pixel ${i}`);
      }
    }
  });

  it('reads 8-bit greyscale PNGs as their levels', async () => {
    const w = 31;
    const h = 9;
    const g = Uint8Array.from({ length: w * h }, (_, i) => (i * 11) % 256);
    const png = await sharp(g, { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toBuffer();
    assert.deepEqual(readIndexedPng(png)!.indices, g);
  });

  it('returns null for RGB PNGs and throws on corrupt data', async () => {
    const rgb = await sharp(new Uint8Array(12), { raw: { width: 2, height: 2, channels: 3 } }).png().toBuffer();
    assert.equal(readIndexedPng(rgb), null);
    const png = encodeIndexedPng(new Uint8Array(400), 20, 20, VOC_PALETTE);
    assert.throws(() => readIndexedPng(png.subarray(0, 60)));
  });
});
