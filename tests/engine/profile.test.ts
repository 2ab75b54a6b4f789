// The op profile behind `npm run bench -- profile`: libtorch's profiler folded into per-op self
// times per phase, with the convolution FLOPs the floors are computed from.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { autocast, F, profileOps, randn, setWinogradTraining, summarizeProfile, tidy, type Tensor } from '../../src/engine/index.js';

describe('profileOps', () => {
  it('counts each op once per repeat, per phase, with exact convolution FLOPs forward and backward', () => {
    const x = randn([2, 3, 16, 20]);
    const w = randn([8, 3, 3, 3]).requiresGrad_(true);
    let loss: Tensor | null = null;
    const rows = profileOps({
      forward: () => { loss = tidy(() => autocast(() => F.conv2d(x, w, null, { padding: 1 })).to('float32').sum()); },
      backward: () => { loss!.backward(); loss!.dispose(); },
    }, 3);
    const fwd = rows.find((r) => r.phase === 'forward' && r.name === 'aten::conv2d');
    const bwd = rows.find((r) => r.phase === 'backward' && r.name === 'aten::convolution_backward');
    assert.ok(fwd && bwd, `rows: ${rows.map((r) => `${r.phase}:${r.name}`).join(', ')}`);
    // autocast re-dispatches aten::conv2d into itself: still one call per repeat
    assert.equal(fwd.calls, 1);
    const flops = 2 * 2 * 8 * 16 * 20 * 3 * 3 * 3;
    assert.equal(fwd.flops, flops);
    assert.equal(bwd.calls, 1);
    assert.equal(bwd.flops, 2 * flops); // grad input + grad weight
    assert.ok(rows.every((r) => r.selfUs >= 0 && r.selfUs <= r.totalUs + 1e-6), 'self time within total time');
    assert.equal(rows.filter((r) => r.phase === 'backward' && r.name === 'aten::conv2d').length, 0, 'no forward conv in the backward phase');
    w.grad?.dispose();
    x.dispose();
    w.dispose();
  });

  it('counts Winograd training convolutions on their own lines, with the direct convolution\'s FLOPs', { skip: setWinogradTraining(true) ? false : 'no Winograd kernels here' }, () => {
    const x = randn([2, 16, 12, 10]);
    const w = randn([8, 16, 3, 3]).requiresGrad_(true);
    let loss: Tensor | null = null;
    const rows = profileOps({
      forward: () => { loss = tidy(() => F.conv2d(x, w, null, { padding: 1 }).sum()); },
      backward: () => { loss!.backward(); loss!.dispose(); },
    });
    const lines = summarizeProfile(rows, { gflops: 100, gbps: 10, elementBytes: 4 }).lines;
    const fwd = lines.find((l) => l.name === 'winograd convolution');
    const bwd = lines.find((l) => l.name === 'winograd convolution_backward');
    assert.ok(fwd && bwd, `lines: ${lines.map((l) => l.name).join(', ')}`);
    const flops = 2 * 2 * 8 * 12 * 10 * 16 * 3 * 3;
    assert.deepEqual([fwd.calls, fwd.flops, bwd.calls, bwd.flops], [1, flops, 1, 2 * flops]);
    assert.ok(!lines.some((l) => l.name === 'convolution'), 'no direct convolution ran');
    w.grad?.dispose();
    x.dispose();
    w.dispose();
  });

  it('puts each op beside its floor and sorts by self time', () => {
    const rows = [
      // one convolution's dispatch layers: FLOPs counted at aten::conv2d, time spent in the kernel
      { phase: 'forward', name: 'aten::conv2d', calls: 1, selfUs: 10, totalUs: 2000, flops: 1e9, elements: 0 },
      { phase: 'forward', name: 'aten::mkldnn_convolution', calls: 1, selfUs: 1990, totalUs: 1990, flops: 0, elements: 0 },
      { phase: 'forward', name: 'aten::add', calls: 1, selfUs: 1000, totalUs: 1000, flops: 0, elements: 3e6 },
      { phase: 'backward', name: 'AddBackward0', calls: 1, selfUs: 10, totalUs: 10, flops: 0, elements: 0 },
    ];
    const s = summarizeProfile(rows, { gflops: 1000, gbps: 12, elementBytes: 4 });
    assert.deepEqual(s.lines.map((l) => l.name), ['convolution', 'aten::add', 'AddBackward0']);
    assert.equal(s.lines[0].ms, 2);
    assert.equal(s.lines[0].calls, 1);
    assert.equal(s.lines[0].floorMs, 1); // 1 GFLOP at 1000 GFLOP/s
    assert.equal(s.lines[1].floorMs, 1); // 12 MB at 12 GB/s
    assert.equal(s.lines[2].floorMs, 0);
    assert.ok(Math.abs(s.totalMs - 3.01) < 1e-9);
  });

  it('refuses a bad repeat count and leaves no profile running after an error', () => {
    assert.throws(() => profileOps({ a: () => {} }, 0), /repeats must be a positive integer/);
    assert.throws(() => profileOps({ a: () => { throw new Error('boom'); } }), /boom/);
    assert.equal(profileOps({ a: () => {} }).length >= 0, true); // a new profile starts
  });
});
