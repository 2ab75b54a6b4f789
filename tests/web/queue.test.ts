// The server's inference queue: results, a crashed thread replaced, abandoned jobs dropped, shutdown.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { InferenceQueue } from '../../src/serve/queue.js';
import { saveTinyModel, testPixels, tmp } from './helpers.js';

let modelDir: string;
let cleanup: () => void;
const image = (w: number, h: number) => ({ data: testPixels(w, h), width: w, height: h });
// The thread is private; the tests kill it as a crash would.
const killThread = (q: InferenceQueue): Promise<number> => (q as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();

before(() => {
  const t = tmp('panseg-queue-');
  cleanup = t.cleanup;
  modelDir = saveTinyModel(t.dir);
});
after(() => cleanup?.());

test('segments on the thread: a palette PNG mask and class areas', { timeout: 60_000 }, async () => {
  const q = await InferenceQueue.start({ modelDir, threads: 1 });
  try {
    assert.deepEqual(q.info.classes, ['background', 'sky', 'road']);
    const r = await q.segment(image(70, 50));
    assert.deepEqual([r.width, r.height], [70, 50]);
    assert.deepEqual([...r.mask.subarray(1, 4)], [0x50, 0x4e, 0x47]);
    assert.equal(r.areas.reduce((s, a) => s + a.pixels, 0), 70 * 50);
    assert.ok(r.ms > 0 && r.queuedMs >= 0);
    assert.equal(q.pending, 0);
  } finally {
    await q.close();
  }
});

test('a crashed thread fails only its job; the next job gets a new thread', { timeout: 60_000 }, async () => {
  const q = await InferenceQueue.start({ modelDir });
  try {
    const running = q.segment(image(1024, 1024));
    await new Promise((r) => setTimeout(r, 200));
    await killThread(q);
    await assert.rejects(running, (e: Error & { status?: number; code?: string }) => e.status === 500 && e.code === 'inference_failed' && /the inference thread exited with code 1/.test(e.message));
    const after = await q.segment(image(64, 64));
    assert.equal(after.width, 64);
  } finally {
    await q.close();
  }
});

test('a job whose client left is dropped before it runs; close() refuses the queued ones', { timeout: 60_000 }, async () => {
  const q = await InferenceQueue.start({ modelDir });
  const slow = q.segment(image(1024, 1024));
  const gone = new AbortController();
  const abandoned = q.segment(image(64, 64), gone.signal);
  const waiting = q.segment(image(64, 64));
  assert.equal(q.pending, 3);
  gone.abort();
  await assert.rejects(abandoned, (e: Error & { status?: number }) => e.status === 499);
  assert.equal(q.pending, 2);
  const closing = q.close(120_000); // the 1024x1024 job may take over the default 10 s grace on a loaded machine
  await assert.rejects(waiting, (e: Error & { status?: number; code?: string }) => e.status === 503 && e.code === 'shutting_down');
  assert.equal((await slow).width, 1024, 'the running job finishes');
  await closing;
  await assert.rejects(q.segment(image(8, 8)), /the server is shutting down/);
});

test('a model that does not load is reported by start()', { timeout: 60_000 }, async () => {
  await assert.rejects(InferenceQueue.start({ modelDir: '/nonexistent/model' }), /^Error: serve: cannot load the model in the inference thread: fromPretrained: model directory '\/nonexistent\/model' of type string does not exist$/);
});
