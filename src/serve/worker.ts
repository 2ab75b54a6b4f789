// The server's inference thread: loads the model (any architecture) once, then segments the images the queue sends, one at
// a time, and encodes their masks, so the HTTP thread never blocks on libtorch or on PNG compression.
// The addon is context-aware: this thread has its own.
import { parentPort, workerData } from 'node:worker_threads';
import { type RGB, VOC_PALETTE } from '../common/palette.js';
import { encodeIndexedPng } from '../data/png.js';
import { emptyCpuBufferCache, setNumThreads } from '../engine/index.js';
import { segmentImage } from '../eval/predict.js';
import { classAreas } from '../eval/visualize.js';
import { loadModelWithMeta, type PansegMeta, type SegmentationModel } from '../models/index.js';
import type { ModelInfo, WorkerConfig, WorkerReply, WorkerRequest } from './protocol.js';

const port = parentPort;
if (!port) throw new Error('panseg: src/serve/worker is a worker thread script, not a module to import');
const cfg = workerData as WorkerConfig;

function modelInfo(m: SegmentationModel, meta: PansegMeta): ModelInfo {
  const n = Math.max(2, m.config.classes);
  const classes = Array.from({ length: n }, (_, i) => meta.classNames?.[i] ?? `class ${i}`);
  const colors = Array.from({ length: n }, (_, i) => [...(meta.colors?.[i] ?? VOC_PALETTE[i])] as RGB);
  return { classes, colors, architecture: m.architecture, encoder: m.config.encoderName, outputStride: m.outputStride, minInputSize: m.minInputSize };
}

// After an image this large, cached buffers and glibc's freed blocks go back to the OS: a photo's working
// memory is not held for the small images that usually follow.
const RELEASE_AFTER_PIXELS = 4_000_000;

let model: SegmentationModel | null = null;
let info: ModelInfo | null = null;
let palette: RGB[] = [];
try {
  if (cfg.threads) setNumThreads(cfg.threads);
  const loaded = loadModelWithMeta(cfg.modelDir);
  model = loaded.model;
  model.eval();
  info = modelInfo(model, loaded.meta);
  const colors = info.colors;
  palette = Array.from({ length: 256 }, (_, i) => colors[i] ?? VOC_PALETTE[i]);
  port.postMessage({ type: 'ready', info } satisfies WorkerReply);
} catch (e) {
  port.postMessage({ type: 'failed', message: (e as Error).message } satisfies WorkerReply);
}

port.on('message', (req: WorkerRequest) => {
  if (!model || !info) return;
  try {
    const seg = segmentImage(model, { data: req.data, width: req.width, height: req.height }, cfg.inference);
    const png = encodeIndexedPng(seg.labels, seg.width, seg.height, palette);
    const mask = new Uint8Array(png.buffer, png.byteOffset, png.byteLength).slice();
    const reply: WorkerReply = { type: 'result', id: req.id, mask, areas: classAreas(seg.labels, info.classes, 255), width: seg.width, height: seg.height, ms: seg.ms };
    port.postMessage(reply, [mask.buffer as ArrayBuffer]);
  } catch (e) {
    port.postMessage({ type: 'error', id: req.id, message: (e as Error).message } satisfies WorkerReply);
  }
  if (req.width * req.height >= RELEASE_AFTER_PIXELS) emptyCpuBufferCache();
});
