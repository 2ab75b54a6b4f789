// Reads a weight file by its extension: safetensors, or a torch.save checkpoint.
import { fail } from '../common/errors.js';
import type { Tensor } from '../engine/index.js';
import { loadSafetensors } from './safetensors.js';
import { loadTorchCheckpoint } from './torch-checkpoint.js';

/** Loads `.safetensors`, `.pth`, `.pt` or `.bin` (torch.save zip) into name -> tensor. */
export function loadWeights(path: string): Map<string, Tensor> {
  if (typeof path !== 'string' || !path) fail('loadWeights', `expected a file path but received ${String(path)}`);
  if (/\.safetensors$/i.test(path)) return loadSafetensors(path);
  if (/\.(pth|pt|bin|ckpt)$/i.test(path)) return loadTorchCheckpoint(path);
  fail('loadWeights', `${path}: unknown weight file type; expected .safetensors, .pth, .pt or .bin`);
}
