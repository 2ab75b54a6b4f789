import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { RGB } from '../../src/common/palette.js';
import { isPng } from '../../src/data/png.js';
import { barChart, confusionMatrixSvg, escapeXml, lineChart, niceTicks } from '../../src/eval/charts.js';
import { type ReportData, writeReport } from '../../src/eval/report.js';
import { assertBalanced } from '../helpers/markup.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-report-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const EVIL = '<script>alert("x")</script>';

describe('charts', () => {
  test('escapeXml and niceTicks', () => {
    assert.equal(escapeXml(`a<b>&"c'`), 'a&lt;b&gt;&amp;&quot;c&#39;');
    assert.deepEqual(niceTicks(0, 0.83, 5), [0, 0.2, 0.4, 0.6, 0.8]);
    assert.deepEqual(niceTicks(0, 1000, 4), [0, 250, 500, 750, 1000]);
    assert.deepEqual(niceTicks(3, 3), [3]);
  });

  test('lineChart: axes, legend, NaN gaps, escaped names', () => {
    const svg = lineChart({
      title: 'loss & <mIoU>', xLabel: 'iteration', yLabel: 'loss',
      series: [{ name: EVIL, points: [[0, 2], [10, NaN], [20, 1], [30, 0.5]] }, { name: 'empty', points: [] }],
    });
    assertBalanced(svg);
    assert.ok(!svg.includes('<script'));
    assert.ok(svg.includes('&lt;script&gt;'));
    assert.ok(svg.includes('loss &amp; &lt;mIoU&gt;'));
    assert.equal((svg.match(/<path /g) ?? []).length, 1);
    assert.ok(svg.includes('>iteration<'));
    const log = lineChart({ series: [{ name: 'l', points: [[0, 10], [1, 0.01], [2, 0]] }], yScale: 'log' });
    assertBalanced(log);
    assert.ok(log.includes('>0.01<') || log.includes('>1.0e-2<'));
  });

  test('lineChart with no data says so; long series are decimated', () => {
    const svg = lineChart({ series: [] });
    assertBalanced(svg);
    assert.ok(svg.includes('no data'));
    const pts: [number, number][] = Array.from({ length: 20000 }, (_, i) => [i, Math.sin(i)]);
    const big = lineChart({ series: [{ name: 's', points: pts }], maxPoints: 500 });
    assert.equal((big.match(/[ML]\d/g) ?? []).length, 500);
  });

  test('barChart: NaN rows read n/a, highlights, value formats', () => {
    const svg = barChart({ labels: ['road', EVIL, 'sky'], values: [0.9, NaN, 0.25], valueFormat: 'percent', highlight: [2], min: 0, max: 1, title: 'IoU' });
    assertBalanced(svg);
    assert.ok(!svg.includes('<script'));
    assert.ok(svg.includes('>90.0%<') && svg.includes('>25.0%<') && svg.includes('>n/a<'));
    assert.equal((svg.match(/fill="#e45756"/g) ?? []).length, 1);
    assert.equal((svg.match(/<rect [^>]*fill="#4c78a8"/g) ?? []).length, 1);
    const custom = barChart({ labels: ['a'], values: [0.123], valueFormat: (x) => `w=${x.toFixed(2)}` });
    assert.ok(custom.includes('>w=0.12<'));
    assert.throws(() => barChart({ labels: ['a', 'b'], values: [1] }), { message: 'barChart: expected 2 values (one per label) but received 1' });
  });

  test('confusionMatrixSvg: row-normalized cells, empty rows hatched, labels escaped', () => {
    const counts = [8, 2, 0, 0, 0, 0, 1, 0, 3];
    const svg = confusionMatrixSvg(counts, ['a', EVIL, 'c'], { normalize: 'row' });
    assertBalanced(svg);
    assert.ok(!svg.includes('<script'));
    assert.ok(svg.includes('a → a: 80.0% (8 px)'));
    assert.ok(svg.includes('c → c: 75.0% (3 px)'));
    assert.ok(svg.includes('no pixels'));
    assert.ok(svg.includes('>.80<') && svg.includes('>.20<'));
    assert.throws(() => confusionMatrixSvg([1, 2, 3], ['a', 'b']), { message: 'confusionMatrixSvg: expected 4 counts (2 x 2 classes) but received 3' });
    const many = 150;
    const big = new Float64Array(many * many);
    for (let i = 0; i < many; i++) { big[i * many + i] = 90; big[i * many + ((i + 1) % many)] = 10; }
    const bigSvg = confusionMatrixSvg(big, Array.from({ length: many }, (_, i) => `class ${i}`));
    assertBalanced(bigSvg);
    assert.ok(bigSvg.length < 200_000, `150-class matrix is ${bigSvg.length} bytes`);
  });
});

const COLORS: RGB[] = [[0, 0, 0], [220, 20, 60], [0, 0, 142]];

function sampleImage(w: number, h: number): { data: Uint8Array; width: number; height: number } {
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 256;
  return { data, width: w, height: h };
}

function fullData(): ReportData {
  const w = 6;
  const h = 4;
  const gt = new Uint8Array(w * h).map((_, i) => (i % 7 === 0 ? 255 : i % 2));
  const pred = new Uint8Array(w * h).map((_, i) => i % 3 === 0 ? 1 : 0);
  return {
    title: 'PAN <test> run',
    createdAt: '2025-01-01T00:00:00Z',
    config: { model: { encoder: 'resnet50', outputStride: 16 }, lr: 0.007, crop: [512, 512], note: EVIL },
    history: [
      { epoch: 0, iter: 0, loss: 3.1, lr: 0.007, imgPerSec: 40 },
      { epoch: 0, iter: 50, loss: 1.2, lr: 0.0065, imgPerSec: 42 },
      { epoch: 1, iter: 100, loss: NaN, valMiou: 0.31, valPixelAccuracy: 0.8 },
      { epoch: 2, iter: 150, loss: 0.7, valMiou: 0.42, valPixelAccuracy: 0.86 },
    ],
    classes: ['background', 'person', EVIL],
    colors: COLORS,
    ignoreIndex: 255,
    final: {
      miou: 0.5, pixelAccuracy: 0.9, meanAccuracy: 0.7, fwIou: 0.85,
      perClassIou: [0.8, 0.2, NaN], perClassAccuracy: [0.9, 0.5, NaN],
      confusion: [90, 10, 0, 5, 5, 0, 0, 0, 0],
    },
    samples: [
      { id: '2007_000032', image: sampleImage(w, h), gt, pred },
      { id: '../weird id', image: sampleImage(w, h), gt: null, pred },
      { id: 'large', image: sampleImage(1024, 8), gt: new Uint8Array(1024 * 8), pred: new Uint8Array(1024 * 8).fill(1) },
    ],
    summary: { 'training time': '1h 2m', precision: 'fp32', 'data wait %': 3.25 },
    sections: [{ title: 'Attention <maps>', html: '<p id="extra">trusted html</p>' }],
  };
}

describe('writeReport', () => {
  test('writes report.html with every section and valid sample PNGs', async () => {
    const dir = join(tmp, 'full');
    const path = await writeReport(dir, fullData());
    assert.equal(path, join(dir, 'report.html'));
    const html = readFileSync(path, 'utf8');
    assertBalanced(html, true);
    assert.ok(!html.includes('<script'), 'no unescaped script tag');
    for (const id of ['summary', 'curves', 'classes', 'confusion', 'samples', 'config', 'extra-0']) assert.ok(html.includes(`<section id="${id}">`), id);
    for (const s of ['PAN &lt;test&gt; run', 'Training loss', 'Validation', 'Learning rate', 'IoU per class', 'training time', '1h 2m', 'data wait %', '3.25',
      'model.encoder', 'resnet50', '[512,512]', 'Attention &lt;maps&gt;', '<p id="extra">trusted html</p>', '2007_000032', 'best val mIoU']) {
      assert.ok(html.includes(s), `contains ${s}`);
    }
    assert.ok(statSync(path).size < 5e6);

    const srcs = [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(srcs.length, 4 + 2 + 4); // image, gt, pred, errors; the second sample has no ground truth
    for (const src of srcs) {
      assert.ok(src.startsWith('report/sample-'), src);
      const file = join(dir, src);
      const buf = readFileSync(file);
      assert.ok(isPng(buf), `${src} is a PNG`);
      const meta = await sharp(buf).metadata();
      assert.equal(meta.format, 'png');
      if (src.includes('-large-')) assert.deepEqual([meta.width, meta.height], [512, 4], 'downscaled to 512');
      else assert.deepEqual([meta.width, meta.height], [6, 4]);
    }
    assert.ok(srcs.some((s) => s.includes('weird_id')), 'ids are made safe for file names');
    // The prediction picture holds the class colours.
    const { data } = await sharp(join(dir, srcs[2])).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([...data.subarray(0, 3)], COLORS[1]);
    assert.deepEqual([...data.subarray(3, 6)], COLORS[0]);
  });

  test('renders with empty history, no final metrics, no samples', async () => {
    const dir = join(tmp, 'empty');
    const path = await writeReport(dir, { title: 't', config: {}, history: [], classes: ['a', 'b'], colors: COLORS, ignoreIndex: 255 });
    const html = readFileSync(path, 'utf8');
    assertBalanced(html, true);
    assert.ok(html.includes('No training history was recorded.'));
    assert.ok(html.includes('No configuration was recorded.'));
    assert.ok(!html.includes('<section id="samples">'));
    assert.ok(!html.includes('<section id="confusion">'));
  });

  test('all-NaN IoUs and a history with only validation points still render', async () => {
    const dir = join(tmp, 'nan');
    const d = fullData();
    d.final = { ...d.final!, miou: NaN, perClassIou: [NaN, NaN, NaN], perClassAccuracy: [NaN, NaN, NaN], confusion: new Array(9).fill(0) };
    d.history = [{ epoch: 1, iter: 10, valMiou: 0.1 }];
    d.samples = undefined;
    const html = readFileSync(await writeReport(dir, d), 'utf8');
    assertBalanced(html, true);
    assert.ok(html.includes('Validation') && !html.includes('Training loss'));
    assert.ok(html.includes('class="absent"'));
  });

  test('a second report replaces the first one\'s sample pictures', async () => {
    const dir = join(tmp, 'again');
    await writeReport(dir, fullData());
    const d = fullData();
    d.samples = d.samples!.slice(1, 2);
    await writeReport(dir, d);
    const files = readdirSync(join(dir, 'report')).sort();
    assert.deepEqual(files, ['sample-0-weird_id-image.png', 'sample-0-weird_id-pred.png']);
    assert.ok(existsSync(join(dir, 'report.html')));
  });

  test('rejects samples whose labels do not match the image size', async () => {
    const d = fullData();
    d.samples![0].pred = new Uint8Array(5);
    await assert.rejects(writeReport(join(tmp, 'bad'), d), {
      message: 'writeReport: expected 24 labels (6x4, the image size) for data.samples[0].pred but received 5',
    });
    const d2 = fullData();
    d2.final!.confusion = [1, 2];
    await assert.rejects(writeReport(join(tmp, 'bad'), d2), { message: 'writeReport: expected 9 values (3 x 3 classes) for data.final.confusion but received 2' });
  });
});
