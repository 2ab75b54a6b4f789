// `panseg serve` as a user runs it: starts, prints where, answers, stops cleanly on Ctrl+C.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { saveTinyModel, testImage, tmp } from './helpers.js';

const root = new URL('../..', import.meta.url).pathname;
const cli = ['--import', 'tsx', 'src/cli/main.ts', 'serve'];
let modelDir: string;
let cleanup: () => void;

before(() => {
  const t = tmp('panseg-serve-cli-');
  cleanup = t.cleanup;
  modelDir = saveTinyModel(t.dir);
});
after(() => cleanup?.());

test('panseg serve starts, logs requests and stops on SIGINT after finishing', { timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, [...cli, '--model', modelDir, '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d; });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    // The banner ends with the Ctrl+C hint.
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d;
        if (out.includes('Ctrl+C stops it\n')) resolve();
      });
      void exited.then((code) => reject(new Error(`panseg serve exited with ${code}: ${out}${err}`)));
    });
    assert.match(out, /^serve: exported .* to .*model\.onnx \(\d+\.\d MB, \d+ ms\)$/m);
    const url = /^panseg serve: PAN-resnet18, 3 classes, on (http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(out)?.[1];
    assert.ok(url, out);
    assert.match(out, /^ {2}API: POST http:\/\/127\.0\.0\.1:\d+\/api\/segment /m);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    // The serve process blocks libvips' other loaders; PNG, JPEG and WebP still decode.
    for (const f of ['png', 'jpeg', 'webp'] as const) {
      const seg = await fetch(new URL('/api/segment', url), { method: 'POST', body: await testImage(40, 30, f), headers: { 'Content-Type': `image/${f}` } });
      assert.equal(seg.status, 200, f);
      assert.equal(((await seg.json()) as { width: number }).width, 40);
    }
    const health = await fetch(new URL('/healthz', url));
    assert.deepEqual(await health.json(), { status: 'ok', model: 'PAN-resnet18', queue: 0, maxQueue: 32 });
    // The access log line is written once the response has finished, which can be after the client has it.
    for (let i = 0; i < 200 && !/^GET \/ 200 /m.test(out); i++) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGINT');
    assert.equal(await exited, 0, err);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  assert.match(out, /^GET \/ 200 \d+ ms$/m);
  assert.match(out, /panseg serve: SIGINT, finishing running requests…\npanseg serve: stopped\n$/);
});

test('panseg serve refuses bad arguments with one line and exit code 2', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [...cli, ...args], { cwd: root, encoding: 'utf8' });
  const noModel = run();
  assert.equal(noModel.status, 2);
  assert.equal(noModel.stderr, "panseg serve: 'panseg serve' needs --model (see panseg serve --help)\n");
  const noOnnx = run('--model', modelDir, '--onnx', '/nonexistent/pan.onnx');
  assert.equal(noOnnx.status, 2);
  assert.match(noOnnx.stderr, /^panseg serve: startServer: ONNX file \/nonexistent\/pan\.onnx not found; export one with 'panseg export --model .* --out \/nonexistent\/pan\.onnx', or leave --onnx out to export on start\n$/);
  const badSize = run('--model', modelDir, '--max-upload-mb', '0');
  assert.equal(badSize.status, 2);
  assert.equal(badSize.stderr, 'panseg serve: --max-upload-mb expects a positive number, got 0\n');
  const bad: [string[], string][] = [
    [['--body-timeout', '0'], '--body-timeout expects seconds in (0, 86400], got 0'],
    [['--max-pixels', '0'], '--max-pixels expects a positive integer, got 0'],
    [['--cors', 'https://app.example/path'], "--cors expects origins like https://app.example (scheme and host, no path) or '*', got 'https://app.example/path'"],
    [['--allowed-hosts', 'evil host'], "--allowed-hosts expects host names (example.com, .example.com for subdomains, or '*'), got 'evil host'"],
  ];
  for (const [args, message] of bad) {
    const r = run('--model', modelDir, ...args);
    assert.equal(r.status, 2, args.join(' '));
    assert.equal(r.stderr, `panseg serve: ${message}\n`);
  }
  const help = run('--help');
  for (const flag of ['--max-pixels', '--max-queue', '--body-timeout', '--idle-timeout', '--headers-timeout', '--max-connections', '--allowed-hosts', '--cors']) assert.match(help.stdout, new RegExp(flag));
});
