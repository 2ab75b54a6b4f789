import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import {
  applySplit, checkValSource, DataLoader, decodeImage, openDataset, openTrainVal, readSplitFile, splitDataset, writeSplitFile,
} from '../../src/data/index.js';
import { tmp, writeGrey, writeRgb, writeText } from './helpers.js';

const photo = (x: number, y: number): [number, number, number] => [x * 20, y * 30, 100];

describe('folder: --split all and --val-fraction', () => {
  const { dir, cleanup } = tmp();
  const ids = Array.from({ length: 20 }, (_, i) => `img${String(i).padStart(2, '0')}`);
  before(async () => {
    writeText(join(dir, 'classes.json'), '{"classes": ["bg", "fg"]}');
    for (const id of ids) {
      await writeRgb(join(dir, 'images', `${id}.png`), 6, 4, photo);
      await writeGrey(join(dir, 'masks', `${id}.png`), 6, 4, (x) => x % 2);
    }
  });
  after(cleanup);

  it("opens a flat images/ + masks/ folder with split 'all'", () => {
    const ds = openDataset('folder', dir, { split: 'all' });
    assert.equal(ds.length, 20);
    assert.equal(ds.split, 'all');
  });

  it('splits reproducibly by seed, with the requested share, disjoint and complete', () => {
    const all = openDataset('folder', dir, { split: 'all' });
    const a = splitDataset(all, { valFraction: 0.2, seed: 3 });
    const b = splitDataset(all, { valFraction: 0.2, seed: 3 });
    const c = splitDataset(all, { valFraction: 0.2, seed: 4 });
    assert.deepEqual(a.file, b.file);
    assert.equal(a.val.length, 4);
    assert.equal(a.train.length, 16);
    assert.notDeepEqual(a.file.val, c.file.val);
    assert.deepEqual([...a.file.train, ...a.file.val].sort(), ids);
    assert.equal(a.val.split, 'val');
    // The choice depends on ids, not on order: a reversed sample list gives the same val set.
    const reversed = all.subset([...all.samples.keys()].reverse(), 'all');
    assert.deepEqual(splitDataset(reversed, { valFraction: 0.2, seed: 3 }).file.val.sort(), [...a.file.val].sort());
    // Adding a file moves few others across.
    const fewer = all.subset([...all.samples.keys()].slice(1), 'all');
    const moved = splitDataset(fewer, { valFraction: 0.2, seed: 3 }).file.val.filter((id) => !a.file.val.includes(id));
    assert.ok(moved.length <= 1, `moved ${moved.join(', ')}`);
  });

  it('saves the split and re-applies it; a missing file is named', () => {
    const { train, val, file } = openTrainVal({ dataset: 'folder', dataRoot: dir, valFraction: 0.25, seed: 1 });
    assert.equal(val!.length, 5);
    const path = join(dir, 'split.json');
    writeSplitFile(path, file!);
    const again = openTrainVal({ dataset: 'folder', dataRoot: dir, splitFile: path });
    assert.deepEqual(again.train.samples, train.samples);
    assert.deepEqual(again.val!.samples, val!.samples);
    const read = readSplitFile(path);
    assert.equal(read.split, 'all');
    const gone = { ...read, val: [...read.val, 'nope'] };
    assert.throws(() => applySplit(openDataset('folder', dir, { split: 'all' }), gone, 'val', path), {
      message: `folder: 1 of the 6 'val' samples listed in ${path} are not in ${dir}, e.g. nope; restore those files or start a new split`,
    });
  });

  it('allowUnmatched lists images without masks and masks without images (a split list does not make orphans)', async () => {
    const { dir: d2, cleanup: c2 } = tmp();
    try {
      writeText(join(d2, 'classes.json'), '{"classes": ["bg", "fg"]}');
      for (const id of ['a', 'b', 'c']) await writeRgb(join(d2, 'images', `${id}.png`), 4, 4, photo);
      for (const id of ['a', 'b', 'z']) await writeGrey(join(d2, 'masks', `${id}.png`), 4, 4, () => 0);
      writeText(join(d2, 'train.txt'), 'a\nc\n');
      const all = openDataset('folder', d2, { split: 'all', allowUnmatched: true });
      assert.deepEqual(all.spec.unmatched, { images: [join(d2, 'images', 'c.png')], masks: [join(d2, 'masks', 'z.png')] });
      assert.deepEqual(all.samples.map((x) => x.id), ['a', 'b']);
      const listed = openDataset('folder', d2, { split: 'train', allowUnmatched: true });
      assert.deepEqual(listed.spec.unmatched, { images: [join(d2, 'images', 'c.png')], masks: [join(d2, 'masks', 'z.png')] });
      assert.throws(() => openDataset('folder', d2, { split: 'all' }), /1 images have no mask with the same stem/);
    } finally { c2(); }
  });

  it('refuses bad fractions', () => {
    const all = openDataset('folder', dir, { split: 'all' });
    assert.throws(() => splitDataset(all, { valFraction: 1 }), {
      message: 'splitDataset: expected a number between 0 and 1 (exclusive) for valFraction (--val-fraction), e.g. 0.1, but received 1 of type number',
    });
  });

  it('a run validates on a val split, or else on a share or a split file', () => {
    assert.equal(checkValSource('train', {}), '');
    assert.equal(checkValSource('train', { valSplit: 'test' }), '');
    assert.match(checkValSource('train', { valFraction: 0.1 }), /share of split/);
    assert.throws(() => checkValSource('train', { valFraction: 0.1, valSplit: 'test' }), {
      message: 'train: valFraction (--val-fraction) validates on a share of split (--split); drop valSplit (--val-split test), or drop valFraction to validate on that split',
    });
    assert.throws(() => checkValSource('train', { splitFile: 's.json', valSplit: null }), /^PansegError: train: splitFile \(--split-file\) names the validation images; drop valSplit \(--val-split none\)/);
    assert.match(checkValSource('train', { splitFile: 's.json', valFraction: 0.2 }), /share of split/); // a resumed run's file wins
    assert.throws(() => checkValSource('train', { valFraction: 0 }), /between 0 and 1/);
    // The CLI default 'val' that older train config.json files hold beside --val-fraction.
    assert.throws(() => checkValSource('compare', { valFraction: 0.1, valSplit: 'val' }), /drop valSplit \(--val-split val\)/);
    assert.match(checkValSource('train', { valFraction: 0.1, valSplit: 'val' }, { legacyVal: true }), /share of split/);
  });
});

describe('mask values', () => {
  const { dir, cleanup } = tmp();
  before(async () => {
    for (const [name, f] of [
      ['b255', (x: number) => (x < 3 ? 0 : 255)],
      ['b01', (x: number) => (x < 3 ? 0 : 1)],
      ['mixed', (x: number) => [0, 1, 255][x % 3]],
      ['ade', (x: number) => x % 4], // 0 = unlabelled, 1..3 = classes a..c
    ] as const) {
      for (const id of ['p', 'q']) {
        await writeRgb(join(dir, name, 'images', `${id}.png`), 6, 4, photo);
        await writeGrey(join(dir, name, 'masks', `${id}.png`), 6, 4, f);
      }
      writeText(join(dir, name, 'classes.json'), name === 'ade' ? '{"classes": ["a", "b", "c"]}' : '{"classes": ["background", "cat"]}');
    }
  });
  after(cleanup);

  it('reads 0/255 masks of a 2-class folder as background/foreground, with one info line', async () => {
    const info: string[] = [];
    const ds = openDataset('folder', join(dir, 'b255'), { onInfo: (m) => info.push(m) });
    assert.deepEqual(info, [
      `folder: the masks in ${join(dir, 'b255', 'masks')} hold only 0 and 255, so they are read as background (0) and cat (255), not as ignored pixels; set "ignore_index": 255 in classes.json to keep 255 as ignore`,
    ]);
    const { mask } = await ds.load(0);
    assert.deepEqual([...mask.subarray(0, 6)], [0, 0, 0, 1, 1, 1]);
  });

  it('leaves 0/1 masks and 0/1/255 masks (255 = ignore) as they are, silently', async () => {
    for (const name of ['b01', 'mixed']) {
      const info: string[] = [];
      const ds = openDataset('folder', join(dir, name), { onInfo: (m) => info.push(m) });
      assert.deepEqual(info, []);
      const { mask } = await ds.load(0);
      assert.deepEqual([...mask.subarray(0, 6)], name === 'b01' ? [0, 0, 0, 1, 1, 1] : [0, 1, 255, 0, 1, 255]);
    }
  });

  it('--ignore-index: a declared ignore value keeps 255 as ignore, another value is refused when it is a class', async () => {
    const ds = openDataset('folder', join(dir, 'b255'), { ignoreIndex: 255, onInfo: () => assert.fail('no info expected') });
    assert.deepEqual([...(await ds.load(0)).mask.subarray(0, 6)], [0, 0, 0, 255, 255, 255]);
    assert.throws(() => openDataset('folder', join(dir, 'b255'), { ignoreIndex: 1 }), {
      message: 'folder: ignoreIndex 1 is a class index (classes 0-1); pick a value from 2 to 255',
    });
    assert.throws(() => openDataset('folder', join(dir, 'ade'), { ignoreIndex: 0 }), {
      message: 'folder: ignoreIndex 0 is a class index (classes 0-2); pick a value from 3 to 255, or pass reduceZeroLabel (--reduce-zero-label) to ignore 0 and shift the other values down',
    });
    const d200 = openDataset('folder', join(dir, 'mixed'), { ignoreIndex: 200 });
    assert.equal(d200.ignoreIndex, 200);
    await assert.rejects(d200.load(0), {
      message: `folder: mask ${join(dir, 'mixed', 'masks', 'p.png')} has label values 255 outside the 2 classes (0-1) that are not the ignore index 200`,
    });
  });

  it('--reduce-zero-label: 0 is ignored and the rest shift down (mmseg)', async () => {
    const ds = openDataset('folder', join(dir, 'ade'), { reduceZeroLabel: true });
    assert.equal(ds.ignoreIndex, 255);
    assert.deepEqual([...(await ds.load(0)).mask.subarray(0, 6)], [255, 0, 1, 2, 255, 0]);
    // without it, 3 is outside the 3 classes
    await assert.rejects(openDataset('folder', join(dir, 'ade')).load(0), /has label values 3 outside the 3 classes/);
  });

  it('applies a layout lut before ignore-index: camvid void stays void under the new value', async () => {
    const { dir: d2, cleanup: c2 } = tmp();
    try {
      await writeRgb(join(d2, 'train', 'a.png'), 6, 4, photo);
      await writeGrey(join(d2, 'trainannot', 'a.png'), 6, 4, (x) => (x === 0 ? 11 : 2));
      const ds = openDataset('camvid', d2, { ignoreIndex: 250 });
      assert.deepEqual([...(await ds.load(0)).mask.subarray(0, 3)], [250, 2, 2]);
    } finally { c2(); }
  });

  it('a 0/255 folder trains as two classes through the loader', async () => {
    const ds = openDataset('folder', join(dir, 'b255'), { onInfo: () => {} });
    const loader = new DataLoader(ds, { batchSize: 2, crop: 4, workers: 1, scaleRange: [1, 1], shuffle: false });
    try {
      for await (const b of loader) assert.ok([...b.masks].every((v) => v === 0 || v === 1));
    } finally { await loader.close(); }
  });
});

describe('EXIF orientation', () => {
  const { dir, cleanup } = tmp();
  after(cleanup);

  it('turns a JPEG with orientation 6 upright on decode, in the dataset path too', async () => {
    // Stored 8x4, left half red, right half blue; orientation 6 = rotate 90 degrees clockwise to display.
    const w = 8;
    const h = 4;
    const raw = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set(x < w / 2 ? [255, 0, 0] : [0, 0, 255], 3 * (y * w + x));
    const path = join(dir, 'images', 'p.jpg');
    writeText(path, '');
    await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toFile(path);
    assert.equal((await sharp(path).metadata()).orientation, 6);
    const img = await decodeImage(path);
    assert.deepEqual([img.width, img.height], [4, 8]);
    // After a clockwise turn the stored left (red) half is on top.
    const px = (x: number, y: number) => [...img.data.subarray(3 * (y * img.width + x), 3 * (y * img.width + x) + 3)];
    assert.ok(px(1, 1)[0] > 200 && px(1, 1)[2] < 60, `top ${px(1, 1)}`);
    assert.ok(px(1, 6)[2] > 200 && px(1, 6)[0] < 60, `bottom ${px(1, 6)}`);

    writeText(join(dir, 'classes.json'), '{"classes": ["red", "blue"]}');
    await writeGrey(join(dir, 'masks', 'p.png'), 4, 8, (_x, y) => (y < 4 ? 0 : 1));
    const s = await openDataset('folder', dir).load(0);
    assert.deepEqual([s.width, s.height], [4, 8]);
    // A mask drawn on the unrotated pixels is refused with the reason.
    await writeGrey(join(dir, 'masks', 'p.png'), 8, 4, () => 0);
    await assert.rejects(openDataset('folder', dir).load(0), {
      message: `folder: image ${path} is 4x8 but its mask ${join(dir, 'masks', 'p.png')} is 8x4; the image is turned by its EXIF orientation, so the mask was drawn on the unrotated pixels: rotate the mask to match, or re-save the image without the orientation tag`,
    });
  });
});
