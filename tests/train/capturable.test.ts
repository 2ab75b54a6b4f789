// The capture-safe optimizers and scaler (lr, step count and loss scale in device tensors) against the
// plain ones, on the CPU: same weights and state after several steps with a changing lr.
// Tolerance: float32, max |a - b| <= 1e-6 * max(1, |b|) per element (they differ only in rounding:
// the fused CPU loops contract multiply-adds, the capturable ops do not).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors, manualSeed, noGrad, randn, type Tensor, tensor, tidy } from '../../src/engine/index.js';
import { DeviceGradScaler, GradScaler } from '../../src/train/grad-scaler.js';
import { AdamW, type Optimizer, SGD } from '../../src/train/optimizers.js';

const TOL = 1e-6;
const SHAPES = [[8, 3, 3, 3], [8], [5, 7]];

function maxRel(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().div(b.abs().clamp(1)).max().item());
}

/** Two identical parameter sets. */
function twins(): [Tensor[], Tensor[]] {
  manualSeed(3);
  const a = SHAPES.map((s) => randn(s).requiresGrad_(true));
  const b = a.map((p) => tidy(() => p.detach().clone()).requiresGrad_(true));
  return [a, b];
}

/** Step k's gradients: the same for both sets, the k-th one optionally with an inf. */
function setGrads(ps: Tensor[], k: number, inf = false): void {
  noGrad(() => ps.forEach((p, i) => {
    manualSeed(100 * k + i);
    const g = randn(p.shape);
    if (inf && i === 1) g.fill_(Number.POSITIVE_INFINITY);
    p.grad = g;
    g.dispose(); // the parameter keeps its own reference
  }));
}

const LRS = [0.1, 0.05, 0.2, 0.01, 0.07, 0.03];

function compare(make: (ps: Tensor[], capturable: boolean) => Optimizer, label: string): void {
  const [a, b] = twins();
  const plain = make(a, false);
  const cap = make(b, true);
  for (let k = 0; k < LRS.length; k++) {
    for (const o of [plain, cap]) o.groups[0].lr = LRS[k];
    setGrads(a, k);
    setGrads(b, k);
    plain.step();
    cap.step();
    plain.zeroGrad();
    cap.zeroGrad();
  }
  a.forEach((p, i) => assert.ok(maxRel(b[i], p) <= TOL, `${label}: param ${i}: ${maxRel(b[i], p)}`));
  const sa = plain.stateTensors();
  const sb = cap.stateTensors();
  assert.deepEqual([...sb.tensors.keys()].sort(), [...sa.tensors.keys()].sort(), `${label}: state names`);
  for (const [k, t] of sa.tensors) assert.ok(maxRel(sb.tensors.get(k)!, t) <= TOL, `${label}: state ${k}`);
  assert.deepEqual(sb.steps, sa.steps, `${label}: steps`);
  plain.dispose();
  cap.dispose();
  [...a, ...b].forEach((p) => p.dispose());
}

describe('capturable optimizers (CPU) equal the plain ones', () => {
  const cases: [string, (ps: Tensor[], c: boolean) => Optimizer][] = [
    ['SGD', (ps, c) => new SGD(ps, { lr: 0.1, capturable: c })],
    ['SGD momentum + weight decay', (ps, c) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 1e-2, capturable: c })],
    ['SGD nesterov', (ps, c) => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-4, capturable: c })],
    ['SGD dampening', (ps, c) => new SGD(ps, { lr: 0.1, momentum: 0.8, dampening: 0.3, capturable: c })],
    ['SGD per-parameter reference', (ps, c) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 1e-2, foreach: c, capturable: c })],
    ['AdamW', (ps, c) => new AdamW(ps, { lr: 1e-2, weightDecay: 1e-2, capturable: c })],
    ['AdamW betas', (ps, c) => new AdamW(ps, { lr: 3e-3, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1, capturable: c })],
  ];
  for (const [name, make] of cases) it(name, () => compare(make, name));

  it('resumes from stateTensors (steps and buffers) as the plain optimizer does', () => {
    const [a, b] = twins();
    const plain = new AdamW(a, { lr: 1e-2 });
    for (let k = 0; k < 3; k++) { setGrads(a, k); plain.step(); plain.zeroGrad(); }
    const { tensors, steps } = plain.stateTensors();
    noGrad(() => b.forEach((p, i) => p.copy_(a[i])));
    const cap = new AdamW(b, { lr: 1e-2, capturable: true });
    cap.loadStateTensors(tensors, steps);
    for (let k = 3; k < 5; k++) {
      setGrads(a, k); setGrads(b, k);
      plain.step(); cap.step(); plain.zeroGrad(); cap.zeroGrad();
    }
    a.forEach((p, i) => assert.ok(maxRel(b[i], p) <= TOL, `param ${i}`));
    assert.deepEqual(cap.stateTensors().steps, plain.stateTensors().steps);
    plain.dispose(); cap.dispose(); [...a, ...b].forEach((p) => p.dispose());
  });

  it('step(found) needs capturable: true', () => {
    const p = tensor([1], undefined, { requiresGrad: true });
    const o = new SGD([p], { lr: 0.1 });
    assert.throws(() => o.step(tensor([0])), /^PansegError: SGD: step\(found\) needs capturable: true$/);
    p.dispose();
  });
});

describe('DeviceGradScaler (CPU) decides as GradScaler', () => {
  for (const kind of ['SGD', 'AdamW'] as const) {
    it(`${kind}: skips exactly the steps with an inf gradient, leaving weights and state unchanged, and tracks the same scale`, () => {
      const before = liveTensors();
      const [a, b] = twins();
      const make = (ps: Tensor[], capturable: boolean) => (kind === 'SGD'
        ? new SGD(ps, { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 1e-3, capturable })
        : new AdamW(ps, { lr: 1e-2, capturable }));
      const plain = make(a, false);
      const cap = make(b, true);
      const o = { initScale: 2 ** 10, growthInterval: 2 };
      const s1 = new GradScaler(o);
      const s2 = new DeviceGradScaler(o);
      // Inf at the first step (no optimizer state yet), in the middle and twice in a row.
      const infAt = new Set([0, 3, 6, 7]);
      for (let k = 0; k < 10; k++) {
        setGrads(a, k, infAt.has(k));
        setGrads(b, k, infAt.has(k));
        // The gradients arrive scaled, as from backward() of a scaled loss.
        noGrad(() => { for (const p of a) { const g = p.grad!; g.mul_(s1.scale); g.dispose(); } });
        noGrad(() => { for (const p of b) { const g = p.grad!; g.mul_(s2.scale); g.dispose(); } });
        const before2 = b.map((p) => p.clone());
        const took = s1.step(plain);
        s2.step(cap);
        assert.equal(s2.lastStepSkipped(), !took, `step ${k}: skipped`);
        if (!took) b.forEach((p, i) => assert.equal(maxRel(p, before2[i]), 0, `step ${k}: skipped step changed param ${i}`));
        before2.forEach((t) => t.dispose());
        assert.equal(s2.scale, s1.scale, `step ${k}: scale`);
        assert.deepEqual(s2.state(), s1.state(), `step ${k}: state`);
        plain.zeroGrad(); cap.zeroGrad();
        a.forEach((p, i) => assert.ok(maxRel(b[i], p) <= TOL, `step ${k}: param ${i}: ${maxRel(b[i], p)}`));
      }
      const sa = plain.stateTensors();
      const sb = cap.stateTensors();
      for (const [k, t] of sa.tensors) assert.ok(maxRel(sb.tensors.get(k)!, t) <= TOL, `state ${k}`);
      assert.deepEqual(sb.steps, sa.steps);
      plain.dispose(); cap.dispose(); s2.dispose();
      [...a, ...b].forEach((p) => p.dispose());
      assert.equal(liveTensors(), before, 'no tensor leaked');
    });
  }

  it('needs a capturable optimizer', () => {
    const p = tensor([1], undefined, { requiresGrad: true });
    noGrad(() => { p.grad = tensor([1]); });
    assert.throws(() => new DeviceGradScaler().step(new SGD([p], { lr: 0.1 })), /^PansegError: DeviceGradScaler: the optimizer must be made with capturable: true$/);
    p.dispose();
  });
});
