// The ONNX export cache (issue 15): a per-user directory created 0700 and checked when it exists, never the shared
// temp folder, and files written through a private temp directory so a planted symlink is never followed.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cachedOnnx, cacheDir } from '../../src/export/cache.js';
import { onnxCachePath } from '../../src/serve/index.js';
import { saveTinyModel, tmp } from '../web/helpers.js';

let dir: string;
let cleanup: () => void;
let modelDir: string;
const saved = { xdg: process.env.XDG_CACHE_HOME, panseg: process.env.PANSEG_CACHE_DIR };

before(() => {
  ({ dir, cleanup } = tmp('panseg-cache-'));
  modelDir = saveTinyModel(join(dir, 'm'));
  delete process.env.PANSEG_CACHE_DIR;
  process.env.XDG_CACHE_HOME = join(dir, 'xdg');
});

after(() => {
  if (saved.xdg === undefined) delete process.env.XDG_CACHE_HOME; else process.env.XDG_CACHE_HOME = saved.xdg;
  if (saved.panseg !== undefined) process.env.PANSEG_CACHE_DIR = saved.panseg;
  cleanup?.();
});

const mode = (p: string): number => statSync(p).mode & 0o777;

test('the cache is $XDG_CACHE_HOME/panseg, created with mode 0700', () => {
  assert.equal(cacheDir(), join(dir, 'xdg', 'panseg'));
  const path = cachedOnnx(modelDir);
  assert.ok(path.startsWith(join(dir, 'xdg', 'panseg', 'onnx') + '/'), path);
  assert.equal(mode(join(dir, 'xdg', 'panseg')), 0o700);
  assert.equal(mode(join(dir, 'xdg', 'panseg', 'onnx')), 0o700);
  assert.ok(existsSync(`${path}.json`));
  assert.deepEqual(readdirSync(join(dir, 'xdg', 'panseg', 'onnx')).filter((f) => f.includes('tmp')), [], 'no temp leftovers');
});

test('a symlink planted at a temp name beside the cache file is not followed', () => {
  const path = cachedOnnx(modelDir); // fresh: returns the cached file
  rmSync(path);
  rmSync(`${path}.json`);
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'precious');
  // The names an exporter writing `<file>.tmp-<pid>` beside its target would use.
  for (const name of [`${path}.tmp-${process.pid}`, `${path}.json.tmp-${process.pid}`]) symlinkSync(victim, name);
  assert.equal(cachedOnnx(modelDir), path);
  assert.equal(readFileSync(victim, 'utf8'), 'precious');
  assert.ok(lstatSync(path).isFile() && !lstatSync(path).isSymbolicLink());
  assert.ok(statSync(path).size > 1000);
});

test('an existing cache directory writable by others, or owned by another user, is refused', () => {
  const shared = join(dir, 'shared');
  mkdirSync(shared, { mode: 0o777 });
  chmodSync(shared, 0o777);
  assert.throws(() => cachedOnnx(modelDir, { cacheDir: shared }), new RegExp(`^PansegError: cachedOnnx: the cache directory ${shared} is writable by other users \\(mode 0777\\); run 'chmod 700 ${shared}' or set PANSEG_CACHE_DIR$`));
  if (process.getuid?.() === 0) {
    const foreign = join(dir, 'foreign');
    mkdirSync(foreign, { mode: 0o700 });
    chownSync(foreign, 1234, 1234);
    assert.throws(() => cachedOnnx(modelDir, { cacheDir: foreign }), /the cache directory .*foreign belongs to user 1234, not to you \(0\); remove it or set PANSEG_CACHE_DIR to a directory of your own/);
  }
});

test('serve caches the export of a read-only model directory in the per-user cache, not the temp folder', () => {
  const path = onnxCachePath(modelDir, false);
  assert.ok(path.startsWith(join(cacheDir(), 'serve') + '/'), path);
  assert.ok(!path.startsWith(join(tmpdir(), 'panseg-onnx-')), path);
  assert.equal(mode(join(cacheDir(), 'serve')), 0o700);
  assert.equal(onnxCachePath(modelDir, true), join(modelDir, 'model.onnx'));
});
