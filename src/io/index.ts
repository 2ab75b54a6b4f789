// File formats: safetensors, PyTorch checkpoints (torch.save zip) and .npy arrays.
export { loadSafetensors, readSafetensors, readSafetensorsHeader, saveSafetensors, type SafetensorsEntry, type SafetensorsHeader } from './safetensors.js';
export { loadTorchCheckpoint } from './torch-checkpoint.js';
export * from './npy.js';
