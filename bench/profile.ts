// `npm run bench -- profile`: one SGD training step (PAN-resnet34, batch 4, 512x512, as `panseg train`
// runs it: channels-last, autocast for bf16) timed against PyTorch's fastest layout per precision, then
// profiled op by op in both, phase by phase (forward = model + loss, backward, optimizer), each op
// beside its floor on this machine (FLOPs at the measured conv peak, bytes at the measured copy speed).
// PyTorch's steps and panseg's alternate one by one, so drift in the machine's speed falls on both alike.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { autocast, F, manualSeed, profileOps, randint, randn, setNumThreads, summarizeProfile, tidy, type PhaseRow, type ProfileLine, type Tensor } from '../src/engine/index.js';
import { isCopyOp, opGroup, opKind } from '../src/engine/profile.js';
import { createModel } from '../src/models/index.js';
import { SGD } from '../src/train/optimizers.js';
import { load, loadRange, median, medianMs } from './timing.js';

export interface ProfileBenchOptions { arch?: string; encoder?: string; size?: number; batch?: number; threads?: number; repeats?: number; top?: number }
type Precision = 'fp32' | 'bf16';

/** GFLOP/s of a 3x3 conv (64 -> 64 channels, 4x128x128, channels-last) and GB/s of a 256 MiB copy. */
function measureFloors(): { gflops: Record<Precision, number>; gbps: number } {
  const x = randn([4, 64, 128, 128]).contiguous('channelsLast');
  const w = randn([64, 64, 3, 3]).contiguous('channelsLast');
  const flops = 2 * 4 * 64 * 128 * 128 * 64 * 9;
  const conv = (p: Precision) => medianMs(() => tidy(() => { p === 'bf16' ? autocast(() => F.conv2d(x, w, null, { padding: 1 })) : F.conv2d(x, w, null, { padding: 1 }); }), 5, 2);
  const gflops = { fp32: flops / conv('fp32') / 1e6, bf16: flops / conv('bf16') / 1e6 };
  const big = randn([64 * 1024 * 1024]);
  const copyMs = medianMs(() => tidy(() => { big.clone(); }), 5, 1);
  const gbps = (2 * big.numel * 4) / copyMs / 1e6;
  for (const t of [x, w, big]) t.dispose();
  return { gflops, gbps };
}

function pansegStep(o: Required<ProfileBenchOptions>, precision: Precision) {
  manualSeed(0);
  const model = createModel(o.arch, { encoderName: o.encoder, classes: 21 });
  model.to({ memoryFormat: 'channelsLast' }).train();
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
  const x = tidy(() => randn([o.batch, 3, o.size, o.size]).contiguous('channelsLast'));
  const y = randint(0, 21, [o.batch, o.size, o.size]);
  let loss: Tensor | null = null;
  const phases = {
    forward: () => {
      opt.zeroGrad();
      loss = tidy(() => {
        const logits = precision === 'bf16' ? autocast(() => model.forward(x)) : model.forward(x);
        return F.crossEntropy(logits.to('float32'), y, { ignoreIndex: 255 });
      });
    },
    backward: () => { tidy(() => loss!.backward()); loss!.dispose(); },
    optimizer: () => opt.step(),
  };
  const step = () => { for (const f of Object.values(phases)) f(); };
  const dispose = () => { opt.dispose(); x.dispose(); y.dispose(); model.dispose(); };
  return { phases, step, dispose };
}

interface PrecisionResult {
  precision: Precision; ms: number; load: string; torch: { mode: string; ms: number; layouts: Record<string, number> };
  lines: ProfileLine[]; profiledMs: number; torchRows: Map<string, { calls: number; ms: number }>;
}

/** bench/pytorch_profile.py as a child process answering one JSON request per line. */
function torchSide(cfg: object): { ask: <T>(req: { op: string; precision: Precision }) => Promise<T>; close: () => void } {
  const py = fileURLToPath(new URL('./pytorch_profile.py', import.meta.url));
  const child = spawn('/usr/bin/python3', [py, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    ask: async <T>(req: object): Promise<T> => {
      child.stdin.write(`${JSON.stringify(req)}\n`);
      const r = await lines.next();
      if (r.done) throw new Error(`bench profile: PyTorch's side ended (exit code ${child.exitCode}); see its error above`);
      return JSON.parse(r.value as string) as T;
    },
    close: () => { child.stdin.end(); },
  };
}

export async function benchProfile(opts: ProfileBenchOptions = {}): Promise<{ options: Required<ProfileBenchOptions>; floors: ReturnType<typeof measureFloors>; results: PrecisionResult[] }> {
  const o: Required<ProfileBenchOptions> = { arch: 'pan', encoder: 'resnet34', size: 512, batch: 4, threads: 2, repeats: 5, top: 14, ...opts };
  setNumThreads(o.threads);
  const floors = measureFloors();
  const smpName = createModel(o.arch, { encoderName: 'resnet18', classes: 2 }).architecture;
  const torch = torchSide({ arch: smpName, encoder: o.encoder, classes: 21, size: o.size, batch: o.batch, threads: o.threads, repeats: o.repeats });
  const results: PrecisionResult[] = [];
  try {
    for (const precision of ['fp32', 'bf16'] as const) {
      const layouts = await torch.ask<{ steps: Record<string, number>; fastest: string }>({ op: 'layouts', precision });
      const s = pansegStep(o, precision);
      for (let i = 0; i < 2; i++) s.step(); // warm-up, as PyTorch's: oneDNN primitives, buffer cache, optimizer state
      const loads = [load()];
      const times: number[] = [];
      const torchTimes: number[] = [];
      for (let i = 0; i < o.repeats; i++) {
        torchTimes.push((await torch.ask<{ ms: number }>({ op: 'step', precision })).ms);
        const t0 = performance.now();
        s.step();
        times.push(performance.now() - t0);
      }
      loads.push(load());
      const rows: PhaseRow[] = profileOps(s.phases, 2);
      s.dispose();
      const { lines, totalMs } = summarizeProfile(rows, { gflops: floors.gflops[precision], gbps: floors.gbps, elementBytes: precision === 'bf16' ? 2 : 4 });
      const torchRows = new Map<string, { calls: number; ms: number }>();
      for (const [phase, name, calls, ms] of (await torch.ask<{ rows: [string, string, number, number][] }>({ op: 'profile', precision })).rows) {
        const key = `${phase} ${opGroup(name)}`;
        const prev = torchRows.get(key);
        torchRows.set(key, { calls: Math.max(calls, prev?.calls ?? 0), ms: ms + (prev?.ms ?? 0) });
      }
      results.push({
        precision, ms: median(times), load: loadRange(loads),
        torch: { mode: layouts.fastest, ms: median(torchTimes), layouts: layouts.steps }, lines, profiledMs: totalMs, torchRows,
      });
    }
  } finally {
    torch.close();
  }
  return { options: o, floors, results };
}

export function printProfile(r: Awaited<ReturnType<typeof benchProfile>>): void {
  const o = r.options;
  const top = o.top;
  const f = r.floors;
  console.log(`\nTraining step profile, ${o.arch}-${o.encoder}, batch ${o.batch} at ${o.size}px, SGD; median of ${o.repeats} steps after 2 warm-up, alternating one by one with PyTorch's faster layout per precision (layouts picked by a median of ${o.repeats} steps each)`);
  console.log(`floors measured here: 3x3 conv ${f.gflops.fp32.toFixed(0)} GFLOP/s fp32, ${f.gflops.bf16.toFixed(0)} GFLOP/s bf16; copy ${f.gbps.toFixed(1)} GB/s`);
  console.log('precision  panseg ms  PyTorch (mode, ms)      ratio   load     PyTorch layouts (ms)');
  for (const p of r.results) {
    console.log(`${p.precision.padEnd(10)}${p.ms.toFixed(0).padStart(10)}  ${`${p.torch.mode} ${p.torch.ms.toFixed(0)}`.padEnd(22)}${`${(p.ms / p.torch.ms).toFixed(2)}x`.padStart(7)}  ${p.load.padEnd(9)}${Object.entries(p.torch.layouts).map(([m, ms]) => `${m} ${ms.toFixed(0)}`).join(', ')}`);
  }
  for (const p of r.results) {
    const sum = (pred: (l: ProfileLine) => boolean) => p.lines.filter(pred).reduce((s, l) => s + l.ms, 0);
    const compute = p.lines.filter((l) => opKind(l.name) === 'compute');
    const copies = p.lines.filter((l) => isCopyOp(l.name));
    const torchTotal = [...p.torchRows.values()].reduce((s, x) => s + x.ms, 0);
    console.log(`\n${p.precision}: ${p.profiledMs.toFixed(0)} ms in ops (PyTorch ${torchTotal.toFixed(0)}); outside ops (TypeScript, N-API, autograd glue) ${(p.ms - p.profiledMs).toFixed(0)} ms`);
    console.log(`  convolutions/matmuls ${sum((l) => opKind(l.name) === 'compute').toFixed(0)} ms, floor ${compute.reduce((s, l) => s + l.floorMs, 0).toFixed(0)} ms; copies and reorders ${sum((l) => isCopyOp(l.name)).toFixed(0)} ms in ${copies.reduce((s, l) => s + l.calls, 0).toFixed(0)} calls; autograd nodes ${sum((l) => opKind(l.name) === 'node').toFixed(0)} ms`);
    console.log('  phase      op                                    calls   panseg ms   torch ms   floor ms  x floor');
    for (const l of p.lines.slice(0, top)) {
      const tr = p.torchRows.get(`${l.phase} ${l.name}`);
      const xf = l.floorMs > 0 ? `${(l.ms / l.floorMs).toFixed(1)}x` : '-';
      console.log(`  ${l.phase.padEnd(10)} ${l.name.slice(0, 36).padEnd(36)}${l.calls.toFixed(0).padStart(7)}${l.ms.toFixed(1).padStart(12)}${(tr ? tr.ms.toFixed(1) : '-').padStart(11)}${l.floorMs.toFixed(1).padStart(11)}${xf.padStart(9)}`);
    }
  }
}
