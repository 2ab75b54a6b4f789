// `npm run bench -- fused`: the fused kernels (native/cross-entropy.cc, native/batch-norm-relu.cc) against
// ATen's op sequences in one process, `setFusedKernels(true|false)` alternating round by round, on
// PAN-resnet34's shapes at batch 4, 512x512, output stride 16, channels-last, forward + backward:
// - BatchNorm + ReLU: the encoder's 17 such layers (stem and each block's first BatchNorm);
// - cross-entropy over the 21-class logits.
import { F, fusedKernels, manualSeed, ones, randint, randn, setFusedKernels, setNumThreads, type Tensor, tidy, zeros } from '../src/engine/index.js';
import { load, median } from './timing.js';

type Dtype = 'float32' | 'bfloat16';
export interface FusedRow { kernel: string; dtype: Dtype; layers: number; fused: number; aten: number }

const repeat = <T>(n: number, v: T): T[] => Array.from({ length: n }, () => v);
// ResNet-34 at 512 px, output stride 16: [channels, side] of each BatchNorm.
const STEM = [[64, 256]];
const FIRST = [...repeat(3, [64, 128]), ...repeat(4, [128, 64]), ...repeat(6, [256, 32]), ...repeat(3, [512, 32])]; // conv1's BatchNorm of each block

/** Median ms of `fn` with the fused kernels on and off, alternating. */
function ab(fn: () => void, rounds: number): { fused: number; aten: number } {
  const t = { on: [] as number[], off: [] as number[] };
  for (let r = -1; r < rounds; r++) {
    for (const on of [true, false]) {
      setFusedKernels(on);
      const t0 = performance.now();
      tidy(fn);
      if (r >= 0) t[on ? 'on' : 'off'].push(performance.now() - t0); // round -1 warms up
    }
  }
  setFusedKernels(true);
  return { fused: median(t.on), aten: median(t.off) };
}

function batchNormReluRow(dims: number[][], dtype: Dtype, rounds: number): FusedRow {
  const layers = dims.map(([c, s]) => ({
    x: randn([4, c, s, s]).to(dtype).contiguous('channelsLast').requiresGrad_(), gy: randn([4, c, s, s]).to(dtype).contiguous('channelsLast'),
    w: ones([c]).requiresGrad_(), b: zeros([c]).requiresGrad_(), rm: zeros([c]), rv: ones([c]),
  }));
  const r = ab(() => {
    for (const l of layers) F.batchNorm(l.x, l.rm, l.rv, { weight: l.w, bias: l.b, training: true, relu: true }).backward(l.gy);
  }, rounds);
  for (const l of layers) for (const t of Object.values(l) as Tensor[]) t.dispose();
  return { kernel: 'BatchNorm + ReLU', dtype, layers: dims.length, ...r };
}

function crossEntropyRow(rounds: number): FusedRow {
  const logits = randn([4, 21, 512, 512]).contiguous('channelsLast').requiresGrad_();
  const target = randint(0, 21, [4, 512, 512]);
  const r = ab(() => F.crossEntropy(logits, target, { ignoreIndex: 255 }).backward(), rounds);
  logits.dispose(); target.dispose();
  return { kernel: 'cross-entropy', dtype: 'float32', layers: 1, ...r };
}

export function benchFused(o: { threads?: number; rounds?: number } = {}): { rows: FusedRow[]; load: number } | null {
  setNumThreads(o.threads ?? 2);
  if (!setFusedKernels(true)) return null;
  const rounds = o.rounds ?? 7;
  manualSeed(0);
  const loadAt = load();
  const rows: FusedRow[] = [];
  for (const dtype of ['float32', 'bfloat16'] as const) rows.push(batchNormReluRow([...STEM, ...FIRST], dtype, rounds));
  rows.push(crossEntropyRow(rounds));
  return { rows, load: loadAt };
}

export function printFused(r: ReturnType<typeof benchFused>): void {
  console.log('\n## Fused kernels against ATen (forward + backward, PAN-resnet34 shapes, batch 4, 512x512)');
  if (!r) { console.log(`not available on this CPU (needs AVX-512 F, BW and VL; fusedKernels() = ${fusedKernels()})`); return; }
  console.log(`load ${r.load.toFixed(1)}\n\n| kernel | dtype | layers | fused ms | ATen ms | fused / ATen |\n|---|---|---:|---:|---:|---:|`);
  for (const x of r.rows) console.log(`| ${x.kernel} | ${x.dtype} | ${x.layers} | ${x.fused.toFixed(1)} | ${x.aten.toFixed(1)} | ${(x.fused / x.aten).toFixed(2)} |`);
}
