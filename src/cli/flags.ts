// Flag groups shared by several subcommands.
import type { Flag } from './args.js';

export const DATA_FLAGS: Flag[] = [
  { name: 'dataset', type: 'string', desc: 'dataset layout', choices: ['voc', 'camvid', 'cityscapes', 'folder'] },
  { name: 'data-root', type: 'string', desc: 'dataset folder' },
  { name: 'split', type: 'string', desc: 'split to use (folder layout: subfolder name, or "all")' },
];

export const RUN_FLAGS: Flag[] = [
  { name: 'threads', type: 'int', desc: 'libtorch threads (default: all cores)' },
  { name: 'seed', type: 'int', desc: 'random seed', default: 0 },
  { name: 'precision', type: 'string', desc: 'compute precision (auto: bf16 on CPUs with AMX/AVX512-BF16, else fp32)', choices: ['auto', 'fp32', 'bf16', 'fp16'], default: 'auto' },
  { name: 'device', type: 'string', desc: "'cpu' or 'cuda[:N]' (needs a CUDA libtorch)", default: 'cpu' },
  { name: 'workers', type: 'int', desc: 'data loading threads' },
];

export const TTA_FLAGS: Flag[] = [
  { name: 'tta-flip', type: 'boolean', desc: 'test-time augmentation: average with the flipped image' },
  { name: 'tta-scales', type: 'list', desc: 'test-time augmentation: comma-separated scales, e.g. 0.75,1,1.25' },
];
