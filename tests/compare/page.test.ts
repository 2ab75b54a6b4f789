// The comparison's charts (grouped bars, scatter) and its page and Markdown from hand-made rows: escaping,
// missing values, error texts. No training: see compare.test.ts for the real thing.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type CompareRow, type Comparison, compareMarkdown, compareTable, renderCompareHtml } from '../../src/compare/index.js';
import { groupedBarChart, scatterChart } from '../../src/eval/charts.js';
import { assertBalanced } from '../helpers/markup.js';

const EVIL = '<script>alert("x")</script>';

describe('groupedBarChart', () => {
  test('one bar per series and label, n/a for NaN, escaped names, legend', () => {
    const svg = groupedBarChart({
      title: 'IoU <per> class', labels: ['road', EVIL, 'sky'], valueFormat: 'percent', min: 0, max: 1,
      series: [{ name: 'pan', values: [0.9, NaN, 0.5] }, { name: EVIL, values: [0.8, 0.1, 0.4], color: '#123456' }],
    });
    assertBalanced(svg);
    assert.ok(!svg.includes('<script'));
    assert.ok(svg.includes('IoU &lt;per&gt; class'));
    assert.equal((svg.match(/<rect [^>]*fill="#1f77b4"/g) ?? []).length, 1 + 2, 'pan: legend + 2 finite bars');
    assert.equal((svg.match(/<rect [^>]*fill="#123456"/g) ?? []).length, 1 + 3);
    assert.ok(svg.includes('>90.0%<') && svg.includes('>10.0%<') && svg.includes('>n/a<'));
    assert.ok(svg.includes('<title>road: pan 90.0%, &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; 80.0%</title>'));
    assert.throws(() => groupedBarChart({ labels: ['a', 'b', 'c'], series: [{ name: 'x', values: [1, 2, 3] }, { name: 'y', values: [1, 2] }] }), {
      message: 'groupedBarChart: expected 3 values (one per label) for series[1] but received 2',
    });
    assertBalanced(groupedBarChart({ labels: [], series: [] }));
  });
});

describe('scatterChart', () => {
  test('labelled points, tooltips, points without a value listed, no data', () => {
    const svg = scatterChart({
      title: 'mIoU vs ms', xLabel: 'ms', yLabel: 'mIoU', yFormat: 'percent', xFormat: (x) => `${x} ms`,
      points: [{ label: 'pan', x: 40, y: 0.62 }, { label: EVIL, x: 55, y: 0.6 }, { label: 'fpn', x: NaN, y: 0.5 }],
    });
    assertBalanced(svg);
    assert.ok(!svg.includes('<script'));
    assert.equal((svg.match(/<circle /g) ?? []).length, 2);
    assert.ok(svg.includes('<title>pan: 40 ms, 62.0%</title>'));
    assert.ok(svg.includes('not drawn (no value): fpn'));
    assert.ok(svg.includes('>ms<') && svg.includes('>mIoU<'));
    const empty = scatterChart({ points: [] });
    assertBalanced(empty);
    assert.ok(empty.includes('no data'));
    assert.throws(() => scatterChart({ points: [], width: 10 }), { message: 'scatterChart: expected integer >= 160 for width but received 10 of type number' });
  });
});

function row(arch: string, name: string, over: Partial<CompareRow> = {}): CompareRow {
  return {
    arch, name, encoder: 'resnet18', modelOptions: {}, dir: arch, bestMiou: 0.5, bestEpoch: 2, lastMiou: 0.45, pixelAccuracy: 0.9, meanAccuracy: 0.6,
    perClassIou: [0.9, 0.1, null], params: 11_400_000, gflops: 12.345, gflopsSize: 256,
    inference: { fp32: 41.2, bf16: 20.04, size: 512, repeats: 5 }, trainImgPerSec: 12.34, wallSeconds: 3723, epochs: 2, steps: 40,
    validations: [{ epoch: 1, miou: 0.3, pixelAccuracy: 0.8 }, { epoch: 2, miou: 0.5, pixelAccuracy: 0.9 }],
    report: `${arch}/report.html`, sample: null, ...over,
  };
}

function comparison(): Comparison {
  return {
    title: 'compare <x>', createdAt: '2026-01-01T00:00:00Z', dataset: 'camvid', split: 'train', valSplit: 'val',
    classes: ['road', 'a|b', EVIL], colors: [[0, 0, 0], [1, 2, 3], [4, 5, 6]], ignoreIndex: 255, encoder: 'resnet18', crop: 256, epochs: 2,
    options: { lr: 0.01, note: EVIL },
    rows: [
      row('pan', 'PAN'),
      row('unet', 'Unet', { bestMiou: null, lastMiou: null, perClassIou: [null, null, null], validations: [], inference: { fp32: 120, bf16: null, size: 512, repeats: 5, errors: { bf16: 'no <bf16> kernel' } }, trainImgPerSec: null }),
    ],
  };
}

describe('compare page and Markdown', () => {
  test('the summary table: one row per architecture, units in the header', () => {
    const t = compareTable(comparison().rows);
    assert.equal(t.split('\n')[0], '| architecture | params | GFLOPs @256 | best mIoU | mIoU last 3 | pixel acc | fp32 ms @512 | bf16 ms @512 | train img/s | wall time |');
    assert.equal(t.split('\n')[2], '| pan (PAN) | 11.4 M | 12.35 | 50.0% (epoch 2) | 45.0% | 90.0% | 41.2 | 20.0 | 12.3 | 1h 02m |');
    assert.equal(t.split('\n')[3], '| unet (Unet) | 11.4 M | 12.35 | n/a (epoch 2) | n/a | 90.0% | 120 | n/a | n/a | 1h 02m |');
    const mixed = compareTable([row('pan', 'PAN'), row('fpn', 'FPN', { gflopsSize: 288, inference: { fp32: 1, bf16: 2, size: 544, repeats: 5 } })]);
    assert.ok(mixed.startsWith('| architecture | params | GFLOPs | best mIoU | mIoU last 3 | pixel acc | fp32 ms | bf16 ms |'));
    assert.ok(mixed.includes('| fpn (FPN) | 11.4 M | 12.35 @288 |') && mixed.includes('| 1.00 @544 | 2.00 @544 |'));
  });

  test('compare.md escapes table cells; compare.html is balanced, escaped and says what is missing', () => {
    const c = comparison();
    const md = compareMarkdown(c);
    assert.ok(md.includes('| a\\|b | 10.0% | n/a |'));
    const html = renderCompareHtml(c);
    assertBalanced(html, true);
    assert.ok(!html.includes('<script'));
    assert.ok(html.includes('compare &lt;x&gt;'));
    assert.ok(html.includes('Not measured: unet bf16: no &lt;bf16&gt; kernel'));
    assert.ok(html.includes('not drawn (no value): unet'));
    assert.ok(!html.includes('<section id="sample">'), 'no sample section without pictures');
    for (const id of ['summary', 'curves', 'tradeoff', 'classes', 'config']) assert.ok(html.includes(`<section id="${id}">`), id);
  });
});
