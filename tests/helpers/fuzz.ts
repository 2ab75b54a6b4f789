// A small seeded mutator for the weight-format fuzz tests: each case takes a valid seed file and
// applies one to four mutations (bit flips, byte writes, inserts, deletes, truncation, length-field
// inflation, splices from another seed), then the test loads the result in this process. Every
// case must end in success or a PansegError; anything else is reported with its seed to replay.
import { writeFileSync } from 'node:fs';
import { PansegError } from '../../src/common/errors.js';

/** mulberry32: a tiny, fast, seedable PRNG (period 2^32), so a failing case replays from its number. */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }
  int(n: number): number { return Math.floor(this.next() * n); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]; }
}

/** Values that make a length or count field lie: zero, off by one, powers of two near the int limits, all ones. */
const HOSTILE = [0n, 1n, 7n, 255n, 0x7fffn, 0xffffn, 0x10000n, 0x7fffffffn, 0x80000000n, 0xfffffff0n, 0xffffffffn, 1n << 32n,
  1n << 40n, 1n << 53n, (1n << 63n) - 1n, (1n << 64n) - 1n];

export type Mutation = 'flip' | 'byte' | 'insert' | 'delete' | 'truncate' | 'inflate' | 'splice' | 'repeat';
const KINDS: Mutation[] = ['flip', 'flip', 'byte', 'byte', 'insert', 'delete', 'truncate', 'inflate', 'inflate', 'splice', 'repeat'];

export interface MutateOptions {
  /** Offsets of known length fields (8-byte header length, zip sizes...): inflation prefers these. */
  lengthFields?: number[];
  /** Other seeds to splice from. */
  donors?: Uint8Array[];
  /** Where most mutations land (e.g. the header), as [start, end); default the whole file. */
  hot?: [number, number];
}

/** Returns a mutated copy of `seed` and the names of the mutations applied. */
export function mutate(seed: Uint8Array, rng: Rng, opts: MutateOptions = {}): { bytes: Buffer; applied: string[] } {
  let b = Buffer.from(seed);
  const applied: string[] = [];
  const rounds = 1 + rng.int(4);
  const at = (): number => {
    if (b.length === 0) return 0;
    const [s, e] = opts.hot && rng.next() < 0.7 ? opts.hot : [0, b.length];
    const lo = Math.min(s, b.length - 1);
    return lo + rng.int(Math.max(1, Math.min(e, b.length) - lo));
  };
  for (let r = 0; r < rounds; r++) {
    const kind = rng.pick(KINDS);
    const p = at();
    switch (kind) {
      case 'flip': if (b.length) b[p] ^= 1 << rng.int(8); break;
      case 'byte': if (b.length) b[p] = rng.pick([0, 0x7f, 0x80, 0xff, 0x22, 0x5b, 0x7b, 0x2c, rng.int(256)]); break;
      case 'insert': {
        const n = 1 + rng.int(16);
        const ins = Buffer.alloc(n);
        for (let i = 0; i < n; i++) ins[i] = rng.int(256);
        b = Buffer.concat([b.subarray(0, p), ins, b.subarray(p)]);
        break;
      }
      case 'delete': b = Buffer.concat([b.subarray(0, p), b.subarray(Math.min(b.length, p + 1 + rng.int(32)))]); break;
      case 'truncate': b = b.subarray(0, p); break;
      case 'inflate': {
        const fields = opts.lengthFields?.filter((f) => f + 8 <= b.length) ?? [];
        const f = fields.length && rng.next() < 0.6 ? rng.pick(fields) : p;
        const v = rng.pick(HOSTILE);
        const width = rng.pick([2, 4, 8]);
        if (f + width > b.length) break;
        if (width === 2) b.writeUInt16LE(Number(v & 0xffffn), f);
        else if (width === 4) b.writeUInt32LE(Number(v & 0xffffffffn), f);
        else b.writeBigUInt64LE(v & ((1n << 64n) - 1n), f);
        break;
      }
      case 'splice': {
        const donor = opts.donors?.length ? rng.pick(opts.donors) : b;
        if (!donor.length) break;
        const from = rng.int(donor.length);
        const chunk = Buffer.from(donor.subarray(from, from + 1 + rng.int(64)));
        b = Buffer.concat([b.subarray(0, p), chunk, b.subarray(Math.min(b.length, p + chunk.length))]);
        break;
      }
      case 'repeat': {
        const chunk = Buffer.from(b.subarray(p, p + 1 + rng.int(16)));
        b = Buffer.concat([b.subarray(0, p), ...Array.from({ length: 2 + rng.int(8) }, () => chunk), b.subarray(p)]);
        break;
      }
    }
    applied.push(`${kind}@${p}`);
  }
  return { bytes: b, applied };
}

/** Cases per format: `PANSEG_FUZZ_CASES` or `fallback` (what CI runs). */
export function fuzzCases(fallback: number): number {
  const n = Number(process.env.PANSEG_FUZZ_CASES);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/** The base seed: `PANSEG_FUZZ_SEED` (to replay or explore) or a fixed default, so CI is reproducible. */
export function fuzzSeed(fallback: number): number {
  const n = Number(process.env.PANSEG_FUZZ_SEED);
  return Number.isInteger(n) ? n : fallback;
}

export interface FuzzReport {
  cases: number;
  loaded: number;
  refused: number;
  /** Cases that threw something other than a PansegError, with how to replay them. */
  crashes: string[];
  /** Peak RSS of this process over the run, and its growth over the RSS before the first case (bytes). */
  peakRss: number;
  peakGrowth: number;
  seconds: number;
}

/**
 * Runs `cases` mutations of `seeds` through `load` (which reads the file at `path` and frees what it
 * made). Peak RSS comes from the kernel's high-water mark (process.resourceUsage().maxRSS) plus an
 * RSS sample after every case, so a case that balloons and then fails still shows.
 */
export function runFuzz(opts: {
  seeds: Uint8Array[]; path: string; cases: number; seed: number; load: (path: string) => void;
  mutate?: Omit<MutateOptions, 'donors'> | ((seedIndex: number) => Omit<MutateOptions, 'donors'>);
  /** Builds the file from the mutated bytes (e.g. puts a mutated pickle into a valid archive). */
  wrap?: (bytes: Buffer, seedIndex: number) => Uint8Array;
}): FuzzReport {
  const t0 = performance.now();
  const rss0 = process.memoryUsage().rss;
  const report: FuzzReport = { cases: opts.cases, loaded: 0, refused: 0, crashes: [], peakRss: 0, peakGrowth: 0, seconds: 0 };
  let sampled = rss0;
  for (let i = 0; i < opts.cases; i++) {
    const rng = new Rng(opts.seed + i);
    const si = rng.int(opts.seeds.length);
    const mo = typeof opts.mutate === 'function' ? opts.mutate(si) : opts.mutate ?? {};
    const { bytes, applied } = mutate(opts.seeds[si], rng, { ...mo, donors: opts.seeds });
    writeFileSync(opts.path, opts.wrap ? opts.wrap(bytes, si) : bytes);
    try {
      opts.load(opts.path);
      report.loaded++;
    } catch (e) {
      if (e instanceof PansegError) report.refused++;
      else report.crashes.push(`case ${i} (PANSEG_FUZZ_SEED=${opts.seed + i} PANSEG_FUZZ_CASES=1, seed file ${si}, ${applied.join(' ')}): ${(e as Error)?.stack ?? String(e)}`);
    }
    sampled = Math.max(sampled, process.memoryUsage().rss);
  }
  report.peakRss = Math.max(sampled, process.resourceUsage().maxRSS * 1024);
  report.peakGrowth = report.peakRss - rss0;
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

export const MiB = 1024 * 1024;
