// Raw HTTP for the server's hardening and fuzz tests: requests with any Host, Origin or body, bodies that
// stall, and sockets that say nothing, which fetch() cannot express.
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The parsed JSON body, or undefined when it is not JSON. */
  json?: any;
  ms: number;
}

export interface RawOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  /** The whole body; with `hold`, only this part is sent and the request stays open. */
  body?: Uint8Array | string;
  /** Send `body` and keep the request open (no end) until the response or `timeoutMs`. */
  hold?: boolean;
  /** Reject when no response arrives in this time. Default 10 s. */
  timeoutMs?: number;
}

/** One request with node:http; resolves with the response (status 0 and the error message when the connection failed). */
export function raw(port: number, o: RawOptions = {}): Promise<RawResponse & { req: ReturnType<typeof request>; error?: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', headers: o.headers ?? {}, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no response to ${o.method ?? 'GET'} ${o.path ?? '/'} within ${o.timeoutMs ?? 10_000} ms`));
    }, o.timeoutMs ?? 10_000);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = (): void => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks);
        let json: unknown;
        try { json = JSON.parse(body.toString('utf8')); } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json, ms: performance.now() - t0, req });
      };
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      resolve({ status: 0, headers: {}, body: Buffer.alloc(0), ms: performance.now() - t0, req, error: e.message });
    });
    if (o.body !== undefined) req.write(o.body);
    if (!o.hold) req.end();
    else req.flushHeaders();
  });
}

/**
 * Opens a request with these headers, sends `part` of the body and keeps it open. Resolves once the bytes are written;
 * `close()` destroys it.
 */
export async function holdOpen(port: number, headers: Record<string, string>, part: Uint8Array | string, path = '/api/segment'): Promise<{ socket: Socket; close: () => void; closed: Promise<string> }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  let received = '';
  socket.on('data', (d: Buffer) => { received += d.toString('latin1'); });
  socket.on('error', () => {});
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received)));
  const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  await new Promise<void>((resolve) => socket.write(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(part)]), () => resolve()));
  return { socket, close: () => socket.destroy(), closed };
}

/** Writes `bytes` on a fresh socket and resolves with everything the server sends until it closes (or `timeoutMs`). */
export function rawExchange(port: number, bytes: Uint8Array | string, timeoutMs = 10_000): Promise<{ text: string; closedByServer: boolean; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let closedByServer = false;
    const timer = setTimeout(() => { socket.destroy(); }, timeoutMs);
    socket.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    socket.on('end', () => { closedByServer = true; });
    socket.on('error', () => { closedByServer = true; });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closedByServer, ms: performance.now() - t0 });
    });
    socket.on('connect', () => {
      if (typeof bytes === 'string' ? bytes.length : bytes.byteLength) socket.write(bytes);
    });
  });
}

/** Status and JSON body of an HTTP/1.1 response read as text (the first response on a connection). */
export function parseRawResponse(text: string): { status: number; json?: any } {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  if (!m) return { status: 0 };
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  let json: unknown;
  try { json = JSON.parse(body.trim()); } catch { json = undefined; }
  return { status: Number(m[1]), json };
}
