// The segmentation server without a browser: routes, headers, the API against the torch path, limits and
// errors, responsiveness while inference runs, the queue, the export cache and shutdown.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { readIndexedPng } from '../../src/data/png.js';
import { segmentImage } from '../../src/eval/predict.js';
import { PAN } from '../../src/models/index.js';
import { type RunningServer, startServer } from '../../src/serve/index.js';
import { agreement, CLASSES, COLORS, saveTinyModel, testImage, testPixels, tmp } from './helpers.js';

const MAX_SIDE = 1600;
let server: RunningServer;
let modelDir: string;
let torch: PAN;
let cleanup: () => void;
const logs: string[] = [];
const url = (path: string): string => new URL(path, server.url).href;

before(async () => {
  const t = tmp('panseg-serve-');
  cleanup = t.cleanup;
  modelDir = saveTinyModel(t.dir);
  server = await startServer({ model: modelDir, port: 0, maxImageSide: MAX_SIDE, maxQueue: 4, log: (l) => logs.push(l) });
  torch = PAN.fromPretrained(modelDir);
});

after(async () => {
  await server?.close();
  torch?.dispose();
  cleanup?.();
});

// The JSON bodies are checked field by field below.
type Json = any;
const json = (r: Response): Promise<Json> => r.json();

/** POSTs bytes to /api/segment with a content type. */
function segment(body: Uint8Array | string, type: string | null, query = ''): Promise<Response> {
  return fetch(url(`/api/segment${query}`), { method: 'POST', body, headers: type ? { 'Content-Type': type } : {} });
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const j = (await json(res)) as { error: { status: number; code: string; message: string } };
  assert.equal(j.error.status, res.status);
  return j.error;
}

/** Resolves once the server has an image queued or running. */
async function untilQueued(): Promise<void> {
  const t0 = performance.now();
  while ((await json(await fetch(url('/api/info')))).queue === 0) {
    assert.ok(performance.now() - t0 < 20_000, 'the request never reached the inference queue');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** What panseg's torch path predicts for testPixels(w, h). */
function torchLabels(w: number, h: number): Uint8Array {
  return segmentImage(torch, { data: testPixels(w, h), width: w, height: h }).labels;
}

describe('serve: routes and headers', () => {
  test('GET /api/info describes the model, the browser model and the limits', async () => {
    const res = await fetch(url('/api/info'));
    assert.equal(res.status, 200);
    const j = await json(res);
    assert.deepEqual(j.model.classes, CLASSES);
    assert.deepEqual(j.model.colors, COLORS);
    assert.equal(j.model.outputStride, 16);
    assert.equal(j.model.minInputSize, 128);
    assert.equal(j.browserModel.url, '/model.onnx');
    assert.deepEqual(j.limits, { maxUploadBytes: 10 * 1024 * 1024, maxImageSide: MAX_SIDE, maxPixels: 12 * 1024 * 1024, imageTypes: ['image/png', 'image/jpeg', 'image/webp'], maxQueue: 4 });
  });

  test('the page, its modules, onnxruntime-web and the model come with their MIME types and COOP/COEP', async () => {
    const cases: [string, RegExp][] = [
      ['/', /^text\/html; charset=utf-8$/],
      ['/app.js', /^text\/javascript/],
      ['/lib/preprocess.js', /^text\/javascript/],
      ['/style.css', /^text\/css/],
      ['/ort/ort.min.mjs', /^text\/javascript/],
      ['/ort/ort-wasm-simd-threaded.jsep.mjs', /^text\/javascript/],
      ['/ort/ort-wasm-simd-threaded.jsep.wasm', /^application\/wasm$/],
      ['/model.onnx', /^application\/octet-stream$/],
      ['/model.onnx.json', /^application\/json/],
    ];
    for (const [path, type] of cases) {
      const res = await fetch(url(path), { method: 'HEAD' });
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', type, path);
      assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin', path);
      assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp', path);
      assert.equal(res.headers.get('cross-origin-resource-policy'), 'same-origin', path);
      assert.ok(Number(res.headers.get('content-length')) > 0, path);
    }
    const sidecar = await json(await fetch(url('/model.onnx.json')));
    assert.equal(sidecar.format, 'panseg-onnx');
    assert.equal(sidecar.attention, true);
    assert.equal(sidecar.input.dynamicSize, true);
    assert.deepEqual(sidecar.classes, CLASSES);
  });

  test('an unchanged file answers 304 to its ETag', async () => {
    const first = await fetch(url('/app.js'));
    await first.arrayBuffer();
    const etag = first.headers.get('etag');
    assert.ok(etag);
    const again = await fetch(url('/app.js'), { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);
  });

  test('nothing outside web/ and the ort dist folder is served; wrong methods get 405', async () => {
    for (const path of ['/tsconfig.json', '/%2e%2e/package.json', '/..%2fpackage.json', '/ort/..%2f..%2fpackage.json', '/lib/%2e%2e/%2e%2e/package.json', '/.env', '/missing.js', '/api/nothing']) {
      const res = await fetch(url(path));
      assert.equal(res.status, 404, path);
      assert.equal((await errorOf(res)).code, path === '/api/nothing' ? 'not_found' : 'not_found');
    }
    const post = await fetch(url('/'), { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    await post.arrayBuffer();
    const get = await fetch(url('/api/segment'));
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    await get.arrayBuffer();
  });
});

describe('serve: POST /api/segment', () => {
  test('a PNG body gets the palette mask and class areas of the torch path', async () => {
    const [w, h] = [200, 150];
    const res = await segment(await testImage(w, h), 'image/png');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('server-timing') ?? '', /inference;dur=/);
    const j = await json(res);
    assert.equal(j.width, w);
    assert.equal(j.height, h);
    assert.deepEqual(j.classes, CLASSES);
    assert.deepEqual(j.colors, COLORS);
    assert.ok(j.ms > 0 && j.totalMs >= j.ms);
    const png = readIndexedPng(Buffer.from(j.mask, 'base64'));
    assert.ok(png);
    assert.equal(png.width, w);
    assert.deepEqual(png.palette.slice(0, 3), COLORS);
    const expected = torchLabels(w, h);
    assert.equal(agreement(png.indices, expected), 1);
    assert.deepEqual(j.areas.map((a: { pixels: number }) => a.pixels), [0, 1, 2].map((c) => expected.filter((l) => l === c).length));
    assert.ok(Math.abs(j.areas.reduce((s: number, a: { percent: number }) => s + a.percent, 0) - 100) < 1e-9);
    assert.ok(j.areas.filter((a: { pixels: number }) => a.pixels > 0).length >= 2, 'the test image should show more than one class');
  });

  test('a multipart form and ?format=png (stats in X-Panseg-Stats) give the same mask', async () => {
    const [w, h] = [160, 96];
    const form = new FormData();
    form.append('note', 'ignored');
    form.append('image', new Blob([await testImage(w, h)], { type: 'image/png' }), 'test.png');
    const res = await fetch(url('/api/segment?format=png'), { method: 'POST', body: form });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    const stats = JSON.parse(res.headers.get('x-panseg-stats') ?? '{}');
    assert.equal(stats.width, w);
    assert.equal(stats.areas.length, 3);
    const png = readIndexedPng(Buffer.from(await res.arrayBuffer()));
    assert.ok(png);
    assert.equal(agreement(png.indices, torchLabels(w, h)), 1);
  });

  test('a multipart file typed application/octet-stream is accepted by its signature', async () => {
    const form = new FormData();
    form.append('image', new Blob([await testImage(64, 64)], { type: 'application/octet-stream' }), 'x.bin');
    const res = await fetch(url('/api/segment'), { method: 'POST', body: form });
    assert.equal(res.status, 200);
    assert.equal((await json(res)).width, 64);
  });

  test('JPEG and WebP bodies are accepted', async () => {
    for (const f of ['jpeg', 'webp'] as const) {
      const res = await segment(await testImage(100, 70, f), `image/${f}`);
      assert.equal(res.status, 200, f);
      const j = await json(res);
      assert.equal(j.width, 100);
      assert.equal(j.height, 70);
    }
  });

  test('413 for an upload over the limit, declared or streamed; the server keeps serving', async () => {
    const big = new Uint8Array(10 * 1024 * 1024 + 1);
    const res = await segment(big, 'image/png');
    assert.equal(res.status, 413);
    const e = await errorOf(res);
    assert.equal(e.code, 'upload_too_large');
    assert.match(e.message, /over the limit of 10 MB/);
    // Chunked: no Content-Length, so the limit trips while reading.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url('/api/segment'), { method: 'POST', headers: { 'Content-Type': 'image/png', 'Transfer-Encoding': 'chunked' } }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(1024 * 1024);
      let sent = 0;
      const pump = (): void => {
        while (sent < 12) {
          sent++;
          if (!req.write(chunk)) { req.once('drain', pump); return; }
        }
        req.end();
      };
      pump();
    });
    assert.equal(status, 413);
    const multipart = new FormData();
    multipart.append('image', new Blob([big], { type: 'image/png' }), 'big.png');
    const res3 = await fetch(url('/api/segment'), { method: 'POST', body: multipart });
    assert.equal(res3.status, 413);
    await res3.arrayBuffer();
    assert.equal((await segment(await testImage(64, 64), 'image/png')).status, 200);
  });

  test('415 for a body that is not declared as an image', async () => {
    for (const type of ['text/plain', 'application/json', 'application/octet-stream', 'image/gif', null]) {
      const res = await segment(type === null ? new Uint8Array(await testImage(32, 32)) : 'hello', type);
      assert.equal(res.status, 415, String(type));
      const e = await errorOf(res);
      assert.equal(e.code, 'unsupported_media_type');
      assert.match(e.message, /expected an image \(image\/png, image\/jpeg, image\/webp\)/);
    }
    const form = new FormData();
    form.append('file', new Blob(['just text'], { type: 'text/plain' }), 'notes.txt');
    const res = await fetch(url('/api/segment'), { method: 'POST', body: form });
    assert.equal(res.status, 415);
    await res.arrayBuffer();
  });

  test('400 for a truncated PNG, an empty body and a form without a file; 415 for bytes that are no image', async () => {
    const png = await testImage(120, 90);
    const cases: [Uint8Array | string, string, string, number][] = [
      [png.subarray(0, Math.floor(png.length / 2)), 'image/png', 'bad_image', 400],
      [png.subarray(0, 40), 'image/png', 'bad_image', 400],
      ['definitely not an image', 'image/jpeg', 'unsupported_image_format', 415],
      [new Uint8Array(0), 'image/png', 'empty_upload', 400],
    ];
    for (const [body, type, code, status] of cases) {
      const res = await segment(body, type);
      assert.equal(res.status, status, code);
      const e = await errorOf(res);
      assert.equal(e.code, code);
      if (code === 'bad_image') assert.match(e.message, /^cannot decode the image .*send a complete PNG, JPEG or WebP file$/);
    }
    const form = new FormData();
    form.append('name', 'value');
    const res = await fetch(url('/api/segment'), { method: 'POST', body: form });
    assert.equal(res.status, 400);
    assert.equal((await errorOf(res)).code, 'no_file');
    const fmt = await segment(png, 'image/png', '?format=gif');
    assert.equal(fmt.status, 400);
    assert.equal((await errorOf(fmt)).code, 'bad_format');
  });

  test('422 for an image with a side over maxImageSide, before decoding it', async () => {
    const wide = await sharp({ create: { width: MAX_SIDE + 1, height: 8, channels: 3, background: '#808080' } }).png().toBuffer();
    const res = await segment(wide, 'image/png');
    assert.equal(res.status, 422);
    const e = await errorOf(res);
    assert.equal(e.code, 'image_too_large');
    assert.equal(e.message, `the image is ${MAX_SIDE + 1}x8; the server takes at most ${MAX_SIDE}x${MAX_SIDE} pixels; downscale it first`);
  });
});

describe('serve: inference off the event loop', () => {
  test('the page and files answer quickly while a slow segmentation runs', async () => {
    const slow = segment(await testImage(1536, 1536), 'image/png').then(async (r) => ({ status: r.status, body: await json(r), at: performance.now() }));
    await untilQueued();
    const times: number[] = [];
    for (const path of ['/', '/app.js', '/style.css', '/api/info']) {
      const t = performance.now();
      const res = await fetch(url(path));
      await res.arrayBuffer();
      assert.equal(res.status, 200);
      times.push(performance.now() - t);
    }
    const answeredAt = performance.now();
    const r = await slow;
    assert.equal(r.status, 200);
    assert.equal(r.body.width, 1536);
    assert.ok(answeredAt < r.at, 'the static files should be answered before the slow segmentation finishes');
    assert.ok(Math.max(...times) < 1000, `static responses took ${times.map((x) => x.toFixed(0)).join(', ')} ms during inference`);
  });

  test('concurrent uploads are all answered; over maxQueue the rest get 503 with Retry-After', async () => {
    const small = await testImage(96, 80);
    const together = await Promise.all([0, 1, 2].map(() => segment(small, 'image/png').then(json)));
    for (const j of together) assert.equal(j.mask, together[0].mask);

    // One slow image occupies the thread; of six more, three fit the queue (limit 4) and three are refused.
    const slow = segment(await testImage(1536, 1536), 'image/png');
    await untilQueued();
    const burst = await Promise.all([0, 1, 2, 3, 4, 5].map(() => segment(small, 'image/png')));
    const statuses = burst.map((r) => r.status);
    assert.ok(statuses.every((s) => s === 200 || s === 503), statuses.join(','));
    const busy = burst.filter((r) => r.status === 503);
    assert.ok(busy.length >= 1, `expected a 503 beyond maxQueue 4: ${statuses.join(',')}`);
    assert.equal(busy[0].headers.get('retry-after'), '1');
    const e = await errorOf(busy[0]);
    assert.equal(e.code, 'busy');
    assert.match(e.message, /images queued \(limit 4\); retry shortly$/);
    await Promise.all(burst.map((r) => (r.bodyUsed ? null : r.arrayBuffer())));
    assert.equal((await slow).status, 200);
    assert.equal((await segment(small, 'image/png')).status, 200);
  });
});

describe('serve: export cache and shutdown', () => {
  test('a second server reuses the cached ONNX export', async () => {
    assert.ok(logs.some((l) => /^serve: exported .* to .*model\.onnx/.test(l)), logs.join('\n'));
    const lines: string[] = [];
    const second = await startServer({ model: modelDir, port: 0, log: (l) => lines.push(l) });
    try {
      assert.equal(second.onnx?.exported, false);
      assert.ok(lines.some((l) => l.startsWith('serve: using the cached ONNX export')), lines.join('\n'));
      assert.equal((await fetch(new URL('/model.onnx', second.url), { method: 'HEAD' })).status, 200);
    } finally {
      await second.close();
    }
  });

  test('bad options are refused with a clear message', async () => {
    await assert.rejects(startServer({ model: '/nonexistent/model' }), /startServer: \/nonexistent\/model is not a model directory \(no config\.json\)/);
    await assert.rejects(startServer({ model: modelDir, onnx: '/nonexistent.onnx' }), /ONNX file \/nonexistent\.onnx not found; export one with 'panseg export/);
    await assert.rejects(startServer({ model: modelDir, port: 70000 }), /expected integer in \[0, 65535\] for port but received 70000 of type number/);
    await assert.rejects(startServer({ model: modelDir, port: server.port }), new RegExp(`port ${server.port} on 127.0.0.1 is in use`));
  });

  test('close() lets a running segmentation finish, then stops listening', async () => {
    const running = segment(await testImage(640, 640), 'image/png');
    await untilQueued();
    const closing = server.close();
    const res = await running;
    assert.equal(res.status, 200);
    assert.equal((await json(res)).width, 640);
    await closing;
    await assert.rejects(fetch(url('/')), /fetch failed/);
  });
});
