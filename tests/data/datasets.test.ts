import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VOC_PALETTE } from '../../src/common/palette.js';
import { CITYSCAPES_TRAIN_IDS, datasetNames, openDataset } from '../../src/data/index.js';
import { pattern, tmp, writeGrey, writeIndexed, writeRgb, writeText } from './helpers.js';

const W = 12;
const H = 8;
const photo = (x: number, y: number): [number, number, number] => [x * 20, y * 30, 100];

async function rejects(p: Promise<unknown>, message: string): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.equal(e.message, message);
    return true;
  });
}

describe('voc', () => {
  const { dir, cleanup } = tmp();
  const root = join(dir, 'VOCdevkit', 'VOC2012');
  const labels = pattern([0, 1, 15, 20, 255]);
  before(async () => {
    for (const id of ['a', 'b', 'c']) {
      await writeRgb(join(root, 'JPEGImages', `${id}.jpg`), W, H, photo);
      writeIndexed(join(root, 'SegmentationClass', `${id}.png`), W, H, VOC_PALETTE, labels);
      await writeGrey(join(root, 'SegmentationClassAug', `${id}.png`), W, H, labels);
    }
    writeText(join(root, 'ImageSets', 'Segmentation', 'train.txt'), 'a\nb\n');
    writeText(join(root, 'ImageSets', 'Segmentation', 'val.txt'), 'c\n');
    writeText(join(root, 'ImageSets', 'Segmentation', 'train_aug.txt'), '/JPEGImages/a.jpg /SegmentationClassAug/a.png\nb\n');
  });
  after(cleanup);

  it('lists a split and decodes palette indices exactly, 255 kept as ignore', async () => {
    const ds = openDataset('voc', root, { split: 'train' });
    assert.equal(ds.length, 2);
    assert.equal(ds.numClasses, 21);
    assert.equal(ds.classes[15], 'person');
    assert.equal(ds.ignoreIndex, 255);
    assert.deepEqual(ds.colors[1], [128, 0, 0]);
    assert.deepEqual(ds.samples[0], { id: 'a', imagePath: join(root, 'JPEGImages', 'a.jpg'), maskPath: join(root, 'SegmentationClass', 'a.png') });
    const s = await ds.load(1);
    assert.equal(s.id, 'b');
    assert.equal(s.width, W);
    assert.equal(s.height, H);
    assert.equal(s.image.data.length, W * H * 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) assert.equal(s.mask[y * W + x], labels(x, y));
    assert.deepEqual([...new Set(s.mask)].sort((a, b) => a - b), [0, 1, 15, 20, 255]);
  });

  it('reads train_aug lists with paths or plain ids, and greyscale Aug masks', async () => {
    const ds = openDataset('voc', root, { split: 'train_aug' });
    assert.deepEqual(ds.samples.map((s) => s.id), ['a', 'b']);
    assert.equal(ds.samples[1].maskPath, join(root, 'SegmentationClassAug', 'b.png'));
    const m = await ds.loadMask(0);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) assert.equal(m.data[y * W + x], labels(x, y));
  });

  it('maps RGB masks back through the VOC palette', async () => {
    const { dir: d2, cleanup: c2 } = tmp();
    try {
      await writeRgb(join(d2, 'JPEGImages', 'x.jpg'), W, H, photo);
      await writeRgb(join(d2, 'SegmentationClass', 'x.png'), W, H, (x, y) => VOC_PALETTE[labels(x, y)]);
      writeText(join(d2, 'ImageSets', 'Segmentation', 'val.txt'), 'x\n');
      const m = await openDataset('voc', d2, { split: 'val' }).loadMask(0);
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) assert.equal(m.data[y * W + x], labels(x, y));
    } finally { c2(); }
  });

  it('names the expected folder, what is there, and where it really is', () => {
    assert.throws(() => openDataset('voc', dir), {
      message: `voc: expected the images folder JPEGImages/ in ${join(dir, 'JPEGImages')} but it does not exist; ${dir} contains: VOCdevkit/. Found JPEGImages/ in ${root}: use ${root} as the dataset root`,
    });
    assert.throws(() => openDataset('voc', join(dir, 'nope')), { message: `voc: expected the dataset folder ${join(dir, 'nope')} but it does not exist` });
  });

  it('lists the splits that exist when asked for another', () => {
    assert.throws(() => openDataset('voc', root, { split: 'test' }), {
      message: `voc: expected the split list ${join(root, 'ImageSets', 'Segmentation', 'test.txt')} for split 'test' but it does not exist; found splits: 'train', 'train_aug', 'val'`,
    });
  });

  it('reports listed files that do not exist', () => {
    writeText(join(root, 'ImageSets', 'Segmentation', 'bad.txt'), 'a\nzz\n');
    assert.throws(() => openDataset('voc', root, { split: 'bad' }), {
      message: `voc: 2 of the 4 files listed by the 'bad' list do not exist, e.g. ${join(root, 'JPEGImages', 'zz.jpg')}, ${join(root, 'SegmentationClass', 'zz.png')}`,
    });
  });

  it('answers an unknown layout with the valid ones', () => {
    assert.deepEqual(datasetNames(), ['voc', 'camvid', 'cityscapes', 'folder']);
    assert.throws(() => openDataset('coco', root), { message: "openDataset: unknown dataset 'coco'; expected one of 'voc', 'camvid', 'cityscapes', 'folder'" });
  });
});

describe('camvid', () => {
  const { dir, cleanup } = tmp();
  before(async () => {
    for (const [split, ids] of [['train', ['0001TP_006690', '0001TP_006720']], ['val', ['0016E5_07959']]] as const) {
      for (const id of ids) {
        await writeRgb(join(dir, split, `${id}.png`), W, H, photo);
        await writeGrey(join(dir, `${split}annot`, `${id}.png`), W, H, pattern([0, 3, 10, 11]));
      }
    }
  });
  after(cleanup);

  it('pairs images with annotations by name and maps void 11 to 255', async () => {
    const ds = openDataset('camvid', dir, { split: 'train' });
    assert.deepEqual(ds.samples.map((s) => s.id), ['0001TP_006690', '0001TP_006720']);
    assert.equal(ds.numClasses, 11);
    assert.equal(ds.classes[10], 'Bicyclist');
    const s = await ds.load(0);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const want = pattern([0, 3, 10, 11])(x, y);
      assert.equal(s.mask[y * W + x], want === 11 ? 255 : want);
    }
  });

  it('reports values outside the classes with the file', async () => {
    const bad = join(dir, 'valannot', '0016E5_07959.png');
    await writeGrey(bad, W, H, pattern([1, 12, 30]));
    const ds = openDataset('camvid', dir, { split: 'val' });
    await rejects(ds.load(0), `camvid: mask ${bad} has label values 12, 30 outside the 11 classes (0-10) that are not the ignore index 255`);
  });

  it('names a missing annotation folder', () => {
    assert.throws(() => openDataset('camvid', dir, { split: 'test' }), {
      message: `camvid: expected the 'test' images folder test/ in ${join(dir, 'test')} but it does not exist; ${dir} contains: train/, trainannot/, val/, valannot/`,
    });
  });
});

describe('cityscapes', () => {
  const { dir, cleanup } = tmp();
  const id = 'aachen_000000_000019';
  before(async () => {
    await writeRgb(join(dir, 'leftImg8bit', 'train', 'aachen', `${id}_leftImg8bit.png`), 34, 2, photo);
    await writeGrey(join(dir, 'gtFine', 'train', 'aachen', `${id}_gtFine_labelIds.png`), 34, 2, (x, y) => (y ? 33 - x : x));
    await writeGrey(join(dir, 'gtFine', 'train', 'aachen', `${id}_gtFine_labelTrainIds.png`), 34, 2, (x) => (x < 19 ? x : 255));
  });
  after(cleanup);

  it('maps all 34 label IDs to the 19 train IDs, the rest to 255', async () => {
    const ds = openDataset('cityscapes', dir);
    assert.deepEqual(ds.samples.map((s) => s.id), [id]);
    assert.equal(ds.numClasses, 19);
    const m = (await ds.load(0)).mask;
    const want = [255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18];
    assert.deepEqual(CITYSCAPES_TRAIN_IDS, want);
    assert.deepEqual([...m.subarray(0, 34)], want);
    assert.deepEqual([...m.subarray(34)], [...want].reverse());
  });

  it('reads labelTrainIds masks as they are', async () => {
    const m = (await openDataset('cityscapes', dir, { labels: 'trainIds' }).load(0)).mask;
    assert.deepEqual([...m.subarray(0, 20)], [...Array.from({ length: 19 }, (_, i) => i), 255]);
  });

  it('names the missing split folder', () => {
    assert.throws(() => openDataset('cityscapes', dir, { split: 'val' }), {
      message: `cityscapes: expected the 'val' images folder leftImg8bit/val/ in ${join(dir, 'leftImg8bit', 'val')} but it does not exist; ${dir} contains: gtFine/, leftImg8bit/`,
    });
  });
});

describe('folder', () => {
  const { dir, cleanup } = tmp();
  const colors: [number, number, number][] = [[0, 0, 0], [255, 0, 0], [0, 255, 0]];
  const lab = pattern([0, 1, 2]);
  before(async () => {
    writeText(join(dir, 'classes.json'), JSON.stringify({ classes: ['bg', 'cat', 'dog'], colors, ignore_color: [255, 255, 255] }));
    await writeRgb(join(dir, 'images', 'grey.jpg'), W, H, photo);
    await writeGrey(join(dir, 'masks', 'grey.png'), W, H, lab);
    await writeRgb(join(dir, 'images', 'rgb.webp'), W, H, photo);
    await writeRgb(join(dir, 'masks', 'rgb.png'), W, H, (x, y) => (x === 0 ? [255, 255, 255] : colors[lab(x, y)]));
    await writeRgb(join(dir, 'images', 'pal.png'), W, H, photo);
    // A palette whose index order differs from the classes: the colour decides.
    writeIndexed(join(dir, 'masks', 'pal.png'), W, H, [colors[2], colors[0], colors[1]], (x, y) => (lab(x, y) + 1) % 3);
    writeText(join(dir, 'val.txt'), 'rgb\n');
  });
  after(cleanup);

  it('matches by stem and reads greyscale, RGB and palette masks', async () => {
    const ds = openDataset('folder', dir);
    assert.deepEqual(ds.samples.map((s) => s.id), ['grey', 'pal', 'rgb']);
    assert.deepEqual(ds.classes, ['bg', 'cat', 'dog']);
    assert.deepEqual(ds.colors, colors);
    for (let i = 0; i < 3; i++) {
      const s = await ds.load(i);
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
        const want = ds.samples[i].id === 'rgb' && x === 0 ? 255 : lab(x, y);
        assert.equal(s.mask[y * W + x], want, `${ds.samples[i].id} at ${x},${y}`);
      }
    }
  });

  it('takes a split from <split>.txt or <split>/images', async () => {
    assert.deepEqual(openDataset('folder', dir, { split: 'val' }).samples.map((s) => s.id), ['rgb']);
    const { dir: d2, cleanup: c2 } = tmp();
    try {
      writeText(join(d2, 'classes.json'), '{"classes": ["a", "b"]}');
      await writeRgb(join(d2, 'train', 'images', 'x.png'), W, H, photo);
      await writeGrey(join(d2, 'train', 'masks', 'x.png'), W, H, pattern([0, 1, 255]));
      const ds = openDataset('folder', d2, { split: 'train' });
      assert.deepEqual(ds.colors, [[0, 0, 0], [128, 0, 0]]);
      assert.equal((await ds.load(0)).mask[4], 255);
      assert.throws(() => openDataset('folder', d2, { split: 'val' }), {
        message: `folder: expected the 'val' split as ${join(d2, 'val', 'images')}/ or as a list ${join(d2, 'val.txt')}; neither exists. ${d2} contains: classes.json, train/. For a flat images/ + masks/ folder use --split all (and --val-fraction for a validation share)`,
      });
    } finally { c2(); }
  });

  it('names the file and colour of an unknown mask colour', async () => {
    const { dir: d2, cleanup: c2 } = tmp();
    try {
      writeText(join(d2, 'classes.json'), JSON.stringify({ classes: ['bg', 'cat', 'dog'], colors }));
      await writeRgb(join(d2, 'images', 'x.png'), W, H, photo);
      const mask = join(d2, 'masks', 'x.png');
      await writeRgb(mask, W, H, (x, y) => (x === 3 && y === 2 ? [1, 2, 3] : [0, 0, 0]));
      await rejects(openDataset('folder', d2).load(0), `folder: mask ${mask} has colour (1, 2, 3) at x=3, y=2, which is not a class colour`);
    } finally { c2(); }
  });

  it('names both paths when image and mask sizes differ', async () => {
    const { dir: d2, cleanup: c2 } = tmp();
    try {
      writeText(join(d2, 'classes.json'), '{"classes": ["a", "b"]}');
      await writeRgb(join(d2, 'images', 'x.png'), W, H, photo);
      await writeGrey(join(d2, 'masks', 'x.png'), W + 1, H, () => 0);
      await rejects(openDataset('folder', d2).load(0),
        `folder: image ${join(d2, 'images', 'x.png')} is 12x8 but its mask ${join(d2, 'masks', 'x.png')} is 13x8`);
    } finally { c2(); }
  });

  it('reports an unreadable image with its path', async () => {
    const { dir: d2, cleanup: c2 } = tmp();
    try {
      writeText(join(d2, 'classes.json'), '{"classes": ["a", "b"]}');
      writeText(join(d2, 'images', 'x.jpg'), 'not a jpeg');
      await writeGrey(join(d2, 'masks', 'x.png'), W, H, () => 0);
      const ds = openDataset('folder', d2);
      await assert.rejects(ds.load(0), (e: Error) => e.message.startsWith(`folder: cannot read ${join(d2, 'images', 'x.jpg')}: `));
      assert.equal((await ds.check()).length, 1);
    } finally { c2(); }
  });

  it('checks classes.json', () => {
    const { dir: d2, cleanup: c2 } = tmp();
    try {
      const file = join(d2, 'classes.json');
      assert.throws(() => openDataset('folder', d2), {
        message: `folder: expected the images folder images/ in ${join(d2, 'images')} but it does not exist; ${d2} contains: nothing (it is empty)`,
      });
      writeText(join(d2, 'images', 'x.png'), '');
      writeText(join(d2, 'masks', 'x.png'), '');
      assert.throws(() => openDataset('folder', d2), {
        message: `folder: expected ${file} listing the classes, e.g. {"classes": ["background", "cat"]}, but it does not exist`,
      });
      writeFileSync(file, '{"classes": ["a", "b"], "colors": [[0, 0, 0]]}');
      assert.throws(() => openDataset('folder', d2), {
        message: `folder: expected "colors" in ${file} to be 2 [r, g, b] triples of integers 0-255, one per class, but received [[0, 0, 0]]`,
      });
      writeFileSync(file, '{"classes": ["a", "b"], "ignore_index": 1}');
      assert.throws(() => openDataset('folder', d2), {
        message: `folder: expected "ignore_index" in ${file} to be an integer in [2, 255] (not a class index) but received 1 of type number`,
      });
    } finally { c2(); }
  });
});
