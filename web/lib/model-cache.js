// @ts-check
// The model in the browser's Cache API, keyed by its sha256 (from the sidecar), so a reload does not
// download it again. The Cache API needs a secure context (https, or localhost); elsewhere, and for
// sidecars without a hash (older exports), the model is simply downloaded.
import { download } from './runtime.js';

export const CACHE_NAME = 'panseg-models';

/**
 * The cache key of a model: its URL with the hash as a query, so a re-exported model is a new entry.
 * @param {string} url
 * @param {string} sha256
 */
export function cacheKey(url, sha256) {
  const u = new URL(url, document.baseURI);
  u.search = `sha256=${sha256}`;
  return u.href;
}

/** @param {Uint8Array} bytes @returns {Promise<string>} hex sha256 */
export async function sha256Hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', /** @type {Uint8Array<ArrayBuffer>} */ (bytes)));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The model's bytes: from the Cache API when an entry with this hash is there, else downloaded, checked
 * against the hash and stored (older entries of the same URL are removed).
 * @param {string} url
 * @param {string | null} sha256 the sidecar's hash of the file, or null (no caching)
 * @param {(loaded: number, total: number) => void} [onProgress]
 * @returns {Promise<{ bytes: Uint8Array, source: 'cache' | 'network', note?: string }>}
 */
export async function loadModelBytes(url, sha256, onProgress) {
  if (!sha256 || !globalThis.caches || !globalThis.crypto?.subtle) return { bytes: await download(url, onProgress), source: 'network' };
  const key = cacheKey(url, sha256);
  /** @type {Cache | null} */
  let cache = null;
  try {
    cache = await caches.open(CACHE_NAME);
    const hit = await cache.match(key);
    if (hit) return { bytes: new Uint8Array(await hit.arrayBuffer()), source: 'cache' };
  } catch { /* storage blocked (private mode, quota): download as usual */ }
  const bytes = await download(url, onProgress);
  if (!cache) return { bytes, source: 'network' };
  if ((await sha256Hex(bytes)) !== sha256) return { bytes, source: 'network', note: `${url} does not match its sidecar's sha256 (re-exported while loading?); not cached` };
  try {
    const path = new URL(key).pathname;
    for (const old of await cache.keys()) if (new URL(old.url).pathname === path && old.url !== key) await cache.delete(old);
    await cache.put(key, new Response(/** @type {Uint8Array<ArrayBuffer>} */ (bytes), { headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) } }));
  } catch (e) {
    return { bytes, source: 'network', note: `the model could not be cached: ${/** @type {Error} */ (e).message}` };
  }
  return { bytes, source: 'network' };
}
