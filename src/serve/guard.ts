// Who may talk to the server. The Host check defeats DNS rebinding (a page on evil.example whose name is
// re-pointed at 127.0.0.1 would otherwise read the API as same-origin); the Origin check keeps other sites'
// pages from posting uploads through a visitor's browser, unless --cors names them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { HttpError } from './http.js';

/** The Host and Origin policy of a server. */
export interface AccessPolicy {
  /** The address or name the server is bound to. */
  host: string;
  /** Extra Host names: `name` exactly, `.example.com` for it and its subdomains, `*` for any. */
  allowedHosts: readonly string[];
  /** Origins allowed to call the API cross-origin (`https://app.example`), or `*` for any. */
  cors: readonly string[];
}

/** The name of a Host header, lower-cased, without port, brackets or a trailing dot; null when malformed. */
export function hostName(header: string): string | null {
  const h = header.trim().toLowerCase();
  let name: string;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    name = h.slice(1, end);
    if (isIP(name) !== 6) return null;
    const rest = h.slice(end + 1);
    if (rest && !/^:\d{1,5}$/.test(rest)) return null;
    return name;
  }
  const colon = h.lastIndexOf(':');
  name = colon >= 0 ? h.slice(0, colon) : h;
  if (colon >= 0 && !/^\d{1,5}$/.test(h.slice(colon + 1))) return null;
  name = name.replace(/\.$/, '');
  return /^[a-z0-9_.-]+$/.test(name) ? name : null;
}

/**
 * Whether a Host header names this server: any IP literal (a rebinding attack needs a domain name), `localhost`
 * and `*.localhost` (which resolve to loopback), the bound host, or an `allowedHosts` entry. A request without
 * Host (HTTP/1.0) passes: browsers always send one.
 */
export function hostAllowed(header: string | undefined, p: AccessPolicy): boolean {
  if (header === undefined) return true;
  if (p.allowedHosts.includes('*')) return true;
  const name = hostName(header);
  if (name === null) return false;
  if (isIP(name) || name === 'localhost' || name.endsWith('.localhost')) return true;
  if (name === p.host.toLowerCase().replace(/^\[|\]$/g, '')) return true;
  return p.allowedHosts.some((a) => {
    const entry = a.toLowerCase();
    return entry.startsWith('.') ? name === entry.slice(1) || name.endsWith(entry) : name === entry;
  });
}

/** 421 unless the request's Host names this server. */
export function checkHost(req: IncomingMessage, p: AccessPolicy): void {
  const host = req.headers.host;
  if (hostAllowed(host, p)) return;
  const shown = String(host).slice(0, 100);
  const name = hostName(shown) ?? shown;
  throw new HttpError(421, 'host_not_allowed', `Host '${shown}' is not allowed (a guard against DNS rebinding); open the server by localhost or its IP address, or start it with --allowed-hosts ${name}`);
}

/**
 * How an API request's Origin relates to the server: 'none' (no Origin: curl, scripts), 'same' (the page this
 * server serves), 'allowed' (a --cors origin) or 'refused'.
 */
export function originStatus(req: IncomingMessage, p: AccessPolicy): 'none' | 'same' | 'allowed' | 'refused' {
  const origin = req.headers.origin;
  if (origin === undefined) return 'none';
  let sameHost = false;
  try {
    const u = new URL(origin);
    sameHost = (u.protocol === 'http:' || u.protocol === 'https:') && u.host === (req.headers.host ?? '').toLowerCase();
  } catch {
    sameHost = false; // 'null' (sandboxed frames, file://) and garbage
  }
  if (sameHost) return 'same';
  if (p.cors.includes('*') || p.cors.includes(origin)) return 'allowed';
  return 'refused';
}

function crossOrigin(req: IncomingMessage, path: string): HttpError {
  const origin = String(req.headers.origin).slice(0, 200);
  return new HttpError(403, 'cross_origin', `requests from origin ${origin} may not ${req.method === 'OPTIONS' ? 'POST' : req.method} ${path}; start the server with --cors ${origin} to allow it`);
}

/** The CORS response headers for an allowed origin. */
function corsHeaders(req: IncomingMessage, p: AccessPolicy): Record<string, string> {
  return {
    'Access-Control-Allow-Origin': p.cors.includes('*') ? '*' : String(req.headers.origin),
    'Access-Control-Expose-Headers': 'X-Panseg-Stats, Server-Timing, Retry-After',
    // A page from another origin reads the answer through CORS; CORP must not block it.
    'Cross-Origin-Resource-Policy': 'cross-origin',
  };
}

/**
 * The Origin rules of an API route: refuses a cross-origin POST (403) unless --cors allows it, adds the CORS
 * headers for allowed origins, and answers a preflight (OPTIONS). Returns true when the request was answered.
 */
export function applyCors(req: IncomingMessage, res: ServerResponse, p: AccessPolicy, path: string, methods: readonly string[]): boolean {
  res.setHeader('Vary', 'Origin');
  const status = originStatus(req, p);
  if (status === 'refused') {
    // Reading answers cross-origin is the browser's business (no CORS headers, no access); writes are refused here.
    if (req.method === 'GET' || req.method === 'HEAD') return false;
    throw crossOrigin(req, path);
  }
  if (status !== 'allowed') return false;
  for (const [k, v] of Object.entries(corsHeaders(req, p))) res.setHeader(k, v);
  if (req.method !== 'OPTIONS') return false;
  res.writeHead(204, {
    'Access-Control-Allow-Methods': methods.join(', '),
    'Access-Control-Allow-Headers': 'Content-Type',
    'Access-Control-Max-Age': '600',
    'Content-Length': '0',
  });
  res.end();
  return true;
}
