// Photos through the server: EXIF orientation is applied on decode (a phone photo stored sideways comes out
// upright, as panseg predict reads it), and startServer's `inference` (tile, overlap) segments in windows,
// giving the labels the library's tiled segmentImage gives.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { readIndexedPng } from '../../src/data/index.js';
import { segmentImage } from '../../src/eval/predict.js';
import { PAN } from '../../src/models/index.js';
import { decodeUploadedImage } from '../../src/serve/image.js';
import { type RunningServer, startServer } from '../../src/serve/index.js';
import { agreement, saveTinyModel, testPixels, tmp } from './helpers.js';

let server: RunningServer;
let modelDir: string;
let cleanup: () => void;

before(async () => {
  const t = tmp('panseg-serve-photos-');
  cleanup = t.cleanup;
  modelDir = saveTinyModel(t.dir);
  server = await startServer({ model: modelDir, port: 0, onnx: false, inference: { tile: 128, overlap: 0.25 } });
});

after(async () => {
  await server?.close();
  cleanup?.();
});

describe('serve: photos', () => {
  it('applies the EXIF orientation on decode', async () => {
    // Stored 60 wide x 40 high with orientation 6 (turn 90 degrees clockwise to show): shown 40 x 60.
    const jpeg = await sharp(Buffer.from(testPixels(60, 40)), { raw: { width: 60, height: 40, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const img = await decodeUploadedImage(jpeg, 4096);
    assert.deepEqual([img.width, img.height], [40, 60]);
    const plain = await decodeUploadedImage(await sharp(Buffer.from(testPixels(60, 40)), { raw: { width: 60, height: 40, channels: 3 } }).jpeg().toBuffer(), 4096);
    assert.deepEqual([plain.width, plain.height], [60, 40]);
  });

  it('segments in tiles with inference.tile, as segmentImage does', async () => {
    const [w, h] = [300, 200];
    const png = await sharp(Buffer.from(testPixels(w, h)), { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    const res = await fetch(new URL('/api/segment?format=png', server.url), { method: 'POST', body: png, headers: { 'Content-Type': 'image/png' } });
    assert.equal(res.status, 200);
    const mask = readIndexedPng(Buffer.from(await res.arrayBuffer()))!;
    assert.deepEqual([mask.width, mask.height], [w, h]);
    const model = PAN.fromPretrained(modelDir);
    try {
      const ref = segmentImage(model, { data: testPixels(w, h), width: w, height: h }, { tile: 128, overlap: 0.25 });
      assert.ok(agreement(mask.indices, ref.labels) > 0.999);
    } finally {
      model.dispose();
    }
  });

  it('refuses bad inference options', async () => {
    await assert.rejects(startServer({ model: modelDir, port: 0, onnx: false, inference: { tile: 0 } }), /startServer: expected positive integer for inference\.tile but received 0 of type number/);
  });
});
