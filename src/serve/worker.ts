// The server's inference thread: loads the PAN once, then segments the images the queue sends, one at
// a time, so the HTTP thread never blocks on libtorch. The addon is context-aware: this thread has its own.
import { parentPort, workerData } from 'node:worker_threads';
import { setNumThreads } from '../engine/index.js';
import { segmentImage } from '../eval/predict.js';
import { type RGB, VOC_PALETTE } from '../common/palette.js';
import { PAN, type PansegMeta } from '../models/index.js';
import type { ModelInfo, WorkerConfig, WorkerReply, WorkerRequest } from './protocol.js';

const port = parentPort;
if (!port) throw new Error('panseg: src/serve/worker is a worker thread script, not a module to import');
const cfg = workerData as WorkerConfig;

let model: PAN | null = null;
try {
  if (cfg.threads) setNumThreads(cfg.threads);
  const loaded = PAN.loadPretrained(cfg.modelDir);
  model = loaded.model;
  model.eval();
  port.postMessage({ type: 'ready', info: modelInfo(model, loaded.meta) } satisfies WorkerReply);
} catch (e) {
  port.postMessage({ type: 'failed', message: (e as Error).message } satisfies WorkerReply);
}

function modelInfo(m: PAN, meta: PansegMeta): ModelInfo {
  const n = Math.max(2, m.config.classes);
  const classes = Array.from({ length: n }, (_, i) => meta.classNames?.[i] ?? `class ${i}`);
  const colors = Array.from({ length: n }, (_, i) => (meta.colors?.[i] ?? VOC_PALETTE[i]) as RGB);
  return { classes, colors, encoder: m.config.encoderName, outputStride: m.outputStride, minInputSize: m.minInputSize };
}

port.on('message', (req: WorkerRequest) => {
  if (!model) return;
  try {
    const seg = segmentImage(model, { data: req.data, width: req.width, height: req.height });
    port.postMessage({ type: 'result', id: req.id, labels: seg.labels, width: seg.width, height: seg.height, ms: seg.ms } satisfies WorkerReply, [seg.labels.buffer as ArrayBuffer]);
  } catch (e) {
    port.postMessage({ type: 'error', id: req.id, message: (e as Error).message } satisfies WorkerReply);
  }
});
