// The graphed training step (train/graphed-step.ts). On the CPU: the same static-buffer step run eagerly
// (capture: false) equals the plain train-loop step over several steps, a batch of another shape falls back,
// and the refusals are one line. On a GPU (skipped without one, as tests/engine/cuda.test.ts): the replayed
// graph equals the eager step.
// Tolerances. With the same (capturable) optimizer the CPU static step and the plain loop are bit-identical.
// Against the plain (fused) optimizer, and on a GPU, rounding differs, and AdamW turns a rounding-sized
// change of a near-zero gradient into an lr-sized step of that element; so these compare the whole update:
// ||w_a - w_b|| / ||w_b - w_init|| over all float weights and buffers. CPU vs the plain optimizer after 5 steps: SGD <= 1e-4, AdamW <= 1e-3;
// GPU graph vs eager (cuDNN's weight gradients sum with atomics in another order each run): fp32 <= 1e-2,
// bf16/fp16 <= 5e-2.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildInfo, F, manualSeed, type Precision, randint, randn, type Tensor, tidy } from '../../src/engine/index.js';
import { withPrecision } from '../../src/eval/inference.js';
import { PAN } from '../../src/models/index.js';
import { DeviceGradScaler, GradScaler } from '../../src/train/grad-scaler.js';
import { GraphedTrainStep, graphedTrainingRefusal } from '../../src/train/graphed-step.js';
import { AdamW, type Optimizer, SGD } from '../../src/train/optimizers.js';
import { LRScheduler } from '../../src/train/schedules.js';
import { train } from '../../src/train/train.js';

const info = buildInfo();
const skip = info.cuda && info.cudaDevices > 0 ? false : 'no CUDA device: this libtorch has no CUDA or no GPU is present';

function tinyPan(device: string): PAN {
  manualSeed(11);
  const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, decoderChannels: 16, classes: 4 });
  if (device !== 'cpu') m.to({ device });
  m.train();
  return m;
}

function batches(n: number, shape: [number, number, number], device: string): [Tensor, Tensor][] {
  manualSeed(21);
  return Array.from({ length: n }, () => [randn([shape[0], 3, shape[1], shape[2]]).to(device), randint(0, 4, [shape[0], shape[1], shape[2]]).to(device)]);
}

/** The float entries of a model's state, as float32 on the CPU. */
function weights(m: PAN): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of m.stateDict()) if (t.isFloatingPoint) out.set(k, t.to({ dtype: 'float32', device: 'cpu', copy: true }));
  return out;
}
const INIT = weights(tinyPan('cpu'));

/** Largest |a - b| over all float weights and buffers. */
function maxDiff(a: PAN, b: PAN): number {
  const [wa, wb] = [weights(a), weights(b)];
  let worst = 0;
  for (const [k, t] of wa) worst = Math.max(worst, tidy(() => t.sub(wb.get(k)!).abs().max().item()));
  for (const t of [...wa.values(), ...wb.values()]) t.dispose();
  return worst;
}

/** ||a - b|| / ||b - init||: the difference relative to the training update. */
function updateDiff(a: PAN, b: PAN): number {
  const [wa, wb] = [weights(a), weights(b)];
  let diff = 0;
  let update = 0;
  for (const [k, t] of wa) tidy(() => {
    diff += t.sub(wb.get(k)!).square().sum().item();
    update += wb.get(k)!.sub(INIT.get(k)!).square().sum().item();
  });
  for (const t of [...wa.values(), ...wb.values()]) t.dispose();
  return Math.sqrt(diff / update);
}

type OptName = 'sgd' | 'adamw';
function optimizer(kind: OptName, m: PAN, capturable: boolean): Optimizer {
  return kind === 'sgd'
    ? new SGD(m.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-4, capturable })
    : new AdamW(m.parameters(), { lr: 2e-3, weightDecay: 1e-2, capturable });
}

const lossOf = (m: PAN, precision: Precision, device: string) => (x: Tensor, y: Tensor): Tensor =>
  F.crossEntropy(withPrecision(precision, device, () => m.forward(x)).to('float32'), y, { ignoreIndex: 255 });

/** train.ts's plain step: forward, loss, backward, (scaler) step, zeroGrad, schedule. */
function plainRun(kind: OptName, data: [Tensor, Tensor][], device: string, precision: Precision = 'fp32', capturable = false): PAN {
  const m = tinyPan(device);
  const opt = optimizer(kind, m, capturable);
  const sched = new LRScheduler(opt, { name: 'poly', totalIters: data.length + 2, warmupIters: 2 });
  const scaler = precision === 'fp16' ? (capturable ? new DeviceGradScaler({ initScale: 2 ** 12 }) : new GradScaler({ initScale: 2 ** 12 })) : null;
  const f = lossOf(m, precision, device);
  for (const [x, y] of data) {
    tidy(() => { const l = f(x, y); (scaler ? scaler.scaleLoss(l) : l).backward(); });
    if (scaler) scaler.step(opt); else opt.step();
    opt.zeroGrad();
    sched.step();
  }
  opt.dispose();
  return m;
}

function graphedRun(kind: OptName, data: [Tensor, Tensor][], device: string, capture: boolean, precision: Precision = 'fp32'): { m: PAN; step: GraphedTrainStep; scaler: DeviceGradScaler | null } {
  const m = tinyPan(device);
  const opt = optimizer(kind, m, true);
  const sched = new LRScheduler(opt, { name: 'poly', totalIters: data.length + 2, warmupIters: 2 });
  const scaler = precision === 'fp16' ? new DeviceGradScaler({ initScale: 2 ** 12 }) : null;
  const step = new GraphedTrainStep({ model: m, optimizer: opt, scaler, forwardLoss: lossOf(m, precision, device), capture, warmup: 2 });
  for (const [x, y] of data) { step.step(x, y); sched.step(); }
  return { m, step, scaler };
}

describe('GraphedTrainStep on the CPU (capture: false)', () => {
  for (const kind of ['sgd', 'adamw'] as const) {
    it(`${kind}: the eager static-buffer step equals the plain train-loop step over 5 steps with a changing lr`, () => {
      const data = batches(5, [2, 64, 64], 'cpu');
      const same = plainRun(kind, data, 'cpu', 'fp32', true);
      const plain = plainRun(kind, data, 'cpu');
      const { m: got, step } = graphedRun(kind, data, 'cpu', false);
      assert.equal(maxDiff(got, same), 0, 'bit-identical to the plain loop with the same optimizer');
      const rel = updateDiff(got, plain);
      assert.ok(rel <= (kind === 'sgd' ? 1e-4 : 1e-3), `vs the plain optimizer: ||difference|| / ||update|| = ${rel}`);
      assert.equal(step.shapeFallbacks, 0);
      assert.ok(Number.isFinite(step.lossValue()));
      step.dispose(); got.dispose(); same.dispose(); plain.dispose();
      for (const [x, y] of data) { x.dispose(); y.dispose(); }
    });
  }

  it('a batch of another shape (a last partial batch) runs eagerly on the same weights, and matches the plain step', () => {
    const data = [...batches(3, [4, 64, 64], 'cpu'), ...batches(1, [2, 64, 64], 'cpu'), ...batches(1, [4, 64, 64], 'cpu')];
    const want = plainRun('sgd', data, 'cpu', 'fp32', true);
    const { m: got, step } = graphedRun('sgd', data, 'cpu', false);
    assert.equal(step.shapeFallbacks, 1);
    assert.equal(maxDiff(got, want), 0);
    step.dispose(); got.dispose(); want.dispose();
    for (const [x, y] of data) { x.dispose(); y.dispose(); }
  });

  it('refuses what it cannot do, in one line', () => {
    const m = tinyPan('cpu');
    assert.throws(() => new GraphedTrainStep({ model: m, optimizer: optimizer('sgd', m, false), forwardLoss: lossOf(m, 'fp32', 'cpu'), capture: false }),
      /^PansegError: GraphedTrainStep: the optimizer must be made with capturable: true$/);
    assert.throws(() => new GraphedTrainStep({ model: m, optimizer: optimizer('sgd', m, true), forwardLoss: lossOf(m, 'fp32', 'cpu') }),
      /^PansegError: GraphedTrainStep: CUDA graphs need the model on a CUDA device, but it is on cpu; move it to 'cuda' or pass capture: false$/);
    m.dispose();
    const base = { device: 'cuda', accumulate: 1, freezeEncoderEpochs: 0, distributed: false };
    assert.equal(graphedTrainingRefusal(base), null);
    assert.match(graphedTrainingRefusal({ ...base, device: 'cpu' })!, /needs --device cuda, not cpu/);
    assert.match(graphedTrainingRefusal({ ...base, distributed: true })!, /does not support distributed training yet/);
    assert.match(graphedTrainingRefusal({ ...base, accumulate: 2 })!, /does not support gradient accumulation yet/);
    assert.match(graphedTrainingRefusal({ ...base, freezeEncoderEpochs: 1 })!, /cannot follow --freeze-encoder-epochs/);
  });

  it('train({ cudaGraphs: true }) on the CPU is refused before any work', async () => {
    await assert.rejects(train({ dataset: 'folder', dataRoot: '/nonexistent', out: '/tmp/panseg-never', cudaGraphs: true }),
      (e: Error) => e.message === 'train: cudaGraphs (--cuda-graphs) records GPU work and needs --device cuda, not cpu; drop --cuda-graphs on the CPU');
  });
});

describe('GraphedTrainStep on a GPU: the replayed graph equals the eager step', { skip }, () => {
  const cases: [OptName, Precision][] = [['sgd', 'fp32'], ['adamw', 'fp32'], ['sgd', 'bf16'], ['adamw', 'bf16'], ['sgd', 'fp16'], ['adamw', 'fp16']];
  for (const [kind, precision] of cases) {
    it(`${kind} ${precision}: same weights after 6 steps (2 warm-up, capture, 3 replays)${precision === 'fp16' ? ', an inf batch skipped by both' : ''}`, () => {
      const data = batches(6, [2, 64, 64], 'cuda');
      // fp16: a batch with an inf pixel makes every gradient non-finite; both scalers must skip it.
      if (precision === 'fp16') tidy(() => { data[4][0].narrow(0, 0, 1).narrow(2, 0, 1).narrow(3, 0, 1).fill_(Number.POSITIVE_INFINITY); });
      const eager = graphedRun(kind, data, 'cuda', false, precision);
      const graph = graphedRun(kind, data, 'cuda', true, precision);
      assert.equal(graph.step.graphed, true, 'captured');
      const rel = updateDiff(graph.m, eager.m);
      assert.ok(rel <= (precision === 'fp32' ? 1e-2 : 5e-2), `||difference|| / ||update|| = ${rel}`);
      if (precision === 'fp16') assert.deepEqual(graph.scaler!.state(), eager.scaler!.state(), 'same scale and growth tracker');
      assert.ok(Math.abs(graph.step.lossValue() - eager.step.lossValue()) <= 1e-2 * Math.max(1, Math.abs(eager.step.lossValue())));
      for (const r of [eager, graph]) { r.step.dispose(); r.scaler?.dispose(); r.m.dispose(); }
      for (const [x, y] of data) { x.dispose(); y.dispose(); }
    });
  }

  it('equals the plain train-loop step (fp32 SGD) and falls back on a shape change after the capture', () => {
    const data = [...batches(4, [4, 64, 64], 'cuda'), ...batches(1, [2, 64, 64], 'cuda'), ...batches(1, [4, 64, 64], 'cuda')];
    const want = plainRun('sgd', data, 'cuda');
    const got = graphedRun('sgd', data, 'cuda', true);
    assert.equal(got.step.graphed, true);
    assert.equal(got.step.shapeFallbacks, 1);
    const rel = updateDiff(got.m, want);
    assert.ok(rel <= 1e-2, `||difference|| / ||update|| = ${rel}`);
    got.step.dispose(); got.m.dispose(); want.dispose();
    for (const [x, y] of data) { x.dispose(); y.dispose(); }
  });
});
