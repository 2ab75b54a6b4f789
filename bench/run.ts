// `npm run bench [engine|pan|models|mobilenet|onnx|web|profile|fused|optimizer|train|distributed|cuda ...]`: the benchmarks in one run, each against its peer (PyTorch / onnxruntime)
// measured in the same process tree on the same machine. Prints tables, never asserts.
import { cpus } from 'node:os';
import { buildInfo, getNumThreads } from '../src/engine/index.js';
import { benchPan, printPan } from './pan.js';

const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);

console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores; libtorch ${buildInfo().torchVersion}; panseg threads ${getNumThreads()}`);
console.log('All ratios are panseg / peer: below 1 means panseg is faster.\n');

if (want('engine')) await (await import('./engine.js')).runEngineBench();
if (want('pan')) printPan(benchPan());
if (want('models')) { const m = await import('./models.js'); m.printModels(m.benchModels()); }
if (want('mobilenet')) {
  // PAN and UNet on MobileNetV2 against PyTorch, and PAN-mobilenet_v2 in onnxruntime-node.
  const m = await import('./models.js');
  m.printModels(m.benchModels({ encoder: 'mobilenet_v2', archs: ['pan', 'unet'] }), 'mobilenet_v2');
  await (await import('./onnx.js')).runOnnxBench({ encoder: 'mobilenet_v2' });
}
if (want('onnx')) await (await import('./onnx.js')).runOnnxBench();
if (want('web')) { const w = await import('./web.js'); w.printWeb(await w.benchWeb()); }
if (want('profile')) { const p = await import('./profile.js'); p.printProfile(await p.benchProfile()); }
if (want('fused')) { const f = await import('./fused.js'); f.printFused(f.benchFused()); }
if (want('optimizer')) { const o = await import('./optimizer.js'); o.printOptimizer(o.benchOptimizer()); }
if (want('train')) await (await import('./train.js')).runTrainBench();
if (want('distributed')) await (await import('./distributed.js')).runDistributedBench();
// The GPU benchmark runs only when asked for by name (it needs a CUDA build and a GPU).
if (only.includes('cuda')) { const c = await import('./cuda.js'); c.printCuda(c.benchCuda()); }
