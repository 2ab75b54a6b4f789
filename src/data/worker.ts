// The loader's worker thread: runs jobs and sends results back, transferring the pixel buffers.
import { parentPort, workerData } from 'node:worker_threads';
import { type JobConfig, type JobRequest, makeJob } from './job.js';

const port = parentPort;
if (!port) throw new Error('panseg: src/data/worker is a worker thread script, not a module to import');
const job = makeJob(workerData as JobConfig);
port.on('message', (req: JobRequest) => {
  void job(req).then((r) => {
    port.postMessage(r, r.ok ? [r.image.buffer as ArrayBuffer, r.mask.buffer as ArrayBuffer] : []);
  });
});
