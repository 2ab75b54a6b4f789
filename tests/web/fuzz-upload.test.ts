// Fuzzing POST /api/segment (issue 15): seeded mutations of valid PNG, JPEG and WebP uploads (truncation, bit flips,
// garbage runs, inserted and deleted bytes, forged dimensions), sent as raw bodies and multipart forms with wrong
// lengths, broken boundaries and header garbage, against a running server. Every answer must be an HTTP status with
// a JSON error body (or a segmentation), the server must keep answering, and memory must stay bounded.
// PANSEG_FUZZ_CASES=N runs N cases instead of the default; PANSEG_FUZZ_SEED picks another seed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type RunningServer, startServer } from '../../src/serve/index.js';
import { saveTinyModel, testImage, tmp } from './helpers.js';
import { parseRawResponse, raw, rawExchange } from './http-raw.js';

const CASES = Number(process.env.PANSEG_FUZZ_CASES ?? 300);
const SEED = Number(process.env.PANSEG_FUZZ_SEED ?? 15);
const CONCURRENCY = 4;
let server: RunningServer;
let cleanup: () => void;
const internal: string[] = [];

before(async () => {
  const t = tmp('panseg-fuzz-');
  cleanup = t.cleanup;
  server = await startServer({
    model: saveTinyModel(t.dir), onnx: false, port: 0, maxQueue: 16, maxPixels: 256 * 256, maxUploadBytes: 256 * 1024,
    bodyTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 2000, threads: 1,
    log: (l) => { if (/internal error/.test(l)) internal.push(l); },
  });
});

after(async () => {
  await server?.close(1000);
  cleanup?.();
});

/** mulberry32: small, seeded, good enough to pick mutations. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Fmt = 'png' | 'jpeg' | 'webp';
const TYPES: Record<Fmt, string> = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp' };

const FOREIGN = [
  Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4000" height="4000"><rect width="9" height="9"/></svg>'),
  Buffer.concat([Buffer.from('GIF89a'), Buffer.alloc(40)]),
  Buffer.concat([Buffer.from([0x49, 0x49, 0x2a, 0x00]), Buffer.alloc(60)]),
  Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(30)]),
];

/** Byte mutations of a valid image; each returns the mutated bytes and a name for failure messages. */
function mutate(src: Buffer, fmt: Fmt, r: () => number): [string, Buffer] {
  const b = Buffer.from(src);
  const at = (): number => Math.floor(r() * b.length);
  switch (Math.floor(r() * 8)) {
    case 0: {
      const n = Math.floor(r() * b.length);
      return [`truncate to ${n}`, b.subarray(0, n)];
    }
    case 1: {
      const flips = 1 + Math.floor(r() * 8);
      for (let i = 0; i < flips; i++) { const p = at(); b[p] ^= 1 << Math.floor(r() * 8); }
      return [`flip ${flips} bits`, b];
    }
    case 2: {
      const p = at();
      const n = 1 + Math.floor(r() * 64);
      for (let i = p; i < Math.min(b.length, p + n); i++) b[i] = Math.floor(r() * 256);
      return [`garbage ${n} bytes at ${p}`, b];
    }
    case 3: {
      const p = at();
      const junk = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 200) }, () => Math.floor(r() * 256)));
      return [`insert ${junk.length} bytes at ${p}`, Buffer.concat([b.subarray(0, p), junk, b.subarray(p)])];
    }
    case 4: {
      const p = at();
      const n = 1 + Math.floor(r() * 100);
      return [`delete ${n} bytes at ${p}`, Buffer.concat([b.subarray(0, p), b.subarray(p + n)])];
    }
    case 5: {
      // Forged dimensions in the header: huge, zero or odd sizes.
      const dims = [0, 1, 1000, 65535, 30000, 2 ** 31 - 1, 0xffffffff][Math.floor(r() * 7)];
      if (fmt === 'png') { b.writeUInt32BE(dims >>> 0, 16); b.writeUInt32BE((dims >>> 0) || 1, 20); }
      else if (fmt === 'jpeg') {
        const sof = b.indexOf(Buffer.from([0xff, 0xc0]));
        if (sof > 0) { b.writeUInt16BE(dims & 0xffff, sof + 5); b.writeUInt16BE(dims & 0xffff, sof + 7); }
      } else if (b.length > 30) { b.writeUInt16LE(dims & 0x3fff, 26); b.writeUInt16LE(dims & 0x3fff, 28); }
      return [`dimensions ${dims}`, b];
    }
    case 6:
      // Another format behind the label: the sniffing must refuse it (415) before a decoder sees it.
      return ['foreign format', FOREIGN[Math.floor(r() * FOREIGN.length)]];
    default: {
      // A valid file with a tail of garbage, or two files glued together.
      return r() < 0.5 ? ['glued twice', Buffer.concat([b, b])] : ['garbage tail', Buffer.concat([b, Buffer.alloc(1 + Math.floor(r() * 300), Math.floor(r() * 256))])];
    }
  }
}

/** A whole HTTP request around a body: raw or multipart, with lengths and headers possibly wrong. */
function envelope(body: Buffer, fmt: Fmt, r: () => number): [string, Buffer] {
  const port = server.port;
  const head = (lines: string[]): Buffer => Buffer.from(`POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  const kind = Math.floor(r() * 6);
  if (kind <= 1) return ['raw', Buffer.concat([head([`Content-Type: ${TYPES[fmt]}`, `Content-Length: ${body.length}`]), body])];
  if (kind === 2) {
    // Content-Length shorter or longer than the body (a longer one waits for bytes that never come: 408).
    const len = r() < 0.5 ? Math.floor(r() * body.length) : body.length + 1 + Math.floor(r() * 1000);
    return [`raw, Content-Length ${len} for ${body.length}`, Buffer.concat([head([`Content-Type: ${TYPES[fmt]}`, `Content-Length: ${len}`]), body])];
  }
  const boundary = `----fuzz${Math.floor(r() * 1e9)}`;
  const partType = r() < 0.3 ? 'application/octet-stream' : TYPES[fmt];
  let form = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.${fmt}"\r\nContent-Type: ${partType}\r\n\r\n`),
    body, Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  let what = 'multipart';
  if (kind === 4) {
    // Damage the form itself: cut it, garble a part header, or drop the closing boundary.
    const m = Math.floor(r() * 3);
    if (m === 0) { form = form.subarray(0, Math.floor(r() * form.length)); what = 'multipart cut'; }
    else if (m === 1) { const p = Math.floor(r() * 120); for (let i = p; i < p + 8 && i < form.length; i++) form[i] = Math.floor(r() * 256); what = 'multipart garbled head'; }
    else { form = form.subarray(0, form.length - boundary.length - 8); what = 'multipart unterminated'; }
  }
  const ctype = kind === 5 ? `multipart/form-data; boundary=${r() < 0.5 ? '' : `"${boundary}x"`}` : `multipart/form-data; boundary=${boundary}`;
  if (kind === 5) what = 'multipart bad boundary';
  const lines = [`Content-Type: ${ctype}`, `Content-Length: ${form.length}`];
  if (r() < 0.15) {
    // Header garbage: a control byte, a non-ASCII byte or a header without a colon.
    lines.push(['X-Junk: a\u0001b', 'X-Junk: \u00ff\u00fe', 'NoColonHere', 'Content-Length: 12'][Math.floor(r() * 4)]);
    what += ' + header garbage';
  }
  return [what, Buffer.concat([head(lines), form])];
}

function check(name: string, text: string): number {
  const { status, json } = parseRawResponse(text);
  assert.ok(status >= 200 && status < 600, `${name}: no HTTP status in ${JSON.stringify(text.slice(0, 200))}`);
  if (status >= 400) {
    assert.equal(json?.error?.status, status, `${name}: ${status} without a JSON error: ${JSON.stringify(text.slice(0, 300))}`);
    assert.equal(typeof json.error.code, 'string', name);
    assert.ok(typeof json.error.message === 'string' && !json.error.message.includes('\n'), `${name}: ${json.error.message}`);
  } else {
    assert.equal(typeof json?.width, 'number', `${name}: a 2xx without a segmentation`);
  }
  return status;
}

test(`fuzz: ${CASES} mutated uploads each get an HTTP status with a JSON body, and the server stays up`, { timeout: 600_000 }, async (t) => {
  const seeds: Record<Fmt, Buffer> = { png: await testImage(48, 40), jpeg: await testImage(48, 40, 'jpeg'), webp: await testImage(48, 40, 'webp') };
  const r = rng(SEED);
  const cases = Array.from({ length: CASES }, (_, i) => {
    const fmt = (['png', 'jpeg', 'webp'] as const)[i % 3];
    const [m, body] = mutate(seeds[fmt], fmt, r);
    const [e, bytes] = envelope(body, fmt, r);
    return { name: `case ${i} (${fmt}, ${m}, ${e})`, bytes };
  });
  const statuses = new Map<number, number>();
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < cases.length) {
      const c = cases[next++];
      const res = await rawExchange(server.port, c.bytes, 15_000);
      const status = check(c.name, res.text);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      peak = Math.max(peak, process.memoryUsage().rss);
    }
  }));
  const s = [...statuses].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k}: ${v}`).join(', ');
  t.diagnostic(`${CASES} cases in ${((performance.now() - t0) / 1000).toFixed(1)} s; statuses ${s}; RSS ${(rss0 / 2 ** 20).toFixed(0)} MiB at start, peak ${(peak / 2 ** 20).toFixed(0)} MiB`);
  assert.deepEqual(internal, [], 'no 500 internal errors');
  assert.ok(!statuses.has(500), `500s: ${statuses.get(500)}`);
  assert.ok(peak - rss0 < 1024 * 2 ** 20, `RSS grew by ${((peak - rss0) / 2 ** 20).toFixed(0)} MiB during the fuzz run`);
  assert.ok((statuses.get(200) ?? 0) > 0 && [...statuses.keys()].some((k) => k >= 400), `expected both segmentations and refusals: ${s}`);
  // Still alive and answering.
  const health = await raw(server.port, { path: '/healthz' });
  assert.equal(health.status, 200);
  assert.equal(health.json.status, 'ok');
  assert.equal(health.json.queue, 0);
  const ok = await raw(server.port, { method: 'POST', path: '/api/segment', headers: { 'Content-Type': 'image/png' }, body: seeds.png });
  assert.equal(ok.status, 200);
});
