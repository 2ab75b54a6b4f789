// Static files: the page, onnxruntime-web's dist files and the model. Only files under a mount's
// root with a known extension are served; ETag/If-None-Match and HEAD are honoured.
import { createReadStream, type Stats, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { HttpError } from './http.js';

/** MIME types by extension. `application/wasm` matters: browsers refuse streaming compilation without it. */
export const MIME_TYPES: Readonly<Record<string, string>> = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
});

/** The MIME type for a file name, or undefined for extensions the server does not serve. */
export function mimeType(file: string): string | undefined {
  return MIME_TYPES[extname(file).toLowerCase()];
}

/**
 * Resolves `rel` (a URL path below a mount, still percent-encoded) inside `root`, or null when it
 * escapes the root, is hidden (a segment starting with '.') or has an unknown or unlisted extension.
 */
export function resolveInside(root: string, rel: string, extensions?: readonly string[]): string | null {
  let decoded: string;
  try { decoded = decodeURIComponent(rel); } catch { return null; }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segments = decoded.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '..' || s.startsWith('.'))) return null;
  const base = resolve(root);
  const file = resolve(base, ...segments);
  if (file !== base && !file.startsWith(base + sep)) return null;
  const ext = extname(file).toLowerCase();
  return mimeType(file) && (!extensions || extensions.includes(ext)) ? file : null;
}

export interface SendFileOptions {
  /** Cache-Control value; default 'no-cache' (revalidate with the ETag every time). */
  cacheControl?: string;
  /** Content type; default from the extension. */
  contentType?: string;
  /** Serve only these extensions (e.g. ['.html', '.js']); default every one in {@link MIME_TYPES}. */
  extensions?: readonly string[];
}

/** Streams a file with its MIME type and an ETag; 304 when the client has it; 404 when it is not a file. */
export function sendFile(req: IncomingMessage, res: ServerResponse, file: string, o: SendFileOptions = {}): void {
  let st: Stats;
  try { st = statSync(file); } catch { throw new HttpError(404, 'not_found', `no such file: ${req.url ?? ''}`); }
  if (!st.isFile()) throw new HttpError(404, 'not_found', `no such file: ${req.url ?? ''}`);
  const etag = `"${st.size.toString(36)}-${Math.floor(st.mtimeMs).toString(36)}"`;
  const headers: Record<string, string> = {
    'Content-Type': o.contentType ?? mimeType(file) ?? 'application/octet-stream',
    'Cache-Control': o.cacheControl ?? 'no-cache',
    ETag: etag,
    'Last-Modified': st.mtime.toUTCString(),
  };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': String(st.size) });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(file);
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  stream.pipe(res);
}

/** Serves `rel` from `root` (see {@link resolveInside}); 404 for anything outside or unknown. */
export function serveStatic(req: IncomingMessage, res: ServerResponse, root: string, rel: string, o: SendFileOptions = {}): void {
  const file = resolveInside(root, rel, o.extensions);
  if (!file) throw new HttpError(404, 'not_found', `no such file: ${req.url ?? ''}`);
  sendFile(req, res, join(file), o);
}
