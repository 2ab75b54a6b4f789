import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { distributedBackends } from '../../engine/c10d.js';
import { buildInfo, cpuFeatures, getNumThreads, noGrad, randn, resolvePrecision, tidy } from '../../engine/index.js';
import { architecture, createModel, encoderNames, loadModel } from '../../models/index.js';
import { validSide } from '../../common/input-size.js';
import { archOptions, MODEL_FLAGS } from '../flags.js';
import { countMacs } from '../../nn/index.js';
import { packageRoot } from '../../common/package-root.js';
import type { CommandSpec } from '../args.js';

export const spec: CommandSpec = {
  name: 'info',
  summary: 'show a model (parameters, FLOPs at a size, config) and the compute engine',
  usage: 'panseg info [--model DIR | --arch NAME --encoder NAME --classes N] [--size 512]',
  flags: [
    { name: 'model', type: 'string', desc: 'model directory' },
    ...MODEL_FLAGS,
    { name: 'encoder', type: 'string', desc: `encoder (${encoderNames().join(', ')})`, default: 'resnet34' },
    { name: 'classes', type: 'int', desc: 'classes', default: 21 },
    { name: 'size', type: 'int', desc: 'input size for the FLOP count', default: 512 },
    { name: 'json', type: 'boolean', desc: 'print JSON' },
  ],
};

export async function run(o: Record<string, unknown>): Promise<void> {
  const model = o.model ? loadModel(o.model as string) : createModel(o.arch as string, { encoderName: o.encoder as string, classes: o.classes as number, ...archOptions(o) });
  const size = validSide(o.size as number, model.inputSizeRule);
  model.eval();
  const macs = countMacs(() => noGrad(() => tidy(() => { model.forward(randn([1, model.config.inChannels, size, size])); })));
  const b = buildInfo();
  const cpu = cpuFeatures();
  const info = {
    model: { architecture: model.architecture, ...model.config, parameters: model.numParameters(), trainable: model.numParameters(true), outputStride: model.outputStride, inputMultiple: model.inputSizeRule.stride, minInputSize: model.inputSizeRule.min },
    gflops: { size, value: (2 * macs) / 1e9 },
    engine: {
      libtorch: b.torchVersion, mkldnn: b.mkldnn, cuda: b.cuda, cudaDevices: b.cudaDevices, distributed: distributedBackends(), threads: getNumThreads(), cores: availableParallelism(),
      cpu: cpu.model, amx: cpu.amx, avx512bf16: cpu.avx512bf16, defaultPrecision: resolvePrecision('auto'),
      addon: JSON.parse(readFileSync(`${packageRoot()}/build/addon-config.json`, 'utf8')).config,
    },
  };
  model.dispose();
  if (o.json) { console.log(JSON.stringify(info, null, 2)); return; }
  const m = info.model;
  const own = Object.entries(m).filter(([k]) => k.startsWith('decoder') || k === 'upsampling').map(([k, val]) => `${k} ${JSON.stringify(val)}`);
  console.log(`${m.architecture} (${architecture(m.architecture).description})`);
  console.log(`${m.encoderName} encoder (depth ${m.encoderDepth}, output stride ${m.outputStride}), ${m.classes} classes; ${own.join(', ')}`);
  console.log(`parameters: ${m.parameters.toLocaleString('en-US')} (${m.trainable.toLocaleString('en-US')} trainable)`);
  console.log(`compute: ${info.gflops.value.toFixed(2)} GFLOPs at 1x${m.inChannels}x${size}x${size}; inputs must be multiples of ${m.inputMultiple}, at least ${m.minInputSize} px`);
  const e = info.engine;
  console.log(`engine: libtorch ${e.libtorch} from ${e.addon.source} (${e.addon.lib}), oneDNN ${e.mkldnn ? 'yes' : 'no'}, CUDA ${e.cuda ? `yes (${e.cudaDevices} devices)` : 'no'}, distributed backends: ${e.distributed.join(', ') || 'none'}`);
  console.log(`cpu: ${e.cpu}, ${e.cores} cores, ${e.threads} threads; AMX ${e.amx ? 'yes' : 'no'}, AVX512-BF16 ${e.avx512bf16 ? 'yes' : 'no'} -> default precision ${e.defaultPrecision}`);
}
