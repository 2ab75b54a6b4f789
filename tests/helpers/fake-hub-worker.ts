// A local stand-in for the Hugging Face Hub, run in a worker thread so that it answers while the
// main thread waits inside a synchronous download (model constructors). Two servers on 127.0.0.1:
//   hub: HEAD/GET /<org>/<name>/resolve/<revision>/<file>, with X-Repo-Commit and ETag; LFS files
//        answer 302 to the cdn with X-Linked-Etag (sha256) and X-Linked-Size, as huggingface.co does;
//        missing repo 401 RepositoryNotFound, revision 404 RevisionNotFound, file 404 EntryNotFound.
//   cdn: GET /blob/<sha256> with Range support; can cut a body mid-way or corrupt it, once.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort } from 'node:worker_threads';

interface Entry { bytes: Buffer; lfs: boolean; sha256: string; gitSha1: string }
interface Repo { commit: string; branches: Set<string>; files: Map<string, Entry> }

const repos = new Map<string, Repo>();
const blobs = new Map<string, Buffer>();
const cfg: { cutAfter: number | null; corrupt: boolean; token: string | null } = { cutAfter: null, corrupt: false, token: null };
const port = parentPort!;

function log(server: string, req: IncomingMessage): void {
  port.postMessage({ type: 'request', server, method: req.method, url: req.url, range: req.headers.range ?? null, authorization: req.headers.authorization ?? null });
}

function hub(req: IncomingMessage, res: ServerResponse, cdnBase: string): void {
  log('hub', req);
  const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec((req.url ?? '').split('?')[0]);
  const error = (status: number, code: string, message: string) => {
    res.writeHead(status, { 'x-error-code': code, 'x-error-message': message, 'content-type': 'application/json' });
    res.end(req.method === 'HEAD' ? undefined : JSON.stringify({ error: message }));
  };
  if (!m) return error(404, 'NotFound', 'not a resolve URL');
  const [, repoId, rev, file] = m;
  const revision = decodeURIComponent(rev);
  const repo = repos.get(repoId);
  const authorized = !cfg.token || req.headers.authorization === `Bearer ${cfg.token}`;
  if (!repo || !authorized) return error(401, 'RepositoryNotFound', 'Repository not found');
  if (revision !== repo.commit && !repo.branches.has(revision)) return error(404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
  const entry = repo.files.get(file.split('/').map(decodeURIComponent).join('/'));
  if (!entry) return error(404, 'EntryNotFound', `${file} does not exist`);
  if (entry.lfs) {
    res.writeHead(302, {
      location: `${cdnBase}/blob/${entry.sha256}?sig=abc`,
      'x-repo-commit': repo.commit,
      'x-linked-etag': `"${entry.sha256}"`,
      'x-linked-size': String(entry.bytes.length),
      etag: `W/"${entry.gitSha1}"`, // the pointer's etag: the client must prefer X-Linked-Etag
      'content-length': '0',
    });
    return void res.end();
  }
  res.writeHead(200, { 'x-repo-commit': repo.commit, etag: `"${entry.gitSha1}"`, 'content-length': String(entry.bytes.length) });
  res.end(req.method === 'HEAD' ? undefined : entry.bytes);
}

function cdn(req: IncomingMessage, res: ServerResponse): void {
  log('cdn', req);
  const m = /^\/blob\/([0-9a-f]{64})/.exec(req.url ?? '');
  const blob = m ? blobs.get(m[1]) : undefined;
  if (!blob) { res.writeHead(404); return void res.end(); }
  let start = 0;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range) {
    start = Number(range[1]);
    if (start >= blob.length) { res.writeHead(416, { 'content-range': `bytes */${blob.length}` }); return void res.end(); }
    res.writeHead(206, { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'content-length': String(blob.length - start) });
  } else {
    res.writeHead(200, { 'content-length': String(blob.length) });
  }
  let body = blob.subarray(start);
  if (cfg.corrupt) {
    cfg.corrupt = false;
    body = Buffer.from(body);
    body[body.length >> 1] ^= 0xff;
  }
  if (cfg.cutAfter !== null) {
    const n = cfg.cutAfter;
    cfg.cutAfter = null;
    res.write(body.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 20));
    return;
  }
  res.end(body);
}

async function listen(s: Server): Promise<string> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

const cdnServer = createServer(cdn);
const cdnBase = await listen(cdnServer);
const hubServer = createServer((req, res) => hub(req, res, cdnBase));
const hubBase = await listen(hubServer);

port.on('message', async (msg: { id: number; op: string; [k: string]: unknown }) => {
  const reply = (data: Record<string, unknown> = {}) => port.postMessage({ type: 'reply', id: msg.id, ...data });
  if (msg.op === 'addRepo') {
    const files = new Map<string, Entry>();
    for (const [name, bytes] of Object.entries(msg.files as Record<string, Uint8Array>)) {
      const b = Buffer.from(bytes);
      const sha256 = createHash('sha256').update(b).digest('hex');
      const gitSha1 = createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
      const lfs = (msg.lfs as string[]).includes(name);
      files.set(name, { bytes: b, lfs, sha256, gitSha1 });
      if (lfs) blobs.set(sha256, b);
    }
    repos.set(msg.repoId as string, { commit: msg.commit as string, branches: new Set(msg.branches as string[]), files });
    reply();
  } else if (msg.op === 'configure') {
    Object.assign(cfg, msg.cfg);
    reply();
  } else if (msg.op === 'ping') {
    reply();
  } else if (msg.op === 'stop') {
    hubServer.closeAllConnections();
    cdnServer.closeAllConnections();
    await Promise.all([new Promise((r) => hubServer.close(r)), new Promise((r) => cdnServer.close(r))]);
    reply();
    port.close();
  }
});
port.postMessage({ type: 'ready', hub: hubBase, cdn: cdnBase });
