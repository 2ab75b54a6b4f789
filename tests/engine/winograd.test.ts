// Training convolutions on oneDNN's Winograd kernels (native/winograd.cc) against ATen's direct ones
// (what PyTorch runs): outputs and all three gradients within float32 rounding, in both memory orders,
// and the cases it must leave to ATen untouched (bit-identical results).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { autocast, F, manualSeed, noGrad, randn, setWinogradTraining, tidy, winogradTraining, type Tensor } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';

const available = setWinogradTraining(true);
after(() => setWinogradTraining(true));

interface Case { c: number; o: number; size: number; bias: boolean; padding: number; channelsLast: boolean }

/** Forward and backward of one conv with the setting `on`; inputs cloned so both runs start equal. */
function run(on: boolean, x: Tensor, w: Tensor, b: Tensor | null, gy: Tensor, padding: number, stride = 1) {
  setWinogradTraining(on);
  const xr = x.clone().requiresGrad_();
  const wr = w.clone().requiresGrad_();
  const br = b?.clone().requiresGrad_() ?? null;
  const y = F.conv2d(xr, wr, br, { padding, stride });
  y.backward(gy);
  return { y, gx: xr.grad!, gw: wr.grad!, gb: br?.grad ?? null };
}

const relErr = (p: Tensor, q: Tensor) => p.sub(q).abs().max().item() / Math.max(p.abs().max().item(), 1e-12);

describe('Winograd training convolutions (float32, 3x3 stride 1)', { skip: available ? false : 'no oneDNN Winograd kernels in this build or CPU' }, () => {
  const cases: Case[] = [
    { c: 64, o: 64, size: 32, bias: true, padding: 1, channelsLast: true },
    { c: 64, o: 64, size: 32, bias: true, padding: 1, channelsLast: false },
    { c: 3, o: 16, size: 20, bias: false, padding: 1, channelsLast: true },
    { c: 32, o: 48, size: 17, bias: true, padding: 0, channelsLast: false },
    { c: 21, o: 5, size: 9, bias: false, padding: 1, channelsLast: true },
  ];
  for (const k of cases) {
    it(`${k.c}->${k.o} at ${k.size}px, padding ${k.padding}, ${k.bias ? 'bias' : 'no bias'}, ${k.channelsLast ? 'channels-last' : 'NCHW'}: output and gradients within 1e-5 of ATen's, same memory order`, () => tidy(() => {
      manualSeed(1);
      let x = randn([2, k.c, k.size, k.size]);
      let w = randn([k.o, k.c, 3, 3]).mul(0.1);
      if (k.channelsLast) { x = x.contiguous('channelsLast'); w = w.contiguous('channelsLast'); }
      const b = k.bias ? randn([k.o]) : null;
      const out = k.size + 2 * k.padding - 2;
      const gy = randn([2, k.o, out, out]);
      const direct = run(false, x, w, b, gy, k.padding);
      const wino = run(true, x, w, b, gy, k.padding);
      for (const name of ['y', 'gx', 'gw', 'gb'] as const) {
        const p = direct[name];
        const q = wino[name];
        if (!p || !q) { assert.equal(p, q, name); continue; }
        assert.deepEqual(q.shape, p.shape, name);
        assert.ok(relErr(p, q) < 1e-5, `${name}: ${relErr(p, q)}`);
        assert.equal(q.isContiguous('channelsLast') && !q.isContiguous(), p.isContiguous('channelsLast') && !p.isContiguous(), `${name}: memory order`);
      }
      // It ran: Winograd rounds differently from the direct kernels.
      assert.ok(relErr(direct.y, wino.y) > 0, 'the Winograd path did not run');
    }));
  }

  it('leaves to ATen what it does not cover: no gradient wanted, stride 2, autocast, float64, and the setting off', () => tidy(() => {
    manualSeed(2);
    const x = randn([2, 16, 12, 12]);
    const w = randn([16, 16, 3, 3]);
    const gy = randn([2, 16, 12, 12]);
    setWinogradTraining(true);
    const plain = noGrad(() => F.conv2d(x, w, null, { padding: 1 })); // ATen's
    assert.equal(relErr(plain, run(false, x, w, null, gy, 1).y), 0, 'setting off: ATen exactly');
    const strided = (on: boolean) => run(on, x, w, null, randn([2, 16, 6, 6]), 1, 2).y;
    assert.equal(relErr(strided(false), strided(true)), 0, 'stride 2');
    const x64 = x.to('float64');
    const w64 = w.to('float64');
    const gy64 = gy.to('float64');
    assert.equal(relErr(run(false, x64, w64, null, gy64, 1).y, run(true, x64, w64, null, gy64, 1).y), 0, 'float64');
    const bf = (on: boolean) => autocast(() => run(on, x, w, null, gy, 1).y.to('float32'));
    assert.equal(relErr(bf(false), bf(true)), 0, 'bfloat16 autocast');
    setWinogradTraining(true);
    assert.equal(winogradTraining(), true);
  }));
});

describe('Winograd in a whole model (PAN-resnet18, train mode, 128 px) against float64', { skip: available ? false : 'no oneDNN Winograd kernels in this build or CPU' }, () => {
  it('logits within 1e-4 and all gradients within 2e-3 (norm) of the float64 truth: at most 10x and 20x the error of direct float32', () => {
    manualSeed(0);
    const m32 = createModel('pan', { encoderName: 'resnet18', classes: 5 });
    const m64 = createModel('pan', { encoderName: 'resnet18', classes: 5 });
    m64.loadStateDict(m32.stateDict());
    m64.to({ dtype: 'float64' });
    const [x, up] = tidy(() => [randn([2, 3, 128, 128]), randn([2, 5, 128, 128])]);
    const pass = (m: typeof m32, dtype: 'float32' | 'float64') => {
      m.train();
      for (const p of m.parameters()) p.grad = null;
      const logits = tidy(() => {
        const l = m.forward(x.to(dtype));
        l.mul(up.to(dtype)).sum().backward(); // random upstream: every logit's gradient matters
        return l.to('float64');
      });
      const grads = [...m.namedParameters()].filter(([, p]) => p.grad).map(([k, p]) => [k, p.grad!.to('float64')] as const);
      return { logits, grads: new Map(grads) };
    };
    const truth = pass(m64, 'float64');
    const errors = (on: boolean) => {
      setWinogradTraining(on);
      const r = pass(m32, 'float32');
      let num = 0;
      let den = 0;
      for (const [k, g] of r.grads) {
        const t = truth.grads.get(k)!;
        num += tidy(() => g.sub(t).pow(2).sum().item());
        den += tidy(() => t.pow(2).sum().item());
      }
      const logits = relErr(truth.logits, r.logits);
      for (const t of [r.logits, ...r.grads.values()]) t.dispose();
      return { logits, grads: Math.sqrt(num / den) };
    };
    const direct = errors(false);
    const wino = errors(true);
    setWinogradTraining(true);
    // Measured here: logits 6.8e-6 direct, 2.2e-5 Winograd; gradients 5.2e-5 direct, 4.6e-4 Winograd.
    assert.ok(wino.logits < 1e-4 && wino.logits < 10 * direct.logits, `logits: ${wino.logits} (direct ${direct.logits})`);
    assert.ok(wino.grads < 2e-3 && wino.grads < 20 * direct.grads, `gradients: ${wino.grads} (direct ${direct.grads})`);
    for (const t of [x, up, truth.logits, ...truth.grads.values()]) t.dispose();
    m32.dispose();
    m64.dispose();
  });
});

describe('setWinogradTraining', () => {
  it('takes a boolean and reports the setting', () => {
    assert.throws(() => setWinogradTraining('yes' as unknown as boolean), /setWinogradTraining: expected/);
    setWinogradTraining(false);
    assert.equal(winogradTraining(), false);
    setWinogradTraining(true);
    assert.equal(winogradTraining(), true);
  });
});
