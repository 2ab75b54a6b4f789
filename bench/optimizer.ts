// `npm run bench -- optimizer`: one optimizer step over PAN's parameters (channels-last, as training
// keeps them), panseg's fused CPU loop and per-parameter ops against torch.optim's single-tensor (its
// CPU default) and foreach paths, in one run. Medians after 2 warm-up steps.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { manualSeed, randn, setNumThreads, tidy } from '../src/engine/index.js';
import { createModel } from '../src/models/index.js';
import { AdamW, type Optimizer, SGD } from '../src/train/optimizers.js';
import { load, medianMs } from './timing.js';

export interface OptimizerRow { optimizer: 'sgd' | 'adamw'; fused: number; perParam: number; torchSingle: number; torchForeach: number }

export function benchOptimizer(o: { encoder?: string; threads?: number; repeats?: number } = {}): { rows: OptimizerRow[]; params: number; load: number } {
  const encoder = o.encoder ?? 'resnet18';
  const threads = o.threads ?? 2;
  const repeats = o.repeats ?? 7;
  const py = fileURLToPath(new URL('./pytorch_optimizer.py', import.meta.url));
  const torch = JSON.parse(execFileSync('/usr/bin/python3', [py, JSON.stringify({ encoder, threads, repeats })], { encoding: 'utf8' })) as
    Record<'sgd' | 'adamw', { single: number; foreach: number }>;
  setNumThreads(threads);
  manualSeed(0);
  const model = createModel('pan', { encoderName: encoder, classes: 21 });
  model.to({ memoryFormat: 'channelsLast' });
  const params = model.parameters();
  const grads = tidy(() => params.map((p) => randn(p.shape).mul(1e-3).contiguous(p.ndim === 4 ? 'channelsLast' : 'contiguous')));
  const loadAt = load();
  const time = (make: (foreach: boolean) => Optimizer, foreach: boolean): number => {
    const opt = make(foreach);
    const ms = medianMs(() => opt.step(), repeats, 2); // the gradients stay on the parameters, as in PyTorch's loop
    opt.dispose();
    return ms;
  };
  for (const [i, p] of params.entries()) p.grad = grads[i];
  const rows: OptimizerRow[] = [];
  for (const [name, make] of [
    ['sgd', (f: boolean) => new SGD(params, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4, foreach: f })],
    ['adamw', (f: boolean) => new AdamW(params, { lr: 1e-3, weightDecay: 1e-4, foreach: f })],
  ] as const) {
    rows.push({ optimizer: name, fused: time(make, true), perParam: time(make, false), torchSingle: torch[name].single, torchForeach: torch[name].foreach });
  }
  for (const g of grads) g.dispose();
  const count = params.reduce((s, p) => s + p.numel, 0);
  model.dispose();
  return { rows, params: count, load: loadAt };
}

export function printOptimizer(r: ReturnType<typeof benchOptimizer>): void {
  console.log(`\noptimizer step, PAN's ${(r.params / 1e6).toFixed(1)} M parameters (channels-last), ms; ratio = panseg fused / torch.optim's faster path; load ${r.load.toFixed(1)}`);
  console.log('  optimizer  panseg fused  panseg per-param  torch single  torch foreach   ratio');
  for (const x of r.rows) {
    console.log(`  ${x.optimizer.padEnd(9)}${x.fused.toFixed(1).padStart(13)}${x.perParam.toFixed(1).padStart(18)}${x.torchSingle.toFixed(1).padStart(14)}${x.torchForeach.toFixed(1).padStart(15)}${(x.fused / Math.min(x.torchSingle, x.torchForeach)).toFixed(2).padStart(8)}`);
  }
}
