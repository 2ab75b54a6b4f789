// `panseg compare` end to end on a tiny synthetic dataset, as users run it: a first comparison of one
// architecture, refusals (non-empty out, changed options, unknown architecture), a resume that adds a second
// architecture and skips the finished one, the three output files agreeing, and the page in headless Chromium.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import { compareArchitectures, type Comparison } from '../../src/compare/index.js';
import { generateSynthetic } from '../../src/data/index.js';
import { isPng } from '../../src/data/png.js';
import { architectureIds } from '../../src/models/index.js';
import { assertBalanced } from '../helpers/markup.js';
import { cli } from '../helpers/cli.js';

const CHROMIUM = process.env.PANSEG_CHROMIUM ?? '/usr/bin/chromium';
// As tests/web: without a browser, skip locally; in CI (scripts/setup.sh installs it) a missing browser is a failure.
const noBrowser = !existsSync(CHROMIUM) && !process.env.CI ? `no Chromium at ${CHROMIUM} (apt-get install chromium, or set PANSEG_CHROMIUM)` : false;

const tmp = mkdtempSync(join(tmpdir(), 'panseg-compare-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let data: string;
const out = join(tmp, 'cmp');
// PAN needs 128 px at output stride 16; the 64 px images are padded up to the crop. One thread: steadier on a
// shared 2-core machine than two that wait on each other.
const recipe = (): string[] => ['--dataset', 'folder', '--data-root', data, '--split', 'train', '--val-split', 'val', '--encoder', 'resnet18', '--crop', '128',
  '--batch-size', '2', '--epochs', '1', '--max-steps', '2', '--bench-size', '64', '--bench-repeats', '1', '--workers', '0', '--threads', '1', '--quiet', '--out', out];
const mtime = (p: string): number => statSync(p).mtimeMs;

before(async () => {
  data = (await generateSynthetic(join(tmp, 'shapes'), { train: 4, val: 2, size: 64, seed: 5 })).dir;
});

describe('panseg compare', () => {
  let panResult = '';
  let panMtimes: number[] = [];
  const panFiles = () => [join(out, 'pan', 'compare-result.json'), join(out, 'pan', 'metrics.jsonl'), join(out, 'pan', 'checkpoints', 'last', 'trainer.json')];

  it('--help lists its flags; an unknown architecture gets the valid ones', async () => {
    const help = await cli(['compare', '--help']);
    assert.equal(help.code, 0, help.stderr);
    for (const f of ['--archs', '--arch-options', '--bench-size', '--resume', '--max-steps', '--epochs', '--crop']) assert.ok(help.stdout.includes(f), f);
    const r = await cli(['compare', '--archs', 'pan,nope', ...recipe()]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `panseg compare: unknown architecture 'nope' in archs (--archs); valid: ${architectureIds().join(', ')}\n`);
    assert.ok(!existsSync(out), 'nothing written');
  });

  it('the library refuses a crop that does not suit an architecture, and options for one not compared, before writing anything', async () => {
    const base = { dataset: 'folder', dataRoot: data, split: 'train', valSplit: 'val', encoder: 'resnet18', out: join(tmp, 'lib'), quiet: true };
    await assert.rejects(compareArchitectures({ ...base, archs: ['unet', 'pan'], crop: 64 }), {
      message: 'compare: crop 64 does not suit pan: its inputs must be multiples of 16 and at least 128 px; use --crop 128 or leave pan out',
    });
    await assert.rejects(compareArchitectures({ ...base, archs: ['pan'], crop: 128, modelOptions: { unet: { decoderAttentionType: 'scse' } } }), {
      message: "compare: modelOptions (--arch-options) has options for 'unet', which is not among the compared architectures (pan)",
    });
    await assert.rejects(compareArchitectures({ ...base, archs: ['unet', 'Unet'] }), { message: 'compare: unet appears twice in archs (--archs)' });
    await assert.rejects(compareArchitectures({ ...base, archs: ['unet'], crop: 64, modelOptions: { unet: { decoderChanels: [8] } } }), {
      message: 'compare: building unet: Unet: unknown option decoderChanels; valid options: encoderName, encoderDepth, encoderWeights, decoderUseNorm, decoderChannels, decoderAttentionType, decoderInterpolation, inChannels, classes, activation, auxParams',
    });
    assert.ok(!existsSync(base.out), 'nothing written');
  });

  it('compares one architecture: its run folder, its line and the table', async () => {
    const r = await cli(['compare', '--archs', 'pan', ...recipe()]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pan: best mIoU \d+\.\d% \(epoch 1, last 3 \d+\.\d%\), 11\.\d M params, [\d.]+ GFLOPs @128, [\d.]+ ms fp32 \/ [\d.]+ ms bf16 @128, [\d.]+ img\/s, \d+ s\n/);
    assert.ok(r.stdout.includes('| architecture | params | GFLOPs @128 | best mIoU |'));
    for (const f of [...panFiles(), join(out, 'pan', 'report.html'), join(out, 'compare.json'), join(out, 'compare.md'), join(out, 'compare.html')]) assert.ok(existsSync(f), f);
    panResult = readFileSync(panFiles()[0], 'utf8');
    panMtimes = panFiles().map(mtime);
  });

  it('refuses a non-empty out without --resume, and a resume with other options', async () => {
    const again = await cli(['compare', '--archs', 'pan', ...recipe()]);
    assert.equal(again.code, 2);
    assert.equal(again.stderr, `panseg compare: ${out} is not empty; pass --resume to continue its comparison, or choose a new --out\n`);
    const other = await cli(['compare', '--archs', 'pan', ...recipe(), '--resume', '--epochs', '2', '--lr', '0.1']);
    assert.equal(other.code, 2);
    assert.equal(other.stderr, "panseg compare: --resume: the options differ from the interrupted comparison's in epochs, lr; resume with the same options or use a new --out\n");
    const none = await cli(['compare', '--archs', 'pan', ...recipe().slice(0, -1), join(tmp, 'nothing-here'), '--resume']);
    assert.equal(none.code, 2);
    assert.equal(none.stderr, `panseg compare: --resume: no comparison to resume in ${join(tmp, 'nothing-here')} (no compare-config.json); start without --resume\n`);
    assert.deepEqual(panFiles().map(mtime), panMtimes);
  });

  it('--resume with a second architecture skips the finished one and trains the new one; writes cut short are cleared', async () => {
    writeFileSync(join(out, 'compare.json.tmp-4242-0badf00d'), '{');
    writeFileSync(join(out, 'compare', 'sample-pan.png.tmp-4242-0badf00d'), 'half');
    const r = await cli(['compare', '--archs', 'pan,unet', ...recipe(), '--resume']);
    assert.equal(r.code, 0, r.stderr);
    for (const d of [out, join(out, 'compare')]) assert.deepEqual(readdirSync(d).filter((f) => f.includes('.tmp-')), [], d);
    const lines = r.stdout.split('\n');
    assert.match(lines[0], /^pan: finished in an earlier run, skipped; best mIoU \d+\.\d% \(epoch 1, last 3 \d+\.\d%\)$/);
    assert.match(lines[1], /^unet: best mIoU /);
    assert.equal(readFileSync(panFiles()[0], 'utf8'), panResult, 'pan result unchanged');
    assert.deepEqual(panFiles().map(mtime), panMtimes, 'pan neither retrained nor rewritten');
    assert.ok(existsSync(join(out, 'unet', 'report.html')));
  });

  it('writes compare.json, compare.md and compare.html that agree', async () => {
    const c = JSON.parse(readFileSync(join(out, 'compare.json'), 'utf8')) as Comparison;
    assert.deepEqual(c.rows.map((r) => [r.arch, r.name]), [['pan', 'PAN'], ['unet', 'Unet']]);
    assert.deepEqual(c.classes, ['background', 'circle', 'rectangle', 'triangle', 'ring', 'cross']);
    assert.equal(c.encoder, 'resnet18');
    assert.equal(c.crop, 128);
    const md = readFileSync(join(out, 'compare.md'), 'utf8');
    const html = readFileSync(join(out, 'compare.html'), 'utf8');
    assertBalanced(html, true);
    const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
    for (const r of c.rows) {
      assert.equal(r.perClassIou.length, c.classes.length);
      assert.ok(r.params > 1e6 && r.gflops > 0 && r.gflopsSize === 128, `${r.arch} cost`);
      assert.ok(r.inference.fp32! > 0 && r.inference.bf16! > 0, `${r.arch} latency`);
      assert.equal(r.inference.size, r.arch === 'pan' ? 128 : 64, 'bench size rounded up to a valid input');
      assert.ok(r.trainImgPerSec! > 0 && r.wallSeconds > 0 && r.steps === 2 && r.epochs === 1, `${r.arch} run`);
      assert.deepEqual(r.validations.map((v) => v.epoch), [1]);
      assert.ok(r.bestMiou! >= 0 && r.bestMiou! <= 1);
      const mdRow = md.split('\n').find((l) => l.startsWith(`| ${r.arch} (${r.name}) |`));
      assert.ok(mdRow, `${r.arch} in the md table`);
      assert.ok(mdRow.includes(`| ${pct(r.bestMiou)} (epoch 1) | ${pct(r.lastMiou)} | ${pct(r.pixelAccuracy)} |`), mdRow);
      assert.ok(html.includes(`<a href="${r.arch}/report.html">${r.arch} (${r.name})</a>`), `${r.arch} in the html table`);
      assert.ok(html.includes(`>${pct(r.bestMiou)} (epoch 1)<`), `${r.arch} best mIoU in the html`);
    }
    for (const [i, name] of c.classes.entries()) assert.ok(md.includes(`| ${name} | ${c.rows.map((r) => pct(r.perClassIou[i])).join(' | ')} |`), name);
    for (const id of ['summary', 'curves', 'tradeoff', 'classes', 'sample', 'config']) assert.ok(html.includes(`<section id="${id}">`), id);
    const srcs = [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(srcs, ['compare/sample-image.png', 'compare/sample-gt.png', 'compare/sample-pred-pan.png', 'compare/sample-pred-unet.png']);
    for (const s of srcs) {
      const buf = readFileSync(join(out, s));
      assert.ok(isPng(buf), s);
      const meta = await sharp(buf).metadata();
      assert.deepEqual([meta.width, meta.height], [64, 64], s);
    }
  });

  it('renders in headless Chromium: three charts, the side-by-side pictures, no errors', { skip: noBrowser }, async () => {
    const profile = join(tmp, 'chromium-profile');
    mkdirSync(profile);
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const problems: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
      await page.goto(pathToFileURL(join(out, 'compare.html')).href, { waitUntil: 'load' });
      // Evaluated in the page: the DOM lib is not in the tests' types.
      const seen = await page.evaluate(`(() => ({
        charts: [...document.querySelectorAll('svg')].map((s) => s.getAttribute('aria-label')),
        paths: document.querySelectorAll('#curves svg circle').length,
        points: document.querySelectorAll('#tradeoff svg circle').length,
        bars: document.querySelectorAll('#classes svg rect').length,
        images: [...document.images].map((i) => [i.getAttribute('src'), i.complete && i.naturalWidth]),
        captions: [...document.querySelectorAll('#sample figcaption')].map((f) => f.textContent),
      }))()`) as { charts: string[]; paths: number; points: number; bars: number; images: [string, number][]; captions: string[] };
      assert.deepEqual(seen.charts, ['Validation mIoU per epoch', 'Best mIoU vs float32 latency', "Final model's IoU per class"]);
      assert.equal(seen.paths, 2, 'one validation point per architecture');
      assert.equal(seen.points, 2, 'one scatter point per architecture');
      assert.ok(seen.bars >= 2 + 2, 'legend swatches and bars');
      assert.deepEqual(seen.images.map(([, w]) => w), [64, 64, 64, 64], JSON.stringify(seen.images));
      assert.deepEqual(seen.captions, ['image', 'ground truth', 'pan', 'unet']);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
});
