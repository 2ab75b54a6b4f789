// Timing helpers shared by the benchmarks.
import { loadavg } from 'node:os';

/** The 1-minute load average, printed beside figures: on 2 cores any second job skews them. */
export function load(): number {
  return Number(loadavg()[0].toFixed(2));
}

/** The loads seen over a measurement as "min-max", printed beside its figures. */
export function loadRange(loads: number[]): string {
  return `${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`;
}

/** The median (the mean of the two middle values for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Median milliseconds of `fn` over `n` runs after `warmup` untimed runs. */
export function medianMs(fn: () => void, n: number, warmup = 1): number {
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    fn();
    ts.push(performance.now() - t);
  }
  return median(ts);
}
