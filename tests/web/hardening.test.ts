// The server as a stranger would try it (issue 15, "HTTP server"): capacity checked before an upload is read,
// a pixel budget read from the image header, timeouts and a connection cap, the Host and Origin checks,
// formats sniffed from the bytes, /healthz, and memory after a large request.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { type RunningServer, startServer } from '../../src/serve/index.js';
import { saveTinyModel, testImage, tmp } from './helpers.js';
import { holdOpen, raw, rawExchange } from './http-raw.js';

const MAX_PIXELS = 1_000_000;
let server: RunningServer;
let cleanup: () => void;
const logs: string[] = [];

before(async () => {
  const t = tmp('panseg-harden-');
  cleanup = t.cleanup;
  const modelDir = saveTinyModel(t.dir);
  server = await startServer({
    model: modelDir, onnx: false, port: 0, maxQueue: 2, maxPixels: MAX_PIXELS,
    bodyTimeoutMs: 1500, idleTimeoutMs: 1500, headersTimeoutMs: 1500, maxConnections: 24,
    allowedHosts: ['panseg.example', '.corp.example'], cors: ['http://allowed.example'],
    log: (l) => logs.push(l),
  });
});

after(async () => {
  await server?.close(1000);
  cleanup?.();
});

const png = (body: Uint8Array | string, headers: Record<string, string> = {}, path = '/api/segment') =>
  raw(server.port, { method: 'POST', path, body, headers: { 'Content-Type': 'image/png', ...headers } });

function assertJsonError(r: { status: number; json?: any; headers: Record<string, unknown> }, status: number, code: string): string {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.match(String(r.headers['content-type']), /^application\/json/);
  assert.equal(r.json?.error?.status, status);
  assert.equal(r.json?.error?.code, code);
  assert.doesNotMatch(r.json.error.message, /\n/);
  return r.json.error.message as string;
}

describe('serve hardening: capacity is checked before the upload is read', () => {
  test('with maxQueue uploads in progress, the next gets 503 at once, before its body has arrived', async (t) => {
    const small = await testImage(64, 64);
    // Two uploads that never finish occupy both places.
    const held = await Promise.all([0, 1].map(() => holdOpen(server.port, { 'Content-Type': 'image/png', 'Content-Length': '100000' }, small.subarray(0, 20))));
    try {
      await new Promise((r) => setTimeout(r, 100));
      // The third sends only its headers and a few bytes: it is refused without waiting for the rest.
      const r = await raw(server.port, { method: 'POST', path: '/api/segment', headers: { 'Content-Type': 'image/png', 'Content-Length': '100000' }, body: small.subarray(0, 20), hold: true, timeoutMs: 3000 });
      r.req.destroy();
      const message = assertJsonError(r, 503, 'busy');
      assert.equal(r.headers['retry-after'], '1');
      assert.match(message, /^the server has 2 images queued \(limit 2\); retry shortly$/);
      t.diagnostic(`503 after ${r.ms.toFixed(0)} ms, with 20 of 100000 body bytes sent`);
      assert.ok(r.ms < 1000, `the refusal took ${r.ms.toFixed(0)} ms`);
    } finally {
      for (const h of held) h.close();
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await png(small)).status, 200, 'the places are given back when the uploads are dropped');
  });
});

describe('serve hardening: pixel budget', () => {
  test('an image over maxPixels gets 413 from its header, before its pixels are decoded', async (t) => {
    // A 4096x4096 solid PNG is about 50 KB: small on the wire, 16.8 MP to decode.
    const bomb = await sharp({ create: { width: 4096, height: 4096, channels: 3, background: '#336699' } }).png({ compressionLevel: 9 }).toBuffer();
    assert.ok(bomb.length < 200_000);
    const r = await png(bomb);
    const message = assertJsonError(r, 413, 'too_many_pixels');
    assert.equal(message, 'the image is 4096x4096 (16.8 MP), over this server\'s limit of 1.0 MP (1000000 pixels); downscale it first, or start the server with a larger --max-pixels');
    t.diagnostic(`a ${(bomb.length / 1024).toFixed(0)} KB 4096x4096 PNG refused with 413 in ${r.ms.toFixed(0)} ms`);
    assert.ok(r.ms < 1500, `the refusal took ${r.ms.toFixed(0)} ms`);
    const justOver = await testImage(1001, 1000, 'jpeg');
    assertJsonError(await png(justOver, { 'Content-Type': 'image/jpeg' }), 413, 'too_many_pixels');
  });

  test('/api/info states the pixel budget', async () => {
    const r = await raw(server.port, { path: '/api/info' });
    assert.equal(r.json.limits.maxPixels, MAX_PIXELS);
  });

  test('memory after large requests is bounded and does not grow from one to the next', async (t) => {
    assert.equal((await png(await testImage(200, 200))).status, 200); // warm up: the thread's first run allocates its pools
    const rss = (): number => process.memoryUsage().rss / 2 ** 20;
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300));
    const big = await testImage(800, 800);
    const r0 = rss();
    assert.equal((await png(big)).status, 200);
    await settle();
    const r1 = rss();
    assert.equal((await png(big)).status, 200);
    await settle();
    const r2 = rss();
    t.diagnostic(`RSS ${r0.toFixed(0)} MiB before two 0.64 MP requests, ${r1.toFixed(0)} after the first, ${r2.toFixed(0)} after the second`);
    assert.ok(r1 - r0 < 600, `RSS kept ${(r1 - r0).toFixed(0)} MiB after a 0.64 MP request`);
    assert.ok(r2 - r1 < 100, `RSS grew by ${(r2 - r1).toFixed(0)} MiB from one 0.64 MP request to the next`);
    // libvips' operation cache is off while a server runs: it would keep decoded uploads alive.
    assert.deepEqual({ memory: sharp.cache().memory.max, items: sharp.cache().items.max }, { memory: 0, items: 0 });
  });
});

describe('serve hardening: timeouts and the connection cap', () => {
  test('a body that stalls gets a JSON 408 after bodyTimeoutMs, and the connection is closed', async () => {
    const h = await holdOpen(server.port, { 'Content-Type': 'image/png', 'Content-Length': '5000' }, Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    const t0 = performance.now();
    const text = await Promise.race([h.closed, new Promise<string>((r) => setTimeout(() => r('still open'), 6000))]);
    h.close();
    const ms = performance.now() - t0;
    assert.match(text, /^HTTP\/1\.1 408 /, text);
    assert.match(text, /"code":"upload_timeout"/);
    assert.ok(ms > 1000 && ms < 4000, `closed after ${ms.toFixed(0)} ms`);
  });

  test('a body that trickles a byte at a time is still cut at bodyTimeoutMs', async () => {
    const h = await holdOpen(server.port, { 'Content-Type': 'image/png', 'Content-Length': '5000' }, Buffer.from([0x89]));
    const t0 = performance.now();
    const drip = setInterval(() => h.socket.write(Buffer.from([0x50])), 200);
    const text = await Promise.race([h.closed, new Promise<string>((r) => setTimeout(() => r('still open'), 6000))]);
    clearInterval(drip);
    h.close();
    assert.match(text, /^HTTP\/1\.1 408 /, text);
    assert.ok(performance.now() - t0 < 4000);
  });

  test('a connection that sends nothing is closed after the headers timeout', async () => {
    const r = await rawExchange(server.port, '', 8000);
    assert.ok(r.closedByServer, 'the server should close a silent connection');
    assert.ok(r.ms < 5000, `closed after ${r.ms.toFixed(0)} ms`);
  });

  test('connections over maxConnections are closed on arrival', async () => {
    const held = await Promise.all(Array.from({ length: 24 }, () => holdOpen(server.port, { 'Content-Type': 'text/plain', 'Content-Length': '10' }, '', '/x')));
    try {
      const extra = await rawExchange(server.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 3000);
      assert.ok(extra.closedByServer);
      assert.equal(extra.text, '', 'a connection over the cap gets no answer');
    } finally {
      for (const h of held) h.close();
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await raw(server.port, { path: '/healthz' })).status, 200);
  });
});

describe('serve hardening: Host and Origin (DNS rebinding, cross-origin uploads)', () => {
  test('a Host that is not this server gets 421; loopback names, IP literals and --allowed-hosts pass', async () => {
    const p = server.port;
    for (const host of ['evil.example', `evil.example:${p}`, 'localhost.evil.example', 'panseg.example.evil', 'corp.example.attacker']) {
      const r = await raw(p, { path: '/api/info', headers: { Host: host } });
      const message = assertJsonError(r, 421, 'host_not_allowed');
      assert.match(message, /^Host '.*' is not allowed/, host);
      assert.match(message, /--allowed-hosts/);
      assert.equal((await raw(p, { path: '/', headers: { Host: host } })).status, 421, `the page too: ${host}`);
    }
    for (const host of [`localhost:${p}`, `127.0.0.1:${p}`, `[::1]:${p}`, 'app.localhost', `192.168.1.20:${p}`, `panseg.example:${p}`, 'a.corp.example', 'LOCALHOST.']) {
      assert.equal((await raw(p, { path: '/api/info', headers: { Host: host } })).status, 200, host);
    }
    // Load balancers probe by any name.
    assert.equal((await raw(p, { path: '/healthz', headers: { Host: 'lb.internal' } })).status, 200);
  });

  test('a cross-origin POST /api/segment is refused with 403 unless --cors allows the origin', async () => {
    const small = await testImage(64, 64);
    const evil = await png(small, { Origin: 'http://evil.example' });
    const message = assertJsonError(evil, 403, 'cross_origin');
    assert.equal(message, "requests from origin http://evil.example may not POST /api/segment; start the server with --cors http://evil.example to allow it");
    assertJsonError(await png(small, { Origin: 'null' }), 403, 'cross_origin');
    const same = await png(small, { Origin: `http://127.0.0.1:${server.port}` });
    assert.equal(same.status, 200);
    assert.equal(same.headers['access-control-allow-origin'], undefined);
    const allowed = await png(small, { Origin: 'http://allowed.example' });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers['access-control-allow-origin'], 'http://allowed.example');
    assert.match(String(allowed.headers.vary), /Origin/);
    assert.equal((await png(small)).status, 200, 'no Origin (curl, scripts) is allowed');
  });

  test('CORS preflight: 204 with the allowed methods for a --cors origin, 403 otherwise', async () => {
    const pre = (origin: string) => raw(server.port, { method: 'OPTIONS', path: '/api/segment', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' } });
    const ok = await pre('http://allowed.example');
    assert.equal(ok.status, 204);
    assert.equal(ok.headers['access-control-allow-origin'], 'http://allowed.example');
    assert.match(String(ok.headers['access-control-allow-methods']), /POST/);
    assert.match(String(ok.headers['access-control-allow-headers']), /Content-Type/i);
    assertJsonError(await pre('http://evil.example'), 403, 'cross_origin');
  });
});

describe('serve hardening: formats are sniffed from the bytes', () => {
  test('SVG, TIFF, GIF and BMP labelled image/png get 415 before any decoder sees them', async () => {
    const base = sharp({ create: { width: 16, height: 16, channels: 3, background: '#808080' } });
    const bodies: [string, Buffer][] = [
      ['SVG', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16"/></svg>')],
      ['SVG', Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')],
      ['TIFF', await base.clone().tiff().toBuffer()],
      ['GIF', await base.clone().gif().toBuffer()],
      ['BMP', Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)])],
    ];
    for (const [what, body] of bodies) {
      for (const type of ['image/png', 'image/jpeg', 'image/webp']) {
        const r = await png(body, { 'Content-Type': type });
        const message = assertJsonError(r, 415, 'unsupported_image_format');
        assert.equal(message, `the upload is labelled ${type} but its bytes are ${what}; send a PNG, JPEG or WebP file`, `${what} as ${type}`);
      }
      const form = new FormData();
      form.append('image', new Blob([body], { type: 'image/png' }), 'x.png');
      const res = await fetch(new URL('/api/segment', server.url), { method: 'POST', body: form });
      assert.equal(res.status, 415, `${what} in a form`);
      assert.equal(((await res.json()) as any).error.code, 'unsupported_image_format');
    }
    assert.ok(!logs.some((l) => /internal error/.test(l)), logs.join('\n'));
  });

  test('a JPEG labelled image/png is segmented as what its bytes are', async () => {
    const r = await png(await testImage(80, 60, 'jpeg'));
    assert.equal(r.status, 200);
    assert.equal(r.json.width, 80);
  });
});

describe('serve hardening: requests Node cannot parse', () => {
  test('a malformed request or oversized headers get a JSON error too, then the connection closes', async () => {
    const bad = await rawExchange(server.port, 'GARBAGE\u0001 / HTTP/1.1\r\n\r\n', 5000);
    assert.match(bad.text, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(bad.text, /"code":"bad_request","message":"malformed HTTP request \(HPE_[A-Z_]+\); send a valid HTTP\/1\.1 request"/);
    const big = await rawExchange(server.port, `GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 5000);
    assert.match(big.text, /^HTTP\/1\.1 431 /);
    assert.match(big.text, /"code":"headers_too_large"/);
  });
});

describe('serve hardening: /healthz', () => {
  test('GET /healthz answers 200 with status, model and queue depth', async () => {
    const r = await raw(server.port, { path: '/healthz' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.deepEqual(r.json, { status: 'ok', model: 'PAN-resnet18', queue: 0, maxQueue: 2 });
    assert.equal((await raw(server.port, { method: 'HEAD', path: '/healthz' })).status, 200);
    assert.equal((await raw(server.port, { method: 'POST', path: '/healthz', body: 'x' })).status, 405);
  });
});
