// CUDA graphs (engine/cuda-graph.ts) and graphed inference (eval/graphed-forward.ts). The CUDA cases run only
// where panseg was built against a CUDA libtorch and a GPU is present; elsewhere node:test reports them as
// skipped (the same rule as cuda.test.ts). On a CPU build the one-line errors are tested.
// Tolerance: a replay runs the captured kernels on the same memory, so replay vs eager is exact for the
// forward of a conv net (same kernels, no atomics); inference copy replay vs eager <= 1e-5 relative to max |logit|.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildInfo, CudaGraph, F, isCapturing, liveTensors, manualSeed, onSideStream, randn, type Tensor, tidy } from '../../src/engine/index.js';
import { GraphedForward } from '../../src/eval/graphed-forward.js';
import { openSource } from '../../src/eval/segmenter.js';
import { PAN } from '../../src/models/index.js';

const info = buildInfo();
const skip = info.cuda && info.cudaDevices > 0 ? false : 'no CUDA device: this libtorch has no CUDA or no GPU is present';
const NO_CUDA = 'CUDA graphs need a CUDA build of libtorch; set LIBTORCH to a CUDA libtorch (or install a CUDA PyTorch) and run `npm run setup`';

describe('CUDA graphs without CUDA', { skip: info.cuda ? 'this libtorch has CUDA' : false }, () => {
  it('refuses in one line', () => {
    assert.throws(() => new CudaGraph(), (e: Error) => e.message === `CudaGraph: ${NO_CUDA}`);
    assert.throws(() => onSideStream('cuda', () => 1), (e: Error) => e.message === `onSideStream: ${NO_CUDA}`);
    assert.equal(isCapturing(), false);
  });
});

describe('CUDA graphs on the CPU', () => {
  it('graphed inference is refused for a CPU model, and for the ONNX engine', () => {
    assert.throws(() => new GraphedForward((x) => x, 'cpu'),
      (e: Error) => e.message === 'cudaGraphs: CUDA graphs record GPU work and need a model on a CUDA device, but it is on cpu; drop cudaGraphs (--cuda-graphs) on the CPU');
    const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, decoderChannels: 16, classes: 3 });
    const before = liveTensors();
    assert.throws(() => openSource(m, 'fp32', true), /^PansegError: cudaGraphs: CUDA graphs record GPU work/);
    assert.equal(liveTensors(), before, 'the inference copy was freed');
    m.dispose();
    const onnxLike = { numClasses: 2, activation: null, outputStride: 32, preprocessing: { mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] }, paddedSize: (h: number, w: number): [number, number] => [h, w], logits: (x: Tensor) => x };
    assert.throws(() => openSource(onnxLike, 'fp32', true), /the ONNX engine cannot use them/);
  });
});

/** A small conv net's forward. */
function net(device: string) {
  manualSeed(1);
  const w1 = randn([8, 3, 3, 3]).to(device);
  const w2 = randn([4, 8, 3, 3]).to(device);
  return { f: (x: Tensor) => F.conv2d(F.conv2d(x, w1, null, { padding: 1 }).relu(), w2, null, { padding: 1 }).mean([2, 3]), dispose: () => { w1.dispose(); w2.dispose(); } };
}

describe('CUDA graphs on a GPU', { skip }, () => {
  it('a replay of a conv net forward equals the eager forward, for new inputs copied into the static one', () => {
    const n = net('cuda');
    const xs = randn([2, 3, 16, 16]).to('cuda');
    onSideStream('cuda', () => tidy(() => { n.f(xs); })); // warm-up
    const g = new CudaGraph();
    const y = g.capture(() => n.f(xs));
    assert.equal(y.device, 'cuda:0');
    for (let i = 0; i < 3; i++) tidy(() => {
      const x = randn([2, 3, 16, 16]).to('cuda');
      xs.copy_(x);
      g.replay();
      assert.deepEqual(y.toNumbers(), n.f(x).toNumbers());
    });
    y.dispose(); // the graph keeps its own handle: replay still writes live memory
    g.replay();
    g.dispose();
    assert.throws(() => g.replay(), /^PansegError: replay: this CUDA graph was disposed; capture a new one$/);
    g.dispose(); // twice is fine
    n.dispose(); xs.dispose();
  });

  it('refuses nested captures, a second capture, CPU outputs; a failed capture leaves the stream usable', () => {
    const x = randn([4]).to('cuda');
    const g = new CudaGraph();
    assert.throws(() => g.capture(() => { new CudaGraph().capture(() => x.mul(2)); }), /captures do not nest/);
    assert.equal(isCapturing(), false);
    const g2 = new CudaGraph();
    assert.throws(() => g2.capture(() => x.mul(2).item()), Error); // a host read cannot be captured
    assert.equal(isCapturing(), false);
    assert.equal(tidy(() => x.mul(0).sum().item()), 0, 'eager work runs after the failed capture');
    const g3 = new CudaGraph();
    g3.capture(() => x.mul(3));
    assert.throws(() => g3.capture(() => x.mul(3)), /already captured/);
    assert.throws(() => new CudaGraph().capture(() => x.to('cpu')), /an output tensor is on cpu/);
    assert.throws(() => new CudaGraph({ device: 'cpu' }), /records GPU work only/);
    for (const a of [g, g2, g3]) a.dispose();
    x.dispose();
  });

  it('graphed inference of a PAN inference copy equals eager, per shape, falls back on new shapes and frees all on close', () => {
    const m = new PAN({ encoderName: 'resnet18', classes: 4 });
    m.to({ device: 'cuda' });
    m.eval();
    const before = liveTensors();
    const eager = openSource(m, 'fp32');
    const graphed = openSource(m, 'fp32', true);
    for (const shape of [[1, 3, 64, 64], [1, 3, 64, 64], [1, 3, 64, 64], [4, 3, 64, 96], [4, 3, 64, 96], [1, 3, 64, 64]]) tidy(() => {
      const x = randn(shape).to('cuda');
      const a = eager.src.logits(x) as Tensor;
      const b = graphed.src.logits(x) as Tensor;
      const scale = a.abs().max().item();
      assert.ok(b.sub(a).abs().max().item() <= 1e-5 * scale, `shape ${shape}`);
    });
    eager.close();
    graphed.close();
    m.dispose();
    assert.ok(liveTensors() <= before, 'graphs and buffers freed');
  });

  it('GraphedForward keeps at most maxShapes graphs, captures a shape when seen twice', () => {
    const n = net('cuda');
    const gf = new GraphedForward(n.f, 'cuda', 2);
    for (const s of [8, 8, 16, 16, 24, 24, 8, 8]) tidy(() => { gf.run(randn([1, 3, s, s]).to('cuda')); });
    assert.deepEqual(gf.counts, { replayed: 5, eager: 3, captured: 4 }); // 8, 16, 24 eager once; 8 comes back after eviction and is captured at once
    gf.close();
    n.dispose();
  });
});
