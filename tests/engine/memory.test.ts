// Memory: tidy/keep/dispose semantics, a 10,000-step training loop that must not leak, and
// native memory of undisposed tensors freed by the garbage collector.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { F, cpuBufferCacheStats, dispose, emptyCpuBufferCache, full, keep, liveTensors, manualSeed, setNumThreads, noGrad, ones, randn, tidy, zeros, type Tensor } from '../../src/engine/index.js';

// Thousands of tiny ops: one thread avoids libtorch's fork/join cost, which on a busy machine
// (e.g. CI running other jobs) makes a 2-thread run 10x slower. Results do not depend on it.
setNumThreads(1);

describe('tidy, keep and dispose', () => {
  it('frees what the callback made, except what it returns', () => {
    const base = liveTensors();
    const y = tidy(() => {
      const a = ones([4]);
      const b = a.mul(2);
      return b.add(1);
    });
    assert.equal(liveTensors(), base + 1);
    assert.deepEqual(y.toNumbers(), [3, 3, 3, 3]);
    y.dispose();
    assert.equal(liveTensors(), base);
  });
  it('keeps tensors returned inside arrays, Maps and plain objects', () => {
    const base = liveTensors();
    const r = tidy(() => {
      const a = ones([1]);
      ones([1]);
      return { list: [a, 1], map: new Map([['z', zeros([1])]]), nested: { deep: [ones([2])] } };
    });
    assert.equal(liveTensors(), base + 3);
    dispose(r);
    assert.equal(liveTensors(), base);
    assert.equal((r.list[0] as Tensor).isDisposed, true);
  });
  it('nested scopes hand a returned tensor to the enclosing scope', () => {
    const base = liveTensors();
    let inner: Tensor | undefined;
    const outer = tidy(() => {
      inner = tidy(() => ones([2]).mul(3));
      assert.equal(inner.isDisposed, false);
      return inner.sum();
    });
    assert.equal(inner!.isDisposed, true, 'the inner result was freed by the outer scope');
    assert.equal(outer.item(), 6);
    outer.dispose();
    assert.equal(liveTensors(), base);
  });
  it('keep() lets a tensor outlive every open scope', () => {
    const base = liveTensors();
    let k: Tensor | undefined;
    tidy(() => tidy(() => { k = keep(ones([3])); ones([3]); }));
    assert.equal(k!.isDisposed, false);
    assert.equal(liveTensors(), base + 1);
    k!.dispose();
    k!.dispose(); // twice is fine
    assert.equal(liveTensors(), base);
  });
  it('a throw inside frees the scope and propagates', () => {
    const base = liveTensors();
    let made: Tensor | undefined;
    assert.throws(() => tidy(() => { made = ones([2]); throw new Error('boom'); }), /^Error: boom$/);
    assert.equal(made!.isDisposed, true);
    assert.equal(liveTensors(), base);
    // The scope stack is intact: later tidies still work and outer tensors are untouched.
    const outside = ones([1]);
    tidy(() => ones([1]));
    assert.equal(outside.isDisposed, false);
    outside.dispose();
  });
  it('refuses async callbacks and frees what they made synchronously', () => {
    const base = liveTensors();
    assert.throws(() => tidy((async () => { ones([1]); }) as unknown as () => void), {
      message: 'tidy: the callback returned a Promise; tidy only scopes synchronous code, dispose tensors of async work explicitly',
    });
    assert.equal(liveTensors(), base);
    assert.throws(() => tidy(42 as unknown as () => void), { message: 'tidy: expected a function' });
  });
  it('a tensor disposed as soon as it was made leaves its scope; the scope still frees the rest', () => {
    const before = liveTensors();
    let kept: Tensor | null = null;
    const out = tidy(() => {
      const a = ones([2]);
      for (let i = 0; i < 100; i++) a.add(1).dispose(); // made and disposed: popped from the scope
      const b = a.mul(2);
      a.add(b).dispose();
      kept = keep(b.add(1));
      const c = b.add(a);
      b.dispose(); // not the newest: stays in the scope, disposed twice harmlessly
      return c;
    });
    assert.deepEqual(out.toNumbers(), [3, 3]);
    assert.deepEqual(kept!.toNumbers(), [3, 3]);
    assert.equal(liveTensors(), before + 2);
    out.dispose(); kept!.dispose();
    assert.equal(liveTensors(), before);
  });

  it('`using` disposes at the end of the block', () => {
    const base = liveTensors();
    let seen: Tensor;
    {
      using t = ones([2]);
      seen = t;
      assert.equal(liveTensors(), base + 1);
    }
    assert.equal(seen.isDisposed, true);
    assert.equal(liveTensors(), base);
  });
});

describe('no leaks over a long training loop', () => {
  it('10,000 forward/backward steps of a small conv net keep liveTensors and RSS flat', () => {
    manualSeed(0);
    const base = liveTensors();
    const [x, w1, w2, b1] = tidy(() => [
      randn([1, 3, 8, 8]), randn([4, 3, 3, 3]).mul(0.2).requiresGrad_(), randn([4, 4, 3, 3]).mul(0.2).requiresGrad_(), zeros([4]).requiresGrad_(),
    ]);
    const params = [w1, b1, w2];
    const step = (): number => tidy(() => {
      const h = F.conv2d(x, w1, b1, { padding: 1 }).relu();
      const y = F.conv2d(h, w2, null, { padding: 1 });
      const loss = y.square().mean();
      loss.backward();
      noGrad(() => { for (const p of params) { p.sub_(p.grad!, 1e-3); p.grad = null; } });
      return loss.item();
    });
    const warmup = 500;
    for (let i = 0; i < warmup; i++) step();
    const live = liveTensors();
    const rss0 = process.memoryUsage().rss;
    let first = NaN;
    let last = NaN;
    for (let i = 0; i < 10_000; i++) {
      last = step();
      if (i === 0) first = last;
      if (i % 2500 === 0) assert.equal(liveTensors(), live, `live tensors at step ${i}`);
    }
    const growthMb = (process.memoryUsage().rss - rss0) / 2 ** 20;
    assert.equal(liveTensors(), live);
    // After warm-up the allocator's pools are settled; 50 MB bounds noise, a leak of even one
    // 64-byte tensor per step (~a few hundred bytes with its handle) would show up over 10k steps only
    // as ~5 MB, so liveTensors above is the precise check and RSS the coarse one.
    assert.ok(growthMb < 50, `RSS grew by ${growthMb.toFixed(1)} MB`);
    assert.ok(last < first, `the loss decreases (${first} -> ${last})`);
    dispose([x, ...params]);
    assert.equal(liveTensors(), base);
  });
});

describe('garbage collection', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  async function collect(until: () => boolean): Promise<void> {
    // Node-API finalizers may run after the GC pass, from the event loop.
    for (let i = 0; i < 20 && !until(); i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
  }
  it('frees the native memory of tensors that were never disposed', async () => {
    const base = liveTensors();
    emptyCpuBufferCache(); // the tensors below get fresh memory, not cached blocks
    const rss0 = process.memoryUsage().rss;
    // 64 tensors of 4 MB each, written (so resident), then dropped without dispose().
    (() => { for (let i = 0; i < 64; i++) ones([1 << 20]); })();
    const peak = process.memoryUsage().rss;
    assert.ok(liveTensors() >= base + 64);
    // <= base: a collection also finalizes garbage that earlier code left undisposed.
    await collect(() => liveTensors() <= base);
    assert.ok(liveTensors() <= base, `every handle was finalized (${liveTensors()} live, ${base} before)`);
    // Finalized buffers went to the CPU buffer cache (for reuse); emptying it returns them to the system.
    const stats = cpuBufferCacheStats();
    assert.ok(!stats.enabled || stats.limit === 0 || stats.cachedBytes > 0, 'the freed buffers are cached');
    emptyCpuBufferCache();
    const after = process.memoryUsage().rss;
    assert.ok(peak - rss0 > 200 * 2 ** 20, `the tensors were resident (+${((peak - rss0) / 2 ** 20).toFixed(0)} MB)`);
    assert.ok(after - rss0 < 64 * 2 ** 20, `RSS returned near its start (+${((after - rss0) / 2 ** 20).toFixed(0)} MB after GC)`);
  });
  it('frees tensors that left tidy (kept or returned from the outermost scope) and were dropped', async () => {
    await collect(() => false);
    const base = liveTensors();
    (() => {
      for (let i = 0; i < 50; i++) tidy(() => { keep(ones([10]).mul(2)); });
      for (let i = 0; i < 50; i++) tidy(() => ones([10]).add(1));
    })();
    assert.equal(liveTensors(), base + 100);
    await collect(() => liveTensors() <= base);
    assert.equal(liveTensors(), base);
  });
  it('a kept tensor outlives its scope and keeps its values, however many tensors come and go', async () => {
    const kept: Tensor[] = [];
    tidy(() => { for (let i = 0; i < 5; i++) kept.push(keep(full([2], i))); for (let i = 0; i < 2000; i++) ones([1]).add(1); });
    await collect(() => false); // handles freed around them are reused by new tensors below
    const fresh = Array.from({ length: 100 }, () => zeros([2]));
    assert.deepEqual(kept.map((t) => t.toNumbers()), [0, 1, 2, 3, 4].map((i) => [i, i]));
    dispose([kept, fresh]);
  });
  it('a worker thread has its own tensors, freed when it ends', async () => {
    const base = liveTensors();
    const mine = full([4], 3);
    const engine = new URL('../../src/engine/index.ts', import.meta.url).href;
    const api = import.meta.resolve('tsx/esm/api');
    const w = new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(engine)}); })
      .then((e) => { const ts = Array.from({ length: 20 }, (_, i) => e.full([4], i)); const s = ts[19].add(ts[1]).toNumbers();
        require('node:worker_threads').parentPort.postMessage(s); setInterval(() => {}, 1000); })`, { eval: true });
    assert.deepEqual(await new Promise((res, rej) => { w.once('message', res); w.once('error', rej); }), [20, 20, 20, 20]);
    assert.equal(liveTensors(), base + 1 + 21, 'the worker\'s 21 tensors are live while it runs');
    assert.deepEqual(tidy(() => mine.add(1).toNumbers()), [4, 4, 4, 4]);
    await w.terminate();
    assert.equal(liveTensors(), base + 1, 'ending the worker freed its tensors');
    assert.deepEqual(mine.toNumbers(), [3, 3, 3, 3]);
    mine.dispose();
  });
  it('a disposed tensor is not counted off twice when collected', async () => {
    await collect(() => false); // settle earlier garbage first
    const base = liveTensors();
    (() => { for (let i = 0; i < 100; i++) ones([10]).dispose(); })();
    assert.equal(liveTensors(), base);
    await collect(() => false);
    assert.equal(liveTensors(), base);
  });
});
