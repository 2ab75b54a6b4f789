// `npm run bench`: every benchmark in one run, each against its peer (PyTorch / onnxruntime)
// measured in the same process tree on the same machine. Prints tables, never asserts.
import { cpus } from 'node:os';
import { existsSync } from 'node:fs';
import { buildInfo, getNumThreads } from '../src/engine/index.js';
import { benchPan, printPan } from './pan.js';

const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);

console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores; libtorch ${buildInfo().torchVersion}; panseg threads ${getNumThreads()}`);
console.log('All ratios are panseg / peer: below 1 means panseg is faster.\n');

if (want('engine') && existsSync(new URL('./engine.ts', import.meta.url))) {
  const { runEngineBench } = await import('./engine.js') as { runEngineBench?: () => Promise<void> };
  if (runEngineBench) await runEngineBench();
}
if (want('pan')) printPan(benchPan());
if (want('onnx') && existsSync(new URL('./onnx.ts', import.meta.url))) {
  const { runOnnxBench } = await import('./onnx.js') as { runOnnxBench?: () => Promise<void> };
  if (runOnnxBench) await runOnnxBench();
}
if (want('train') && existsSync(new URL('./train.ts', import.meta.url))) {
  const { runTrainBench } = await import('./train.js') as { runTrainBench?: () => Promise<void> };
  if (runTrainBench) await runTrainBench();
}
