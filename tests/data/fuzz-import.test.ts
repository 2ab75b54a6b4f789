// Fuzzing the annotation importers: seeded structural mutations of a valid COCO file and a valid labelme
// file (wrong types, deleted keys, huge and negative sizes, giant RLE runs and strings, NaN and infinite
// coordinates, polygons of a million points, repeated full-image regions). Every case must end in success or
// one PansegError of one line, with memory bounded by the limits (image areas above the cap are refused before
// allocating). PANSEG_FUZZ_CASES=N runs N cases per format (default 150); a failure names its seed to replay.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PansegError } from '../../src/common/errors.js';
import { cocoMask, encodeRleString, labelmeMask, parseCoco, parseLabelme } from '../../src/data/import/index.js';
import { Rng } from '../../src/data/prng.js';

const CASES = Number(process.env.PANSEG_FUZZ_CASES ?? 150);
// Small caps keep each case fast; the default caps are exercised by the size mutations (1e5 x 1e5 etc.).
const LIMITS = { maxPixels: 2_000_000, maxCoordinates: 3_000_000, maxCrossings: 2_000_000, maxCoverage: 64 };

const MILLION_POINTS = Array.from({ length: 2_000_000 }, (_, i) => (i % 2 ? 50 + 40 * Math.sin(i / 1000) : (i / 2) % 97));

const cocoSeed = () => ({
  images: [{ id: 1, file_name: 'a.jpg', width: 64, height: 48 }, { id: 2, file_name: 'b.jpg', width: 40, height: 40 }],
  categories: [{ id: 1, name: 'cat' }, { id: 7, name: 'dog' }],
  annotations: [
    { id: 1, image_id: 1, category_id: 1, iscrowd: 0, segmentation: [[2, 2, 30, 2, 30, 20, 2, 20], [40, 30, 60, 30, 50, 45]] },
    { id: 2, image_id: 1, category_id: 7, iscrowd: 1, segmentation: { size: [48, 64], counts: [100, 50, 3072 - 150] } },
    { id: 3, image_id: 2, category_id: 7, iscrowd: 0, segmentation: { size: [40, 40], counts: encodeRleString([200, 300, 1100]) } },
  ],
});

const labelmeSeed = () => ({
  version: '5.4.1', imagePath: 'a.png', imageData: null, imageHeight: 48, imageWidth: 64, flags: {},
  shapes: [
    { label: 'cat', shape_type: 'polygon', points: [[2, 2], [30, 2], [30, 20], [2, 20]] },
    { label: 'dog', shape_type: 'rectangle', points: [[10, 10], [50, 40]] },
    { label: 'ball', shape_type: 'circle', points: [[20, 20], [25, 25]] },
    { label: '__ignore__', shape_type: 'polygon', points: [[0, 0], [5, 0], [0, 5]] },
    { label: 'cat', shape_type: 'line', points: [[0, 0], [9, 9]] },
  ],
});

const HOSTILE: (() => unknown)[] = [
  () => null, () => true, () => 0, () => -1, () => 1.5, () => Number.NaN, () => Infinity, () => -Infinity, () => 2 ** 53, () => -(2 ** 31),
  () => 1e308, () => '', () => 'x', () => '0', () => [], () => [[]], () => ({}), () => 'o'.repeat(100_000), () => new Array(50).fill(1e9),
  () => [1e15, 1], () => [0, 100000, 5], () => [-5, 10], () => [[Number.NaN, 1, 2, 3, 4, 5]], () => [MILLION_POINTS], () => MILLION_POINTS,
  () => ({ size: [48, 64], counts: 'ooooooooooooo' }), () => ({ size: [48, 64], counts: [3072] }), () => ({ size: [-48, 64], counts: [] }),
  () => ({ size: [100000, 100000], counts: [1e10] }), () => [[0, 0, 1e9, 0, 1e9, 1e9, 0, 1e9]], () => 100000, () => 99999999,
];

type Node = Record<string, unknown> | unknown[];

/** Every (container, key) pair in a JSON tree, root first, skipping the interior of huge arrays. */
function slots(root: Node): [Node, string | number][] {
  const out: [Node, string | number][] = [];
  const walk = (n: unknown) => {
    if (Array.isArray(n)) {
      if (n.length > 64) return;
      n.forEach((v, i) => { out.push([n, i]); walk(v); });
    } else if (n && typeof n === 'object') {
      for (const [k, v] of Object.entries(n)) { out.push([n as Node, k]); walk(v); }
    }
  };
  walk(root);
  return out;
}

function mutate(doc: Node, rng: Rng): string[] {
  const applied: string[] = [];
  const n = 1 + rng.int(3);
  for (let m = 0; m < n; m++) {
    const all = slots(doc);
    if (!all.length) break;
    const [parent, k] = all[rng.int(all.length)];
    const kind = rng.int(10);
    const get = () => (parent as Record<string | number, unknown>)[k];
    const set = (v: unknown) => { (parent as Record<string | number, unknown>)[k] = v; };
    if (kind < 6) {
      const i = rng.int(HOSTILE.length);
      set(HOSTILE[i]());
      applied.push(`${String(k)}=hostile#${i}`);
    } else if (kind === 6) {
      if (Array.isArray(parent)) parent.splice(k as number, 1); else delete (parent as Record<string, unknown>)[k as string];
      applied.push(`delete ${String(k)}`);
    } else if (kind === 7) {
      const v = get();
      if (Array.isArray(v)) { const rep = 1 + rng.int(2000); set(Array.from({ length: Math.min(rep * v.length, 200_000) }, (_, i) => v[i % Math.max(1, v.length)])); }
      applied.push(`repeat ${String(k)}`);
    } else if (kind === 8) {
      const v = get();
      if (typeof v === 'number') set(v * (rng.next() < 0.5 ? -1 : 1000) + rng.int(3) - 1);
      applied.push(`scale ${String(k)}`);
    } else {
      const v = get();
      set(typeof v === 'number' ? String(v) : typeof v === 'string' ? Number(v) || [v] : v === null ? 0 : JSON.stringify(v)?.slice(0, 50));
      applied.push(`retype ${String(k)}`);
    }
  }
  return applied;
}

function check(run: () => void, label: string): 'ok' | 'refused' {
  try {
    run();
    return 'ok';
  } catch (e) {
    if (!(e instanceof PansegError)) throw new Error(`${label}: not a PansegError: ${(e as Error)?.stack ?? String(e)}`);
    if (e.message.includes('\n')) throw new Error(`${label}: a multi-line message: ${e.message}`);
    return 'refused';
  }
}

describe('fuzz: annotation importers', () => {
  const rssLimit = 1.5 * 1024 ** 3;

  it(`COCO: ${CASES} mutated files end in success or one PansegError line, memory bounded`, () => {
    const tally = { ok: 0, refused: 0 };
    for (let seed = 0; seed < CASES; seed++) {
      const rng = new Rng(seed * 7919 + 1);
      const doc = cocoSeed();
      const applied = mutate(doc, rng);
      tally[check(() => {
        const index = parseCoco(doc, 'fuzz.json', LIMITS);
        for (const img of index.images) {
          const m = cocoMask(img, LIMITS);
          assert.equal(m.length, img.width * img.height);
        }
      }, `coco seed ${seed} (${applied.join(', ')})`)]++;
      assert.ok(process.memoryUsage().rss < rssLimit, `coco seed ${seed}: rss ${process.memoryUsage().rss}`);
    }
    assert.ok(tally.ok > 0 && tally.refused > 0, JSON.stringify(tally));
  });

  it(`labelme: ${CASES} mutated files end in success or one PansegError line, memory bounded`, () => {
    const tally = { ok: 0, refused: 0 };
    const classes = new Map([['background', 0], ['ball', 1], ['cat', 2], ['dog', 3]]);
    for (let seed = 0; seed < CASES; seed++) {
      const rng = new Rng(seed * 104729 + 3);
      const doc = labelmeSeed();
      const applied = mutate(doc, rng);
      tally[check(() => {
        const f = parseLabelme(doc, 'fuzz.json', LIMITS);
        assert.equal(labelmeMask(f, classes, 'fuzz.json', LIMITS).length, f.width * f.height);
      }, `labelme seed ${seed} (${applied.join(', ')})`)]++;
      assert.ok(process.memoryUsage().rss < rssLimit, `labelme seed ${seed}: rss ${process.memoryUsage().rss}`);
    }
    assert.ok(tally.ok > 0 && tally.refused > 0, JSON.stringify(tally));
  });

  it('refuses a claimed area above the default cap before allocating, and repeated full-image regions before painting', () => {
    const huge = cocoSeed();
    huge.images[0].width = 200_000;
    huge.images[0].height = 100_000;
    const before = process.memoryUsage().rss;
    assert.throws(() => parseCoco(huge, 'h.json'), { message: 'coco: h.json: image 1 (a.jpg) is 200000x100000 = 20000000000 pixels, above the limit of 100000000 (--max-pixels)' });
    assert.throws(() => parseLabelme({ ...labelmeSeed(), imageWidth: 1e6, imageHeight: 1e6 }, 'l.json'), /above the limit of 100000000/);
    assert.ok(process.memoryUsage().rss - before < 64 * 1024 ** 2);
    const repeated = cocoSeed();
    repeated.annotations = Array.from({ length: 100 }, (_, i) => ({ id: i, image_id: 1, category_id: 1, iscrowd: 0, segmentation: [[0, 0, 64, 0, 64, 48, 0, 48]] }));
    assert.throws(() => cocoMask(parseCoco(repeated, 'r.json').images[0]), {
      message: 'coco: the regions of image 1 (a.jpg) add up to 307200 pixels, more than 64 times its 3072; the file repeats regions',
    });
  });
});
