// Data-parallel training on this machine, panseg (c10d Gloo from TypeScript) against PyTorch
// (torch.distributed + DistributedDataParallel, Gloo) on the same PAN, measured in the same run.
// 1. Throughput of a training step (SGD, channels-last fp32) at one global batch: 1 process x 1
//    thread, 1 process x 2 threads, and 2 processes x 1 thread (batch split between them).
// 2. Gradient communication for PAN-resnet34's parameters between 2 processes x 1 thread:
//    one all-reduce per parameter vs 25 MiB buckets (what the trainer uses), the bytes each rank
//    sends (ring all-reduce: 2 (W-1)/W x 4 bytes x params) and what loopback counted, and a full
//    training step with each synchronization, where buckets overlap the rest of backward.
// Run alone: node --import tsx bench/distributed.ts   (PANSEG_DIST_BENCH_QUICK=1 for a short run)
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { allreducePerParameter, distributedUnavailable, GradientSync, launch, ProcessGroup, workerEnv } from '../src/distributed/index.js';
import { F, manualSeed, randint, randn, setNumThreads, tidy } from '../src/engine/index.js';
import { PAN } from '../src/models/index.js';
import { SGD } from '../src/train/optimizers.js';
import { median, medianMs } from './timing.js';

const PY = process.env.PANSEG_PYTHON ?? '/usr/bin/python3';
const ROLE = 'PANSEG_DIST_BENCH';
const SELF = fileURLToPath(import.meta.url);
const REF_DIR = fileURLToPath(new URL('../scripts/reference', import.meta.url));

export interface DistributedBenchOptions {
  /** Default 'resnet34'. */
  encoder?: string;
  /** Square crop of the throughput runs. Default 256. */
  size?: number;
  /** Global batch of the throughput runs (split across processes). Default 4. */
  batch?: number;
  /** Timed training steps per configuration, after one warm-up. Default 3. */
  steps?: number;
  /** Timed repeats of each communication pattern. Default 5. */
  commRepeats?: number;
}

interface WorkerConfig {
  kind: 'throughput' | 'comm';
  encoder: string;
  size: number;
  batch: number;
  steps: number;
  repeats: number;
}

const loTxBytes = (): number => {
  const line = readFileSync('/proc/net/dev', 'utf8').split('\n').find((l) => l.trim().startsWith('lo:'));
  return line ? Number(line.split(':')[1].trim().split(/\s+/)[8]) : Number.NaN;
};

// ---------------------------------------------------------------- panseg worker

function model(c: WorkerConfig): PAN {
  manualSeed(0);
  const m = new PAN({ encoderName: c.encoder, classes: 21 });
  m.to({ memoryFormat: 'channelsLast' });
  m.train();
  return m;
}

/** Medians of each pattern over `rounds` rounds (after one warm-up round), the patterns taking turns. */
function interleaved(patterns: Record<string, () => void>, rounds: number): Record<string, number> {
  const samples: Record<string, number[]> = {};
  for (let r = -1; r < rounds; r++) {
    for (const [name, fn] of Object.entries(patterns)) {
      const t = performance.now();
      fn();
      if (r >= 0) (samples[name] ??= []).push(performance.now() - t);
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
}

async function pansegWorker(c: WorkerConfig): Promise<Record<string, number>> {
  const env = workerEnv();
  const pg = env ? await ProcessGroup.init({ ...env, rendezvousTimeoutMs: 120_000 }) : null;
  const m = model(c);
  const params = m.parameters();
  const out: Record<string, number> = {};
  const world = pg?.size ?? 1;
  const x = randn([c.batch / world, 3, c.size, c.size]).contiguous('channelsLast');
  const y = randint(0, 21, [c.batch / world, c.size, c.size], { dtype: 'int64' });
  const opt = new SGD(params, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
  const backward = () => tidy(() => F.crossEntropy(m.forward(x), y).backward());
  if (c.kind === 'throughput') {
    const sync = pg ? new GradientSync(pg, params) : null;
    out.stepMs = medianMs(() => {
      opt.zeroGrad();
      sync?.prepare();
      backward();
      sync?.finish();
      opt.step();
    }, c.steps);
    sync?.dispose();
  } else {
    // Communication alone, on gradients of the real parameter shapes. The patterns alternate
    // round by round, so drifting machine load affects all of them alike.
    tidy(() => { for (const p of params) p.grad = randn(p.shape); });
    out.params = params.reduce((n, p) => n + p.numel, 0);
    out.tensors = params.length;
    const buckets = new GradientSync(pg!, params, { overlap: false });
    out.buckets = buckets.buckets.length;
    let txBytes = 0;
    Object.assign(out, interleaved({
      perParamMs: () => { allreducePerParameter(pg!, params); },
      bucketedMs: () => {
        const tx0 = loTxBytes();
        buckets.prepare();
        buckets.finish();
        txBytes += loTxBytes() - tx0;
      },
    }, c.repeats));
    out.loTxBytesPerStep = txBytes / (c.repeats + 1);
    buckets.dispose();
    // A whole training step with each synchronization.
    const after = new GradientSync(pg!, params, { overlap: false });
    const overlapped = new GradientSync(pg!, params, { overlap: true });
    const waits = { after: [] as number[], overlapped: [] as number[] };
    const withSync = (s: GradientSync, w: number[]) => () => { opt.zeroGrad(); s.prepare(); backward(); w.push(s.finish().waitMs); opt.step(); };
    Object.assign(out, interleaved({
      stepLocalMs: () => { opt.zeroGrad(); backward(); opt.step(); }, // no communication (not data-parallel): the floor
      stepPerParamMs: () => { opt.zeroGrad(); backward(); allreducePerParameter(pg!, params); opt.step(); },
      stepBucketedMs: withSync(after, waits.after),
      stepOverlapMs: withSync(overlapped, waits.overlapped),
    }, c.steps));
    out.waitBucketedMs = median(waits.after);
    out.waitOverlapMs = median(waits.overlapped);
    after.dispose();
    overlapped.dispose();
  }
  opt.dispose();
  await pg?.destroy();
  return out;
}

// ---------------------------------------------------------------- PyTorch worker

const TORCH_SCRIPT = String.raw`
import json, os, statistics, sys, time
import torch, torch.distributed as dist, torch.nn.functional as F
sys.path.insert(0, sys.argv[2]); import pan_model
c = json.loads(sys.argv[1])
torch.set_num_threads(int(os.environ.get('PANSEG_NUM_THREADS', '1')))
world = int(os.environ.get('WORLD_SIZE', '1'))
if world > 1: dist.init_process_group('gloo')
torch.manual_seed(0)
m = pan_model.PAN(encoder_name=c['encoder'], classes=21).to(memory_format=torch.channels_last)
m.train()
params = [p for p in m.parameters()]
b = c['batch'] // world
x = torch.randn(b, 3, c['size'], c['size']).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 21, (b, c['size'], c['size']))
def timed(fn, n):
    fn(); ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append((time.perf_counter() - t) * 1000)
    return sorted(ts)[len(ts) // 2]
out = {}
if c['kind'] == 'throughput':
    net = torch.nn.parallel.DistributedDataParallel(m) if world > 1 else m
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    def step():
        opt.zero_grad(set_to_none=True); F.cross_entropy(net(x), y).backward(); opt.step()
    out['stepMs'] = timed(step, c['steps'])
else:
    for p in params: p.grad = torch.randn_like(p)
    def per_param():
        for p in params: dist.all_reduce(p.grad); p.grad.div_(world)
    # DDP's buckets: ~25 MiB in reverse order, flattened, one all-reduce each, copied back.
    buckets, cur, size = [], [], 0
    for p in reversed(params):
        cur.append(p); size += p.numel() * 4
        if size >= 25 * 2**20: buckets.append(cur); cur, size = [], 0
    if cur: buckets.append(cur)
    def bucketed():
        for bk in buckets:
            flat = torch.cat([p.grad.reshape(-1) for p in bk]); dist.all_reduce(flat); flat.div_(world)
            o = 0
            for p in bk: n = p.numel(); p.grad.copy_(flat[o:o + n].view_as(p.grad)); o += n
    per_param(); bucketed(); pp, bk = [], []
    for _ in range(c['repeats']):
        t = time.perf_counter(); per_param(); pp.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter(); bucketed(); bk.append((time.perf_counter() - t) * 1000)
    out['perParamMs'] = sorted(pp)[len(pp) // 2]; out['bucketedMs'] = sorted(bk)[len(bk) // 2]
    net = torch.nn.parallel.DistributedDataParallel(m)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    def step():
        opt.zero_grad(set_to_none=True); F.cross_entropy(net(x), y).backward(); opt.step()
    out['stepOverlapMs'] = timed(step, c['steps'])
if world > 1: dist.destroy_process_group()
print('RESULT ' + json.dumps(out))
`;

// ---------------------------------------------------------------- driver

/** Runs one configuration on `nproc` processes of `threads` threads; returns rank 0's result. */
async function run(side: 'panseg' | 'pytorch', c: WorkerConfig, nproc: number, threads: number): Promise<Record<string, number>> {
  const lines: string[] = [];
  const port = 29000 + Math.floor(Math.random() * 900);
  const env = { [ROLE]: JSON.stringify(c), PANSEG_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  const command = side === 'panseg'
    ? [process.execPath, '--import', 'tsx', SELF]
    : [PY, '-c', TORCH_SCRIPT, JSON.stringify(c), REF_DIR];
  if (nproc === 1) {
    // One process: no launcher, so no RANK/WORLD_SIZE and no process group.
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn(command[0], command.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
      let s = '';
      p.stdout.on('data', (d) => { s += d; });
      p.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(`${side} worker exited with ${code}`))));
    });
    lines.push(...out.split('\n').map((l) => `[rank 0] ${l}`));
  } else {
    const r = await launch({ nprocPerNode: nproc, masterPort: port, threadsPerProcess: threads, command, env, log: (l) => lines.push(l), output: (rank, l) => lines.push(`[rank ${rank}] ${l}`) });
    if (r.code !== 0) throw new Error(`${side} ${c.kind} on ${nproc} processes failed:\n${lines.slice(-20).join('\n')}`);
  }
  const res = lines.find((l) => l.startsWith('[rank 0] RESULT '));
  if (!res) throw new Error(`${side} ${c.kind}: no result:\n${lines.slice(-20).join('\n')}`);
  return JSON.parse(res.slice('[rank 0] RESULT '.length)) as Record<string, number>;
}

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);

/** Runs both sides and prints the tables. */
export async function runDistributedBench(o: DistributedBenchOptions = {}): Promise<void> {
  const why = distributedUnavailable();
  if (why) { console.log(`distributed: skipped (${why})\n`); return; }
  const quick = process.env.PANSEG_DIST_BENCH_QUICK === '1';
  const c: WorkerConfig = {
    kind: 'throughput', encoder: o.encoder ?? 'resnet34', size: o.size ?? (quick ? 128 : 256), batch: o.batch ?? 4,
    steps: o.steps ?? (quick ? 1 : 3), repeats: o.commRepeats ?? (quick ? 2 : 5),
  };
  let torchOk = true;
  try { execFileSync(PY, ['-c', 'import torch.distributed as d; assert d.is_gloo_available()'], { stdio: 'ignore' }); } catch { torchOk = false; }
  console.log(`distributed: PAN-${c.encoder} training steps, ${c.size}x${c.size}, global batch ${c.batch}, SGD, channels-last fp32; ${cpus().length} cores, load average ${loadavg()[0].toFixed(1)} at start`);
  console.log(`  peer: ${torchOk ? 'PyTorch DistributedDataParallel (Gloo) on the same PAN, same processes and threads' : 'PyTorch with torch.distributed not found: panseg only'}\n`);

  const configs: [string, number, number][] = [['1 process x 1 thread', 1, 1], ['1 process x 2 threads', 1, 2], ['2 processes x 1 thread', 2, 1]];
  const rows: string[][] = [];
  const base: Record<string, number> = {};
  for (const [name, nproc, threads] of configs) {
    const p = await run('panseg', c, nproc, threads);
    const t = torchOk ? await run('pytorch', c, nproc, threads) : null;
    base[name] = p.stepMs;
    rows.push([name, f1(p.stepMs), f2((c.batch * 1000) / p.stepMs), t ? f1(t.stepMs) : '-', t ? f2((c.batch * 1000) / t.stepMs) : '-', t ? f2(p.stepMs / t.stepMs) : '-']);
  }
  printTable(['configuration', 'panseg ms/step', 'panseg img/s', 'pytorch ms/step', 'pytorch img/s', 'ratio'], rows);
  const two = base['2 processes x 1 thread'];
  console.log(`  panseg speed-up over 1 process x 1 thread: 2 threads ${f2(base['1 process x 1 thread'] / base['1 process x 2 threads'])}x, 2 processes ${f2(base['1 process x 1 thread'] / two)}x; 2 processes vs 2 threads: ${f2(base['1 process x 2 threads'] / two)}x\n`);

  const cc = { ...c, kind: 'comm' as const };
  const p = await run('panseg', cc, 2, 1);
  const t = torchOk ? await run('pytorch', cc, 2, 1) : null;
  const ringBytes = 2 * (2 - 1) / 2 * 4 * p.params;
  console.log(`gradient communication, 2 processes x 1 thread: PAN-${c.encoder}, ${(p.params / 1e6).toFixed(1)} M parameters in ${p.tensors} tensors (${f1(4 * p.params / 2 ** 20)} MiB of float32 gradients)`);
  console.log(`  bytes each rank sends per step (ring all-reduce, 2 (W-1)/W x 4 B x params): ${f1(ringBytes / 2 ** 20)} MiB; loopback counted ${f1(p.loTxBytesPerStep / 2 / 2 ** 20)} MiB per rank per bucketed step (all traffic on lo, both ranks / 2)`);
  printTable(['pattern', 'panseg ms', 'pytorch ms', 'ratio'], [
    ['one all-reduce per parameter', f1(p.perParamMs), t ? f1(t.perParamMs) : '-', t ? f2(p.perParamMs / t.perParamMs) : '-'],
    [`${p.buckets} buckets of ~25 MiB`, f1(p.bucketedMs), t ? f1(t.bucketedMs) : '-', t ? f2(p.bucketedMs / t.bucketedMs) : '-'],
  ]);
  console.log(`  buckets vs per-parameter: ${f2(p.perParamMs / p.bucketedMs)}x faster\n`);
  const vs = (ms: number) => `${ms >= p.stepLocalMs ? '+' : ''}${f1(ms - p.stepLocalMs)}`;
  printTable(['training step (2 x 1 thread)', 'panseg ms', 'vs floor', 'waited after backward', 'pytorch ms'], [
    ['no synchronization (floor)', f1(p.stepLocalMs), '0', '-', '-'],
    ['all-reduce per parameter after backward', f1(p.stepPerParamMs), vs(p.stepPerParamMs), '(all of it)', '-'],
    ['buckets after backward', f1(p.stepBucketedMs), vs(p.stepBucketedMs), f1(p.waitBucketedMs), '-'],
    ['buckets overlapped with backward (trainer)', f1(p.stepOverlapMs), vs(p.stepOverlapMs), f1(p.waitOverlapMs), t ? `${f1(t.stepOverlapMs)} (DDP)` : '-'],
  ]);
  console.log(`  the trainer's step vs per-parameter all-reduce: ${f2(p.stepPerParamMs / p.stepOverlapMs)}x faster. Gradients are views into the buckets (DDP's gradient_as_bucket_view): no copies in or out.`);
  console.log('  On 2 cores, 2 ranks x 1 thread leave no idle core for Gloo, so overlap mostly hides latency, not bandwidth.\n');
}

function printTable(head: string[], rows: string[][]): void {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `  ${r.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ')}`;
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}

if (process.env[ROLE]) {
  const cfg = JSON.parse(process.env[ROLE]) as WorkerConfig;
  setNumThreads(Number(process.env.PANSEG_NUM_THREADS ?? 1));
  const res = await pansegWorker(cfg);
  console.log(`RESULT ${JSON.stringify(res)}`);
} else if (process.argv[1] === SELF) {
  await runDistributedBench();
}
