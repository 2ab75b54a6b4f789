// PAN-resnet34 at 512x512: inference (batch 1) and a training step (batch 4, SGD momentum),
// panseg vs PyTorch eager on the same model, measured in one run with the same thread count.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { autocast, F, getNumThreads, manualSeed, noGrad, randint, randn, setNumThreads, tidy } from '../src/engine/index.js';
import { PAN } from '../src/models/index.js';
import { countMacs } from '../src/nn/index.js';
import { SGD } from '../src/train/optimizers.js';
import { medianMs } from './timing.js';

export interface PanBenchOptions {
  encoder?: string;
  size?: number;
  threads?: number;
  repeats?: number;
  trainBatch?: number;
  train?: boolean;
}

export interface PanBenchResult {
  gflops: number;
  torch: { infer: Record<string, number>; train: Record<string, number>; torch: string };
  infer: Record<string, number>;
  train: Record<string, number>;
}

export function benchPan(o: PanBenchOptions = {}): PanBenchResult {
  const encoder = o.encoder ?? 'resnet34';
  const size = o.size ?? 512;
  const threads = o.threads ?? 2;
  const reps = o.repeats ?? 5;
  const classes = 21;
  const trainBatch = o.trainBatch ?? 4;
  setNumThreads(threads);
  manualSeed(0);
  const cfg = { encoder, classes, size, threads, repeats: reps, train_batch: trainBatch, train: o.train ?? true, modes: ['fp32', 'fp32_cl', 'bf16_cl', 'fp32_frozen'] };
  const py = fileURLToPath(new URL('./pytorch_pan.py', import.meta.url));
  const torch = JSON.parse(execFileSync('/usr/bin/python3', [py, JSON.stringify(cfg)], { encoding: 'utf8' })) as PanBenchResult['torch'];

  const model = new PAN({ encoderName: encoder, classes });
  model.eval();
  const x = randn([1, 3, size, size]);
  const gflops = (2 * countMacs(() => noGrad(() => tidy(() => { model.forward(x); })))) / 1e9;
  const infer: Record<string, number> = {};
  infer.fp32 = medianMs(() => tidy(() => { model.predict(x); }), reps);
  // Inference copies (optimizedForInference): strided NCHW, channels-last, and oneDNN's blocked layout (the default on CPU).
  for (const [name, opts] of [
    ['fp32_fused', { channelsLast: false }], ['fp32_fused_cl', { channelsLast: true }], ['fp32_mkldnn', { layout: 'mkldnn' }],
    ['bf16_fused_cl', { channelsLast: true, dtype: 'bfloat16' }], ['bf16_mkldnn', { layout: 'mkldnn', dtype: 'bfloat16' }],
  ] as const) {
    const fast = model.optimizedForInference(opts);
    infer[name] = medianMs(() => tidy(() => { fast.predict(x); }), reps);
    fast.dispose();
  }
  x.dispose();

  const train: Record<string, number> = {};
  if (o.train ?? true) {
    for (const mode of ['fp32', 'fp32_cl', 'bf16_cl'] as const) {
      const m = new PAN({ encoderName: encoder, classes });
      const cl = mode.endsWith('_cl');
      if (cl) m.to({ memoryFormat: 'channelsLast' });
      m.train();
      const opt = new SGD(m.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
      let xb = randn([trainBatch, 3, size, size]);
      if (cl) { const c = xb.contiguous('channelsLast'); xb.dispose(); xb = c; }
      const yb = randint(0, classes, [trainBatch, size, size]);
      const step = () => tidy(() => {
        opt.zeroGrad();
        const logits = mode === 'bf16_cl' ? autocast(() => m.forward(xb)) : m.forward(xb);
        F.crossEntropy(logits.to('float32'), yb, { ignoreIndex: 255 }).backward();
        opt.step();
      });
      train[mode] = medianMs(step, Math.max(2, Math.floor(reps / 2)));
      opt.dispose();
      m.dispose();
      xb.dispose();
      yb.dispose();
    }
  }
  model.dispose();
  return { gflops, torch, infer, train };
}

const fmt = (x: number) => x.toFixed(0).padStart(7);
const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2).padStart(6) : '   n/a');

export function printPan(r: PanBenchResult, floorGflops = 270): void {
  const floor = (r.gflops / floorGflops) * 1000;
  console.log(`\nPAN-resnet34, 1x3x512x512: ${r.gflops.toFixed(1)} GFLOP of conv/linear; fp32 floor at ${floorGflops} GFLOP/s = ${floor.toFixed(0)} ms (threads ${getNumThreads()})`);
  console.log('inference (batch 1)        panseg ms  GFLOP/s  /floor  vs torch fp32  vs torch same mode');
  const same: Record<string, string> = { fp32: 'fp32', fp32_fused: 'fp32', fp32_fused_cl: 'fp32_cl', fp32_mkldnn: 'fp32_frozen', bf16_fused_cl: 'bf16_cl', bf16_mkldnn: 'bf16_cl' };
  for (const [k, ms] of Object.entries(r.infer)) {
    console.log(`  ${k.padEnd(24)}${fmt(ms)}  ${(r.gflops / (ms / 1000)).toFixed(0).padStart(7)}  ${(ms / floor).toFixed(2).padStart(6)}  ${ratio(ms, r.torch.infer.fp32).padStart(12)}  ${ratio(ms, r.torch.infer[same[k]]).padStart(17)}`);
  }
  for (const [k, ms] of Object.entries(r.torch.infer)) console.log(`  torch ${k.padEnd(18)}${fmt(ms)}  ${(r.gflops / (ms / 1000)).toFixed(0).padStart(7)}  ${(ms / floor).toFixed(2).padStart(6)}`);
  if (Object.keys(r.train).length) {
    console.log('train step (batch 4, SGD)  panseg ms  torch ms  ratio');
    for (const [k, ms] of Object.entries(r.train)) console.log(`  ${k.padEnd(24)}${fmt(ms)}  ${fmt(r.torch.train[k] ?? Number.NaN)}  ${ratio(ms, r.torch.train[k])}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) printPan(benchPan());
