// Optimizers and lr schedules vs torch.optim (scripts/reference/train_ref.py).
// Tolerances: parameters after each of 6 steps (float64 on both sides): |a - b| <= 1e-6 x max(|b|, 1e-3)
// (in practice ~1e-15: both sides run the same float64 update rules); lrs: |a - b| <= 1e-9 x base lr.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveTensors, manualSeed, randn, type Tensor, tensor, tidy } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { AdamW, type Optimizer, SGD } from '../../src/train/optimizers.js';
import { LRScheduler, lrFactor, type ScheduleOptions } from '../../src/train/schedules.js';
import { reference } from '../helpers/reference.js';

const ref = reference('train_ref.py', [], ['st.py']);
const data = loadSafetensors(join(ref, 'optim.safetensors'));
after(() => { for (const t of data.values()) t.dispose(); });

interface OptimCase {
  optimizer: 'sgd' | 'adamw';
  options: Record<string, unknown>;
  lrs: number[] | null;
  groups: string[][] | null;
  group_options: { lr?: number; weightDecay?: number }[] | null;
}
const optim = JSON.parse(readFileSync(join(ref, 'optim.json'), 'utf8')) as { steps: number; cases: Record<string, OptimCase> };
const sched = JSON.parse(readFileSync(join(ref, 'sched.json'), 'utf8')) as { cases: Record<string, { schedule: ScheduleOptions; base_lr: number; lrs: number[] }> };
const NAMES = ['p0', 'p1'];

function assertClose(got: Tensor, want: Tensor, label: string): void {
  assert.deepEqual(got.shape, want.shape, `${label}: shape`);
  const a = got.toNumbers();
  const b = want.toNumbers();
  for (let i = 0; i < a.length; i++) {
    const tol = 1e-6 * Math.max(Math.abs(b[i]), 1e-3);
    assert.ok(Math.abs(a[i] - b[i]) <= tol, `${label}[${i}]: ${a[i]} vs torch ${b[i]}`);
  }
}

/** Sets p's gradient to a copy of g (the setter does not take ownership of the handle). */
function setGrad(p: Tensor, g: Tensor): void {
  const c = g.clone();
  p.grad = c;
  c.dispose();
}

function makeOptimizer(c: OptimCase, params: Record<string, Tensor>, foreach = false): Optimizer {
  const groups = c.groups
    ? c.groups.map((names, i) => ({ params: names.map((n) => params[n]), ...c.group_options![i] }))
    : NAMES.map((n) => params[n]);
  return c.optimizer === 'sgd' ? new SGD(groups, { ...c.options, foreach } as never) : new AdamW(groups, { ...c.options, foreach });
}

describe('optimizers vs torch.optim (float64, 6 steps)', () => {
  // Each case runs twice: per parameter, and with foreach (one native call per group, the GPU default).
  for (const [name, c, foreach] of Object.entries(optim.cases).flatMap(([n, c]) => [[n, c, false], [n, c, true]] as [string, OptimCase, boolean][])) {
    it(`${name}${foreach ? ' (foreach)' : ''}`, () => {
      const live0 = liveTensors();
      const params: Record<string, Tensor> = {};
      for (const n of NAMES) params[n] = data.get(`init.${n}`)!.clone().requiresGrad_(true);
      const opt = makeOptimizer(c, params, foreach);
      for (let step = 0; step < optim.steps; step++) {
        if (c.lrs) for (const g of opt.groups) g.lr = c.lrs[step];
        for (const n of NAMES) setGrad(params[n], data.get(`grad.${step}.${n}`)!);
        opt.step();
        opt.zeroGrad();
        for (const n of NAMES) assertClose(params[n], data.get(`${name}.${step}.${n}`)!, `${name} step ${step} ${n}`);
      }
      for (const n of NAMES) assert.equal(opt.state.get(params[n])!.step, optim.steps);
      opt.dispose();
      for (const p of Object.values(params)) p.dispose();
      assert.equal(liveTensors(), live0, 'tensors leaked');
    });
  }

  // The foreach path fuses each float32/float64 parameter's update into one pass on the CPU, with the
  // per-parameter path's formulas in the same order. libtorch's vectorized kernels may fuse a multiply
  // and an add (FMA) where the loop does not, so the two agree to float32 rounding, not bit for bit.
  it('foreach (fused on the CPU) agrees with the per-parameter path, for every layout and dtype, at different steps', () => {
    const live0 = liveTensors();
    const makers = [
      (ps: Tensor[], f: boolean) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.01, foreach: f }),
      (ps: Tensor[], f: boolean) => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, foreach: f }),
      (ps: Tensor[], f: boolean) => new SGD(ps, { lr: 0.1, weightDecay: 0.01, foreach: f }),
      (ps: Tensor[], f: boolean) => new AdamW(ps, { lr: 0.01, foreach: f }),
      (ps: Tensor[], f: boolean) => new AdamW(ps, { lr: 0.01, betas: [0.3, 0.99], weightDecay: 0.1, foreach: f }),
    ];
    for (const [k, make] of makers.entries()) {
      const runs = [false, true].map((foreach) => {
        manualSeed(3);
        // float32 plain, channels-last (fused over its own memory order), bfloat16 (the foreach ops), float64
        const ps = tidy(() => [
          randn([3, 4]), randn([5]), randn([2, 3, 4, 5]).contiguous('channelsLast'), randn([70000]), randn([6]).to('bfloat16'), randn([4]).to('float64'),
        ].map((p) => p.requiresGrad_(true)));
        const opt = make(ps, foreach);
        for (let step = 0; step < 4; step++) {
          // the second parameter joins at step 2, as an encoder unfrozen later
          ps.forEach((p, i) => {
            if (i === 1 && step < 2) return;
            const g = tidy(() => randn(p.shape).to(p.dtype).contiguous(p.ndim === 4 ? 'channelsLast' : 'contiguous'));
            setGrad(p, g);
            g.dispose();
          });
          opt.step();
          opt.zeroGrad();
        }
        const out = ps.map((p) => Array.from(p.toArray() as Float32Array));
        opt.dispose();
        for (const p of ps) p.dispose();
        return out;
      });
      runs[0].forEach((want, i) => want.forEach((w, j) => {
        const got = runs[1][i][j];
        assert.ok(Math.abs(got - w) <= 2e-6 * Math.max(Math.abs(w), 1), `optimizer ${k}, parameter ${i}[${j}]: foreach ${got} vs per-parameter ${w}`);
      }));
    }
    assert.equal(liveTensors(), live0, 'tensors leaked');
  });

  it('skips parameters without a gradient and keeps no state for them', () => {
    const a = tensor([1, 2], undefined, { dtype: 'float64', requiresGrad: true });
    const b = tensor([3, 4], undefined, { dtype: 'float64', requiresGrad: true });
    const opt = new SGD([a, b], { lr: 0.5, momentum: 0.9 });
    const g = tensor([1, 1], undefined, { dtype: 'float64' });
    setGrad(a, g);
    g.dispose();
    opt.step();
    assert.deepEqual(a.toNumbers(), [0.5, 1.5]);
    assert.deepEqual(b.toNumbers(), [3, 4]);
    assert.equal(opt.state.has(b), false);
    opt.dispose(); a.dispose(); b.dispose();
  });

  it('round-trips its state through stateTensors/loadStateTensors (resume continues identically)', () => {
    const live0 = liveTensors();
    const c = optim.cases.adamw_betas_eps_wd;
    const run = (split: boolean): Record<string, number[]> => {
      const params: Record<string, Tensor> = {};
      for (const n of NAMES) params[n] = data.get(`init.${n}`)!.clone().requiresGrad_(true);
      let opt = makeOptimizer(c, params);
      for (let step = 0; step < optim.steps; step++) {
        if (split && step === 3) {
          const { tensors, steps } = opt.stateTensors();
          const copies = new Map([...tensors].map(([k, t]) => [k, t.clone()]));
          opt.dispose();
          opt = makeOptimizer(c, params);
          opt.loadStateTensors(copies, JSON.parse(JSON.stringify(steps)));
          for (const t of copies.values()) t.dispose();
        }
        for (const n of NAMES) setGrad(params[n], data.get(`grad.${step}.${n}`)!);
        opt.step();
      }
      opt.dispose();
      const out = Object.fromEntries(NAMES.map((n) => [n, params[n].toNumbers()]));
      for (const p of Object.values(params)) p.dispose();
      return out;
    };
    assert.deepEqual(run(true), run(false));
    assert.equal(liveTensors(), live0, 'tensors leaked');
  });

  it('validates its options', () => {
    const p = tensor([1], undefined, { requiresGrad: true });
    assert.throws(() => new SGD([p], { lr: -1 }), /SGD: expected finite number in \[0, Infinity\] for lr but received -1 of type number/);
    assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /SGD: nesterov needs momentum > 0 and dampening 0/);
    assert.throws(() => new AdamW([p], { betas: [0.9, 1.5] }), /AdamW: .*betas\[1\]/);
    assert.throws(() => new SGD([], { lr: 0.1 }), /SGD: expected an array of parameters or of parameter groups/);
    p.dispose();
  });
});

describe('lr schedules vs torch.optim.lr_scheduler (40 iterations)', () => {
  for (const [name, c] of Object.entries(sched.cases)) {
    it(name, () => {
      c.lrs.forEach((want, it) => {
        const got = c.base_lr * lrFactor(c.schedule, it);
        assert.ok(Math.abs(got - want) <= 1e-9 * c.base_lr, `${name} it ${it}: ${got} vs torch ${want}`);
      });
    });
  }

  it('warmup follows the documented formula: factor(it) x (r + (1 - r) it / w) for it < w', () => {
    const o: ScheduleOptions = { name: 'cosine', totalIters: 50, minLrRatio: 0.2, warmupIters: 10, warmupRatio: 0.05 };
    for (let it = 0; it <= 50; it++) {
      const t = it;
      const main = 0.2 + 0.8 * 0.5 * (1 + Math.cos((Math.PI * t) / 50));
      const want = it < 10 ? main * (0.05 + 0.95 * (it / 10)) : main;
      assert.ok(Math.abs(lrFactor(o, it) - want) <= 1e-12, `it ${it}`);
    }
    // Past the end the schedule holds its final value.
    assert.equal(lrFactor({ name: 'poly', totalIters: 10 }, 15), 0);
    assert.ok(Math.abs(lrFactor({ name: 'cosine', totalIters: 10, minLrRatio: 0.1 }, 25) - 0.1) <= 1e-12);
  });

  it('LRScheduler drives every group from its initial lr and restores a position with setIter', () => {
    const a = tensor([1], undefined, { requiresGrad: true });
    const b = tensor([1], undefined, { requiresGrad: true });
    const opt = new SGD([{ params: [a] }, { params: [b], lr: 0.5 }], { lr: 0.1 });
    const o: ScheduleOptions = { name: 'poly', totalIters: 20, warmupIters: 3 };
    const s = new LRScheduler(opt, o);
    const seen: number[][] = [];
    for (let it = 0; it < 8; it++) {
      seen.push(opt.groups.map((g) => g.lr));
      s.step();
    }
    seen.forEach(([x, y], it) => {
      assert.ok(Math.abs(x - 0.1 * lrFactor(o, it)) <= 1e-15, `group 0 at ${it}`);
      assert.ok(Math.abs(y - 0.5 * lrFactor(o, it)) <= 1e-15, `group 1 at ${it}`);
    });
    const s2 = new LRScheduler(opt, o);
    s2.setIter(5);
    assert.equal(s2.lr, 0.1 * lrFactor(o, 5));
    assert.equal(s2.iter, 5);
    opt.dispose(); a.dispose(); b.dispose();
  });

  it('rejects bad schedule options', () => {
    assert.throws(() => lrFactor({ name: 'poly', totalIters: 0 }, 0), /schedule: expected positive integer for totalIters but received 0/);
    assert.throws(() => lrFactor({ name: 'step', totalIters: 10 }, 0), /schedule: expected positive integer for stepSize but received undefined/);
    assert.throws(() => lrFactor({ name: 'linear' as never, totalIters: 10 }, 0), /schedule: unknown schedule 'linear'; valid: poly, cosine, step, constant/);
  });
});
