// `panseg serve`: the web page, onnxruntime-web's files, the exported model, and POST /api/segment
// on node:http. Inference runs on a worker thread behind a queue, so pages and files stay fast.
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { type AccessPolicy, applyCors, checkHost } from './guard.js';
import { HttpError, sendError, sendJson, setBaseHeaders } from './http.js';
import { type ExportSettings, type OnnxModel, prepareOnnx } from './onnx-model.js';
import { InferenceQueue } from './queue.js';
import type { ModelInfo } from './protocol.js';
import { handleSegment } from './segment.js';
import { sendFile, serveStatic } from './static.js';
import { IMAGE_TYPES } from './upload.js';

/** Options of {@link startServer}. */
export interface ServeOptions {
  /** The model directory (savePretrained / smp save_pretrained). */
  model: string;
  /**
   * An exported ONNX file to serve (its sidecar `<file>.json` beside it). Default: export `model` on start,
   * cached as `<model>/model.onnx` (re-exported when the weights are newer). `false`: no browser model, API only.
   */
  onnx?: string | false;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default '127.0.0.1' (this machine only). */
  host?: string;
  /** Largest upload /api/segment reads, bytes. Default 10 MiB. */
  maxUploadBytes?: number;
  /** Largest image side /api/segment segments, pixels. Default 4096. */
  maxImageSide?: number;
  /**
   * Largest image /api/segment segments, width x height, read from the header before decoding (413 above).
   * Default 12,582,912 (12 MiP): a 12 MP phone photo (4032x3024) fits, 4096x4096 does not.
   */
  maxPixels?: number;
  /**
   * Requests admitted to /api/segment at once (uploading, decoding, queued or running) before the next gets
   * 503, answered before its upload is read. Default 32.
   */
  maxQueue?: number;
  /** An upload must arrive within this time, ms, or gets 408 and the connection is closed. Default 60 s. */
  bodyTimeoutMs?: number;
  /**
   * A connection with no traffic for this long is closed, ms (not while its segmentation is queued or running).
   * Default 30 s.
   */
  idleTimeoutMs?: number;
  /** The request headers must arrive within this time, ms, from the connection's first byte. Default 15 s. */
  headersTimeoutMs?: number;
  /** Open connections at most; more are closed on arrival. Default 256. */
  maxConnections?: number;
  /**
   * Host header names accepted besides localhost, *.localhost, IP literals and `host` (DNS rebinding guard):
   * `name`, `.example.com` (it and its subdomains) or `*` (any: turns the guard off). Default none.
   */
  allowedHosts?: string[];
  /** Origins (`https://app.example`, or `*`) whose pages may call the API cross-origin; others get 403 on POST. Default none. */
  cors?: string[];
  /** libtorch threads for inference. Default all cores. */
  threads?: number;
  /**
   * Sliding-window inference (`tile`, `overlap`) and inference scale (`resizeLong`) for /api/segment, as
   * InferenceOptions: with `tile`, a large photo is segmented in bounded memory. Default: whole images.
   */
  inference?: { tile?: number; overlap?: number; resizeLong?: number };
  /** How the model is exported when `onnx` is not given. */
  export?: ExportSettings;
  /** Receives one line per request and the startup messages. Default: silent. */
  log?: (line: string) => void;
}

/** A listening server. */
export interface RunningServer {
  /** `http://host:port/` */
  url: string;
  port: number;
  /** The ONNX model the page loads, or null when the page has none. */
  onnx: OnnxModel | null;
  /** Classes, colours and sizes of the served model. */
  info: ModelInfo;
  /** Stops accepting connections, lets running requests finish (up to `graceMs`, default 10 s), stops the inference thread. */
  close(graceMs?: number): Promise<void>;
}

export interface ResolvedServeOptions {
  model: string;
  onnx: string | false | undefined;
  port: number;
  host: string;
  maxUploadBytes: number;
  maxImageSide: number;
  maxPixels: number;
  maxQueue: number;
  bodyTimeoutMs: number;
  idleTimeoutMs: number;
  headersTimeoutMs: number;
  maxConnections: number;
  allowedHosts: string[];
  cors: string[];
  threads: number | undefined;
  inference: { tile?: number; overlap?: number; resizeLong?: number };
  export: ExportSettings;
  log: (line: string) => void;
}

/** Validates {@link ServeOptions} and fills the defaults. */
export function resolveServeOptions(o: ServeOptions): ResolvedServeOptions {
  const op = 'startServer';
  if (!o || typeof o !== 'object') fail(op, 'expected an options object with at least { model }');
  if (typeof o.model !== 'string' || !o.model) fail(op, `expected a model directory for model but received ${String(o.model)}`);
  if (!existsSync(join(o.model, 'config.json'))) fail(op, `${o.model} is not a model directory (no config.json); pass a directory written by savePretrained or panseg train`);
  if (o.onnx !== undefined && o.onnx !== false) {
    if (typeof o.onnx !== 'string') fail(op, `expected a file path or false for onnx but received ${String(o.onnx)}`);
    if (!existsSync(o.onnx)) fail(op, `ONNX file ${o.onnx} not found; export one with 'panseg export --model ${o.model} --out ${o.onnx}', or leave --onnx out to export on start`);
  }
  return {
    model: resolve(o.model),
    onnx: typeof o.onnx === 'string' ? resolve(o.onnx) : o.onnx,
    port: v.int(op, 'port', o.port ?? 8080, 0, 65535),
    host: typeof o.host === 'string' && o.host ? o.host : o.host === undefined ? '127.0.0.1' : fail(op, `expected a host name or address for host but received ${String(o.host)}`),
    maxUploadBytes: v.int(op, 'maxUploadBytes', o.maxUploadBytes ?? 10 * 1024 * 1024, 1),
    maxImageSide: v.int(op, 'maxImageSide', o.maxImageSide ?? 4096, 1),
    maxPixels: v.int(op, 'maxPixels', o.maxPixels ?? DEFAULT_MAX_PIXELS, 1),
    maxQueue: v.int(op, 'maxQueue', o.maxQueue ?? 32, 1),
    bodyTimeoutMs: v.int(op, 'bodyTimeoutMs', o.bodyTimeoutMs ?? 60_000, 100),
    idleTimeoutMs: v.int(op, 'idleTimeoutMs', o.idleTimeoutMs ?? 30_000, 100),
    headersTimeoutMs: v.int(op, 'headersTimeoutMs', o.headersTimeoutMs ?? 15_000, 100),
    maxConnections: v.int(op, 'maxConnections', o.maxConnections ?? 256, 1),
    allowedHosts: stringList(op, 'allowedHosts', o.allowedHosts, (h) => h === '*' || /^\.?[a-z0-9_.-]+$/i.test(h) || /^\[[0-9a-f:.]+\]$/i.test(h), 'a host name, .domain or *'),
    cors: stringList(op, 'cors', o.cors, (c) => c === '*' || c === 'null' || /^https?:\/\/[^/\s]+$/i.test(c), 'an origin like https://app.example (scheme and host, no path) or *'),
    threads: o.threads === undefined ? undefined : v.int(op, 'threads', o.threads, 1, 1024),
    inference: checkedInference(op, o.inference),
    export: o.export ?? {},
    log: o.log ?? (() => {}),
  };
}

function checkedInference(op: string, o: ServeOptions['inference']): ResolvedServeOptions['inference'] {
  if (o === undefined) return {};
  if (typeof o !== 'object' || o === null) fail(op, `expected an object { tile, overlap, resizeLong } for inference but received ${String(o)}`);
  if (o.tile !== undefined) v.int(op, 'inference.tile', o.tile, 1);
  if (o.overlap !== undefined) v.num(op, 'inference.overlap', o.overlap, { min: 0, max: 0.9 });
  if (o.resizeLong !== undefined) v.int(op, 'inference.resizeLong', o.resizeLong, 1);
  return { tile: o.tile, overlap: o.overlap, resizeLong: o.resizeLong };
}

/** 12 MiP: a 12 MP phone photo (4032x3024) fits; 4096x4096 (16.8 MP, 6.4 GB to segment in issue 15) does not. */
export const DEFAULT_MAX_PIXELS = 12 * 1024 * 1024;

function stringList(op: string, name: string, value: unknown, ok: (s: string) => boolean, what: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return fail(op, `expected an array of strings for ${name} but received ${String(value)}`);
  for (const s of value) if (typeof s !== 'string' || !ok(s)) fail(op, `expected ${what} in ${name} but received '${String(s)}'`);
  return value as string[];
}

/** The folder holding the page: web/ at the package root, found from this file in src/ or dist/src/. */
export function webRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'web', 'index.html'))) return join(dir, 'web');
    dir = dirname(dir);
  }
  return fail('serve', `cannot find the web page (web/index.html) above ${fileURLToPath(import.meta.url)}; is the package installed completely?`);
}

/** onnxruntime-web's dist folder in node_modules (the page's runtime; nothing comes from a CDN). */
export function ortDistDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
  } catch {
    return fail('serve', "cannot find the onnxruntime-web package; run 'npm install' in the panseg package");
  }
}

// What web/ serves: the page's files, not its tsconfig.json.
const PAGE_EXTENSIONS = ['.html', '.js', '.mjs', '.css', '.svg', '.png', '.ico', '.webp', '.jpg'];
// onnxruntime-web's runtime files.
const ORT_EXTENSIONS = ['.mjs', '.js', '.wasm', '.map'];

export interface ServerContext {
  opts: ResolvedServeOptions;
  queue: InferenceQueue;
  onnx: OnnxModel | null;
  onnxError: string | null;
  web: string;
  ort: string;
  policy: AccessPolicy;
  /** Sockets whose request has arrived and waits for inference: the idle timeout spares them. */
  awaiting: WeakSet<Socket>;
}

/**
 * Starts the segmentation server: exports the model to ONNX (cached) unless `onnx` is given, loads it on an
 * inference thread and listens. Routes: `GET /` (the page), `/ort/*` (onnxruntime-web), `/model.onnx` and
 * `/model.onnx.json`, `GET /api/info`, `POST /api/segment`, `GET /healthz` (for load balancers).
 * Requests whose Host header names another site get 421 (DNS rebinding), cross-origin POSTs 403 unless `cors`
 * allows the origin; uploads are admitted before they are read (503 when `maxQueue` are in progress), sniffed
 * (PNG, JPEG, WebP only: 415) and sized from their header (`maxPixels`: 413) before they are decoded.
 * @example
 * const server = await startServer({ model: 'runs/voc/best', port: 0 });
 * console.log(server.url);
 * await server.close();
 */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const opts = resolveServeOptions(options);
  const web = webRoot();
  const ort = ortDistDir();
  // The thread loads its model while this one exports.
  const queuing = InferenceQueue.start({ modelDir: opts.model, threads: opts.threads, maxQueue: opts.maxQueue, inference: opts.inference });
  let onnx: OnnxModel | null = null;
  let onnxError: string | null = null;
  try {
    if (opts.onnx !== false) onnx = await prepareOnnx(opts.model, opts.onnx, opts.export, opts.log);
  } catch (e) {
    if (typeof opts.onnx === 'string') {
      await queuing.then((q) => q.close(), () => {});
      throw e;
    }
    // A model the exporter cannot handle still gets the API; the page says why it cannot run locally.
    onnxError = (e as Error).message;
    opts.log(`serve: no browser model: ${onnxError}`);
  }
  const queue = await queuing;
  const policy: AccessPolicy = { host: opts.host, allowedHosts: opts.allowedHosts, cors: opts.cors };
  const ctx: ServerContext = { opts, queue, onnx, onnxError, web, ort, policy, awaiting: new WeakSet() };
  // libvips' operation cache would keep decoded uploads alive between requests.
  sharp.cache(false);
  const server = createServer({
    keepAliveTimeout: 5000,
    headersTimeout: opts.headersTimeoutMs,
    // Node's own whole-request limit (a plain-text 408) backs up the JSON 408 of readUpload for bodies nobody reads.
    requestTimeout: opts.headersTimeoutMs + opts.bodyTimeoutMs + 5000,
    // How often Node checks those two; its default, 30 s, would let a stalled request live that much longer.
    connectionsCheckingInterval: Math.min(1000, opts.headersTimeoutMs, opts.bodyTimeoutMs),
  }, (req, res) => void handle(ctx, req, res));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket));
  server.maxConnections = opts.maxConnections;
  server.timeout = opts.idleTimeoutMs;
  server.on('timeout', (socket: Socket) => {
    // Waiting for our own answer is not idleness: the client has sent everything and inference may take a while.
    if (!ctx.awaiting.has(socket)) socket.destroy();
  });
  try {
    await listen(server, opts.port, opts.host);
  } catch (e) {
    await queue.close();
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') fail('serve', `port ${opts.port} on ${opts.host} is in use; pick another with --port (0 picks a free one)`);
    if (err.code === 'EACCES') fail('serve', `not allowed to listen on port ${opts.port}; ports below 1024 need privileges, try --port 8080`);
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  const shownHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${shownHost}:${port}/`,
    port,
    onnx,
    info: queue.info,
    close: (graceMs = 10_000) => (closing ??= shutdown(server, queue, graceMs)),
  };
}

/**
 * Requests Node's parser refuses (malformed request line or headers, headers over 16 KiB, a header or whole-request
 * timeout) get the same JSON error body as every other refusal, then the connection is closed.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  // A response already under way on this socket (Node's own check, on its internal field): nothing more may be written.
  const current = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'headers_too_large', 'the request headers are too large (over 16 KB); send fewer or shorter headers']
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADER_TIMEOUT' ? [408, 'request_timeout', 'the request did not arrive in time; send it over a faster link']
    : [400, 'bad_request', `malformed HTTP request (${String(err.code ?? 'parse error')}); send a valid HTTP/1.1 request`];
  const body = `${JSON.stringify({ error: { status, code, message } })}\n`;
  const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`);
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
}

async function shutdown(server: Server, queue: InferenceQueue, graceMs: number): Promise<void> {
  const closed = new Promise<void>((done) => server.close(() => done()));
  server.closeIdleConnections();
  await queue.close(graceMs);
  const force = setTimeout(() => server.closeAllConnections(), Math.min(graceMs, 2000));
  await closed;
  clearTimeout(force);
}

async function handle(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const t0 = performance.now();
  setBaseHeaders(res);
  res.on('finish', () => ctx.opts.log(`${req.method} ${req.url} ${res.statusCode} ${(performance.now() - t0).toFixed(0)} ms`));
  try {
    await route(ctx, req, res);
  } catch (e) {
    if (e instanceof HttpError) {
      if (e.status === 499) return; // the client went away; nobody to answer
      sendError(res, e);
    } else {
      ctx.opts.log(`serve: internal error on ${req.method} ${req.url}: ${(e as Error)?.stack ?? String(e)}`);
      sendError(res, new HttpError(500, 'internal_error', `internal error: ${(e as Error)?.message ?? String(e)}`));
    }
  }
}

function allow(req: IncomingMessage, methods: string[]): void {
  if (!methods.includes(req.method ?? '')) throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed here; use ${methods.join(' or ')}`, { Allow: methods.join(', ') });
}

async function route(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  // Load balancers probe by whatever name they know the service by, so the Host check comes after this.
  if (path === '/healthz') {
    allow(req, ['GET', 'HEAD']);
    const h = health(ctx);
    sendJson(res, h.status === 'ok' ? 200 : 503, h);
    return;
  }
  checkHost(req, ctx.policy);
  if (path === '/api/segment') {
    if (applyCors(req, res, ctx.policy, path, ['POST'])) return;
    allow(req, ['POST']);
    await handleSegment(ctx, req, res);
    return;
  }
  if (path === '/api/info') {
    if (applyCors(req, res, ctx.policy, path, ['GET', 'HEAD'])) return;
    allow(req, ['GET', 'HEAD']);
    sendJson(res, 200, apiInfo(ctx));
    return;
  }
  if (path.startsWith('/api/')) throw new HttpError(404, 'not_found', `no API route ${path}; routes: GET /api/info, POST /api/segment`);
  allow(req, ['GET', 'HEAD']);
  if (path === '/model.onnx' || path === '/model.onnx.json') {
    if (!ctx.onnx) throw new HttpError(404, 'no_browser_model', `this server has no ONNX model for the page${ctx.onnxError ? `: ${ctx.onnxError}` : ''}`);
    sendFile(req, res, path === '/model.onnx' ? ctx.onnx.path : ctx.onnx.sidecarPath);
    return;
  }
  if (path.startsWith('/ort/')) {
    serveStatic(req, res, ctx.ort, path.slice('/ort/'.length), { extensions: ORT_EXTENSIONS });
    return;
  }
  serveStatic(req, res, ctx.web, path === '/' ? 'index.html' : path.slice(1), { extensions: PAGE_EXTENSIONS });
}

function apiInfo(ctx: ServerContext): Record<string, unknown> {
  const { opts, queue, onnx, onnxError } = ctx;
  return {
    name: 'panseg',
    model: queue.info,
    browserModel: onnx ? { url: '/model.onnx', sidecar: '/model.onnx.json', bytes: onnx.bytes } : null,
    browserModelError: onnxError,
    limits: { maxUploadBytes: opts.maxUploadBytes, maxImageSide: opts.maxImageSide, maxPixels: opts.maxPixels, imageTypes: IMAGE_TYPES, maxQueue: opts.maxQueue },
    queue: queue.pending,
  };
}

/** /healthz: `status` is 'ok' (200), else 'restarting', 'broken' or 'closed' (503). */
function health(ctx: ServerContext): { status: string; model: string; queue: number; maxQueue: number } {
  const { queue } = ctx;
  return { status: queue.state, model: `${queue.info.architecture}-${queue.info.encoder}`, queue: queue.load, maxQueue: queue.maxQueue };
}
