// Response helpers shared by the routes: the headers every response carries, JSON bodies and
// JSON errors of one shape.
import type { ServerResponse } from 'node:http';

/** A request the server refuses: the status and a message for the client, sent as JSON. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/**
 * Headers on every response. COOP + COEP make the page cross-origin isolated, which SharedArrayBuffer
 * (and so onnxruntime-web's wasm threads) needs; CORP lets our own resources load under COEP.
 */
export const BASE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
});

export function setBaseHeaders(res: ServerResponse): void {
  for (const [k, v] of Object.entries(BASE_HEADERS)) res.setHeader(k, v);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = Buffer.from(`${JSON.stringify(body)}\n`);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(data.length), 'Cache-Control': 'no-store', ...headers });
  res.end(data);
}

/** The JSON error body: `{ "error": { "status", "code", "message" } }`. */
export function sendError(res: ServerResponse, e: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, e.status, { error: { status: e.status, code: e.code, message: e.message } }, e.headers);
}

/** JSON with every non-ASCII character escaped, so it is a valid HTTP header value. */
export function asciiJson(v: unknown): string {
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `10 MB`, `512 KB`, `12 B`: sizes in messages. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${+(n / (1024 * 1024)).toFixed(1)} MB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KB`;
  return `${n} B`;
}
