// @ts-check
// onnxruntime-web sessions: WebGPU when the browser has an adapter, else WebAssembly (SIMD, with
// threads when the page is cross-origin isolated). onnxruntime-web comes from the panseg server (/ort/).
import * as ort from 'onnxruntime-web';

/**
 * @typedef {object} Backend Which runtime runs the model.
 * @property {'webgpu' | 'wasm'} name
 * @property {string} label for people, e.g. "wasm · SIMD · 4 threads"
 * @property {number} threads
 */

// (module (func (result v128) (v128.const i32x4 0 0 0 0))): validates only where wasm SIMD exists.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);

/** Whether this browser runs WebAssembly SIMD (onnxruntime-web's wasm builds need it). */
export function hasWasmSimd() {
  try { return WebAssembly.validate(SIMD_PROBE); } catch { return false; }
}

/**
 * Threads for the wasm backend: several only when SharedArrayBuffer is usable (a cross-origin isolated
 * page), then onnxruntime-web's own default, half the cores up to 4 (the page's thread needs one too).
 * @returns {number}
 */
export function wasmThreads() {
  if (!globalThis.crossOriginIsolated) return 1;
  return Math.min(4, Math.ceil((navigator.hardwareConcurrency || 1) / 2));
}

/** @returns {Promise<boolean>} whether WebGPU has an adapter here (headless or GPU-less browsers often do not) */
async function webgpuAvailable() {
  const gpu = /** @type {any} */ (navigator).gpu;
  if (!gpu) return false;
  try { return Boolean(await gpu.requestAdapter()); } catch { return false; }
}

/**
 * Creates an inference session for the model bytes.
 * @param {Uint8Array} model the .onnx file
 * @param {{ prefer?: 'auto' | 'webgpu' | 'wasm', threads?: number, onNote?: (msg: string) => void }} [o]
 *   prefer: 'auto' (default) tries WebGPU, then wasm
 * @returns {Promise<{ session: ort.InferenceSession, backend: Backend }>}
 */
export async function createSession(model, o = {}) {
  const prefer = o.prefer ?? 'auto';
  ort.env.wasm.wasmPaths = new URL('ort/', document.baseURI).href;
  const threads = o.threads ?? wasmThreads();
  ort.env.wasm.numThreads = threads;
  if (prefer !== 'wasm' && (await webgpuAvailable())) {
    try {
      const session = await ort.InferenceSession.create(model.slice(), { executionProviders: ['webgpu'], graphOptimizationLevel: 'all' });
      return { session, backend: { name: 'webgpu', label: 'WebGPU', threads } };
    } catch (e) {
      o.onNote?.(`WebGPU failed (${/** @type {Error} */ (e).message}); using WebAssembly`);
    }
  } else if (prefer === 'webgpu') {
    o.onNote?.('WebGPU is not available in this browser; using WebAssembly');
  }
  if (!hasWasmSimd()) throw new Error('this browser lacks WebAssembly SIMD, which onnxruntime-web needs; use a current Chrome, Edge, Firefox or Safari');
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  return { session, backend: { name: 'wasm', label: `wasm · SIMD · ${threads} thread${threads === 1 ? '' : 's'}`, threads } };
}

/**
 * Runs the model on one NCHW float32 input.
 * @param {ort.InferenceSession} session
 * @param {string} inputName
 * @param {Float32Array} data
 * @param {number} height
 * @param {number} width
 * @returns {Promise<{ outputs: Record<string, { data: Float32Array, dims: readonly number[] }>, ms: number }>}
 */
export async function runModel(session, inputName, data, height, width) {
  const input = new ort.Tensor('float32', data, [1, 3, height, width]);
  const t0 = performance.now();
  const res = await session.run({ [inputName]: input });
  const ms = performance.now() - t0;
  /** @type {Record<string, { data: Float32Array, dims: readonly number[] }>} */
  const outputs = {};
  for (const [name, t] of Object.entries(res)) {
    outputs[name] = { data: /** @type {Float32Array} */ (await t.getData()), dims: t.dims };
    t.dispose();
  }
  input.dispose();
  return { outputs, ms };
}

/**
 * Downloads a file with progress.
 * @param {string} url
 * @param {(loaded: number, total: number) => void} [onProgress] total is 0 when unknown
 * @returns {Promise<Uint8Array>}
 */
export async function download(url, onProgress) {
  const res = await fetch(url);
  if (!res.ok) {
    let why = `${res.status} ${res.statusText}`;
    try { why = (await res.json()).error.message; } catch { /* not our JSON error */ }
    throw new Error(`cannot load ${url}: ${why}`);
  }
  const total = Number(res.headers.get('content-length')) || 0;
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  /** @type {Uint8Array[]} */
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress?.(loaded, total);
  }
  const out = new Uint8Array(loaded);
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out;
}
