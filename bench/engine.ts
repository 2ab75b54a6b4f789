// Engine overheads against PyTorch, measured in the same run with the same thread count:
// the cost of one tiny op from TypeScript (dispatch + result handle + dispose) and a 3x3
// convolution 1x256x64x64 -> 256, forward and forward+backward. Prints medians and ratios.
// Run alone: node --import tsx bench/engine.ts
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { F, getNumThreads, manualSeed, noGrad, ones, randn, setNumThreads, tidy } from '../src/engine/index.js';
import { tinyOpFloorUs } from '../src/engine/profile.js';
import { load, loadRange, median } from './timing.js';

/** One measurement: medians of both sides in `unit`, and panseg / pytorch (below 1: panseg faster). */
export interface Row {
  name: string;
  unit: 'us' | 'ms';
  panseg: number;
  pytorch: number;
  ratio: number;
  /** The 1-minute load average over the rounds, as "min-max". */
  load: string;
}

export interface EngineBenchOptions {
  /** libtorch threads on both sides (default 2). */
  threads?: number;
  /** Timed repeats per measurement and round, after warm-up (default 5). */
  repeats?: number;
  /**
   * Rounds of PyTorch-then-panseg (default 3). Alternating the two sides spreads any drift in
   * machine load over both; each side's median is taken over all its samples.
   */
  rounds?: number;
  /** Tiny ops per timed repeat of the dispatch measurement (default 100,000). */
  dispatchOps?: number;
}

const PY = process.env.PANSEG_PYTHON ?? '/usr/bin/python3';

// The same three measurements in PyTorch; prints one JSON object of per-repeat samples.
const TORCH_SCRIPT = String.raw`
import json, sys, time
import torch, torch.nn.functional as F
threads, repeats, n_ops = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)

def samples(fn, warm=2):
    for _ in range(warm): fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return ts

a, b = torch.ones(1), torch.ones(1)
def dispatch():
    for _ in range(n_ops):
        c = a.add(b)  # the previous result is freed on rebinding, as dispose() does
x = torch.randn(1, 256, 64, 64)
w = torch.randn(256, 256, 3, 3) * 0.02
bias = torch.zeros(256)
def fwd():
    with torch.no_grad():
        F.conv2d(x, w, bias, padding=1)
xg, wg, bg = x.clone().requires_grad_(), w.clone().requires_grad_(), bias.clone().requires_grad_()
gy = torch.randn(1, 256, 64, 64)
def fwd_bwd():
    for t in (xg, wg, bg): t.grad = None
    F.conv2d(xg, wg, bg, padding=1).backward(gy)
print(json.dumps({"dispatch_us": [t / n_ops * 1e6 for t in samples(dispatch)], "fwd_ms": [t * 1e3 for t in samples(fwd)],
                  "fwd_bwd_ms": [t * 1e3 for t in samples(fwd_bwd)]}))
`;

/** Per-repeat times in ms after `warm` untimed calls. */
function samples(fn: () => void, repeats: number, warm = 2): number[] {
  for (let i = 0; i < warm; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    fn();
    ts.push(performance.now() - t);
  }
  return ts;
}

interface Samples { dispatch_us: number[]; fwd_ms: number[]; fwd_bwd_ms: number[] }
// panseg also times the tiny op inside tidy(), as models run: the scope frees the results.
type OurSamples = Samples & { dispatch_tidy_us: number[]; floor_us: number[] };

function torchRound(threads: number, repeats: number, nOps: number): Samples {
  return JSON.parse(execFileSync(PY, ['-c', TORCH_SCRIPT, String(threads), String(repeats), String(nOps)], {
    encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) }, maxBuffer: 1 << 20,
  })) as Samples;
}

function pansegRound(repeats: number, nOps: number): OurSamples {
  manualSeed(0);
  const a = ones([1]);
  const b = ones([1]);
  const dispatch = samples(() => { for (let i = 0; i < nOps; i++) a.add(b).dispose(); }, repeats).map((t) => (t / nOps) * 1e3);
  const perScope = 100;
  const dispatchTidy = samples(() => {
    for (let j = 0; j < nOps / perScope; j++) tidy(() => { for (let i = 0; i < perScope; i++) a.add(b); });
  }, repeats).map((t) => (t / nOps) * 1e3);
  const [x, w, bias, gy] = tidy(() => [randn([1, 256, 64, 64]), randn([256, 256, 3, 3]).mul(0.02), randn([256]).mul(0), randn([1, 256, 64, 64])]);
  const fwd = samples(() => tidy(() => { noGrad(() => F.conv2d(x, w, bias, { padding: 1 })); }), repeats);
  const [xg, wg, bg] = tidy(() => [x.clone().requiresGrad_(), w.clone().requiresGrad_(), bias.clone().requiresGrad_()]);
  const fwdBwd = samples(() => tidy(() => {
    for (const t of [xg, wg, bg]) t.grad = null;
    F.conv2d(xg, wg, bg, { padding: 1 }).backward(gy);
  }), repeats);
  for (const t of [a, b, x, w, bias, gy, xg, wg, bg]) t.dispose();
  tinyOpFloorUs(nOps); // warm-up
  const floor = Array.from({ length: repeats }, () => tinyOpFloorUs(nOps));
  return { dispatch_us: dispatch, dispatch_tidy_us: dispatchTidy, floor_us: floor, fwd_ms: fwd, fwd_bwd_ms: fwdBwd };
}

/** Alternates PyTorch (a child process) and panseg (this process) for `rounds` rounds. */
/** The rows, and libtorch's own cost of the tiny op called from C++ (the floor under both sides), in us. */
export async function benchEngine(opts: EngineBenchOptions = {}): Promise<{ rows: Row[]; floorUs: number }> {
  const threads = opts.threads ?? 2;
  const repeats = opts.repeats ?? 5;
  const rounds = opts.rounds ?? 3;
  const nOps = opts.dispatchOps ?? 100_000;
  const torch: Samples = { dispatch_us: [], fwd_ms: [], fwd_bwd_ms: [] };
  const ours: OurSamples = { dispatch_us: [], dispatch_tidy_us: [], floor_us: [], fwd_ms: [], fwd_bwd_ms: [] };
  const loads: number[] = [];
  const prevThreads = getNumThreads();
  setNumThreads(threads);
  try {
    for (let r = 0; r < rounds; r++) {
      loads.push(load());
      const t = torchRound(threads, repeats, nOps);
      for (const k of Object.keys(torch) as (keyof Samples)[]) torch[k].push(...t[k]);
      const o = pansegRound(repeats, nOps);
      for (const k of Object.keys(ours) as (keyof OurSamples)[]) ours[k].push(...o[k]);
    }
  } finally {
    setNumThreads(prevThreads);
  }
  loads.push(load());
  const loadSeen = loadRange(loads);
  const row = (name: string, unit: Row['unit'], k: keyof OurSamples, torchKey: keyof Samples = k as keyof Samples): Row => {
    const panseg = median(ours[k]);
    const pytorch = median(torch[torchKey]);
    return { name, unit, panseg, pytorch, ratio: panseg / pytorch, load: loadSeen };
  };
  const rows = [
    row(`a.add(b), 1 element, incl. dispose (${threads} threads)`, 'us', 'dispatch_us'),
    row(`a.add(b), 1 element, in tidy() (${threads} threads)`, 'us', 'dispatch_tidy_us', 'dispatch_us'),
    row(`conv2d 3x3 1x256x64x64 -> 256, forward (${threads} threads)`, 'ms', 'fwd_ms'),
    row(`conv2d 3x3 1x256x64x64 -> 256, forward+backward (${threads} threads)`, 'ms', 'fwd_bwd_ms'),
  ];
  return { rows, floorUs: median(ours.floor_us) };
}

/** Prints rows as a table: medians of both sides and panseg / pytorch. */
export function printEngine({ rows, floorUs }: { rows: Row[]; floorUs: number }): void {
  const w = Math.max(...rows.map((r) => r.name.length));
  const num = (v: number) => v.toFixed(v < 10 ? 2 : 1).padStart(9);
  console.log('engine: medians over alternating rounds, after warm-up; ratio = panseg / pytorch (below 1: panseg faster)');
  console.log(`${'measurement'.padEnd(w)}  ${'panseg'.padStart(9)}  ${'pytorch'.padStart(9)}  unit  ${'ratio'.padStart(6)}  load`);
  for (const r of rows) console.log(`${r.name.padEnd(w)}  ${num(r.panseg)}  ${num(r.pytorch)}  ${r.unit.padEnd(4)}  ${r.ratio.toFixed(2).padStart(6)}  ${r.load}`);
  const d = rows[0];
  console.log(`the same add called from C++ (libtorch's own cost, the floor under both): ${floorUs.toFixed(2)} us; ` +
    `TypeScript adds ${(d.panseg - floorUs).toFixed(2)} us, Python ${(d.pytorch - floorUs).toFixed(2)} us`);
  console.log('');
}

/** Entry used by bench/run.ts. */
export async function runEngineBench(): Promise<void> {
  printEngine(await benchEngine());
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await runEngineBench();
