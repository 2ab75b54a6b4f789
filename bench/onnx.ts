// PAN-resnet34 inference at 1x3x512x512: onnxruntime-node (CPU) on panseg's ONNX export vs panseg's
// own libtorch paths (and PyTorch eager and frozen when /usr/bin/python3 has torch), same thread count, one run.
// Run alone: node --import tsx bench/onnx.ts
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { manualSeed, randn, setNumThreads, tidy } from '../src/engine/index.js';
import { exportOnnx } from '../src/export/index.js';
import { PAN } from '../src/models/index.js';
import { median } from './timing.js';

export interface OnnxBenchOptions {
  encoder?: string;
  size?: number;
  threads?: number;
  repeats?: number;
  /** Also time PyTorch eager through bench/pytorch_pan.py. Default true (skipped when it cannot run). */
  torch?: boolean;
}

export interface BenchRow {
  name: string;
  /** Median milliseconds per batch-1 inference. */
  ms: number;
}

/**
 * Median ms of each runner. Repetitions are interleaved (a, b, c, a, b, c, ...) so that load from other
 * processes on a shared machine falls on every engine alike. A short pause precedes each run: after a
 * run, onnxruntime's (and OpenMP's) worker threads keep spinning for a while, which made whichever
 * engine ran next ~25 ms slower at 2 threads on 2 cores.
 */
async function interleavedMedians(runners: [string, () => unknown][], n: number): Promise<BenchRow[]> {
  for (const [, fn] of runners) await fn();
  const ts = runners.map((): number[] => []);
  for (let i = 0; i < n; i++) {
    for (const [k, [, fn]] of runners.entries()) {
      await new Promise((r) => setTimeout(r, 50));
      const t = performance.now();
      await fn();
      ts[k].push(performance.now() - t);
    }
  }
  return runners.map(([name], k) => ({ name, ms: median(ts[k]) }));
}

/** Median latencies (ms) of each engine on the same model and input. */
export async function benchOnnx(o: OnnxBenchOptions = {}): Promise<BenchRow[]> {
  const encoder = o.encoder ?? 'resnet34';
  const size = o.size ?? 512;
  const threads = o.threads ?? 2;
  const reps = o.repeats ?? 5;
  const classes = 21;
  setNumThreads(threads);
  manualSeed(0);
  const model = new PAN({ encoderName: encoder, classes }).eval();
  const dir = mkdtempSync(join(tmpdir(), 'panseg-bench-onnx-'));
  const rows: BenchRow[] = [];
  const sessions: ort.InferenceSession[] = [];
  const cl = model.optimizedForInference({ channelsLast: true });
  const fast = model.optimizedForInference(); // the default: oneDNN's blocked layout on CPU
  const x = randn([1, 3, size, size]);
  try {
    const input = x.toArray() as Float32Array;
    const runners: [string, () => unknown][] = [
      ['panseg fp32', () => tidy(() => { model.predict(x); })],
      ['panseg fp32, BN folded, channels-last', () => tidy(() => { cl.predict(x); })],
      [`panseg fp32, inference copy (${fast.inferenceLayout!.mkldnn ? 'oneDNN blocked' : 'strided'})`, () => tidy(() => { fast.predict(x); })],
    ];
    for (const dynamicSize of [false, true]) {
      const path = join(dir, `pan-${dynamicSize ? 'dyn' : 'fixed'}.onnx`);
      exportOnnx(model, dynamicSize ? { path, dynamicSize } : { path, height: size });
      const s = await ort.InferenceSession.create(path, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionProviders: ['cpu'] });
      sessions.push(s);
      const feeds = { input: new ort.Tensor('float32', input, [1, 3, size, size]) };
      runners.push([`onnxruntime-node cpu${dynamicSize ? ', dynamic size' : ''}`, () => s.run(feeds)]);
    }
    rows.push(...await interleavedMedians(runners, reps));
    if (o.torch ?? true) {
      try {
        const py = fileURLToPath(new URL('./pytorch_pan.py', import.meta.url));
        const cfg = { encoder, classes, size, threads, repeats: reps, modes: ['fp32', 'fp32_frozen'], train: false };
        const torch = JSON.parse(execFileSync('/usr/bin/python3', [py, JSON.stringify(cfg)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as { infer: Record<string, number>; torch: string };
        if (torch.infer.fp32) rows.push({ name: `pytorch ${torch.torch} eager fp32`, ms: torch.infer.fp32 });
        if (torch.infer.fp32_frozen) rows.push({ name: 'pytorch jit frozen + optimized fp32', ms: torch.infer.fp32_frozen });
      } catch { /* no PyTorch here: the onnxruntime / panseg ratio stands alone */ }
    }
  } finally {
    for (const s of sessions) await s.release();
    x.dispose();
    cl.dispose();
    fast.dispose();
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/** Prints benchOnnx's rows with each one's ratio to onnxruntime (fixed size). */
export async function runOnnxBench(o: OnnxBenchOptions = {}): Promise<void> {
  const rows = await benchOnnx(o);
  const peer = rows.find((r) => r.name === 'onnxruntime-node cpu')!.ms;
  console.log(`\nPAN-${o.encoder ?? 'resnet34'} inference, 1x3x${o.size ?? 512}x${o.size ?? 512}, ${o.threads ?? 2} threads, median of ${o.repeats ?? 5}`);
  console.log('engine                                              ms   / onnxruntime');
  for (const r of rows) console.log(`  ${r.name.padEnd(46)}${r.ms.toFixed(0).padStart(6)}   ${(r.ms / peer).toFixed(2).padStart(6)}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await runOnnxBench();
