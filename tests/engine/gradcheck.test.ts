// Finite-difference gradient checks in float64: central differences (eps 1e-6) of L = sum(f(x) * g)
// for a fixed random g, against autograd. Tolerance atol 1e-6 + rtol 1e-5: the rounding error of
// a central difference is about 1e-16 * |L| / eps ~ 1e-9 here, truncation about eps^2.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { F, type Tensor, manualSeed, setNumThreads, noGrad, randn, tensor, tidy } from '../../src/engine/index.js';

// Thousands of tiny ops: one thread avoids libtorch's fork/join cost, which on a busy machine
// (e.g. CI running other jobs) makes a 2-thread run 10x slower. Results do not depend on it.
setNumThreads(1);

const EPS = 1e-6;
const TOL = { atol: 1e-6, rtol: 1e-5 };

interface Spec { shape: number[]; data?: Float64Array; positive?: boolean; grad?: boolean }

function gradcheck(specs: Record<string, Spec>, f: (t: Record<string, Tensor>) => Tensor, seed = 0): void {
  manualSeed(seed);
  const data: Record<string, Float64Array> = {};
  for (const [k, s] of Object.entries(specs)) {
    data[k] = s.data ?? tidy(() => {
      const r = randn(s.shape, { dtype: 'float64' });
      return (s.positive ? r.abs().add(0.5) : r).toArray() as Float64Array;
    });
  }
  const build = (grad: boolean): Record<string, Tensor> => Object.fromEntries(Object.entries(specs).map(([k, s]) => {
    const t = tensor(data[k], s.shape, { dtype: 'float64' });
    return [k, grad && s.grad !== false ? t.requiresGrad_() : t];
  }));
  tidy(() => {
    const ins = build(true);
    const y = f(ins);
    assert.equal(y.dtype, 'float64');
    const g = randn(y.shape, { dtype: 'float64' });
    y.mul(g).sum().backward();
    const loss = (): number => tidy(() => noGrad(() => f(build(false)).mul(g).sum().item()));
    for (const [k, s] of Object.entries(specs)) {
      if (s.grad === false) continue;
      const analytic = ins[k].grad!.toNumbers();
      const d = data[k];
      for (let i = 0; i < d.length; i++) {
        const x0 = d[i];
        d[i] = x0 + EPS; const lp = loss();
        d[i] = x0 - EPS; const lm = loss();
        d[i] = x0;
        const numeric = (lp - lm) / (2 * EPS);
        const err = Math.abs(numeric - analytic[i]);
        if (err > TOL.atol + TOL.rtol * Math.abs(numeric)) {
          assert.fail(`d/d${k}[${i}]: autograd ${analytic[i]}, finite difference ${numeric} (|diff| ${err.toExponential(2)})`);
        }
      }
    }
  });
}

describe('finite-difference gradient checks (float64)', () => {
  it('conv2d, stride 2 with padding and bias', () => gradcheck(
    { x: { shape: [2, 3, 7, 6] }, w: { shape: [4, 3, 3, 3] }, b: { shape: [4] } },
    ({ x, w, b }) => F.conv2d(x, w, b, { stride: 2, padding: 1 }),
  ));
  it('conv2d, dilation 2', () => gradcheck(
    { x: { shape: [1, 2, 8, 7] }, w: { shape: [3, 2, 3, 3] } },
    ({ x, w }) => F.conv2d(x, w, null, { dilation: 2, padding: [2, 1] }),
  ));
  it('conv2d, groups 2 with stride [2, 1]', () => gradcheck(
    { x: { shape: [2, 4, 5, 5] }, w: { shape: [6, 2, 3, 3] }, b: { shape: [6] } },
    ({ x, w, b }) => F.conv2d(x, w, b, { groups: 2, stride: [2, 1], padding: 1 }),
  ));
  it('batchNorm in training mode (batch statistics)', () => gradcheck(
    { x: { shape: [3, 2, 3, 3] }, w: { shape: [2] }, b: { shape: [2] } },
    ({ x, w, b }) => F.batchNorm(x, null, null, { weight: w, bias: b, training: true }),
  ));
  for (const alignCorners of [false, true]) {
    it(`interpolate bilinear, alignCorners ${alignCorners}, size up in H and down in W`, () => gradcheck(
      { x: { shape: [1, 2, 4, 5] } },
      ({ x }) => F.interpolate(x, { size: [7, 3], mode: 'bilinear', alignCorners }),
    ));
    it(`interpolate bilinear, alignCorners ${alignCorners}, scaleFactor 1.5`, () => gradcheck(
      { x: { shape: [1, 1, 4, 3] } },
      ({ x }) => F.interpolate(x, { scaleFactor: 1.5, mode: 'bilinear', alignCorners }),
    ));
  }
  it('maxPool2d, kernel 3 stride 2 padding 1', () => gradcheck(
    { x: { shape: [2, 2, 7, 6] } },
    ({ x }) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }),
    5,
  ));
  it('adaptiveAvgPool2d to a size that does not divide the input', () => gradcheck(
    { x: { shape: [1, 2, 7, 5] } },
    ({ x }) => F.adaptiveAvgPool2d(x, [3, 2]),
  ));
  it('crossEntropy with ignoreIndex (and class weights)', () => {
    // Classes 0..3, every fifth pixel ignored.
    const t = Array.from({ length: 18 }, (_, i) => (i % 5 === 0 ? 255 : (i * 7) % 4));
    const target = () => tensor(t, [2, 3, 3], { dtype: 'int64' });
    gradcheck({ x: { shape: [2, 4, 3, 3] } }, ({ x }) => F.crossEntropy(x, target(), { ignoreIndex: 255 }));
    gradcheck({ x: { shape: [2, 4, 3, 3] }, w: { shape: [4], positive: true, grad: false } },
      ({ x, w }) => F.crossEntropy(x, target(), { ignoreIndex: 255, weight: w, labelSmoothing: 0.1 }));
  });
  it('linear, logSoftmax and avgPool2d (excluding padding) chained', () => gradcheck(
    { x: { shape: [1, 2, 5, 5] }, w: { shape: [3, 9] } },
    ({ x, w }) => F.linear(F.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }).reshape(2, 9), w).logSoftmax(1),
  ));
});
