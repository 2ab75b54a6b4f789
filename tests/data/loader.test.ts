import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BadSample, type Batch, DataLoader, Dataset, openDataset } from '../../src/data/index.js';
import { pattern, tmp, writeGrey, writeRgb, writeText } from './helpers.js';

const N = 10;

async function collect(loader: DataLoader): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader) out.push(b);
  return out;
}

describe('DataLoader', () => {
  const { dir, cleanup } = tmp();
  const bad = tmp();
  before(async () => {
    for (const root of [dir, bad.dir]) {
      writeText(join(root, 'classes.json'), '{"classes": ["a", "b", "c"]}');
      for (let i = 0; i < N; i++) {
        const id = `s${i}`;
        // Sizes differ so eval batches need padding; sample i's mask is all label i % 3.
        await writeRgb(join(root, 'images', `${id}.png`), 40 + i, 30, (x, y) => [x * 5, y * 5, i * 20]);
        await writeGrey(join(root, 'masks', `${id}.png`), 40 + i, 30, () => i % 3);
      }
    }
    writeText(join(bad.dir, 'images', 's3.png'), 'this is not a png');
  });
  after(() => {
    cleanup();
    bad.cleanup();
  });

  it('batches every sample once per epoch, in a seeded order that changes per epoch', async () => {
    const ds = openDataset('folder', dir);
    const loader = new DataLoader(ds, { batchSize: 4, crop: 32, workers: 0, seed: 3, dropLast: false });
    assert.equal(loader.length, 3);
    const e0 = await collect(loader);
    assert.deepEqual(e0.map((b) => b.ids.length), [4, 4, 2]);
    assert.deepEqual(e0[0].shape, [4, 3, 32, 32]);
    assert.equal(e0[0].images.length, 4 * 3 * 32 * 32);
    assert.equal(e0[0].masks.length, 4 * 32 * 32);
    const ids0 = e0.flatMap((b) => b.ids);
    assert.deepEqual([...ids0].sort(), ds.samples.map((s) => s.id).sort());
    for (const b of e0) {
      b.ids.forEach((id, k) => {
        const want = Number(id.slice(1)) % 3;
        const m = b.masks.subarray(k * 1024, (k + 1) * 1024);
        assert.ok(m.every((v) => v === want || v === 255), `${id}'s mask follows it into the batch`);
      });
    }
    assert.equal(loader.currentEpoch, 1);
    const ids1 = (await collect(loader)).flatMap((b) => b.ids);
    assert.notDeepEqual(ids1, ids0, 'a new order each epoch');
    loader.setEpoch(0);
    const again = await collect(loader);
    assert.deepEqual(again.flatMap((b) => b.ids), ids0, 'setEpoch replays the order');
    assert.deepEqual(again[0].images, e0[0].images, 'and the augmentation');
    const st = loader.stats;
    assert.equal(st.batches, 9);
    assert.equal(st.samples, 30);
    assert.ok(st.waitMs > 0);
    await loader.close();
  });

  it('gives the same batches with 2 worker threads as on the main thread', async () => {
    const ds = openDataset('folder', dir);
    const opts = { batchSize: 3, crop: 24, seed: 11, colorJitter: 0.2 };
    const inline = await collect(new DataLoader(ds, { ...opts, workers: 0 }));
    const threaded = new DataLoader(ds, { ...opts, workers: 2 });
    const viaWorkers = await collect(threaded);
    await threaded.close();
    assert.equal(viaWorkers.length, 3, 'dropLast drops the 10th sample in train mode');
    assert.deepEqual(viaWorkers.map((b) => b.ids), inline.map((b) => b.ids));
    for (let i = 0; i < inline.length; i++) {
      assert.deepEqual(viaWorkers[i].images, inline[i].images);
      assert.deepEqual(viaWorkers[i].masks, inline[i].masks);
    }
  });

  it('skips a corrupt file with a warning naming it, and refills the batch', async () => {
    const ds = openDataset('folder', bad.dir);
    const warnings: BadSample[] = [];
    const loader = new DataLoader(ds, { batchSize: 3, crop: 16, workers: 2, shuffle: false, onWarning: (w) => warnings.push(w) });
    const batches = await collect(loader);
    await loader.close();
    assert.deepEqual(batches.map((b) => b.ids), [['s0', 's1', 's2'], ['s4', 's5', 's6'], ['s7', 's8', 's9']]);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].id, 's3');
    assert.ok(warnings[0].message.startsWith(`folder: cannot read ${join(bad.dir, 'images', 's3.png')}: `), warnings[0].message);
    assert.equal(loader.stats.skipped, 1);
  });

  it('with replaceSkipped keeps the epoch length: a skipped sample is made up for from the start of the order, with another seed', async () => {
    const ds = openDataset('folder', bad.dir);
    const warnings: BadSample[] = [];
    const loader = new DataLoader(ds, { batchSize: 2, crop: 16, workers: 0, shuffle: false, replaceSkipped: true, onWarning: (w) => warnings.push(w) });
    const batches = await collect(loader);
    assert.equal(batches.length, loader.length, '5 batches of 2 from 9 readable images');
    assert.deepEqual(batches.map((b) => b.ids), [['s0', 's1'], ['s2', 's4'], ['s5', 's6'], ['s7', 's8'], ['s9', 's0']]);
    assert.notDeepEqual(batches[4].images.subarray(3 * 16 * 16), batches[0].images.subarray(0, 3 * 16 * 16), 's0 again, augmented differently');
    assert.deepEqual(warnings.map((w) => w.id), ['s3']);
    // Every sample bad in both passes: still one clear error, not an endless loop.
    const allBad = new DataLoader(new Dataset({ ...ds.spec, samples: [ds.spec.samples[3], ds.spec.samples[3]] }), { batchSize: 2, crop: 16, workers: 0, replaceSkipped: true, onWarning: () => {} });
    await assert.rejects(collect(allBad), /DataLoader: all 4 samples of the epoch were skipped as unreadable or invalid; the first, s3: /);
  });

  it("fails the iteration on a corrupt file with onBadFile: 'fail'", async () => {
    const ds = openDataset('folder', bad.dir);
    const loader = new DataLoader(ds, { batchSize: 2, crop: 16, workers: 0, shuffle: false, onBadFile: 'fail' });
    await assert.rejects(collect(loader), (e: Error) => e.message.startsWith(`DataLoader: sample s3: folder: cannot read ${join(bad.dir, 'images', 's3.png')}`));
  });

  it('pads eval batches of different sizes to a common, stride-divisible size', async () => {
    const ds = openDataset('folder', dir);
    const loader = new DataLoader(ds, { mode: 'eval', batchSize: 4, stride: 16, workers: 0 });
    const batches = await collect(loader);
    assert.deepEqual(batches.map((b) => b.ids.length), [4, 4, 2]);
    const b = batches[0];
    assert.deepEqual(b.shape, [4, 3, 32, 48]);
    assert.deepEqual(b.infos[0], { mode: 'pad', height: 30, width: 40, inputHeight: 32, inputWidth: 48 });
    const plane = 32 * 48;
    assert.equal(b.masks[31 * 48], 255, 'padded rows are ignore');
    assert.equal(b.masks[39], 0, 's0 is label 0 up to its width');
    assert.equal(b.masks[40], 255, 'and ignore beyond it');
    assert.equal(b.images[40], 0);
    assert.equal(b.masks[plane + 40], 1, 's1 is one pixel wider');
  });

  it('stops cleanly on break and iterates again', async () => {
    const ds = openDataset('folder', dir);
    const loader = new DataLoader(ds, { batchSize: 2, crop: 16, workers: 2 });
    for await (const b of loader) {
      assert.equal(b.ids.length, 2);
      break;
    }
    assert.equal(loader.currentEpoch, 0, 'an interrupted epoch does not advance');
    assert.equal((await collect(loader)).length, 5);
    await loader.close();
  });

  it('turns a batch into engine tensors', async () => {
    const ds = openDataset('folder', dir);
    const loader = new DataLoader(ds, { batchSize: 2, crop: [16, 24], workers: 0 });
    const [b] = await collect(loader);
    const { images, masks } = loader.toTensors(b);
    try {
      assert.deepEqual(images.shape, [2, 3, 16, 24]);
      assert.equal(images.dtype, 'float32');
      assert.deepEqual(masks.shape, [2, 16, 24]);
      assert.equal(masks.dtype, 'int64');
      assert.deepEqual(masks.toNumbers(), [...b.masks]);
    } finally {
      images.dispose();
      masks.dispose();
    }
  });

  it('fails when every sample of an epoch is bad, naming the first', async () => {
    const { dir: d2, cleanup: c2 } = tmp();
    try {
      writeText(join(d2, 'classes.json'), '{"classes": ["a", "b"]}');
      for (const id of ['p', 'q']) {
        await writeRgb(join(d2, 'images', `${id}.png`), 8, 8, () => [0, 0, 0]);
        writeText(join(d2, 'masks', `${id}.png`), 'not a png');
      }
      const loader = new DataLoader(openDataset('folder', d2), { batchSize: 1, crop: 8, workers: 0, shuffle: false, onWarning: () => {} });
      await assert.rejects(collect(loader), (e: Error) => {
        assert.match(e.message, new RegExp(`^DataLoader: all 2 samples of the epoch were skipped as unreadable or invalid; the first, p: folder: cannot read ${join(d2, 'masks', 'p.png')}: `));
        return true;
      });
    } finally { c2(); }
  });

  for (const workers of [0, 1]) {
    it(`stops at the first mask with values outside the classes, as one error and no skip (workers ${workers})`, async () => {
      const { dir: d2, cleanup: c2 } = tmp();
      try {
        writeText(join(d2, 'classes.json'), '{"classes": ["a", "b"]}');
        for (const id of ['p', 'q', 'r']) {
          await writeRgb(join(d2, 'images', `${id}.png`), 8, 8, () => [0, 0, 0]);
          await writeGrey(join(d2, 'masks', `${id}.png`), 8, 8, (x) => (id === 'q' ? (x < 4 ? 7 : 9) : x % 2));
        }
        const warned: string[] = [];
        const loader = new DataLoader(openDataset('folder', d2), { batchSize: 1, crop: 8, workers, shuffle: false, onWarning: (b) => warned.push(b.id) });
        try {
          await assert.rejects(collect(loader), {
            name: 'PansegError',
            message: `folder: mask ${join(d2, 'masks', 'q.png')} has label values 7, 9 outside the 2 classes (0-1) that are not the ignore index 255`,
          });
          assert.deepEqual(warned, []);
        } finally { await loader.close(); }
      } finally { c2(); }
    });
  }

  it('validates its options', () => {
    const ds = openDataset('folder', dir);
    assert.throws(() => new DataLoader(ds, { batchSize: 11 }), {
      message: 'DataLoader: the dataset has 10 samples, fewer than batchSize 11, so dropLast would leave no batch; lower batchSize or pass dropLast: false',
    });
    assert.throws(() => new DataLoader(ds, { batchSize: 0 }), { message: 'DataLoader: expected positive integer for batchSize but received 0 of type number' });
    assert.throws(() => new DataLoader(ds, { onBadFile: 'ignore' as 'skip' }), {
      message: "DataLoader: expected one of 'skip', 'fail' for onBadFile but received 'ignore' of type string",
    });
  });
});
