// PAN-resnet34 at 512x512 on a CUDA GPU, panseg vs PyTorch eager on the same model and GPU, measured
// in one run: inference (batch 1) and a training step (SGD momentum; batches 4 and 16) in fp32,
// channels-last, and bf16/fp16 autocast (fp16 training with a GradScaler, as torch.amp does).
// CUDA graphs: the graphed training step (train/graphed-step.ts) and graphed inference of the inference
// copy (eval/graphed-forward.ts) at batches 1, 4 and 16 in bf16 channels-last, against PyTorch eager and
// PyTorch's torch.cuda.graph of the same step (goal: graphed step at batch 4 <= 0.7x PyTorch eager).
// Needs panseg built against a CUDA libtorch (see README, 'GPU'), and a Python whose torch sees
// the GPU (PANSEG_PYTHON, default python3). Run: npm run bench -- cuda
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { autocast, buildInfo, cudaSynchronize, F, manualSeed, noGrad, randint, randn, type Tensor, tidy } from '../src/engine/index.js';
import { PAN } from '../src/models/index.js';
import { countMacs } from '../src/nn/index.js';
import { openSource } from '../src/eval/segmenter.js';
import { GradScaler } from '../src/train/grad-scaler.js';
import { GraphedTrainStep } from '../src/train/graphed-step.js';
import { SGD } from '../src/train/optimizers.js';
import { medianMs } from './timing.js';

type Mode = 'fp32' | 'fp32_cl' | 'bf16_cl' | 'fp16_cl';
const AMP = { bf16: 'bfloat16', fp16: 'float16' } as const;

export interface CudaBenchOptions {
  encoder?: string;
  size?: number;
  repeats?: number;
  trainBatches?: number[];
  /** Batches of the CUDA graph rows (default [1, 4, 16]; [] leaves them out). */
  graphBatches?: number[];
}

export interface CudaBenchResult {
  gpu: string;
  gflops: number;
  torch: { infer: Record<string, number>; train: Record<string, number>; graph?: Record<string, number>; torch: string; gpu: string };
  infer: Record<string, number>;
  train: Record<string, number>;
  /** `<train|infer>_<eager|graphed>_b<batch>` -> ms, bf16 channels-last. */
  graph: Record<string, number>;
}

/** Median ms of `fn` over `n` runs after 3 warm-ups; every run ends with a device synchronization. */
const gpuMedianMs = (fn: () => void, n: number): number => medianMs(() => { fn(); cudaSynchronize(); }, n, 3);

function amp(mode: Mode): 'bfloat16' | 'float16' | null {
  const p = mode.split('_')[0];
  return p === 'bf16' || p === 'fp16' ? AMP[p] : null;
}

function input(mode: Mode, n: number, size: number): Tensor {
  const x = randn([n, 3, size, size]).to('cuda');
  return mode.endsWith('_cl') ? x.contiguous('channelsLast') : x;
}

export function benchCuda(o: CudaBenchOptions = {}): CudaBenchResult {
  const info = buildInfo();
  if (!info.cuda || info.cudaDevices < 1) throw new Error('bench cuda: no CUDA device (panseg must be built against a CUDA libtorch, on a machine with a GPU)');
  const encoder = o.encoder ?? 'resnet34';
  const size = o.size ?? 512;
  const reps = o.repeats ?? 30;
  const batches = o.trainBatches ?? [4, 16];
  const classes = 21;
  const modes: Mode[] = ['fp32', 'fp32_cl', 'bf16_cl', 'fp16_cl'];
  manualSeed(0);
  const graphBatches = o.graphBatches ?? [1, 4, 16];
  const cfg = { encoder, classes, size, repeats: reps, train_batches: batches, infer: modes, train: modes, graph_mode: GRAPH_MODE, graph_batches: graphBatches };
  const py = fileURLToPath(new URL('./pytorch_cuda.py', import.meta.url));
  const torch = JSON.parse(execFileSync(process.env.PANSEG_PYTHON ?? 'python3', [py, JSON.stringify(cfg)], { encoding: 'utf8' })) as CudaBenchResult['torch'];

  const cpuModel = new PAN({ encoderName: encoder, classes });
  cpuModel.eval();
  const gflops = (2 * countMacs(() => noGrad(() => tidy(() => { cpuModel.forward(randn([1, 3, size, size])); })))) / 1e9;
  cpuModel.dispose();

  const infer: Record<string, number> = {};
  for (const mode of modes) {
    const m = new PAN({ encoderName: encoder, classes });
    m.eval();
    m.to({ device: 'cuda', ...(mode.endsWith('_cl') ? { memoryFormat: 'channelsLast' as const } : {}) });
    const x = input(mode, 1, size);
    const dtype = amp(mode);
    infer[mode] = gpuMedianMs(() => tidy(() => { dtype ? autocast(() => m.predict(x), { deviceType: 'cuda', dtype }) : m.predict(x); }), reps);
    // The inference copy: BatchNorm folded, weights stored in the mode's dtype (no autocast casts).
    const fast = m.optimizedForInference({ channelsLast: mode.endsWith('_cl'), dtype: dtype ?? 'float32' });
    infer[`${mode}_fused`] = gpuMedianMs(() => tidy(() => { fast.predict(x); }), reps);
    fast.dispose();
    m.dispose();
    x.dispose();
  }

  const train: Record<string, number> = {};
  for (const mode of modes) {
    for (const n of batches) {
      const m = new PAN({ encoderName: encoder, classes });
      m.to({ device: 'cuda', ...(mode.endsWith('_cl') ? { memoryFormat: 'channelsLast' as const } : {}) });
      m.train();
      const opt = new SGD(m.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
      const xb = input(mode, n, size);
      const yb = randint(0, classes, [n, size, size]).to('cuda');
      const dtype = amp(mode);
      const scaler = dtype === 'float16' ? new GradScaler() : null;
      const step = () => {
        opt.zeroGrad();
        tidy(() => {
          const logits = dtype ? autocast(() => m.forward(xb), { deviceType: 'cuda', dtype }) : m.forward(xb);
          const loss = F.crossEntropy(logits.to('float32'), yb, { ignoreIndex: 255 });
          (scaler ? scaler.scaleLoss(loss) : loss).backward();
        });
        if (scaler) scaler.step(opt);
        else opt.step();
      };
      train[`${mode}_b${n}`] = gpuMedianMs(step, Math.max(3, Math.floor(reps / 2)));
      opt.dispose();
      m.dispose();
      xb.dispose();
      yb.dispose();
    }
  }
  return { gpu: torch.gpu, gflops, torch, infer, train, graph: benchGraphs(encoder, classes, size, reps, graphBatches) };
}

const GRAPH_MODE: Mode = 'bf16_cl';

/** panseg's graphed rows: the whole SGD step and the inference copy's forward, eager and replayed. */
function benchGraphs(encoder: string, classes: number, size: number, reps: number, batches: number[]): Record<string, number> {
  const rows: Record<string, number> = {};
  const dtype = amp(GRAPH_MODE)!;
  for (const n of batches) {
    for (const capture of [false, true]) {
      const m = new PAN({ encoderName: encoder, classes });
      m.to({ device: 'cuda', memoryFormat: 'channelsLast' });
      m.train();
      const opt = new SGD(m.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-4, capturable: true });
      const xb = input(GRAPH_MODE, n, size);
      const yb = randint(0, classes, [n, size, size]).to('cuda');
      const step = new GraphedTrainStep({
        model: m, optimizer: opt, capture,
        forwardLoss: (x, y) => F.crossEntropy(autocast(() => m.forward(x), { deviceType: 'cuda', dtype }).to('float32'), y, { ignoreIndex: 255 }),
      });
      for (let i = 0; i < 4; i++) step.step(xb, yb); // 3 warm-up steps, then the capture
      rows[`train_${capture ? 'graphed' : 'eager'}_b${n}`] = gpuMedianMs(() => step.step(xb, yb), Math.max(3, Math.floor(reps / 2)));
      step.dispose();
      opt.dispose();
      m.dispose();
      xb.dispose();
      yb.dispose();
    }
    for (const cudaGraphs of [false, true]) {
      const m = new PAN({ encoderName: encoder, classes });
      m.eval();
      m.to({ device: 'cuda', memoryFormat: 'channelsLast' });
      const { src, close } = openSource(m, 'bf16', cudaGraphs); // the bf16 inference copy
      const x = input(GRAPH_MODE, n, size);
      const run = () => tidy(() => { src.logits(x); });
      run(); run(); // a shape is captured when seen the second time
      rows[`infer_${cudaGraphs ? 'graphed' : 'eager'}_b${n}`] = gpuMedianMs(run, reps);
      close();
      m.dispose();
      x.dispose();
    }
  }
  return rows;
}

const fmt = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(2)).padStart(9);
const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2) : 'n/a').padStart(7);

export function printCuda(r: CudaBenchResult): void {
  console.log(`\nPAN-resnet34 on ${r.gpu} (libtorch ${buildInfo().torchVersion}; PyTorch ${r.torch.torch}): ${r.gflops.toFixed(1)} GFLOP per 512x512 image`);
  console.log('inference, batch 1     panseg ms  TFLOP/s   torch ms   ratio');
  for (const [k, ms] of Object.entries(r.infer)) {
    const peer = r.torch.infer[k.replace(/_fused$/, '')];
    console.log(`  ${k.padEnd(20)}${fmt(ms)}  ${(r.gflops / ms).toFixed(1).padStart(7)}  ${fmt(peer)}  ${ratio(ms, peer)}`);
  }
  console.log('train step (SGD)       panseg ms   img/s    torch ms   ratio');
  for (const [k, ms] of Object.entries(r.train)) {
    const n = Number(/_b(\d+)$/.exec(k)?.[1]);
    console.log(`  ${k.padEnd(20)}${fmt(ms)}  ${(n / (ms / 1000)).toFixed(0).padStart(7)}  ${fmt(r.torch.train[k])}  ${ratio(ms, r.torch.train[k])}`);
  }
  console.log('(_fused: the inference copy, BatchNorm folded and weights in the mode\'s dtype; its peer is PyTorch autocast/fp32 eager)');
  if (Object.keys(r.graph).length) {
    const t = r.torch.graph ?? {};
    console.log(`CUDA graphs, ${GRAPH_MODE}      panseg ms  torch eager  ratio  torch graphed  ratio`);
    for (const [k, ms] of Object.entries(r.graph)) {
      const eagerKey = k.replace('_graphed_', '_eager_');
      console.log(`  ${k.padEnd(20)}${fmt(ms)}  ${fmt(t[eagerKey])}  ${ratio(ms, t[eagerKey])}  ${fmt(t[k])}  ${ratio(ms, t[k])}`);
    }
    console.log('(train: the whole SGD step; infer: the bf16 inference copy; goal: train_graphed_b4 <= 0.7x PyTorch eager)');
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) printCuda(benchCuda());
