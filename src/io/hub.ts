// Files from the Hugging Face Hub, downloaded on request only and kept in the Hub's own cache layout,
// so that what Python's huggingface_hub downloaded is found here and nothing is fetched twice:
//
//   <cache>/models--<org>--<name>/blobs/<etag>                 the bytes (etag = sha256 for LFS files)
//   <cache>/models--<org>--<name>/snapshots/<commit>/<file>    a relative symlink to the blob
//   <cache>/models--<org>--<name>/refs/<branch>                the commit the branch pointed at
//   <cache>/models--<org>--<name>/.no_exist/<commit>/<file>    an optional file the repo lacks
//
// Plain HTTPS through Node's fetch. Redirects are followed by hand: the first answer carries the
// commit and the etag, and the token must not travel to the CDN the Hub redirects LFS files to.
// A download goes to blobs/<etag>.incomplete (resumed with a Range request) and is renamed into
// place once its sha256 matches. No engine import: this module also runs in the worker thread that
// makes the synchronous API (model constructors) wait for a download.
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, createReadStream, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { isatty } from 'node:tty';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { describe, fail, PansegError } from '../common/errors.js';
import { ProgressBar } from '../common/progress.js';

/** Where and how to reach the Hub; every field defaults to its environment variable. */
export interface HubOptions {
  /** Branch, tag or commit hash. Default 'main'. */
  revision?: string;
  /** Default HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Sent as `Authorization: Bearer` to the endpoint only (never to the CDN). Default HF_TOKEN. */
  token?: string | null;
  /** Default HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Cache only, no request. Default: HF_HUB_OFFLINE is 1/true/yes/on. */
  offline?: boolean;
  /** A progress bar on stderr for files of 1 MiB and more. Default: on unless HF_HUB_DISABLE_PROGRESS_BARS is set. */
  progress?: boolean;
  /** Names the public entry in error messages. Default 'hubDownload'. */
  op?: string;
}

/** A file resolved to the local cache. */
export interface HubFile {
  /** snapshots/<commit>/<file> in the cache (a symlink to the blob, as huggingface_hub makes). */
  path: string;
  /** The commit the revision resolved to. */
  commit: string;
  /** True when no request was made. */
  fromCache: boolean;
}

interface Settings {
  revision: string;
  endpoint: string;
  token: string | null;
  cacheDir: string;
  offline: boolean;
  progress: boolean;
  op: string;
}

const TRUE = new Set(['1', 'ON', 'YES', 'TRUE']);
const envTrue = (v: string | undefined): boolean => v !== undefined && TRUE.has(v.trim().toUpperCase());
const COMMIT = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const MiB = 1 << 20;

/** The cache root: HF_HUB_CACHE, else HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE; // huggingface_hub's legacy name
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface', 'hub');
}

/** True when HF_HUB_OFFLINE asks for the cache only. */
export function hubOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return envTrue(env.HF_HUB_OFFLINE);
}

/** True for `org/name` as the Hub spells repo ids (letters, digits, '-', '_', '.'; no '--' or '..'). */
export function isRepoId(s: unknown): s is string {
  return typeof s === 'string' && /^[A-Za-z0-9][\w.-]{0,95}\/[\w.-]{1,96}$/.test(s) && !s.includes('--') && !s.includes('..') && !s.endsWith('.');
}

/** The repo's folder in the cache: `models--org--name`. */
export function repoFolderName(repoId: string): string {
  return `models--${repoId.split('/').join('--')}`;
}

function settings(o: HubOptions = {}): Settings {
  const env = process.env;
  const op = o.op ?? 'hubDownload';
  const revision = o.revision ?? 'main';
  if (typeof revision !== 'string' || !revision || revision.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    fail(op, `expected a branch, tag or commit hash for revision but received ${describe(revision)}`);
  }
  const endpoint = (o.endpoint ?? (env.HF_ENDPOINT || 'https://huggingface.co')).replace(/\/+$/, '');
  if (!/^https?:\/\//.test(endpoint)) fail(op, `expected an http(s) URL for the Hub endpoint (HF_ENDPOINT) but received ${describe(endpoint)}`);
  return {
    revision,
    endpoint,
    token: o.token !== undefined ? o.token : (env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || null),
    cacheDir: o.cacheDir ?? hubCacheDir(env),
    offline: o.offline ?? hubOffline(env),
    progress: o.progress ?? !envTrue(env.HF_HUB_DISABLE_PROGRESS_BARS),
    op,
  };
}

function checkNames(op: string, repoId: string, filename: string): void {
  if (!isRepoId(repoId)) fail(op, `expected a Hub repo id like 'org/name' but received ${describe(repoId)}`);
  if (typeof filename !== 'string' || !filename || filename.startsWith('/') || filename.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    fail(op, `expected a file path inside the repo but received ${describe(filename)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The cache, read without any request (huggingface_hub's try_to_load_from_cache)

interface CacheLookup {
  /** The snapshot file when cached. */
  path: string | null;
  /** The commit the revision names, when known locally. */
  commit: string | null;
  /** True when .no_exist records that the repo lacks the file at that commit. */
  missing: boolean;
  repoDir: string;
}

function lookup(s: Settings, repoId: string, filename: string): CacheLookup {
  const repoDir = join(s.cacheDir, repoFolderName(repoId));
  let commit: string | null = COMMIT.test(s.revision) ? s.revision : null;
  if (!commit) {
    try { commit = readFileSync(join(repoDir, 'refs', s.revision), 'utf8').trim() || null; } catch { commit = null; }
  }
  if (!commit) return { path: null, commit: null, missing: false, repoDir };
  const path = join(repoDir, 'snapshots', commit, filename);
  if (existsSync(path)) return { path, commit, missing: false, repoDir }; // existsSync follows the link: a dangling one is a miss
  return { path: null, commit, missing: existsSync(join(repoDir, '.no_exist', commit, filename)), repoDir };
}

/**
 * The cached path of a Hub file, or null, without any request.
 * @example
 * cachedHubFile('smp-hub/resnet34.imagenet', 'model.safetensors', { revision: '7a57b34f723329ff020b3f8bc41771163c519d0c' });
 */
export function cachedHubFile(repoId: string, filename: string, o: HubOptions = {}): string | null {
  const s = settings(o);
  checkNames(s.op, repoId, filename);
  return lookup(s, repoId, filename).path;
}

const fileUrl = (s: Settings, repoId: string, revision: string, filename: string): string =>
  `${s.endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${filename.split('/').map(encodeURIComponent).join('/')}`;

/** The one message for a file that is needed but neither cached nor downloadable. */
function cacheMiss(s: Settings, repoId: string, filename: string, c: CacheLookup, why: string): never {
  const at = c.commit ?? (COMMIT.test(s.revision) ? s.revision : '<commit>');
  const where = join(c.repoDir, 'snapshots', at, filename);
  const refNote = c.commit || COMMIT.test(s.revision) ? '' : ` (<commit>: the commit hash '${s.revision}' points to), and write that commit hash into ${join(c.repoDir, 'refs', s.revision)}`;
  fail(s.op, `${repoId}: ${filename} (revision ${s.revision}) is not in the Hugging Face cache and ${why}. `
    + `Looked for ${where}. To place it by hand, download ${fileUrl(s, repoId, s.revision, filename)} on a connected machine `
    + `and copy it to that path${refNote} (or copy that machine's ${repoFolderName(repoId)} cache folder here)`);
}

// ---------------------------------------------------------------------------------------------
// Requests

interface Metadata {
  commit: string;
  etag: string;
  /** Where the bytes are (the CDN for LFS files). */
  location: string;
  size: number | null;
}

class NetworkError extends Error {}

function reasonOf(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return err.message || 'timed out';
  const c = err?.cause;
  if (c?.code === 'UND_ERR_SOCKET') return 'the connection was closed';
  return c?.code ?? c?.message ?? err?.message ?? String(e);
}

function headers(s: Settings, url: string, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { 'user-agent': `panseg; node/${process.versions.node}`, 'accept-encoding': 'identity', ...extra };
  // The token goes to the Hub itself only, not to the storage it redirects to.
  if (s.token && new URL(url).origin === new URL(s.endpoint).origin) h.authorization = `Bearer ${s.token}`;
  return h;
}

const normEtag = (v: string | null): string | null => (v ? v.replace(/^W\//, '').replace(/^"|"$/g, '') : null);

/** A refusal by the Hub; `missing` tells what it does not have (for optional files). */
class HubAnswerError extends PansegError {
  constructor(message: string, readonly missing: 'repo' | 'revision' | 'file' | 'unknown' | null) { super(message); }
}

/** Turns the Hub's error answer into a message (X-Error-Code is what huggingface_hub reads too). */
function httpError(s: Settings, res: Response, repoId: string, revision: string, filename: string, url: string): never {
  const code = res.headers.get('x-error-code');
  const auth = s.token ? 'your HF_TOKEN may not have access to it' : 'if it is private or gated, set HF_TOKEN';
  const no = (msg: string, missing: HubAnswerError['missing']) => new HubAnswerError(`${s.op}: ${msg}`, missing);
  if (code === 'RepositoryNotFound' || (res.status === 401 && !code)) throw no(`repository ${repoId} was not found on ${s.endpoint} (${res.status}); check the name, or ${auth}`, 'repo');
  if (code === 'RevisionNotFound') throw no(`revision '${revision}' was not found in ${repoId} on ${s.endpoint}; check the branch, tag or commit hash`, 'revision');
  if (code === 'EntryNotFound') throw no(`${filename} was not found in ${repoId} at revision ${revision}`, 'file');
  if (code === 'GatedRepo' || res.status === 403) throw no(`${repoId} is gated or forbidden (${res.status}); accept its terms on the Hub and set HF_TOKEN`, null);
  if (res.status === 404) throw no(`${url} answered 404: the repository ${repoId}, its revision '${revision}' or ${filename} does not exist`, 'unknown');
  throw no(`${url} answered ${res.status} ${res.statusText}`.trimEnd(), null);
}

const timeoutMs = (v: string | undefined): number => (Number(v) > 0 ? Number(v) * 1000 : 10_000);

/** HEAD without following the redirect to the CDN: the first answer carries commit, etag and size. */
async function metadata(s: Settings, repoId: string, revision: string, filename: string): Promise<Metadata> {
  let url = fileUrl(s, repoId, revision, filename);
  for (let hop = 0; hop < 10; hop++) {
    let res: Response;
    try {
      res = await fetch(url, { method: 'HEAD', redirect: 'manual', headers: headers(s, url), signal: AbortSignal.timeout(timeoutMs(process.env.HF_HUB_ETAG_TIMEOUT)) });
    } catch (e) { throw new NetworkError(reasonOf(e)); }
    const h = res.headers;
    const commit = h.get('x-repo-commit');
    const etag = normEtag(h.get('x-linked-etag') ?? h.get('etag'));
    const redirect = res.status >= 300 && res.status < 400 && h.get('location');
    if (redirect && !commit) { url = new URL(redirect, url).href; continue; } // a renamed repo: follow
    if (!res.ok && !redirect) httpError(s, res, repoId, revision, filename, url);
    if (!commit || !etag) fail(s.op, `${url}: the answer lacks the X-Repo-Commit or ETag header; is ${s.endpoint} (HF_ENDPOINT) a Hugging Face Hub?`);
    if (!COMMIT.test(commit) || !/^[\w.-]+$/.test(etag)) fail(s.op, `${url}: unexpected X-Repo-Commit ${describe(commit)} or ETag ${describe(etag)}`);
    const sizeHeader = h.get('x-linked-size') ?? (redirect ? null : h.get('content-length'));
    return { commit, etag, location: redirect ? new URL(redirect, url).href : url, size: sizeHeader !== null && /^\d+$/.test(sizeHeader) ? Number(sizeHeader) : null };
  }
  fail(s.op, `${fileUrl(s, repoId, revision, filename)}: too many redirects`);
}

// ---------------------------------------------------------------------------------------------
// A lock per blob, so that the processes of a data-parallel run download it once

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function staleLock(path: string): boolean {
  try {
    const st = statSync(path);
    const owner = JSON.parse(readFileSync(path, 'utf8')) as { pid?: number; host?: string };
    if (owner.host === hostname() && typeof owner.pid === 'number') {
      try { process.kill(owner.pid, 0); return false; } catch (e) { return (e as NodeJS.ErrnoException).code === 'ESRCH'; }
    }
    return Date.now() - st.mtimeMs > 60_000; // the holder touches it while it downloads
  } catch {
    try { return Date.now() - statSync(path).mtimeMs > 60_000; } catch { return false; }
  }
}

async function withLock<T>(path: string, what: string, fn: (touch: () => void) => Promise<T>): Promise<T> {
  mkdirSync(dirname(path), { recursive: true });
  let told = false;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      try { writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname() })); } finally { closeSync(fd); }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (staleLock(path)) { rmSync(path, { force: true }); continue; }
      if (!told) { told = true; writeStderr(`panseg: waiting for another download of ${what} to finish (lock ${path})\n`); }
      await sleep(200);
    }
  }
  let last = Date.now();
  const touch = () => { if (Date.now() - last > 10_000) { last = Date.now(); try { const t = new Date(); utimesSync(path, t, t); } catch { /* gone */ } } };
  try { return await fn(touch); } finally { rmSync(path, { force: true }); }
}

// ---------------------------------------------------------------------------------------------
// Download

function writeStderr(text: string): void {
  try { writeSync(2, text); } catch { /* stderr closed */ } // direct: a waiting main thread cannot relay a worker's stderr
}

const stderrStream = { get isTTY() { return isatty(2); }, write(text: string) { writeStderr(text); return true; } } as unknown as NodeJS.WriteStream;

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Fetches `m.location` into `incomplete`, resuming what a previous attempt left there. */
async function fetchBlob(s: Settings, m: Metadata, incomplete: string, label: string, touch: () => void): Promise<void> {
  let start = existsSync(incomplete) ? statSync(incomplete).size : 0;
  if (m.size !== null && start > m.size) start = 0;
  if (m.size !== null && start === m.size && start > 0) return; // complete; the hash check decides
  const idle = timeoutMs(process.env.HF_HUB_DOWNLOAD_TIMEOUT);
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => { clearTimeout(timer); timer = setTimeout(() => ac.abort(new Error(`no data for ${idle / 1000} s`)), idle); };
  let url = m.location;
  let res: Response | undefined;
  try {
    arm();
    for (let hop = 0; hop < 10; hop++) {
      const extra: Record<string, string> = start > 0 ? { range: `bytes=${start}-` } : {};
      res = await fetch(url, { redirect: 'manual', headers: headers(s, url, extra), signal: ac.signal });
      const loc = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
      if (!loc) break;
      await res.body?.cancel();
      url = new URL(loc, url).href;
    }
  } catch (e) {
    clearTimeout(timer);
    throw new NetworkError(reasonOf(e));
  }
  if (!res) fail(s.op, `${label}: no answer`);
  if (res.status === 416 && start > 0) { // the server has nothing past our bytes: start over
    clearTimeout(timer);
    await res.body?.cancel();
    rmSync(incomplete, { force: true });
    return fetchBlob(s, m, incomplete, label, touch);
  }
  if (res.status !== 200 && res.status !== 206) { clearTimeout(timer); await res.body?.cancel(); fail(s.op, `${label}: ${url} answered ${res.status} ${res.statusText}`.trimEnd()); }
  if (res.status === 206) {
    const range = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
    if (!range || Number(range[1]) !== start) { clearTimeout(timer); await res.body?.cancel(); rmSync(incomplete, { force: true }); fail(s.op, `${label}: the server resumed at the wrong byte (${res.headers.get('content-range')}); run again to download afresh`); }
  } else start = 0; // 200: the whole file, from the first byte
  const total = m.size ?? (Number(res.headers.get('content-length')) + start || null);
  const fh = await open(incomplete, start > 0 ? 'a' : 'w');
  const bar = s.progress && total !== null && total >= MiB ? new ProgressBar(`${label} (MiB)`, Math.max(1, Math.round(total / MiB)), { stream: stderrStream }) : null;
  const t0 = performance.now();
  let got = start;
  try {
    if (res.body) {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        arm();
        await fh.write(chunk);
        got += chunk.byteLength;
        touch();
        bar?.update(Math.floor(got / MiB), { 'MiB/s': (((got - start) / MiB) / Math.max(1e-3, (performance.now() - t0) / 1000)).toFixed(1) });
      }
    }
  } catch (e) {
    const of = total !== null ? ` of ${total}` : '';
    throw new NetworkError(`interrupted after ${got}${of} bytes (${ac.signal.aborted ? reasonOf(ac.signal.reason) : reasonOf(e)}); run again to resume from ${incomplete}`);
  } finally {
    clearTimeout(timer);
    await fh.close();
  }
  bar?.finish(); // on a TTY ends the line; elsewhere prints the final line (update leaves it to finish)
  if (total !== null && got < total) throw new NetworkError(`interrupted after ${got} of ${total} bytes (the connection ended early); run again to resume from ${incomplete}`);
}

/** snapshots/<commit>/<file> -> ../../blobs/<etag>, as huggingface_hub links it (a copy where symlinks are refused). */
function linkPointer(pointer: string, blob: string): void {
  mkdirSync(dirname(pointer), { recursive: true });
  const target = relative(dirname(pointer), blob);
  try {
    if (lstatSync(pointer).isSymbolicLink() && readlinkSync(pointer) === target && existsSync(pointer)) return;
    unlinkSync(pointer);
  } catch { /* absent */ }
  try { symlinkSync(target, pointer); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return; // another process linked it meanwhile
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EINVAL') throw e;
    copyFileSync(blob, pointer);
  }
}

function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/**
 * Downloads one file of a Hub repo into the cache and returns its path there; a cached file is
 * returned without a request. With `optional`, a file the repo lacks resolves to null.
 * @example
 * const { path } = await hubDownload('smp-hub/resnet34.imagenet', 'model.safetensors', { revision: '7a57b34f723329ff020b3f8bc41771163c519d0c' });
 */
export async function hubDownload(repoId: string, filename: string, o?: HubOptions): Promise<HubFile>;
export async function hubDownload(repoId: string, filename: string, o: HubOptions & { optional: true }): Promise<HubFile | null>;
export async function hubDownload(repoId: string, filename: string, o: HubOptions & { optional?: boolean } = {}): Promise<HubFile | null> {
  return download(settings(o), repoId, filename, o.optional ?? false);
}

async function download(s: Settings, repoId: string, filename: string, optional: boolean): Promise<HubFile | null> {
  checkNames(s.op, repoId, filename);
  const c = lookup(s, repoId, filename);
  if (c.path) return { path: c.path, commit: c.commit!, fromCache: true };
  if (c.missing) return optional ? null : fail(s.op, `${filename} was not found in ${repoId} at revision ${s.revision} (recorded in ${join(c.repoDir, '.no_exist')})`);
  if (s.offline) {
    if (optional && c.commit) return null; // the snapshot is there without this optional file
    cacheMiss(s, repoId, filename, c, 'HF_HUB_OFFLINE is set');
  }
  let m: Metadata;
  try {
    m = await metadata(s, repoId, s.revision, filename);
  } catch (e) {
    // An optional file is asked for after the required ones, so a bare 404 means the file.
    if (e instanceof HubAnswerError && optional && (e.missing === 'file' || e.missing === 'unknown')) {
      if (c.commit) writeAtomic(join(c.repoDir, '.no_exist', c.commit, filename), '');
      return null;
    }
    if (!(e instanceof NetworkError)) throw e;
    if (optional && c.commit) return null;
    cacheMiss(s, repoId, filename, c, `the Hub at ${s.endpoint} cannot be reached (${e.message})`);
  }
  const repoDir = c.repoDir;
  if (s.revision !== m.commit) writeAtomic(join(repoDir, 'refs', s.revision), m.commit);
  const pointer = join(repoDir, 'snapshots', m.commit, filename);
  const blob = join(repoDir, 'blobs', m.etag);
  const label = `${repoId} ${filename}`;
  if (!existsSync(blob)) {
    mkdirSync(dirname(blob), { recursive: true });
    await withLock(join(s.cacheDir, '.locks', repoFolderName(repoId), `${m.etag}.panseg.lock`), label, async (touch) => {
      if (existsSync(blob)) return;
      const incomplete = `${blob}.incomplete`;
      try {
        await fetchBlob(s, m, incomplete, label, touch);
      } catch (e) {
        if (e instanceof NetworkError) fail(s.op, `download of ${label} failed: ${e.message}`);
        throw e;
      }
      if (SHA256.test(m.etag)) {
        const got = await sha256File(incomplete);
        if (got !== m.etag) {
          rmSync(incomplete, { force: true });
          fail(s.op, `${label}: the downloaded file's sha256 is ${got} but the Hub gives ${m.etag}; it was corrupted in transfer and was not kept; run again to download it afresh`);
        }
      } else if (m.size !== null && statSync(incomplete).size !== m.size) {
        const n = statSync(incomplete).size;
        rmSync(incomplete, { force: true });
        fail(s.op, `${label}: received ${n} bytes but the Hub gives ${m.size}; the file was not kept; run again to download it afresh`);
      }
      renameSync(incomplete, blob);
    });
  }
  linkPointer(pointer, blob);
  return { path: pointer, commit: m.commit, fromCache: false };
}

/**
 * Downloads several files of one repo at one commit (the first file fixes the commit) and returns
 * the snapshot folder holding them. `optional` files the repo lacks are skipped.
 * @example
 * const dir = await hubSnapshot('org/my-unet', { files: ['config.json', 'model.safetensors'], optional: ['panseg.json'] });
 */
export async function hubSnapshot(repoId: string, o: HubOptions & { files: string[]; optional?: string[] }): Promise<string> {
  const s = settings(o);
  let commit: string | null = null;
  let dir: string | null = null;
  for (const [i, f] of [...o.files, ...(o.optional ?? [])].entries()) {
    const optional = i >= o.files.length;
    const at = commit ? { ...s, revision: commit } : s;
    const r = await download(at, repoId, f, optional);
    if (!r) continue;
    commit ??= r.commit;
    dir ??= join(s.cacheDir, repoFolderName(repoId), 'snapshots', r.commit);
  }
  if (!dir) fail(s.op, `${repoId}: no files requested`);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// The synchronous API: model constructors and loadModel are synchronous, so a download runs in a
// worker thread while this thread waits on an Atomics flag. A cached file needs no worker.

type Job = { kind: 'file'; repoId: string; filename: string; optional: boolean; s: Settings } | { kind: 'snapshot'; repoId: string; files: string[]; optional: string[]; s: Settings };

/** Runs a job inside the worker (exported for the worker's bootstrap only). */
export async function runHubJob(job: Job): Promise<unknown> {
  if (job.kind === 'file') return download(job.s, job.repoId, job.filename, job.optional);
  return hubSnapshot(job.repoId, { ...job.s, files: job.files, optional: job.optional });
}

function runSync(job: Job): unknown {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const here = import.meta.url;
  // Under tsx (tests, `npm run bench`) the worker registers tsx itself: Node 20 does not pass --import to workers.
  const api = here.endsWith('.ts') ? import.meta.resolve('tsx/esm/api') : null;
  const boot = `(async () => {
    const { workerData: d } = await import('node:worker_threads');
    const done = (m) => { d.port.postMessage(m); Atomics.store(d.flag, 0, 1); Atomics.notify(d.flag, 0); };
    try {
      if (d.api) (await import(d.api)).register();
      const m = await import(d.script);
      done({ ok: await m.runHubJob(d.job) });
    } catch (e) { done({ error: { name: e && e.name, message: String(e && e.message || e) } }); }
  })();`;
  const worker = new Worker(boot, { eval: true, workerData: { flag, port: port2, job, api, script: here }, transferList: [port2] });
  worker.unref();
  try {
    for (;;) {
      Atomics.wait(flag, 0, 0, 60_000);
      const msg = receiveMessageOnPort(port1)?.message as { ok?: unknown; error?: { name: string; message: string } } | undefined;
      if (!msg) continue;
      if (msg.error) {
        if (msg.error.name === 'PansegError') throw new PansegError(msg.error.message);
        fail(job.s.op, `downloading from ${job.repoId} failed: ${msg.error.message}`);
      }
      return msg.ok;
    }
  } finally {
    port1.close();
    void worker.terminate();
  }
}

/** hubDownload for synchronous callers (a cached file is returned without starting a worker). */
export function hubDownloadSync(repoId: string, filename: string, o?: HubOptions): HubFile;
export function hubDownloadSync(repoId: string, filename: string, o: HubOptions & { optional: true }): HubFile | null;
export function hubDownloadSync(repoId: string, filename: string, o: HubOptions & { optional?: boolean } = {}): HubFile | null {
  const s = settings(o);
  checkNames(s.op, repoId, filename);
  const c = lookup(s, repoId, filename);
  if (c.path) return { path: c.path, commit: c.commit!, fromCache: true };
  if (s.offline || c.missing) return runSyncInline(s, repoId, filename, c, o.optional ?? false);
  return runSync({ kind: 'file', repoId, filename, optional: o.optional ?? false, s }) as HubFile | null;
}

/** The offline and known-missing answers need no worker. */
function runSyncInline(s: Settings, repoId: string, filename: string, c: CacheLookup, optional: boolean): HubFile | null {
  if (c.missing || (optional && c.commit)) return optional ? null : fail(s.op, `${filename} was not found in ${repoId} at revision ${s.revision} (recorded in ${join(c.repoDir, '.no_exist')})`);
  cacheMiss(s, repoId, filename, c, 'HF_HUB_OFFLINE is set');
}

/** hubSnapshot for synchronous callers (no worker when every file is cached). */
export function hubSnapshotSync(repoId: string, o: HubOptions & { files: string[]; optional?: string[] }): string {
  const s = settings(o);
  const first = o.files[0];
  if (first === undefined) fail(s.op, `${repoId}: no files requested`);
  for (const f of [...o.files, ...(o.optional ?? [])]) checkNames(s.op, repoId, f);
  const c = lookup(s, repoId, first);
  if (c.path) {
    const at = { ...s, revision: c.commit! };
    const rest = o.files.every((f) => lookup(at, repoId, f).path) && (o.optional ?? []).every((f) => { const l = lookup(at, repoId, f); return l.path || l.missing || s.offline; });
    if (rest) return join(c.repoDir, 'snapshots', c.commit!);
  }
  if (s.offline) {
    for (const f of o.files) {
      const l = lookup(c.commit ? { ...s, revision: c.commit } : s, repoId, f);
      if (!l.path) cacheMiss(s, repoId, f, l, 'HF_HUB_OFFLINE is set');
    }
  }
  return runSync({ kind: 'snapshot', repoId, files: o.files, optional: o.optional ?? [], s }) as string;
}
