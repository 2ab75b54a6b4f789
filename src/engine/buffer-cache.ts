// The CPU buffer cache (native/allocator.cc): freed tensor buffers of 64 KiB and more are kept by
// size and reused, so repeated same-size work allocates nothing new. Process-wide, like PyTorch's
// CUDA caching allocator.
import * as v from '../common/validate.js';
import { native } from './native.js';

export interface CpuBufferCacheStats {
  /** Whether the caching allocator has been installed (it stays installed; a limit of 0 bypasses it). */
  enabled: boolean;
  /** Most bytes kept for reuse. */
  limit: number;
  cachedBytes: number;
  /** Allocations served from the cache, and those that were not. */
  hits: number;
  misses: number;
}

/** Keeps up to `limitBytes` of freed CPU buffers for reuse (0: free at once, and empty the cache). */
export function setCpuBufferCache(limitBytes: number): void {
  native.cpuCacheSetLimit(v.num('setCpuBufferCache', 'limitBytes', limitBytes, { min: 0 }));
}

/** Returns the cached buffers to the system (the limit stays). */
export function emptyCpuBufferCache(): void {
  native.cpuCacheEmpty();
}

export function cpuBufferCacheStats(): CpuBufferCacheStats {
  return native.cpuCacheStats();
}
