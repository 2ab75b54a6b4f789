// io/hub.ts against a local fake Hub (tests/helpers/fake-hub.ts): download into huggingface_hub's
// cache layout, cache hits without requests, offline mode, integrity, errors, resume, token, locks.
// Nothing here reaches the internet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cachedHubFile, hubCacheDir, hubDownload, hubDownloadSync, hubSnapshot, isRepoId, repoFolderName } from '../../src/io/hub.js';
import { closedEndpoint, FakeHub, gitSha1, sha256, withHubEnv } from '../helpers/fake-hub.js';

const REPO = 'smp-hub/resnet18.imagenet';
const CONFIG = '{"input_space": "RGB", "mean": [0.485, 0.456, 0.406]}\n';

async function withHub<T>(fn: (hub: FakeHub, cache: string) => Promise<T>, extra: Record<string, string> = {}): Promise<T> {
  const hub = await FakeHub.start();
  try { return await withHubEnv(hub.endpoint, (cache) => fn(hub, cache), extra); } finally { await hub.stop().catch(() => {}); }
}

async function rejectsWith(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<string> {
  try { await p; } catch (e) {
    const msg = (e as Error).message;
    assert.equal((e as Error).name, 'PansegError', msg);
    for (const part of parts) assert.ok(typeof part === 'string' ? msg.includes(part) : part.test(msg), `message lacks ${part}:\n${msg}`);
    return msg;
  }
  return assert.fail('expected a rejection');
}

test('names: cache folder from HF_HUB_CACHE / HF_HOME / ~/.cache, repo folder, repo ids', () => {
  assert.equal(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' }), '/c');
  assert.equal(hubCacheDir({ HF_HOME: '/h' }), join('/h', 'hub'));
  assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), join('/x', 'huggingface', 'hub'));
  assert.ok(hubCacheDir({}).endsWith(join('.cache', 'huggingface', 'hub')));
  assert.equal(repoFolderName('smp-hub/resnet34.imagenet'), 'models--smp-hub--resnet34.imagenet');
  for (const ok of ['smp-hub/resnet34.imagenet', 'org/my_model-2']) assert.ok(isRepoId(ok), ok);
  for (const bad of ['runs', 'a/b/c', '/abs/path', './rel/x', 'a--b/c', 'a/..', '', 'a/b.']) assert.ok(!isRepoId(bad), bad);
});

test('first download: huggingface_hub layout (blobs by etag, relative snapshot symlinks, refs), LFS via the cdn redirect', async () => {
  await withHub(async (hub, cache) => {
    const weights = randomBytes(300_000);
    const commit = await hub.addRepo({ repoId: REPO, files: { 'config.json': CONFIG, 'model.safetensors': weights } });
    const w = await hubDownload(REPO, 'model.safetensors');
    const c = await hubDownload(REPO, 'config.json');
    const repoDir = join(cache, 'models--smp-hub--resnet18.imagenet');
    assert.deepEqual(w, { path: join(repoDir, 'snapshots', commit, 'model.safetensors'), commit, fromCache: false });
    assert.equal(c.path, join(repoDir, 'snapshots', commit, 'config.json'));
    assert.ok(lstatSync(w.path).isSymbolicLink());
    assert.equal(readlinkSync(w.path), join('..', '..', 'blobs', sha256(weights)));
    assert.equal(readlinkSync(c.path), join('..', '..', 'blobs', gitSha1(CONFIG))); // a git file's etag is its blob sha1
    assert.deepEqual(readFileSync(w.path), weights);
    assert.equal(readFileSync(c.path, 'utf8'), CONFIG);
    assert.equal(readFileSync(join(repoDir, 'refs', 'main'), 'utf8'), commit);
    assert.deepEqual(readdirSync(join(repoDir, 'blobs')).sort(), [gitSha1(CONFIG), sha256(weights)].sort()); // no .incomplete left
    const reqs = await hub.settle();
    assert.deepEqual(reqs.map((r) => `${r.server} ${r.method} ${r.url}`), [
      `hub HEAD /${REPO}/resolve/main/model.safetensors`,
      `cdn GET /blob/${sha256(weights)}?sig=abc`,
      `hub HEAD /${REPO}/resolve/main/config.json`,
      `hub GET /${REPO}/resolve/main/config.json`,
    ]);
    assert.ok(reqs.every((r) => r.authorization === null));
  });
});

test('a cached file is used without a request, also with the server stopped; cachedHubFile finds it', async () => {
  const hub = await FakeHub.start();
  await withHubEnv(hub.endpoint, async () => {
    const commit = await hub.addRepo({ repoId: REPO, files: { 'model.safetensors': randomBytes(1000) } });
    const first = await hubDownload(REPO, 'model.safetensors');
    await hub.stop();
    const again = await hubDownload(REPO, 'model.safetensors');
    assert.deepEqual(again, { ...first, fromCache: true });
    const pinned = await hubDownload(REPO, 'model.safetensors', { revision: commit });
    assert.equal(pinned.path, first.path);
    assert.equal(cachedHubFile(REPO, 'model.safetensors'), first.path);
    assert.equal(cachedHubFile(REPO, 'config.json'), null);
    assert.deepEqual(hubDownloadSync(REPO, 'model.safetensors'), { ...first, fromCache: true });
  });
});

test('HF_HUB_OFFLINE=1: the cache only; a miss names repo, file, the path looked at and how to place it by hand', async () => {
  await withHub(async (hub, cache) => {
    const commit = await hub.addRepo({ repoId: REPO, files: { 'model.safetensors': randomBytes(1000) } });
    const got = await hubDownload(REPO, 'model.safetensors');
    process.env.HF_HUB_OFFLINE = '1';
    const n = (await hub.settle()).length;
    assert.equal((await hubDownload(REPO, 'model.safetensors')).path, got.path);
    const repoDir = join(cache, repoFolderName(REPO));
    const msg = await rejectsWith(hubDownload(REPO, 'config.json'), 'hubDownload: smp-hub/resnet18.imagenet: config.json (revision main) is not in the Hugging Face cache and HF_HUB_OFFLINE is set',
      `Looked for ${join(repoDir, 'snapshots', commit, 'config.json')}`, `download ${hub.endpoint}/${REPO}/resolve/main/config.json on a connected machine`);
    assert.ok(!msg.includes('\n    at '), 'no stack trace in the message');
    // A repo never cached: the commit is unknown, so the message also says where the ref goes.
    await rejectsWith(hubDownload('org/other', 'model.safetensors', { op: 'encoderWeights' }), 'encoderWeights: org/other: model.safetensors',
      join(cache, 'models--org--other', 'snapshots', '<commit>', 'model.safetensors'), `write that commit hash into ${join(cache, 'models--org--other', 'refs', 'main')}`);
    assert.throws(() => hubDownloadSync('org/other', 'model.safetensors'), /HF_HUB_OFFLINE is set/);
    assert.equal((await hub.settle()).length, n, 'offline: no request');
  });
});

test('no network: a cache miss says the Hub cannot be reached', async () => {
  await withHubEnv(await closedEndpoint(), async () => {
    await rejectsWith(hubDownload(REPO, 'model.safetensors'), 'is not in the Hugging Face cache and the Hub at http://127.0.0.1:', 'cannot be reached (ECONNREFUSED)', 'To place it by hand');
  });
});

test('a corrupted transfer (sha256 mismatch) is an error naming the file and both hashes; the blob is not kept', async () => {
  await withHub(async (hub, cache) => {
    const weights = randomBytes(200_000);
    await hub.addRepo({ repoId: REPO, files: { 'model.safetensors': weights } });
    await hub.configure({ corrupt: true });
    const msg = await rejectsWith(hubDownload(REPO, 'model.safetensors'), `hubDownload: ${REPO} model.safetensors: the downloaded file's sha256 is `, `but the Hub gives ${sha256(weights)}`, 'was not kept');
    const bad = /sha256 is ([0-9a-f]{64})/.exec(msg)![1];
    assert.notEqual(bad, sha256(weights));
    const repoDir = join(cache, repoFolderName(REPO));
    assert.deepEqual(readdirSync(join(repoDir, 'blobs')), []);
    assert.equal(cachedHubFile(REPO, 'model.safetensors'), null);
    // The next attempt downloads afresh and succeeds.
    const ok = await hubDownload(REPO, 'model.safetensors');
    assert.deepEqual(readFileSync(ok.path), weights);
  });
});

test('404s: a missing repo, revision or file gets a clear message', async () => {
  await withHub(async (hub) => {
    await hub.addRepo({ repoId: REPO, files: { 'model.safetensors': randomBytes(100) } });
    await rejectsWith(hubDownload('org/nope', 'model.safetensors'), 'hubDownload: repository org/nope was not found on http://127.0.0.1:', 'if it is private or gated, set HF_TOKEN');
    await rejectsWith(hubDownload(REPO, 'model.safetensors', { revision: 'v9' }), `hubDownload: revision 'v9' was not found in ${REPO}`);
    await rejectsWith(hubDownload(REPO, 'weights.bin'), `hubDownload: weights.bin was not found in ${REPO} at revision main`);
    assert.equal(await hubDownload(REPO, 'panseg.json', { optional: true }), null);
  });
});

test('an interrupted download is resumed with a Range request from the .incomplete file', async () => {
  await withHub(async (hub, cache) => {
    const weights = randomBytes(1 << 20);
    await hub.addRepo({ repoId: REPO, files: { 'model.safetensors': weights } });
    await hub.configure({ cutAfter: 400_000 });
    const blob = join(cache, repoFolderName(REPO), 'blobs', sha256(weights));
    await rejectsWith(hubDownload(REPO, 'model.safetensors'), `hubDownload: download of ${REPO} model.safetensors failed: interrupted after 400000 of ${1 << 20} bytes`, `run again to resume from ${blob}.incomplete`);
    assert.equal(statSync(`${blob}.incomplete`).size, 400_000);
    assert.ok(!existsSync(blob));
    const got = await hubDownload(REPO, 'model.safetensors');
    assert.deepEqual(readFileSync(got.path), weights);
    assert.ok(!existsSync(`${blob}.incomplete`));
    const gets = (await hub.settle()).filter((r) => r.server === 'cdn');
    assert.deepEqual(gets.map((r) => r.range), [null, 'bytes=400000-']);
  });
});

test('HF_TOKEN goes to the Hub as a Bearer token, never to the cdn', async () => {
  await withHub(async (hub) => {
    await hub.addRepo({ repoId: 'org/private', files: { 'model.safetensors': randomBytes(5000) } });
    await hub.configure({ token: 'hf_secret' });
    await rejectsWith(hubDownload('org/private', 'model.safetensors', { token: null }), 'repository org/private was not found');
    const got = await hubDownload('org/private', 'model.safetensors');
    assert.ok(existsSync(got.path));
    const reqs = (await hub.settle()).slice(1);
    assert.deepEqual(reqs.map((r) => [r.server, r.authorization]), [['hub', 'Bearer hf_secret'], ['cdn', null]]);
  }, { HF_TOKEN: 'hf_secret' });
});

test("a file the Python client cached is used without a request (refs/<branch> or a commit's snapshot)", async () => {
  await withHubEnv(await closedEndpoint(), async (cache) => {
    const bytes = randomBytes(64);
    const commit = 'a'.repeat(40);
    const repoDir = join(cache, 'models--smp-hub--resnet34.imagenet');
    mkdirSync(join(repoDir, 'blobs'), { recursive: true });
    mkdirSync(join(repoDir, 'snapshots', commit), { recursive: true });
    mkdirSync(join(repoDir, 'refs'), { recursive: true });
    writeFileSync(join(repoDir, 'blobs', sha256(bytes)), bytes);
    symlinkSync(join('..', '..', 'blobs', sha256(bytes)), join(repoDir, 'snapshots', commit, 'model.safetensors'));
    writeFileSync(join(repoDir, 'refs', 'main'), commit); // huggingface_hub writes no newline; tolerate one anyway
    const byBranch = await hubDownload('smp-hub/resnet34.imagenet', 'model.safetensors');
    assert.deepEqual(byBranch, { path: join(repoDir, 'snapshots', commit, 'model.safetensors'), commit, fromCache: true });
    const byCommit = hubDownloadSync('smp-hub/resnet34.imagenet', 'model.safetensors', { revision: commit });
    assert.deepEqual(readFileSync(byCommit.path), bytes);
  });
});

test('hubDownloadSync waits for a download in a worker thread; hubSnapshot fixes one commit and skips absent optional files', async () => {
  await withHub(async (hub, cache) => {
    const weights = randomBytes(2 << 20);
    const commit = await hub.addRepo({ repoId: 'org/model', files: { 'config.json': '{}', 'model.safetensors': weights } });
    const got = hubDownloadSync('org/model', 'model.safetensors', { progress: true }); // the bar goes to stderr
    assert.deepEqual(readFileSync(got.path), weights);
    const dir = await hubSnapshot('org/model', { files: ['config.json', 'model.safetensors'], optional: ['panseg.json'] });
    assert.equal(dir, join(cache, 'models--org--model', 'snapshots', commit));
    assert.ok(existsSync(join(cache, 'models--org--model', '.no_exist', commit, 'panseg.json')), 'the absence is recorded as huggingface_hub does');
    const reqs = await hub.settle();
    assert.deepEqual(reqs.filter((r) => r.server === 'hub').map((r) => `${r.method} ${r.url}`), [
      'HEAD /org/model/resolve/main/model.safetensors',
      'HEAD /org/model/resolve/main/config.json',
      'GET /org/model/resolve/main/config.json',
      `HEAD /org/model/resolve/${commit}/panseg.json`,
    ]);
  });
});

test('concurrent downloads of one blob fetch it once (a lock per blob)', async () => {
  await withHub(async (hub) => {
    const weights = randomBytes(3 << 20);
    await hub.addRepo({ repoId: REPO, files: { 'model.safetensors': weights } });
    const all = await Promise.all([1, 2, 3].map(() => hubDownload(REPO, 'model.safetensors')));
    for (const r of all) assert.deepEqual(readFileSync(r.path), weights);
    assert.equal((await hub.settle()).filter((r) => r.server === 'cdn').length, 1);
  });
});

test('argument errors name the option', async () => {
  await rejectsWith(hubDownload('not a repo', 'x'), "hubDownload: expected a Hub repo id like 'org/name' but received 'not a repo' of type string");
  await rejectsWith(hubDownload(REPO, '../etc/passwd'), "hubDownload: expected a file path inside the repo but received '../etc/passwd' of type string");
  await rejectsWith(hubDownload(REPO, 'x', { revision: '../..' }), "hubDownload: expected a branch, tag or commit hash for revision but received '../..' of type string");
});
