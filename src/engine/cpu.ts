// CPU features that decide the default compute precision.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface CpuFeatures {
  model: string;
  /** Intel AMX tiles with bfloat16 (Sapphire Rapids and later). */
  amx: boolean;
  avx512bf16: boolean;
}

let cached: CpuFeatures | null = null;

export function cpuFeatures(): CpuFeatures {
  if (cached) return cached;
  let flags = '';
  try { flags = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? ''; } catch { /* not Linux: no detection */ }
  cached = { model: cpus()[0]?.model ?? 'unknown', amx: /\bamx_bf16\b/.test(flags), avx512bf16: /\bavx512_bf16\b/.test(flags) };
  return cached;
}

export type Precision = 'fp32' | 'bf16' | 'fp16';

/**
 * 'auto' resolves to bf16 where the CPU runs bfloat16 natively (AMX or AVX512-BF16) and to fp32
 * elsewhere; on CUDA it is bf16 too (mixed precision). Explicit choices pass through.
 */
export function resolvePrecision(p: Precision | 'auto' | undefined, device = 'cpu'): Precision {
  if (p && p !== 'auto') return p;
  if (device.startsWith('cuda')) return 'bf16';
  const f = cpuFeatures();
  return f.amx || f.avx512bf16 ? 'bf16' : 'fp32';
}
