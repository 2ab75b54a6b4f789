import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SYNTHETIC_CLASSES, generateSynthetic, openDataset } from '../../src/data/index.js';
import { tmp } from './helpers.js';

describe('generateSynthetic', () => {
  const { dir, cleanup } = tmp();
  after(cleanup);
  const root = join(dir, 'shapes');

  it('writes a folder dataset of shape scenes', async () => {
    const r = await generateSynthetic(root, { train: 24, val: 6, size: 64, seed: 5 });
    assert.equal(r.skipped, false);
    assert.deepEqual(r.classes, ['background', 'circle', 'rectangle', 'triangle', 'ring', 'cross']);
    const train = openDataset('folder', root, { split: 'train' });
    const val = openDataset('folder', root, { split: 'val' });
    assert.equal(train.length, 24);
    assert.equal(val.length, 6);
    assert.deepEqual(train.classes, [...SYNTHETIC_CLASSES]);
    assert.equal(openDataset('folder', join(root, 'val')).length, 6, 'a split folder opens on its own too');
    const counts = new Array(6).fill(0);
    for (let i = 0; i < train.length; i++) {
      const s = await train.load(i);
      assert.equal(s.width, 64);
      assert.equal(s.height, 64);
      for (const v of s.mask) counts[v]++;
    }
    assert.ok(counts.every((c) => c > 0), `every class appears: ${counts}`);
    assert.ok(counts[0] < 0.9 * 24 * 64 * 64, 'shapes cover a fair share of the pixels');
  });

  it('is idempotent, and deterministic in its seed', async () => {
    const mask = join(root, 'train', 'masks', 'train_00003.png');
    const before = readFileSync(mask);
    const again = await generateSynthetic(root, { train: 24, val: 6, size: 64, seed: 5 });
    assert.equal(again.skipped, true);
    const other = await generateSynthetic(root, { train: 24, val: 6, size: 64, seed: 6 });
    assert.equal(other.skipped, false, 'new parameters regenerate');
    assert.notDeepEqual(readFileSync(mask), before);
    await generateSynthetic(root, { train: 24, val: 6, size: 64, seed: 5 });
    assert.deepEqual(readFileSync(mask), before);
  });

  it('refuses to write into a folder it did not make', async () => {
    const other = join(dir, 'mine');
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'keep me');
    await assert.rejects(generateSynthetic(other, { train: 1 }), {
      message: `generateSynthetic: ${other} is not empty and holds no manifest.json from a previous generation; choose an empty or new folder`,
    });
  });
});
