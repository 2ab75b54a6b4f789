// Every registered architecture at 512x512 with resnet34 (`npm run bench -- models`): panseg's default
// fp32 and bf16 inference copies and a bf16 training step, each as a ratio to PyTorch's fastest mode for
// the same precision on the same architecture (smp's code, scripts/reference/*_model.py), in one run.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { autocast, F, manualSeed, randint, randn, setNumThreads, tidy } from '../src/engine/index.js';
import { architectures, createModel } from '../src/models/index.js';
import { SGD } from '../src/train/optimizers.js';
import { medianMs } from './timing.js';

export interface ModelsBenchOptions {
  encoder?: string;
  size?: number;
  threads?: number;
  repeats?: number;
  trainBatch?: number;
  /** Registry ids to run (default: all). */
  archs?: string[];
}

export interface ArchBench {
  arch: string;
  params: number;
  /** panseg ms: default inference copies, bf16 train step (channels-last, autocast). */
  fp32: number; bf16: number; train: number;
  /** PyTorch's fastest mode per precision, and which mode it was. */
  torch: { fp32?: [string, number]; bf16?: [string, number]; train?: [string, number]; failed?: Record<string, string> } | null;
  load: number;
}

/** PyTorch's fastest mode with this prefix, or undefined when it ran none (see `failed`). */
const fastest = (r: Record<string, number>, prefix: string): [string, number] | undefined =>
  Object.entries(r).filter(([k]) => k.startsWith(prefix)).reduce<[string, number] | undefined>((a, b) => (!a || b[1] < a[1] ? b : a), undefined);

export function benchModels(o: ModelsBenchOptions = {}): ArchBench[] {
  const size = o.size ?? 512;
  const reps = o.repeats ?? 5;
  const threads = o.threads ?? 2;
  const trainBatch = o.trainBatch ?? 4;
  const classes = 21;
  setNumThreads(threads);
  const out: ArchBench[] = [];
  for (const spec of architectures().filter((a) => !o.archs || o.archs.includes(a.id))) {
    const load = loadavg()[0];
    const cfg = { arch: spec.name, encoder: o.encoder ?? 'resnet34', classes, size, threads, repeats: reps, train_batch: trainBatch };
    const py = fileURLToPath(new URL('./pytorch_models.py', import.meta.url));
    const t = JSON.parse(execFileSync('/usr/bin/python3', [py, JSON.stringify(cfg)], { encoding: 'utf8' })) as { infer: Record<string, number>; train: Record<string, number>; missing?: string; failed?: Record<string, string> };
    manualSeed(0);
    const model = createModel(spec.id, { encoderName: cfg.encoder, classes });
    model.eval();
    const x = randn([1, 3, size, size]);
    const timeCopy = (dtype: 'float32' | 'bfloat16') => {
      const fast = model.optimizedForInference({ dtype });
      try { return medianMs(() => tidy(() => { fast.predict(x); }), reps); } finally { fast.dispose(); }
    };
    const fp32 = timeCopy('float32');
    const bf16 = timeCopy('bfloat16');
    x.dispose();
    model.to({ memoryFormat: 'channelsLast' }).train();
    const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
    const xb = tidy(() => randn([trainBatch, 3, size, size]).contiguous('channelsLast'));
    const yb = randint(0, classes, [trainBatch, size, size]);
    const train = medianMs(() => tidy(() => {
      opt.zeroGrad();
      const logits = autocast(() => model.forward(xb));
      F.crossEntropy(logits.to('float32'), yb, { ignoreIndex: 255 }).backward();
      opt.step();
    }), Math.max(2, Math.floor(reps / 2)));
    opt.dispose();
    xb.dispose();
    yb.dispose();
    const params = model.numParameters();
    model.dispose();
    out.push({
      arch: spec.name, params, fp32, bf16, train, load,
      torch: t.missing ? null : { fp32: fastest(t.infer, 'fp32'), bf16: fastest(t.infer, 'bf16'), train: fastest(t.train, 'bf16'), failed: t.failed },
    });
  }
  return out;
}

export function printModels(rs: ArchBench[], encoder = 'resnet34'): void {
  const r2 = (a: number, b?: [string, number]) => (b ? `${(a / b[1]).toFixed(2)} (${b[0]} ${b[1].toFixed(0)})` : 'n/a (torch failed)');
  console.log(`\nArchitectures, ${encoder}, 1x3x512x512 inference / 4x3x512x512 bf16 SGD step; ratio to PyTorch's fastest mode (its name and ms)`);
  console.log('arch            params   fp32 ms  vs torch                  bf16 ms  vs torch                  train ms  vs torch              load');
  for (const r of rs) {
    for (const [mode, err] of Object.entries(r.torch?.failed ?? {})) console.log(`  ${r.arch}: PyTorch ${mode} failed: ${err}`);
    console.log(`${r.arch.padEnd(14)}${(r.params / 1e6).toFixed(1).padStart(7)}M ${r.fp32.toFixed(0).padStart(8)}  ${r2(r.fp32, r.torch?.fp32).padEnd(24)}${r.bf16.toFixed(0).padStart(9)}  ${r2(r.bf16, r.torch?.bf16).padEnd(24)}${r.train.toFixed(0).padStart(10)}  ${r2(r.train, r.torch?.train).padEnd(22)}${r.load.toFixed(2)}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) printModels(benchModels());
