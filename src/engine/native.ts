// The one typed view of the C++ addon. Nothing outside src/engine imports this file.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../common/package-root.js';

/** An opaque handle to one libtorch tensor: its slot number in the addon's table of this thread. */
export type Handle = number & { readonly __handle: unique symbol };
type H = Handle;
type Opt = H | null;
type Ints = number[];

export interface NativeAddon {
  // creation and data
  fromBuffer(data: ArrayBufferView, shape: Ints, dtype: number, device: string): H;
  toBuffer(t: H): ArrayBuffer;
  meta(t: H): [number, string, boolean, ...number[]];
  item(t: H): number;
  dispose(t: H): void;
  zeros(shape: Ints, dtype: number, device: string): H;
  ones(shape: Ints, dtype: number, device: string): H;
  empty(shape: Ints, dtype: number, device: string): H;
  full(shape: Ints, value: number, dtype: number, device: string): H;
  arange(start: number, end: number, step: number, dtype: number, device: string): H;
  rand(shape: Ints, dtype: number, device: string): H;
  randn(shape: Ints, dtype: number, device: string): H;
  randint(low: number, high: number, shape: Ints, dtype: number, device: string): H;
  randperm(n: number): H;
  to(t: H, dtype: number | null, device: string | null, copy: boolean): H;
  clone(t: H): H;
  uniform_(t: H, lo: number, hi: number): void;
  normal_(t: H, mean: number, std: number): void;
  bernoulli(p: H): H;
  // math
  unaryNames: string[];
  binaryNames: string[];
  scalarNames: string[];
  unary(op: number, t: H): H;
  binary(op: number, a: H, b: H): H;
  scalar(op: number, a: H, s: number | boolean): H;
  reduce(op: string, t: H, dims: Ints | null, keepdim: boolean): H;
  addScaled(a: H, b: H, alpha: number): H;
  clamp(t: H, min: number | null, max: number | null): H;
  where(c: H, a: H, b: H): H;
  matmul(a: H, b: H): H;
  softmax(t: H, dim: number): H;
  logSoftmax(t: H, dim: number): H;
  bincount(t: H, minlength: number): H;
  topk(t: H, k: number, dim: number, largest: boolean): [H, H];
  add_(t: H, other: H | number, alpha: number, otherIsScalar: boolean): void;
  mul_(t: H, other: H | number, otherIsScalar: boolean): void;
  div_(t: H, other: H | number, otherIsScalar: boolean): void;
  addcmul_(t: H, a: H, b: H, value: number): void;
  addcdiv_(t: H, a: H, b: H, value: number): void;
  lerp_(t: H, end: H, weight: number): void;
  zero_(t: H): void;
  fill_(t: H, v: number | boolean): void;
  copy_(t: H, src: H): void;
  clamp_(t: H, min: number | null, max: number | null): void;
  sqrt_(t: H): void;
  relu_(t: H): void;
  // nn
  conv2d(x: H, w: H, b: Opt, stride: Ints, padding: Ints, dilation: Ints, groups: number): H;
  batchNorm(x: H, w: Opt, b: Opt, rm: Opt, rv: Opt, training: boolean, momentum: number, eps: number, relu: boolean): H;
  groupNorm(x: H, numGroups: number, w: Opt, b: Opt, eps: number): H;
  maxPool2d(x: H, k: Ints, s: Ints, p: Ints, d: Ints, ceil: boolean): H;
  avgPool2d(x: H, k: Ints, s: Ints, p: Ints, ceil: boolean, countIncludePad: boolean): H;
  adaptiveAvgPool2d(x: H, size: Ints): H;
  adaptiveMaxPool2d(x: H, size: Ints): H;
  interpolate(x: H, mode: string, size: Ints | null, scales: number[] | null, alignCorners: boolean): H;
  linear(x: H, w: H, b: Opt): H;
  crossEntropy(x: H, target: H, weight: Opt, reduction: string, ignoreIndex: number, labelSmoothing: number): H;
  nllLoss(x: H, target: H, weight: Opt, reduction: string, ignoreIndex: number): H;
  bceWithLogits(x: H, target: H, weight: Opt, posWeight: Opt, reduction: string): H;
  dropout(x: H, p: number, train: boolean): H;
  featureDropout(x: H, p: number, train: boolean): H;
  pad(x: H, pads: Ints, mode: string, value: number): H;
  oneHot(x: H, n: number): H;
  // shape
  reshape(t: H, s: Ints): H;
  view(t: H, s: Ints): H;
  permute(t: H, d: Ints): H;
  transpose(t: H, a: number, b: number): H;
  flatten(t: H, start: number, end: number): H;
  squeeze(t: H, dim: number | null): H;
  unsqueeze(t: H, dim: number): H;
  expand(t: H, s: Ints): H;
  repeat(t: H, s: Ints): H;
  narrow(t: H, dim: number, start: number, len: number): H;
  slice(t: H, dim: number, start: number, end: number, step: number): H;
  indexSelect(t: H, dim: number, idx: H): H;
  gather(t: H, dim: number, idx: H): H;
  flip(t: H, dims: Ints): H;
  cat(ts: H[], dim: number): H;
  stack(ts: H[], dim: number): H;
  split(t: H, sizes: Ints, dim: number): H[];
  detach(t: H): H;
  contiguous(t: H, channelsLast: boolean): H;
  isContiguous(t: H, channelsLast: boolean): boolean;
  strides(t: H): Ints;
  // runtime
  backward(t: H, grad: Opt, retainGraph: boolean): void;
  grad(t: H): Opt;
  setGrad(t: H, g: Opt): void;
  setRequiresGrad(t: H, v: boolean): void;
  isLeaf(t: H): boolean;
  retainGrad(t: H): void;
  setGradEnabled(v: boolean): boolean;
  isGradEnabled(): boolean;
  inferenceEnter(): void;
  inferenceExit(): void;
  setAutocast(device: string, enabled: boolean, dtype: number): [boolean, number];
  manualSeed(seed: number): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  liveTensors(): number;
  /** cudaIndex: a CUDA device's generator; absent or -1: the CPU's. */
  getRngState(cudaIndex?: number): H;
  setRngState(state: H, cudaIndex?: number): void;
  buildInfo(): { torchVersion: string; parallelInfo: string; mkldnn: boolean; cuda: boolean; cudaDevices: number };
  cudaSynchronize(device?: number): void;
  sgdForeach(params: Handle[], grads: Handle[], bufs: Handle[] | null, lr: number, weightDecay: number, momentum: number, dampening: number, nesterov: boolean): Handle[] | undefined;
  adamwForeach(params: Handle[], grads: Handle[], expAvg: Handle[], expAvgSq: Handle[], lr: number, weightDecay: number, beta1: number, beta2: number, eps: number, step: number): void;
  ampUnscale(grads: Handle[], invScale: number): boolean;
  // capture-safe steps (native/capturable.cc): per-step numbers in device tensors
  sgdCapturable(params: H[], grads: H[], bufs: H[] | null, lr: H, step: H, weightDecay: number, momentum: number, dampening: number, nesterov: boolean, found: Opt): void;
  adamwCapturable(params: H[], grads: H[], expAvg: H[], expAvgSq: H[], lr: H, step: H, weightDecay: number, beta1: number, beta2: number, eps: number, found: Opt): void;
  ampUnscaleCapturable(grads: H[], scale: H, found: H): void;
  ampUpdateScale(scale: H, growthTracker: H, found: H, growthFactor: number, backoffFactor: number, growthInterval: number): void;
  // CUDA graphs (native/cuda-graph.cc); a CPU build throws from all but cudaGraphFree, cudaSideStreamPop and cudaGraphCapturing
  cudaGraphNew(): number;
  cudaGraphBegin(id: number, device: number, shareWith: number): void;
  cudaGraphEnd(id: number): void;
  cudaGraphAbort(id: number): void;
  cudaGraphReplay(id: number): void;
  cudaGraphFree(id: number): void;
  cudaSideStreamPush(device: number): void;
  cudaSideStreamPop(): void;
  cudaGraphCapturing(): boolean;
  cpuCacheSetLimit(bytes: number): void;
  cpuCacheEmpty(): void;
  cpuCacheStats(): { enabled: boolean; limit: number; cachedBytes: number; hits: number; misses: number };
  // oneDNN blocked layout (native/mkldnn.cc)
  isMkldnn(t: H): boolean;
  mkldnnIdeep(): boolean;
  toMkldnn(t: H, dtype: number | null): H;
  toDense(t: H, dtype: number | null): H;
  mkldnnPackConv(w: H, padding: Ints, stride: Ints, dilation: Ints, groups: number, inputSize: Ints, algorithm: 'direct' | 'winograd'): H;
  mkldnnConv2d(x: H, packedW: H, b: Opt, padding: Ints, stride: Ints, dilation: Ints, groups: number, blockedOut: boolean, algorithm: 'direct' | 'winograd', relu: boolean): H;
  // op profile (native/profile.cc)
  profileStart(): void;
  profileStop(): ProfileRow[];
  tinyOpFloor(n: number): number;
  setWinogradTraining(on: boolean): boolean;
  winogradTraining(): boolean;
  setFusedKernels(on: boolean): boolean;
  fusedKernels(): boolean;
  // ---- distributed (native/distributed.cc; used only by src/distributed/c10d.ts) ----
  /** '' when c10d + Gloo were compiled in, else why not. */
  distAvailable(): string;
  storeConnect(host: string, port: number, token: string, timeoutMs: number): DistHandle;
  storeSet(store: DistHandle, key: string, value: string): void;
  storeGet(store: DistHandle, key: string): string;
  storeAdd(store: DistHandle, key: string, delta: number): number;
  storeCheck(store: DistHandle, keys: string[]): boolean;
  distBackends(): ('gloo' | 'nccl')[];
  pgCreate(store: DistHandle, prefix: string, rank: number, size: number, timeoutMs: number, ifname: string, hostname: string, threads: number, backend: 'gloo' | 'nccl'): DistHandle;
  allreduce(pg: DistHandle, ts: H[], op: 'sum' | 'max' | 'min'): void;
  broadcast(pg: DistHandle, ts: H[], root: number): void;
  barrier(pg: DistHandle): void;
  allreduceDiff(pg: DistHandle, t: H): H;
  gradSyncCreate(pg: DistHandle, params: H[], bucketBytes: number, firstBucketBytes: number, overlap: boolean): DistHandle;
  gradSyncPrepare(sync: DistHandle): void;
  gradSyncFinish(sync: DistHandle): { buckets: number; launchedEarly: number; waitMs: number; copyMs: number };
  gradSyncBuckets(sync: DistHandle): number[][];
  gradSyncDestroy(sync: DistHandle): void;
  watchdogStart(store: DistHandle, prefix: string, rank: number, world: number, intervalMs: number, deadAfterMs: number, graceMs: number, timeoutMs: number): DistHandle;
  watchdogDead(w: DistHandle, waitMs: number): { ranks: number[]; message: string } | null;
  watchdogStop(w: DistHandle): void;
  // ---- end distributed ----
}

/** One op's totals over a profiled stretch (native/profile.cc). */
export interface ProfileRow { name: string; calls: number; selfUs: number; totalUs: number; flops: number; elements: number }

/** An opaque handle to a native distributed object (store, process group, gradient sync, watchdog). */
export type DistHandle = { readonly __dist: unique symbol };

function load(): NativeAddon {
  const root = packageRoot();
  const file = join(root, 'build', 'Release', 'panseg.node');
  if (!existsSync(file)) {
    throw new Error(`panseg: the native addon ${file} is not built. Run \`npm run setup\` (or \`node scripts/build-addon.mjs\`) in ${root}.`);
  }
  try {
    return createRequire(import.meta.url)(file) as NativeAddon;
  } catch (e) {
    const msg = (e as Error).message;
    const hints = /lib(torch|c10)[^ ]*\.so/.test(msg)
      ? 'libtorch\'s shared libraries could not be loaded: install libtorch-dev, or set LIBTORCH and rebuild with `npm run setup`.'
      : 'Rebuild it with `npm run setup`; if Node was upgraded, the addon must be rebuilt for the new version.';
    throw new Error(`panseg: failed to load the native addon ${file}: ${msg}\n${hints}`);
  }
}

export const native: NativeAddon = load();

// libtorch may start with a single thread; use every core unless the user pinned a count.
const pinned = process.env.PANSEG_NUM_THREADS ?? process.env.OMP_NUM_THREADS;
native.setNumThreads(pinned ? Math.max(1, Number.parseInt(pinned, 10) || 1) : availableParallelism());
