// The CPU buffer cache (native/allocator.cc): freed tensor buffers of 64 KiB and more are kept by
// size and reused, so repeated same-size work allocates nothing new. Process-wide, like PyTorch's
// CUDA caching allocator. On by default: it removed nearly all page faults and 3-4% of the time
// of PAN inference and training steps here (README, 'Benchmarks').
import { totalmem } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import * as v from '../common/validate.js';
import { native } from './native.js';

/** PANSEG_CPU_CACHE_MB if set (0 turns the cache off), else a quarter of the RAM, at most 4 GiB. */
function defaultLimit(): number {
  const env = process.env.PANSEG_CPU_CACHE_MB;
  const mb = Number(env);
  if (env !== undefined && env !== '') {
    if (Number.isFinite(mb) && mb >= 0) return mb * 2 ** 20;
    console.warn(`panseg: ignoring PANSEG_CPU_CACHE_MB=${env} (expected megabytes >= 0; 0 turns the CPU buffer cache off)`);
  }
  return Math.min(totalmem() / 4, 4 * 2 ** 30);
}
// The cache is process-wide: only the main thread sets its default, so worker threads that load the
// engine (data loaders, the server) do not undo a limit the program chose with setCpuBufferCache().
const initialLimit = isMainThread ? defaultLimit() : 0;
if (initialLimit > 0) native.cpuCacheSetLimit(initialLimit); // 0: libtorch's own allocator stays in place

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
