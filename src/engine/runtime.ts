// Process-wide engine state: grad mode, inference mode, autocast, seeding, threads, build info.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { type DType, deviceIndex, dtypeCode } from './dtype.js';
import { native } from './native.js';
import { Tensor } from './tensor.js';

/** Runs `fn` with autograd recording off (like `with torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try { return fn(); } finally { native.setGradEnabled(prev); }
}

/** Runs `fn` with autograd recording on, even inside noGrad. */
export function enableGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(true);
  try { return fn(); } finally { native.setGradEnabled(prev); }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/** Runs `fn` in libtorch's inference mode: no autograd and no version counting. Tensors made here never require grad. */
export function inferenceMode<T>(fn: () => T): T {
  native.inferenceEnter();
  try { return fn(); } finally { native.inferenceExit(); }
}

export interface AutocastOptions {
  /** 'cpu' (default) or 'cuda'. */
  deviceType?: 'cpu' | 'cuda';
  /** bfloat16 (default) or float16. */
  dtype?: Extract<DType, 'bfloat16' | 'float16'>;
  enabled?: boolean;
}

/**
 * Runs `fn` under autocast: convolutions and matmuls run in the lower precision, while ops
 * PyTorch keeps in float32 (batch norm, softmax, losses) stay there, exactly as `torch.autocast`.
 */
export function autocast<T>(fn: () => T, opts: AutocastOptions = {}): T {
  const device = v.oneOf('autocast', 'deviceType', opts.deviceType ?? 'cpu', ['cpu', 'cuda']);
  const dtype = v.oneOf('autocast', 'dtype', opts.dtype ?? 'bfloat16', ['bfloat16', 'float16']);
  const on = opts.enabled ?? true;
  const code = dtypeCode('autocast', dtype);
  const [prevOn, prevCode] = native.setAutocast(device, on, code);
  try { return fn(); } finally { native.setAutocast(device, prevOn, prevCode); }
}

/** Seeds libtorch's default CPU generator; same streams as `torch.manual_seed(seed)`. */
export function manualSeed(seed: number): void {
  native.manualSeed(v.int('manualSeed', 'seed', seed, 0, Number.MAX_SAFE_INTEGER));
}

/** 'cpu' -> -1, 'cuda' -> 0, 'cuda:N' -> N. */
/**
 * A copy of a default generator's state (uint8): the CPU's, like torch.get_rng_state(), or a CUDA
 * device's, like torch.cuda.get_rng_state(N).
 * @param device default 'cpu'
 */
export function getRngState(device = 'cpu'): Tensor {
  return new Tensor(native.getRngState(deviceIndex('getRngState', device)));
}
/** Restores a state from getRngState(device), like torch.set_rng_state() / torch.cuda.set_rng_state(). */
export function setRngState(state: Tensor, device = 'cpu'): void {
  if (state.dtype !== 'uint8') fail('setRngState', `expected a uint8 state tensor, got ${state.dtype}`);
  native.setRngState(state.h, deviceIndex('setRngState', device));
}

export function setNumThreads(n: number): void {
  native.setNumThreads(v.int('setNumThreads', 'n', n, 1, 1024));
}
/**
 * Whether float32 3x3 stride-1 convolutions that need gradients (training) run on oneDNN's Winograd
 * kernels: forward, backward-data and backward-weights in about half the time of the direct kernels
 * ATen (and PyTorch) use, with float32 rounding differences of ~1e-6 relative. On by default; false
 * gives ATen's convolutions everywhere (as PyTorch computes them). Returns whether this build has the
 * kernels (a libtorch on the system oneDNN 2.x); without them the setting changes nothing.
 */
export function setWinogradTraining(on: boolean): boolean {
  return native.setWinogradTraining(v.bool('setWinogradTraining', 'on', on));
}
/** The setting of {@link setWinogradTraining}. */
export function winogradTraining(): boolean {
  return native.winogradTraining();
}

/**
 * Whether panseg's fused training kernels run in place of ATen's (PyTorch's) op sequences:
 * - softmax cross-entropy over float32 rows (2D logits, or channels-last 4D logits): one pass forward and
 *   one backward instead of log_softmax and nll_loss;
 * - training-mode BatchNorm followed by ReLU (`F.batchNorm(..., { relu: true })`, BatchNorm2d.forwardRelu,
 *   and BatchNorm2d, ReLU pairs in a Sequential) on channels-last float32 or bfloat16 activations:
 *   statistics in one pass, the ReLU written by the transform, its mask recomputed in backward.
 * The same results to float32 rounding (bfloat16 outputs to one bfloat16 rounding), in less memory traffic.
 * On by default; false gives ATen's kernels everywhere (as PyTorch computes). Returns whether this
 * build and CPU have them (x86-64 with AVX-512 F, BW and VL); without them the setting changes nothing.
 */
export function setFusedKernels(on: boolean): boolean {
  return native.setFusedKernels(v.bool('setFusedKernels', 'on', on));
}
/** The setting of {@link setFusedKernels}. */
export function fusedKernels(): boolean {
  return native.fusedKernels();
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

export interface BuildInfo {
  torchVersion: string;
  mkldnn: boolean;
  cuda: boolean;
  cudaDevices: number;
  parallelInfo: string;
}
export function buildInfo(): BuildInfo {
  return native.buildInfo();
}
export function cudaAvailable(): boolean {
  return native.buildInfo().cuda;
}

/** Waits for queued GPU work, like torch.cuda.synchronize(); a no-op without CUDA. Time GPU code with it. */
export function cudaSynchronize(device?: number): void {
  native.cudaSynchronize(device === undefined ? -1 : v.int('cudaSynchronize', 'device', device, -1, 1024));
}

export function ensureCuda(op: string): void {
  if (!cudaAvailable()) fail(op, 'CUDA is not available in this libtorch build');
}
