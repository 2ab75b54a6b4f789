// The data module's one use of the engine: a batch's typed arrays become tensors.
import { tensor, type Tensor } from '../engine/index.js';

/**
 * Copies a batch into engine tensors: images float32 [B, 3, H, W], masks int64 [B, H, W] (what cross-entropy takes).
 * @param device default 'cpu'
 * @example const { images, masks } = batchToTensors(batch, 'cuda')
 */
export function batchToTensors(batch: { images: Float32Array; masks: Uint8Array; shape: readonly number[] }, device = 'cpu'): { images: Tensor; masks: Tensor } {
  const [b, , h, w] = batch.shape;
  const images = tensor(batch.images, [...batch.shape], { device });
  const bytes = tensor(batch.masks, [b, h, w]);
  try {
    return { images, masks: bytes.to({ dtype: 'int64', device }) };
  } finally {
    bytes.dispose();
  }
}
