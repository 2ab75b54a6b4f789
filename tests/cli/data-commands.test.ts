// The data commands as users run them: a flat folder of 0/255 masks checked, trained with --split all
// --val-fraction (split.json), evaluated on that split; COCO and labelme converted and checked.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeRleString, maskToRle } from '../../src/data/import/index.js';
import { cli } from '../helpers/cli.js';
import { writeGrey, writeRgb, writeText } from '../data/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-datacli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const disc = (x: number, y: number) => ((x - 16) ** 2 + (y - 16) ** 2 < 64 ? 255 : 0);

describe('a flat folder of 0/255 masks: check-data, train --val-fraction, eval on the saved split', () => {
  const data = join(tmp, 'flat');
  before(async () => {
    writeText(join(data, 'classes.json'), '{"classes": ["background", "blob"]}');
    for (let i = 0; i < 8; i++) {
      await writeRgb(join(data, 'images', `im${i}.png`), 32, 32, (x, y) => (disc(x, y) ? [200, 40, 40] : [20, 20, 120 + i]));
      await writeGrey(join(data, 'masks', `im${i}.png`), 32, 32, disc);
    }
  });

  it('check-data prints counts, sizes, stored values and class shares, and says how 0/255 is read', async () => {
    const r = await cli(['check-data', '--dataset', 'folder', '--data-root', data]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /hold only 0 and 255, so they are read as background \(0\) and blob \(255\)/);
    assert.match(r.stdout, /^samples\s+8 image\/mask pairs, 2 classes, ignore index 255$/m);
    assert.match(r.stdout, /^image sizes\s+1 distinct; smallest 32x32, largest 32x32$/m);
    assert.match(r.stdout, /^mask values \(stored\)\s+0 \d+\.\d%, 255 \d+\.\d%$/m);
    let blob = 0;
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) if (disc(x, y)) blob += 8;
    assert.match(r.stdout, new RegExp(`^1 blob\\s+${blob}\\s+18\\.8%$`, 'm'));
    const j = JSON.parse((await cli(['check-data', '--dataset', 'folder', '--data-root', data, '--json'])).stdout);
    assert.deepEqual(j.classPixels, [8 * 1024 - blob, blob]);
    assert.deepEqual(j.problems, []);
  });

  it('check-data lists bad masks and unmatched files, then exits 2 with one line', async () => {
    const bad = join(tmp, 'bad');
    writeText(join(bad, 'classes.json'), '{"classes": ["background", "blob"], "ignore_index": 255}');
    await writeRgb(join(bad, 'images', 'a.png'), 8, 8, () => [1, 2, 3]);
    await writeGrey(join(bad, 'masks', 'a.png'), 8, 8, (x) => (x < 4 ? 0 : 7));
    await writeRgb(join(bad, 'images', 'lonely.png'), 8, 8, () => [1, 2, 3]);
    writeText(join(bad, 'masks', 'orphan.png'), 'not even a png');
    const r = await cli(['check-data', '--dataset', 'folder', '--data-root', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /^images without masks\s+1: .*lonely\.png$/m);
    assert.match(r.stdout, /^masks without images\s+1: .*orphan\.png$/m);
    assert.ok(r.stdout.includes(`  a: folder: mask ${join(bad, 'masks', 'a.png')} has label values 7 outside the 2 classes (0-1) that are not the ignore index 255`), r.stdout);
    assert.deepEqual(r.stderr.trim().split('\n').filter((l) => l.startsWith('panseg')), [
      'panseg check-data: found 1 problem(s), 1 image(s) without masks and 1 mask(s) without images; fix or remove those files before training',
    ]);
  });

  it('train --split all --val-fraction 0.25 saves split.json; eval on the run\'s model uses its val files', async () => {
    const out = join(tmp, 'run');
    const r = await cli(['train', '--dataset', 'folder', '--data-root', data, '--split', 'all', '--val-fraction', '0.25', '--encoder', 'resnet18',
      '--crop', '128', '--batch-size', '2', '--epochs', '1', '--out', out, '--threads', '1', '--workers', '0', '--precision', 'fp32', '--quiet', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const split = JSON.parse(readFileSync(join(out, 'split.json'), 'utf8'));
    assert.deepEqual([split.dataset, split.root, split.split, split.seed, split.valFraction, split.train.length, split.val.length], ['folder', data, 'all', 0, 0.25, 6, 2]);
    // The run's model: split.json is found beside its checkpoints/ (with --model RUN too, once that resolves to checkpoints/best).
    const e = await cli(['eval', '--model', join(out, 'checkpoints', 'best'), '--json', '--threads', '1', '--workers', '0']);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stderr, /eval: using the 'val' files of .*split\.json/);
    assert.equal(JSON.parse(e.stdout).images, 2);
    const t = await cli(['eval', '--model', join(out, 'checkpoints', 'best'), '--split-file', join(out, 'split.json'), '--split', 'train', '--json', '--threads', '1', '--workers', '0']);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(JSON.parse(t.stdout).images, 6);
  });

  it("a replayed run's config.json (--val-split's default beside --val-fraction) trains; another --val-split is refused", async () => {
    const cfg = join(tmp, 'run', 'config.json');
    assert.equal(JSON.parse(readFileSync(cfg, 'utf8'))['val-split'], 'val');
    const again = await cli(['train', '--config', cfg, '--out', join(tmp, 'run-again'), '--max-steps', '1']);
    assert.equal(again.code, 0, again.stderr);
    const r = await cli(['train', '--config', cfg, '--out', join(tmp, 'run-test'), '--val-split', 'test']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'panseg train: valFraction (--val-fraction) validates on a share of split (--split); drop valSplit (--val-split test), or drop valFraction to validate on that split\n');
  });

  it('refuses a flat folder without --split all, pointing at it', async () => {
    const r = await cli(['eval', '--model', join(tmp, 'run'), '--dataset', 'folder', '--data-root', data, '--split', 'val']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /For a flat images\/ \+ masks\/ folder use --split all \(and --val-fraction for a validation share\)$/m);
  });
});

describe('panseg convert', () => {
  it('coco: polygons and compressed RLE to a folder dataset that check-data accepts', async () => {
    const dir = join(tmp, 'coco');
    await writeRgb(join(dir, 'val', 'x.jpg'), 10, 8, () => [90, 90, 90]);
    const blob = new Uint8Array(80);
    for (let y = 5; y < 8; y++) for (let x = 0; x < 10; x++) blob[y * 10 + x] = 1;
    writeFileSync(join(dir, 'instances.json'), JSON.stringify({
      images: [{ id: 7, file_name: 'x.jpg', width: 10, height: 8 }],
      categories: [{ id: 1, name: 'person' }, { id: 3, name: 'car' }],
      annotations: [
        { id: 1, image_id: 7, category_id: 1, iscrowd: 0, segmentation: [[1, 1, 4, 1, 4, 4, 1, 4]] },
        { id: 2, image_id: 7, category_id: 3, iscrowd: 0, segmentation: { size: [8, 10], counts: encodeRleString(maskToRle(blob, 8, 10)) } },
      ],
    }));
    const out = join(dir, 'out');
    const r = await cli(['convert', 'coco', '--annotations', join(dir, 'instances.json'), '--images', join(dir, 'val'), '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^wrote 1 images and masks, 3 classes, to /m);
    assert.match(r.stdout, /^class shares: background 51\.3%, person 11\.3%, car 37\.5%, ignored 0\.0%$/m);
    const j = JSON.parse((await cli(['check-data', '--dataset', 'folder', '--data-root', out, '--json'])).stdout);
    assert.deepEqual(j.classes, ['background', 'person', 'car']);
    assert.deepEqual(j.classPixels, [41, 9, 30]);
  });

  it('labelme: a folder of JSON files', async () => {
    const dir = join(tmp, 'lm');
    await writeRgb(join(dir, 'a.png'), 6, 4, () => [5, 5, 5]);
    writeText(join(dir, 'a.json'), JSON.stringify({ imagePath: 'a.png', imageData: null, imageHeight: 4, imageWidth: 6, shapes: [{ label: 'tree', shape_type: 'rectangle', points: [[0, 0], [3, 4]] }] }));
    const r = await cli(['convert', 'labelme', '--input', dir, '--out', join(dir, 'out'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.deepEqual([s.images, s.classes, s.pixels], [1, ['background', 'tree'], [12, 12, 0]]);
    assert.ok(existsSync(join(dir, 'out', 'masks', 'a.png')));
  });

  it('usage mistakes are one line', async () => {
    for (const [args, msg] of [
      [['convert', '--out', 'x'], /^panseg convert: 'panseg convert' takes one format, coco or labelme/],
      [['convert', 'voc', '--out', join(tmp, 'v')], /^panseg convert: unknown format 'voc'; expected coco or labelme$/],
      [['convert', 'coco', '--out', join(tmp, 'v')], /^panseg convert: 'panseg convert coco' needs --annotations/],
    ] as const) {
      const r = await cli([...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr.trim(), msg);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const h = await cli(['check-data', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /--reduce-zero-label/);
  });
});
