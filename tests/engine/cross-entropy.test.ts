// The fused softmax cross-entropy (native/cross-entropy.cc) against ATen's log_softmax + nll_loss (what
// PyTorch runs; setFusedKernels(false)): loss and gradient within float32 rounding for every option, and the
// cases it must leave to ATen untouched (bit-identical results).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { F, full, fusedKernels, manualSeed, noGrad, profileOps, randint, randn, setFusedKernels, tensor, tidy, type Tensor } from '../../src/engine/index.js';
import { PansegError } from '../../src/common/errors.js';

const available = setFusedKernels(true);
after(() => setFusedKernels(true));

type Reduction = 'mean' | 'sum' | 'none';
interface Options { weight?: Tensor; ignoreIndex?: number; labelSmoothing?: number; reduction?: Reduction }

/** Loss and gradient with the setting `on`; the logits cloned so both runs start equal. */
function run(on: boolean, x: Tensor, y: Tensor, o: Options, upstream?: Tensor) {
  setFusedKernels(on);
  const xr = x.clone().requiresGrad_();
  const loss = F.crossEntropy(xr, y, o);
  loss.backward(upstream);
  return { loss, grad: xr.grad! };
}

const maxErr = (p: Tensor, q: Tensor) => p.sub(q).abs().max().item();

/** Logits [N, C, H, W] in memory order `layout` (or [M, C] rows) and targets with ~1/5 of them ignored. */
function data(classes: number, layout: 'channelsLast' | 'rows' | 'contiguous', ignoreIndex: number, scale = 3) {
  const shape = layout === 'rows' ? [300, classes] : [2, classes, 9, 11];
  let x = randn(shape).mul(scale);
  if (layout === 'channelsLast') x = x.contiguous('channelsLast');
  const tshape = layout === 'rows' ? [300] : [2, 9, 11];
  const t = randint(0, classes, tshape);
  const y = F.where(randn(tshape).gt(0.85), tensor(ignoreIndex, undefined, { dtype: 'int64' }), t);
  return { x, y };
}

describe('fused softmax cross-entropy (float32 rows, AVX-512)', { skip: available ? false : 'needs an x86-64 CPU with AVX-512' }, () => {
  for (const layout of ['channelsLast', 'rows'] as const) {
    for (const classes of [2, 5, 16, 21, 37]) {
      it(`${layout === 'rows' ? '[M, C] rows' : 'channels-last [N, C, H, W]'}, ${classes} classes: loss and gradient within 1e-5 of ATen's for each reduction, class weights and label smoothing`, () => tidy(() => {
        manualSeed(classes);
        const { x, y } = data(classes, layout, 255);
        const weight = randn([classes]).abs().add(0.1);
        for (const reduction of ['mean', 'sum', 'none'] as const) {
          for (const w of [undefined, weight]) {
            for (const labelSmoothing of [0, 0.1]) {
              const o: Options = { reduction, weight: w, ignoreIndex: 255, labelSmoothing };
              const upstream = reduction === 'none' ? randn(y.shape) : undefined;
              const ref = run(false, x, y, o, upstream);
              const fused = run(true, x, y, o, upstream);
              const what = `${reduction}, ${w ? 'weights' : 'no weights'}, smoothing ${labelSmoothing}`;
              assert.deepEqual(fused.loss.shape, ref.loss.shape, what);
              assert.deepEqual(fused.grad.shape, ref.grad.shape, what);
              const scale = Math.max(ref.loss.abs().max().item(), 1);
              assert.ok(maxErr(fused.loss, ref.loss) <= 1e-5 * scale, `${what}: loss ${maxErr(fused.loss, ref.loss)}`);
              assert.ok(maxErr(fused.grad, ref.grad) <= 1e-5 * Math.max(ref.grad.abs().max().item(), 1e-3), `${what}: gradient ${maxErr(fused.grad, ref.grad)}`);
              assert.equal(fused.grad.isContiguous('channelsLast'), ref.grad.isContiguous('channelsLast'), `${what}: memory order`);
            }
          }
        }
      }));
    }
  }

  it('runs the fused kernel (its profile line) and rounds differently from ATen', () => tidy(() => {
    manualSeed(3);
    const { x, y } = data(21, 'channelsLast', -100);
    const names = profileOps({ step: () => { tidy(() => run(true, x, y, {})); } }, 1).map((r) => r.name);
    assert.ok(names.includes('panseg::cross_entropy') && names.includes('panseg::cross_entropy_backward'), names.join(', '));
    assert.ok(!names.includes('aten::_log_softmax'), 'ATen\'s log_softmax ran too');
    const a = run(false, x, y, {});
    const b = run(true, x, y, {});
    assert.ok(maxErr(a.grad, b.grad) > 0, 'identical to ATen to the bit: the fused path did not run');
  }));

  it('extreme logits: large magnitudes stay finite, softmax underflow to 0 matches, NaN and +inf propagate as ATen', () => tidy(() => {
    const big = tensor([[1e4, -1e4, 0], [80, -80, 30], [-1e30, 0, 1e30], [0, 0, 0]]);
    const y = tensor([0, 1, 2, 1], undefined, { dtype: 'int64' });
    const ones = tensor([1, 1, 1, 1]);
    const ref = run(false, big, y, { reduction: 'none' }, ones);
    const fused = run(true, big, y, { reduction: 'none' }, ones);
    assert.ok(maxErr(fused.loss, ref.loss) <= 1e-6 * 160, `${fused.loss.toArray()} vs ${ref.loss.toArray()}`);
    assert.ok(maxErr(fused.grad, ref.grad) <= 1e-6, String(maxErr(fused.grad, ref.grad)));
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const x = tensor([[0, bad, 1], [0, 1, 2]]);
      const t = tensor([0, 2], undefined, { dtype: 'int64' });
      const l = Array.from(run(true, x, t, { reduction: 'none' }, tensor([1, 1])).loss.toArray() as Float32Array);
      const r = Array.from(run(false, x, t, { reduction: 'none' }, tensor([1, 1])).loss.toArray() as Float32Array);
      assert.ok(Number.isNaN(l[0]) && Number.isNaN(r[0]), `${bad}: ${l[0]} vs ${r[0]}`);
      assert.ok(Math.abs(l[1] - r[1]) < 1e-6);
    }
  }));

  it('every pixel ignored: mean is NaN and the gradient zero, as ATen; sum is 0', () => tidy(() => {
    const x = randn([2, 4, 3, 3]).contiguous('channelsLast');
    const y = full([2, 3, 3], 255, { dtype: 'int64' });
    for (const reduction of ['mean', 'sum'] as const) {
      const ref = run(false, x, y, { ignoreIndex: 255, reduction });
      const fused = run(true, x, y, { ignoreIndex: 255, reduction });
      assert.deepEqual([fused.loss.item()], [ref.loss.item()], reduction);
      assert.equal(fused.grad.abs().sum().item(), 0);
      assert.equal(ref.grad.abs().sum().item(), 0);
    }
  }));

  it('a target out of range is a one-line error, and nothing is left behind', () => tidy(() => {
    const x = randn([2, 5, 4, 4]).contiguous('channelsLast');
    for (const bad of [5, -1, 1000]) {
      const labels = new Array<number>(32).fill(1);
      labels[29] = bad;
      const y = tensor(labels, [2, 4, 4], { dtype: 'int64' });
      assert.throws(() => F.crossEntropy(x, y), (e: unknown) => e instanceof PansegError && /^crossEntropy: Target -?\d+ is out of bounds\.$/.test(e.message));
    }
  }));

  it('leaves to ATen what it does not cover: NCHW logits, float64, bfloat16, and the setting off (bit-identical)', () => tidy(() => {
    manualSeed(4);
    const cases: { name: string; x: Tensor; y: Tensor }[] = [];
    const nchw = data(7, 'contiguous', 255);
    cases.push({ name: 'NCHW', ...nchw });
    const rows = data(7, 'rows', 255);
    cases.push({ name: 'float64 rows', x: rows.x.to('float64'), y: rows.y });
    cases.push({ name: 'bfloat16 rows', x: rows.x.to('bfloat16'), y: rows.y });
    for (const c of cases) {
      const ref = run(false, c.x, c.y, { ignoreIndex: 255, labelSmoothing: 0.05 });
      const again = run(true, c.x, c.y, { ignoreIndex: 255, labelSmoothing: 0.05 });
      assert.equal(again.loss.item(), ref.loss.item(), c.name);
      assert.equal(maxErr(again.grad.to('float64'), ref.grad.to('float64')), 0, c.name);
    }
    setFusedKernels(false);
    assert.equal(fusedKernels(), false);
    const names = profileOps({ step: () => { tidy(() => run(false, rows.x, rows.y, { ignoreIndex: 255 })); } }, 1).map((r) => r.name);
    assert.ok(names.includes('aten::_log_softmax') && !names.includes('panseg::cross_entropy'), names.join(', '));
    setFusedKernels(true);
  }));

  it('no gradient wanted: the loss alone, the same as with one', () => tidy(() => {
    manualSeed(5);
    const { x, y } = data(21, 'channelsLast', 255);
    const withGrad = run(true, x, y, { ignoreIndex: 255 }).loss.item();
    const without = noGrad(() => F.crossEntropy(x, y, { ignoreIndex: 255 }).item());
    assert.equal(without, withGrad);
  }));
});
