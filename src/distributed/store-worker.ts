// The worker thread that runs rank 0's store server (store-server.ts), so the store keeps answering
// while rank 0's main thread is blocked in native code (a collective, Gloo's connect).
import { parentPort, workerData } from 'node:worker_threads';
import { StoreServer, type StoreServerOptions } from './store-server.js';

const server = new StoreServer(workerData as StoreServerOptions);
server.listen().then(
  (port) => parentPort!.postMessage({ port }),
  (e: NodeJS.ErrnoException) => parentPort!.postMessage({ code: e.code ?? '', message: e.message }),
);
parentPort!.on('message', (m) => {
  if (m === 'close') void server.close().then(() => process.exit(0));
});
