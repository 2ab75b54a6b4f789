// @ts-check
// The panseg page: pick, drop, paste or film an image; segment it in the browser with onnxruntime-web
// (or on the server's libtorch); show the class mask over it, the class areas and the timing.
import { classAreas, labelsFromLogits, planInput, toInputTensor } from './lib/preprocess.js';
import { heatmapRgba, maskRgba, valueRange } from './lib/render.js';
import { parseSidecar } from './lib/sidecar.js';

/** @typedef {import('./lib/sidecar.js').ModelSpec} ModelSpec */
/** @typedef {import('./lib/preprocess.js').ClassArea} ClassArea */
/** @typedef {import('./lib/runtime.js').Backend} Backend */

/**
 * An image to segment.
 * @typedef {object} Source
 * @property {ImageBitmap} bitmap
 * @property {number} width
 * @property {number} height
 * @property {Blob | null} blob the original file, sent as-is to the server when its type is accepted
 * @property {string} name
 */

/**
 * What one segmentation produced.
 * @typedef {object} Result
 * @property {number} width mask size
 * @property {number} height
 * @property {ClassArea[]} areas
 * @property {number} ms time in the model
 * @property {number} totalMs with pre- and postprocessing (browser) or the whole request (server)
 * @property {string} backend
 * @property {string} inputSize
 * @property {Uint8ClampedArray<ArrayBuffer> | null} maskPixels RGBA (browser)
 * @property {ImageBitmap | null} maskBitmap decoded palette PNG (server)
 * @property {{ data: Float32Array, cols: number, rows: number, inputWidth: number, inputHeight: number } | null} attention
 */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const el = {
  status: $('status'),
  progress: /** @type {HTMLProgressElement} */ ($('progress')),
  file: /** @type {HTMLInputElement} */ ($('file')),
  pick: /** @type {HTMLButtonElement} */ ($('pick')),
  webcam: /** @type {HTMLButtonElement} */ ($('webcam')),
  capture: /** @type {HTMLButtonElement} */ ($('capture')),
  live: /** @type {HTMLInputElement} */ ($('live')),
  liveLabel: $('live-label'),
  drop: $('drop'),
  engine: /** @type {HTMLSelectElement} */ ($('engine')),
  maxSide: /** @type {HTMLSelectElement} */ ($('max-side')),
  stage: $('stage'),
  image: /** @type {HTMLCanvasElement} */ ($('image-layer')),
  mask: /** @type {HTMLCanvasElement} */ ($('mask-layer')),
  attention: /** @type {HTMLCanvasElement} */ ($('attention-layer')),
  video: /** @type {HTMLVideoElement} */ ($('video')),
  caption: $('caption'),
  opacity: /** @type {HTMLInputElement} */ ($('opacity')),
  opacityValue: /** @type {HTMLOutputElement} */ ($('opacity-value')),
  attentionToggle: $('attention-toggle'),
  showAttention: /** @type {HTMLInputElement} */ ($('show-attention')),
  colorbar: $('colorbar'),
  legend: $('legend-body'),
  time: $('time'),
  backend: $('backend'),
  inputSize: $('input-size'),
  modelName: $('model-name'),
  download: /** @type {HTMLAnchorElement} */ ($('download')),
};

const params = new URLSearchParams(location.search);
const SERVER_TYPES = ['image/png', 'image/jpeg', 'image/webp'];

const state = {
  /** @type {ModelSpec | null} */ spec: null,
  /** @type {import('onnxruntime-web').InferenceSession | null} */ session: null,
  /** @type {Backend | null} */ backend: null,
  /** @type {typeof import('./lib/runtime.js') | null} */ runtime: null,
  /** @type {any} */ info: null,
  /** @type {Source | null} */ source: null,
  busy: false,
  /** @type {Source | null} the latest request while busy (older ones are dropped) */ next: null,
  /** @type {MediaStream | null} */ stream: null,
  /** @type {string | null} */ downloadUrl: null,
};

/** @param {'loading' | 'ready' | 'running' | 'done' | 'error'} s @param {string} [msg] */
function setState(s, msg) {
  document.body.dataset.state = s;
  if (msg !== undefined) el.status.textContent = msg;
}

/** Counts finished attempts in body[data-runs], so scripts (and the browser test) can wait for the next result. */
function countRun() {
  document.body.dataset.runs = String(Number(document.body.dataset.runs ?? 0) + 1);
}

/** @param {unknown} e */
const message = (e) => (e instanceof Error ? e.message : String(e));

// ---------- model loading ----------

async function init() {
  wireControls();
  try {
    const r = await fetch('api/info');
    if (r.ok) state.info = await r.json();
  } catch { /* a static host without the panseg server: browser only */ }
  const serverOk = Boolean(state.info);
  const browserModel = !state.info || state.info.browserModel;
  if (!serverOk) disableOption('server', 'the server API is not available here');
  let browserError = '';
  if (browserModel) {
    try {
      await loadBrowserModel();
    } catch (e) {
      browserError = message(e);
      console.error(e);
    }
  } else {
    browserError = state.info.browserModelError ?? 'the server has no ONNX model for the page';
  }
  if (browserError) disableOption('browser', browserError);
  const wanted = params.get('engine');
  el.engine.value = wanted === 'server' && serverOk ? 'server' : state.session ? 'browser' : 'server';
  if (!state.session && !serverOk) {
    setState('error', `Cannot segment: ${browserError}`);
    return;
  }
  if (!state.spec && state.info) el.modelName.textContent = `${state.info.model.architecture ?? 'PAN'}-${state.info.model.encoder}, output stride ${state.info.model.outputStride}`;
  el.pick.disabled = false;
  el.webcam.disabled = !navigator.mediaDevices?.getUserMedia;
  setState('ready', readyText(browserError));
  updateAttentionToggle();
}

async function loadBrowserModel() {
  setState('loading', 'Loading onnxruntime-web…');
  state.runtime = await import('./lib/runtime.js');
  const sidecarRes = await fetch('model.onnx.json');
  if (!sidecarRes.ok) throw new Error(`model.onnx.json: ${sidecarRes.status} ${sidecarRes.statusText}`);
  state.spec = parseSidecar(await sidecarRes.json());
  el.modelName.textContent = state.spec.architecture;
  setState('loading', 'Downloading the model…');
  el.progress.hidden = false;
  const { loadModelBytes } = await import('./lib/model-cache.js');
  const { bytes, source, note } = await loadModelBytes('model.onnx', state.spec.sha256, (loaded, total) => {
    if (total) el.progress.value = loaded / total;
    else el.progress.removeAttribute('value');
    el.status.textContent = `Downloading the model… ${(loaded / 1e6).toFixed(1)}${total ? ` of ${(total / 1e6).toFixed(1)}` : ''} MB`;
  });
  if (note) console.warn(note);
  // The model's source, for scripts and the browser test: cache (the Cache API, keyed by its sha256) or network.
  document.body.dataset.modelSource = source;
  el.progress.hidden = true;
  setState('loading', 'Preparing the model…');
  const prefer = /** @type {'auto' | 'webgpu' | 'wasm'} */ (params.get('backend') ?? 'auto');
  const threads = params.has('threads') ? Math.max(1, Number(params.get('threads')) || 1) : undefined;
  const { session, backend } = await state.runtime.createSession(bytes, { prefer, threads, onNote: (m) => console.warn(m) });
  state.session = session;
  state.backend = backend;
}

/** @param {string} browserError */
function readyText(browserError) {
  const classes = state.spec?.classes.length ?? state.info?.model.classes.length;
  if (state.session && state.backend) return `Model ready · ${classes} classes · ${state.backend.label}`;
  return `Segmenting on the server (${browserError}) · ${classes} classes`;
}

/** @param {string} value @param {string} why */
function disableOption(value, why) {
  const opt = /** @type {HTMLOptionElement | null} */ (el.engine.querySelector(`option[value="${value}"]`));
  if (!opt) return;
  opt.disabled = true;
  opt.textContent += ` (unavailable: ${why})`;
}

// ---------- input ----------

function wireControls() {
  el.pick.addEventListener('click', () => el.file.click());
  el.file.addEventListener('change', () => {
    const f = el.file.files?.[0];
    if (f) void useFile(f);
    el.file.value = '';
  });
  el.drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    el.drop.classList.add('over');
  });
  el.drop.addEventListener('dragleave', () => el.drop.classList.remove('over'));
  el.drop.addEventListener('drop', (e) => {
    e.preventDefault();
    el.drop.classList.remove('over');
    const f = e.dataTransfer?.files?.[0];
    if (f) void useFile(f);
  });
  // Dropping anywhere else must not navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  document.addEventListener('paste', (e) => {
    const f = [...(e.clipboardData?.files ?? [])].find((x) => x.type.startsWith('image/'));
    if (f) void useFile(f);
  });
  el.webcam.addEventListener('click', () => void toggleWebcam());
  el.capture.addEventListener('click', () => void captureFrame());
  el.live.addEventListener('change', () => { if (el.live.checked) void liveLoop(); });
  el.opacity.addEventListener('input', applyOpacity);
  el.showAttention.addEventListener('change', applyLayers);
  el.engine.addEventListener('change', () => { updateAttentionToggle(); rerun(); });
  el.maxSide.addEventListener('change', rerun);
  applyOpacity();
}

function rerun() {
  if (state.source && !el.live.checked) void run(state.source);
}

/** @param {File} file */
async function useFile(file) {
  if (file.type && !file.type.startsWith('image/')) {
    setState('error', `${file.name} is not an image (${file.type}); choose a PNG, JPEG or WebP file`);
    countRun();
    return;
  }
  let bitmap;
  try {
    // Pixels exactly as stored (no colour management or premultiplication), as panseg's decoder reads them.
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
  } catch {
    setState('error', `Cannot decode ${file.name}; is it a complete PNG, JPEG or WebP image?`);
    countRun();
    return;
  }
  stopWebcam();
  await run({ bitmap, width: bitmap.width, height: bitmap.height, blob: file, name: file.name });
}

async function toggleWebcam() {
  if (state.stream) {
    stopWebcam();
    return;
  }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: 'environment' }, audio: false });
  } catch (e) {
    setState(document.body.dataset.state === 'done' ? 'done' : 'ready', `Webcam unavailable: ${message(e)}`);
    return;
  }
  el.video.srcObject = state.stream;
  await el.video.play();
  /** @type {HTMLElement} */ (el.video.parentElement).style.setProperty('--aspect', String(el.video.videoWidth / el.video.videoHeight || 16 / 9));
  el.webcam.setAttribute('aria-pressed', 'true');
  el.webcam.textContent = 'Stop webcam';
  el.capture.hidden = false;
  el.liveLabel.hidden = false;
  showVideo(true);
  el.caption.textContent = 'Webcam preview: capture a frame, or turn on Live.';
}

function stopWebcam() {
  if (!state.stream) return;
  for (const t of state.stream.getTracks()) t.stop();
  state.stream = null;
  el.video.srcObject = null;
  el.live.checked = false;
  el.webcam.setAttribute('aria-pressed', 'false');
  el.webcam.textContent = 'Use webcam';
  el.capture.hidden = true;
  el.liveLabel.hidden = true;
  showVideo(false);
}

/** @param {boolean} on */
function showVideo(on) {
  el.video.hidden = !on;
  el.stage.dataset.empty = on ? 'true' : String(!state.source);
}

async function frameSource() {
  const v = el.video;
  if (!v.videoWidth) return null;
  const bitmap = await createImageBitmap(v);
  return { bitmap, width: bitmap.width, height: bitmap.height, blob: null, name: 'webcam frame' };
}

async function captureFrame() {
  const src = await frameSource();
  if (src) await run(src);
}

async function liveLoop() {
  while (el.live.checked && state.stream) {
    const src = await frameSource();
    if (src) await run(src);
    await new Promise((r) => requestAnimationFrame(r));
  }
}

// ---------- segmentation ----------

/** @param {Source} src */
async function run(src) {
  if (state.busy) {
    state.next = src;
    return;
  }
  state.busy = true;
  state.source = src;
  setState('running', `Segmenting ${src.name}…`);
  el.stage.setAttribute('aria-busy', 'true');
  try {
    const result = el.engine.value === 'server' ? await runOnServer(src) : await runInBrowser(src);
    showVideo(false);
    await render(src, result);
    setState('done', `${src.name}: segmented in ${result.ms.toFixed(0)} ms (${result.backend})`);
  } catch (e) {
    console.error(e);
    setState('error', `Segmenting ${src.name} failed: ${message(e)}`);
  } finally {
    el.stage.removeAttribute('aria-busy');
    state.busy = false;
    countRun();
  }
  const next = state.next;
  state.next = null;
  if (next) await run(next);
}

/**
 * @param {Source} src
 * @returns {Promise<Result>}
 */
async function runInBrowser(src) {
  const { spec, session, runtime, backend } = state;
  if (!spec || !session || !runtime || !backend) throw new Error('the browser model is not loaded');
  const maxSide = Number(el.maxSide.value) || Infinity;
  const plan = planInput(src.width, src.height, spec.input, maxSide);
  const t0 = performance.now();
  const canvas = new OffscreenCanvas(plan.width, plan.height);
  const ctx = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext('2d', { willReadFrequently: true }));
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(src.bitmap, 0, 0, plan.width, plan.height);
  const rgba = ctx.getImageData(0, 0, plan.width, plan.height).data;
  const input = toInputTensor(rgba, plan, spec.input);
  const { outputs, ms } = await runtime.runModel(session, spec.inputName, input, plan.inputHeight, plan.inputWidth);
  const logits = outputs[spec.logitsName];
  if (!logits) throw new Error(`the model has no output '${spec.logitsName}'`);
  const [, c, h, w] = logits.dims;
  const labels = labelsFromLogits(logits.data, c, h, w, plan.height, plan.width, spec.activation);
  const att = spec.attentionName ? outputs[spec.attentionName] : undefined;
  const attention = att ? { data: att.data, rows: att.dims[att.dims.length - 2], cols: att.dims[att.dims.length - 1], inputWidth: plan.inputWidth, inputHeight: plan.inputHeight } : null;
  const maskPixels = maskRgba(labels, spec.colors);
  return {
    width: plan.width, height: plan.height, areas: classAreas(labels, spec.classes), ms, totalMs: performance.now() - t0,
    backend: backend.label, maskPixels, maskBitmap: null, attention,
    inputSize: `${plan.width}×${plan.height}${plan.scaled ? ` (scaled from ${src.width}×${src.height})` : ''}${plan.inputWidth !== plan.width || plan.inputHeight !== plan.height ? `, padded to ${plan.inputWidth}×${plan.inputHeight}` : ''}`,
  };
}

/**
 * @param {Source} src
 * @returns {Promise<Result>}
 */
async function runOnServer(src) {
  let body = src.blob;
  if (!body || !SERVER_TYPES.includes(body.type)) {
    const c = new OffscreenCanvas(src.width, src.height);
    /** @type {OffscreenCanvasRenderingContext2D} */ (c.getContext('2d')).drawImage(src.bitmap, 0, 0);
    body = await c.convertToBlob({ type: 'image/png' });
  }
  const t0 = performance.now();
  const res = await fetch('api/segment', { method: 'POST', body, headers: { 'Content-Type': body.type } });
  let j;
  try { j = await res.json(); } catch { throw new Error(`the server answered ${res.status} ${res.statusText}`); }
  if (!res.ok) throw new Error(j?.error?.message ?? `the server answered ${res.status}`);
  const png = Uint8Array.from(atob(j.mask), (ch) => ch.charCodeAt(0));
  const maskBitmap = await createImageBitmap(new Blob([png], { type: 'image/png' }), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  return {
    width: j.width, height: j.height, areas: j.areas, ms: j.ms, totalMs: performance.now() - t0,
    backend: 'server · libtorch', maskPixels: null, maskBitmap, attention: null, inputSize: `${j.width}×${j.height} (full resolution)`,
  };
}

// ---------- drawing ----------

/**
 * Draws a result; resolves when the mask's download link is ready too (canvas.toBlob is asynchronous).
 * @param {Source} src @param {Result} r
 */
function render(src, r) {
  el.image.width = src.width;
  el.image.height = src.height;
  /** @type {HTMLElement} */ (el.image.parentElement).style.setProperty('--aspect', String(src.width / src.height));
  /** @type {CanvasRenderingContext2D} */ (el.image.getContext('2d')).drawImage(src.bitmap, 0, 0);
  el.mask.width = r.width;
  el.mask.height = r.height;
  const mctx = /** @type {CanvasRenderingContext2D} */ (el.mask.getContext('2d', { willReadFrequently: true }));
  if (r.maskPixels) mctx.putImageData(new ImageData(r.maskPixels, r.width, r.height), 0, 0);
  else if (r.maskBitmap) mctx.drawImage(r.maskBitmap, 0, 0);
  drawAttention(r);
  el.stage.dataset.empty = 'false';
  Object.assign(el.stage.dataset, { width: String(r.width), height: String(r.height), ms: r.ms.toFixed(1), backend: r.backend });
  const present = r.areas.filter((a) => a.pixels > 0).sort((a, b) => b.percent - a.percent);
  const summary = present.slice(0, 4).map((a) => `${a.class} ${a.percent.toFixed(1)}%`).join(', ');
  el.caption.textContent = `${src.name}, ${src.width}×${src.height}: ${summary}`;
  el.image.setAttribute('aria-label', `${src.name} with its segmentation: ${summary}`);
  renderLegend(r.areas);
  el.time.textContent = `${r.ms.toFixed(1)} ms (total ${r.totalMs.toFixed(0)} ms)`;
  el.backend.textContent = r.backend;
  el.inputSize.textContent = r.inputSize;
  applyLayers();
  return updateDownload();
}

/** @param {Result} r */
function drawAttention(r) {
  const a = r.attention;
  el.attention.width = r.width;
  el.attention.height = r.height;
  if (!a) return;
  const small = new OffscreenCanvas(a.cols, a.rows);
  const usedCols = Math.ceil((r.width / a.inputWidth) * a.cols);
  const usedRows = Math.ceil((r.height / a.inputHeight) * a.rows);
  const [lo, hi] = valueRange(a.data, a.cols, a.rows, usedCols, usedRows);
  /** @type {OffscreenCanvasRenderingContext2D} */ (small.getContext('2d')).putImageData(new ImageData(heatmapRgba(a.data, lo, hi), a.cols, a.rows), 0, 0);
  const ctx = /** @type {CanvasRenderingContext2D} */ (el.attention.getContext('2d'));
  ctx.imageSmoothingEnabled = true;
  // The map covers the padded input; drawing it at that size crops the padding away.
  ctx.drawImage(small, 0, 0, a.cols, a.rows, 0, 0, a.inputWidth, a.inputHeight);
}

/** @param {ClassArea[]} areas */
function renderLegend(areas) {
  const colors = state.spec?.colors ?? state.info?.model.colors ?? [];
  const rows = areas.map((a) => {
    const tr = document.createElement('tr');
    tr.className = a.pixels > 0 ? 'present' : 'absent';
    tr.dataset.class = a.class;
    tr.dataset.percent = String(a.percent);
    const name = document.createElement('td');
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.setAttribute('aria-hidden', 'true');
    const c = colors[a.index] ?? [0, 0, 0];
    sw.style.background = `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.style.width = `${a.percent.toFixed(2)}%`;
    bar.append(fill);
    name.append(sw, a.class, bar);
    const pct = document.createElement('td');
    pct.className = 'num';
    pct.textContent = `${a.percent.toFixed(1)} %`;
    tr.append(name, pct);
    return tr;
  });
  el.legend.replaceChildren(...rows);
}

function applyOpacity() {
  const v = Number(el.opacity.value) / 100;
  el.mask.style.opacity = String(v);
  el.attention.style.opacity = String(v);
  el.opacityValue.textContent = `${el.opacity.value}%`;
}

function updateAttentionToggle() {
  const has = Boolean(state.spec?.attentionName) && el.engine.value === 'browser';
  el.attentionToggle.hidden = !has;
  if (!has) el.showAttention.checked = false;
  applyLayers();
}

function applyLayers() {
  const att = el.showAttention.checked;
  el.attention.hidden = !att;
  el.mask.hidden = att;
  el.colorbar.hidden = !att;
}

async function updateDownload() {
  const blob = await new Promise((r) => el.mask.toBlob(r, 'image/png'));
  if (!blob) return;
  if (state.downloadUrl) URL.revokeObjectURL(state.downloadUrl);
  state.downloadUrl = URL.createObjectURL(blob);
  el.download.href = state.downloadUrl;
  el.download.download = `${(state.source?.name ?? 'image').replace(/\.[^.]+$/, '')}_mask.png`;
  el.download.hidden = false;
}

void init().catch((e) => {
  console.error(e);
  setState('error', `The page failed to start: ${message(e)}`);
});
