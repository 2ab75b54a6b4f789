// End to end in Debian's Chromium (headless, no GPU): `panseg serve` with a tiny model, the page loads it with
// onnxruntime-web (wasm), segments an uploaded PNG, and its mask agrees with panseg's torch prediction.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { segmentImage } from '../../src/eval/predict.js';
import { exportOnnx } from '../../src/export/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { createModel, PAN } from '../../src/models/index.js';
import { type RunningServer, startServer } from '../../src/serve/index.js';
import { agreement, CLASSES, COLORS, saveTinyModel, testImage, testPixels, tmp } from './helpers.js';

const CHROMIUM = process.env.PANSEG_CHROMIUM ?? '/usr/bin/chromium';
// Without a browser, skip locally; in CI (scripts/setup.sh installs it) a missing browser is a failure.
const skip = !existsSync(CHROMIUM) && !process.env.CI ? `no Chromium at ${CHROMIUM} (apt-get install chromium, or set PANSEG_CHROMIUM)` : false;
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // A synthetic camera, for the webcam path.
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];
const [W, H] = [200, 150];

type Any = any;
// The page's globals, for the callbacks page.evaluate runs in the browser; module-local, so the tests
// compile without the DOM lib.
declare const document: Any;
declare const navigator: Any;
declare const crossOriginIsolated: boolean;
let render: Any;
let server: RunningServer;
let context: BrowserContext;
let page: Page;
let torchLabels: Uint8Array;
let dir: string;
let cleanup: () => void;
const problems: string[] = [];
const serverLog: string[] = [];
/** Requests for the model file the test server answered (its access log). */
const modelDownloads = (): number => serverLog.filter((l) => l.startsWith('GET /model.onnx ')).length;

before(async () => {
  if (skip) return;
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: scripts/setup.sh installs Debian's chromium package`);
  render = await import(new URL('../../web/lib/render.js', import.meta.url).href);
  const t = tmp('panseg-browser-');
  ({ dir, cleanup } = t);
  const modelDir = saveTinyModel(dir);
  writeFileSync(join(dir, 'test.png'), await testImage(W, H));
  const torch = PAN.fromPretrained(modelDir);
  try {
    torchLabels = segmentImage(torch, { data: testPixels(W, H), width: W, height: H }).labels;
  } finally {
    torch.dispose();
  }
  server = await startServer({ model: modelDir, port: 0, log: (line) => serverLog.push(line) });
  const profile = join(dir, 'chromium-profile');
  mkdirSync(profile);
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 800 } });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
});

after(async () => {
  await context?.close();
  await server?.close();
  cleanup?.();
});

/** Does `action`, then waits for the page to finish its next segmentation; returns the state it ended in. */
async function nextResult(action: () => Promise<unknown>): Promise<string> {
  const runs = Number(await page.evaluate(() => document.body.dataset.runs));
  await action();
  await page.waitForFunction((n) => Number(document.body.dataset.runs) > n && document.body.dataset.state !== 'running', runs, { timeout: 120_000 });
  return page.evaluate(() => document.body.dataset.state ?? '');
}

/** The labels the page's mask layer shows, read back through the class colours. */
async function pageLabels(): Promise<{ labels: Uint8Array; width: number; height: number }> {
  const { width, height, data } = await page.evaluate(() => {
    const c = document.getElementById('mask-layer');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let s = '';
    for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode(...d.subarray(i, i + 0x8000));
    return { width: c.width, height: c.height, data: btoa(s) };
  });
  return { labels: render.labelsFromRgba(new Uint8Array(Buffer.from(data, 'base64')), COLORS), width, height };
}

const text = (sel: string): Promise<string> => page.locator(sel).innerText();

describe('web page in Chromium', { skip }, () => {
  test('loads the exported model with onnxruntime-web: wasm SIMD, threaded under COOP/COEP', { timeout: 180_000 }, async () => {
    // Two threads asked for, to run the threaded wasm build whatever the core count.
    await page.goto(`${server.url}?threads=2`);
    await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 120_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.state), 'ready', await text('#status'));
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    assert.equal(await text('#status'), 'Model ready · 3 classes · wasm · SIMD · 2 threads');
    assert.equal(await text('#model-name'), 'PAN-resnet18, output stride 16');
    assert.equal(await nextResult(() => page.setInputFiles('#file', join(dir, 'test.png'))), 'done', await text('#status'));
    assert.ok(agreement((await pageLabels()).labels, torchLabels) >= 0.99);

    // The default: onnxruntime-web's thread count (half the cores, up to 4).
    await page.goto(server.url);
    await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 120_000 });
    const threads = await page.evaluate(() => Math.min(4, Math.ceil(navigator.hardwareConcurrency / 2)));
    assert.equal(await text('#status'), `Model ready · 3 classes · wasm · SIMD · ${threads} thread${threads === 1 ? '' : 's'}`);
    assert.equal(await page.locator('#pick').isEnabled(), true);
    assert.deepEqual(problems, []);
  });

  test('a reload takes the model from the Cache API, keyed by its sha256: no second download', { timeout: 180_000 }, async () => {
    // The first test loaded the page twice: one download, then the cache.
    assert.equal(modelDownloads(), 1, serverLog.join('\n'));
    const sha = (JSON.parse(readFileSync(join(dir, 'model', 'model.onnx.json'), 'utf8')) as { sha256: string }).sha256;
    assert.match(sha, /^[0-9a-f]{64}$/);
    await page.reload();
    await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 120_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.state), 'ready', await text('#status'));
    assert.equal(await page.evaluate(() => document.body.dataset.modelSource), 'cache');
    assert.equal(modelDownloads(), 1, 'the reload downloaded the model again');
    const keys = await page.evaluate(async () => (await (await (globalThis as Any).caches.open('panseg-models')).keys()).map((r: Any) => new URL(r.url).pathname + new URL(r.url).search));
    assert.deepEqual(keys, [`/model.onnx?sha256=${sha}`]);
  });

  test("segments an uploaded PNG like panseg's torch path (>= 99% of pixels)", { timeout: 180_000 }, async (t) => {
    assert.equal(await nextResult(() => page.setInputFiles('#file', join(dir, 'test.png'))), 'done', await text('#status'));
    const shown = await pageLabels();
    assert.deepEqual([shown.width, shown.height], [W, H]);
    const agree = agreement(shown.labels, torchLabels);
    t.diagnostic(`page vs torch: ${(100 * agree).toFixed(3)}% of pixels agree`);
    assert.ok(agree >= 0.99, `only ${(100 * agree).toFixed(2)}% of pixels agree with panseg`);

    // The legend: every class with its share, matching the torch path's areas to 1%.
    const rows = await page.locator('#legend-body tr').evaluateAll((trs) => trs.map((tr) => [(tr).dataset.class, Number((tr).dataset.percent), tr.querySelector('.num')?.textContent]));
    assert.deepEqual(rows.map((r) => r[0]), CLASSES);
    CLASSES.forEach((_, c) => {
      const expected = (100 * torchLabels.filter((l) => l === c).length) / torchLabels.length;
      assert.ok(Math.abs((rows[c][1] as number) - expected) <= 1, `${CLASSES[c]}: page ${rows[c][1]}% vs torch ${expected}%`);
      assert.equal(rows[c][2], `${(rows[c][1] as number).toFixed(1)} %`);
    });
    assert.match(await text('#time'), /^\d+\.\d ms \(total \d+ ms\)$/);
    assert.match(await text('#backend'), /^wasm · SIMD · \d threads?$/);
    assert.equal(await text('#input-size'), `${W}×${H}, padded to 208×160`);
    assert.match(await text('#caption'), /^test\.png, 200×150: /);
    // The mask PNG for the link is encoded after the result shows (canvas.toBlob is asynchronous).
    await page.locator('#download').waitFor({ state: 'visible', timeout: 10_000 });

    // Warm timings for the record: the page (wasm) against the server's libtorch on the same image, same machine, same run.
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const pageMs: number[] = [];
    const torchMs: number[] = [];
    const png = readFileSync(join(dir, 'test.png'));
    for (let i = 0; i < 3; i++) {
      assert.equal(await nextResult(() => page.setInputFiles('#file', join(dir, 'test.png'))), 'done');
      pageMs.push(Number(await page.evaluate(() => document.getElementById('stage')?.dataset.ms)));
      const res = await fetch(new URL('/api/segment', server.url), { method: 'POST', body: png, headers: { 'Content-Type': 'image/png' } });
      torchMs.push(((await res.json()) as { ms: number }).ms);
    }
    const ms = median(pageMs);
    t.diagnostic(`resnet18 PAN, ${W}x${H} (input 208x160), median of 3 warm runs: page ${await text('#backend')} ${ms.toFixed(1)} ms; `
      + `server libtorch ${median(torchMs).toFixed(1)} ms; ratio ${(ms / median(torchMs)).toFixed(1)}x`);
    assert.ok(ms > 0);
  });

  test('the opacity slider (keyboard) and the FPA attention layer', { timeout: 60_000 }, async () => {
    const opacity = () => page.evaluate(() => [document.getElementById('mask-layer').style.opacity, document.getElementById('opacity-value').textContent]);
    await page.focus('#opacity');
    await page.keyboard.press('Home');
    assert.deepEqual(await opacity(), ['0', '0%']);
    await page.keyboard.press('End');
    assert.deepEqual(await opacity(), ['1', '100%']);
    await page.keyboard.press('ArrowLeft');
    assert.deepEqual(await opacity(), ['0.99', '99%']);

    assert.equal(await page.locator('#attention-toggle').isVisible(), true, 'the sidecar says the model has an attention output');
    assert.equal(await page.locator('#attention-layer').isVisible(), false);
    await page.check('#show-attention');
    assert.equal(await page.locator('#attention-layer').isVisible(), true);
    assert.equal(await page.locator('#mask-layer').isVisible(), false);
    assert.equal(await page.locator('#colorbar').isVisible(), true);
    const colours = await page.evaluate(() => {
      const c = document.getElementById('attention-layer');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const seen = new Set<number>();
      for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return [c.width, c.height, seen.size];
    });
    assert.equal(colours[0], W);
    assert.equal(colours[1], H);
    assert.ok(colours[2] > 10, `the heatmap should vary, it has ${colours[2]} colours`);
    await page.uncheck('#show-attention');
    assert.equal(await page.locator('#mask-layer').isVisible(), true);
  });

  test('screenshot of the result', { timeout: 60_000 }, async (t) => {
    const path = join(dir, 'page.png');
    await page.screenshot({ path, fullPage: true });
    const bytes = readFileSync(path);
    assert.deepEqual([...bytes.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
    const meta = await sharp(bytes).metadata();
    assert.equal(meta.format, 'png');
    assert.ok((meta.width ?? 0) >= 1000 && (meta.height ?? 0) >= 600, `${meta.width}x${meta.height}`);
    t.diagnostic(`screenshot ${path} ${meta.width}x${meta.height}`);
  });

  test('"Run on: Server" shows the libtorch mask, pixel for pixel', { timeout: 120_000 }, async () => {
    assert.equal(await nextResult(() => page.selectOption('#engine', 'server')), 'done', await text('#status'));
    assert.equal(await text('#backend'), 'server · libtorch');
    const shown = await pageLabels();
    assert.equal(agreement(shown.labels, torchLabels), 1);
    await nextResult(() => page.selectOption('#engine', 'browser'));
  });

  test('a file that does not decode is reported, and the page keeps working', { timeout: 120_000 }, async () => {
    const bad = { name: 'broken.png', mimeType: 'image/png', buffer: (await testImage(64, 64)).subarray(0, 60) };
    assert.equal(await nextResult(() => page.setInputFiles('#file', bad)), 'error');
    assert.equal(await text('#status'), 'Cannot decode broken.png; is it a complete PNG, JPEG or WebP image?');
    assert.equal(await nextResult(() => page.setInputFiles('#file', join(dir, 'test.png'))), 'done');
  });

  test('the webcam: a captured frame is segmented', { timeout: 120_000 }, async () => {
    await page.click('#webcam');
    await page.waitForFunction(() => (document.getElementById('video')).videoWidth > 0, null, { timeout: 30_000 });
    assert.equal(await page.locator('#webcam').getAttribute('aria-pressed'), 'true');
    assert.equal(await nextResult(() => page.click('#capture')), 'done', await text('#status'));
    const size = await page.evaluate(() => {
      const v = document.getElementById('video');
      const c = document.getElementById('mask-layer');
      return [v.videoWidth, v.videoHeight, c.width, c.height];
    });
    // The default resolution setting caps the longest side at 1024.
    const k = Math.min(1, 1024 / Math.max(size[0], size[1]));
    assert.deepEqual(size.slice(2), k < 1 ? [Math.floor(size[0] * k), Math.floor(size[1] * k)] : size.slice(0, 2));
    assert.match(await text('#caption'), /^webcam frame, /);
    await page.click('#webcam');
    assert.equal(await page.locator('#capture').isVisible(), false);
    assert.deepEqual(problems, []);
  });

  test('an fp16 export (half the download) loads in wasm and segments like the torch path', { timeout: 180_000 }, async () => {
    const path = join(dir, 'fp16.onnx');
    const tiny = PAN.fromPretrained(join(dir, 'model'));
    try {
      exportOnnx(tiny, { path, dynamicSize: true, attention: true, dtype: 'fp16', meta: { classNames: CLASSES, colors: COLORS } });
    } finally {
      tiny.dispose();
    }
    const other = await startServer({ model: join(dir, 'model'), onnx: path, port: 0 });
    try {
      await page.goto(`${other.url}?threads=2`);
      await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 120_000 });
      assert.equal(await text('#status'), 'Model ready · 3 classes · wasm · SIMD · 2 threads');
      // Another file, another hash: downloaded, not taken from the cache.
      assert.equal(await page.evaluate(() => document.body.dataset.modelSource), 'network');
      assert.equal(await nextResult(() => page.setInputFiles('#file', join(dir, 'test.png'))), 'done', await text('#status'));
      const agree = agreement((await pageLabels()).labels, torchLabels);
      assert.ok(agree >= 0.99, `fp16 page vs torch: ${(100 * agree).toFixed(2)}% of pixels agree`);
    } finally {
      await other.close();
    }
  });

  test('any architecture: a UNet export loads and segments like its torch path', { timeout: 180_000 }, async () => {
    manualSeed(3);
    const unetDir = join(dir, 'unet');
    const unet = createModel('unet', { encoderName: 'resnet18', classes: 3, decoderChannels: [32, 16, 16, 16, 16] });
    let want: Uint8Array;
    try {
      unet.savePretrained(unetDir, { classNames: CLASSES, colors: COLORS });
      want = segmentImage(unet, { data: testPixels(W, H), width: W, height: H }, { precision: 'fp32' }).labels;
    } finally {
      unet.dispose();
    }
    const other = await startServer({ model: unetDir, port: 0 });
    try {
      await page.goto(other.url);
      await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 120_000 });
      assert.equal(await text('#model-name'), 'Unet-resnet18');
      assert.equal(await nextResult(() => page.setInputFiles('#file', join(dir, 'test.png'))), 'done', await text('#status'));
      // UNet takes any size: nothing is padded.
      assert.equal(await text('#input-size'), `${W}×${H}`);
      const agree = agreement((await pageLabels()).labels, want);
      assert.ok(agree >= 0.99, `page vs torch: ${(100 * agree).toFixed(2)}% of pixels agree`);
    } finally {
      await other.close();
    }
  });
});
