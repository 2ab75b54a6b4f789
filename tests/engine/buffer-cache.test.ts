// The CPU buffer cache: reused buffers give the same results, the cap holds, 0 empties it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { cpuBufferCacheStats, emptyCpuBufferCache, F, liveTensors, manualSeed, randn, setCpuBufferCache, tidy } from '../../src/engine/index.js';

describe('CPU buffer cache', () => {
  const run = () => tidy(() => {
    manualSeed(1);
    const x = randn([2, 16, 64, 64]);
    const w = randn([32, 16, 3, 3]);
    return Array.from(F.conv2d(x, w, null, { padding: 1 }).relu().toArray() as Float32Array);
  });

  it('serves repeated same-size allocations from the cache, with identical results', () => {
    setCpuBufferCache(0);
    const ref = run();
    setCpuBufferCache(64 << 20);
    const live = liveTensors();
    run();
    const before = cpuBufferCacheStats();
    const again = run();
    const after = cpuBufferCacheStats();
    assert.equal(after.enabled, true);
    assert.ok(after.hits > before.hits, `hits ${before.hits} -> ${after.hits}`);
    assert.ok(after.cachedBytes > 0 && after.cachedBytes <= after.limit);
    assert.deepEqual(again, ref);
    assert.equal(liveTensors(), live);
  });

  it('never keeps more than its limit, and a limit of 0 empties it', () => {
    setCpuBufferCache(300 << 10); // one 256 KiB block fits, two do not
    tidy(() => { for (let i = 0; i < 4; i++) randn([4, 64, 64, 4]); });
    assert.ok(cpuBufferCacheStats().cachedBytes <= 300 << 10);
    emptyCpuBufferCache();
    assert.equal(cpuBufferCacheStats().cachedBytes, 0);
    setCpuBufferCache(64 << 20);
    run();
    setCpuBufferCache(0);
    assert.equal(cpuBufferCacheStats().cachedBytes, 0);
  });

  it('a worker thread that loads the engine leaves the limit the program chose', async () => {
    setCpuBufferCache(1 << 20);
    const engine = new URL('../../src/engine/index.ts', import.meta.url).href;
    const api = import.meta.resolve('tsx/esm/api');
    const w = new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(engine)}); })
      .then(() => require('node:worker_threads').parentPort.postMessage('loaded'))`, { eval: true });
    assert.equal(await new Promise((res, rej) => { w.once('message', res); w.once('error', rej); }), 'loaded');
    await w.terminate();
    assert.equal(cpuBufferCacheStats().limit, 1 << 20);
  });

  it('emptyCpuBufferCache hands the cached buffers back to the OS', () => {
    const before = cpuBufferCacheStats().limit;
    setCpuBufferCache(2 ** 31);
    try {
      for (let i = 0; i < 3; i++) tidy(() => { randn([48, 1024, 1024]).mul(2).add(1); }); // ~200 MB buffers, cached on free
      const held = process.memoryUsage().rss;
      emptyCpuBufferCache();
      const released = held - process.memoryUsage().rss;
      assert.ok(released > 300 * 2 ** 20, `RSS fell by only ${(released / 2 ** 20).toFixed(0)} MiB`);
    } finally {
      setCpuBufferCache(before);
    }
  });

  it('rejects a negative limit', () => {
    assert.throws(() => setCpuBufferCache(-1), /setCpuBufferCache: expected finite number in \[0, Infinity\] for limitBytes but received -1/);
  });
});
