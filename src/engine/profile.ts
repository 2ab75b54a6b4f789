// Per-op profile of a stretch of work: libtorch's profiler, folded by native/profile.cc into self
// times per op. `npm run bench -- profile` prints it for a training step, phase by phase.
import { PansegError } from '../common/errors.js';
import { native, type ProfileRow } from './native.js';

export type { ProfileRow };

/** One op's per-repeat totals within one phase. */
export interface PhaseRow extends ProfileRow { phase: string }

/**
 * Runs the phases in order, `repeats` times, each under libtorch's profiler, and returns per-op
 * totals per phase divided by `repeats`. Phases share state through the caller's closures
 * (forward keeps the loss that backward consumes).
 */
/**
 * Microseconds per `at::add` of two 1-element tensors called `n` times from C++: libtorch's own cost
 * of a tiny op, which any binding's dispatch (TypeScript's, Python's) adds to.
 */
export function tinyOpFloorUs(n = 100_000): number {
  return native.tinyOpFloor(n);
}

export function profileOps(phases: Record<string, () => void>, repeats = 1): PhaseRow[] {
  if (!Number.isInteger(repeats) || repeats < 1) throw new PansegError(`profileOps: repeats must be a positive integer, got ${repeats}`);
  const sums = new Map<string, PhaseRow>();
  for (let i = 0; i < repeats; i++) {
    for (const [phase, fn] of Object.entries(phases)) {
      native.profileStart();
      try {
        fn();
      } finally {
        const rows = native.profileStop();
        for (const r of rows) {
          const key = `${phase}\0${r.name}`;
          const s = sums.get(key) ?? { phase, name: r.name, calls: 0, selfUs: 0, totalUs: 0, flops: 0, elements: 0 };
          s.calls += r.calls; s.selfUs += r.selfUs; s.totalUs += r.totalUs; s.flops += r.flops; s.elements += r.elements;
          sums.set(key, s);
        }
      }
    }
  }
  return [...sums.values()].map((s) => ({ ...s, calls: s.calls / repeats, selfUs: s.selfUs / repeats, totalUs: s.totalUs / repeats, flops: s.flops / repeats, elements: s.elements / repeats }));
}

/** Ops that only move data or change its layout or dtype: a profile's "copies and reorders". */
export function isCopyOp(name: string): boolean {
  return /^aten::(copy_|_to_copy|to|contiguous|clone|to_mkldnn|to_dense|_mkldnn_reshape|mkldnn_reorder_conv2d_weight|cat)$/.test(name);
}

/** The floor an op is held to: compute (FLOPs), memory traffic, or none (autograd bookkeeping). */
export function opKind(name: string): 'compute' | 'memory' | 'node' {
  if (name.startsWith('autograd::') || name.startsWith('torch::autograd::') || /Backward\d*$/.test(name)) return 'node';
  if (name === 'convolution' || name.startsWith('winograd ') || /^aten::(conv2d|convolution_backward|mm|addmm|bmm|matmul|linear)$/.test(name)) return 'compute';
  return 'memory';
}

export interface ProfileFloors {
  /** GFLOP/s convolutions and matmuls reach on this machine (measure it). */
  gflops: number;
  /** GB/s (bytes read + written) a large copy reaches on this machine. */
  gbps: number;
  /** bytes per element of the memory-bound ops. */
  elementBytes: number;
}

export interface ProfileLine extends PhaseRow {
  ms: number;
  /** share of all profiled self time */
  share: number;
  /** the op's time at its floor: FLOPs at `gflops`, or its inputs read and an output written once at `gbps` (an estimate). */
  floorMs: number;
}

/**
 * The op a row is counted under: the dispatch layers of a forward convolution (aten::conv2d -> convolution ->
 * _convolution -> the kernel) become one `convolution`, so its FLOPs (counted at aten::conv2d) and its time
 * (spent in the kernel) meet on one line. panseg's Winograd training convolutions (one layer each) keep
 * their own lines.
 */
export function opGroup(name: string): string {
  if (name.startsWith('panseg::winograd_')) return `winograd ${name.slice('panseg::winograd_'.length).replace('conv2d', 'convolution')}`;
  return /^aten::(conv2d|convolution|_convolution|mkldnn_convolution|_slow_conv2d_forward|thnn_conv2d|_nnpack_spatial_convolution|cudnn_convolution)$/.test(name) ? 'convolution' : name;
}

/** Rows merged by phase and {@link opGroup}. */
function grouped(rows: PhaseRow[]): PhaseRow[] {
  const out = new Map<string, PhaseRow>();
  for (const r of rows) {
    const name = opGroup(r.name);
    const key = `${r.phase}\0${name}`;
    const g = out.get(key);
    if (!g) { out.set(key, { ...r, name }); continue; }
    // calls are counted once, at the outermost layer (the layers of one convolution are one call)
    g.calls = Math.max(g.calls, r.calls); g.selfUs += r.selfUs; g.totalUs = Math.max(g.totalUs, r.totalUs);
    g.flops += r.flops; g.elements = Math.max(g.elements, r.elements);
  }
  return [...out.values()];
}

/** Lines sorted by self time, each with its floor. */
export function summarizeProfile(rows: PhaseRow[], floors: ProfileFloors): { lines: ProfileLine[]; totalMs: number } {
  const totalMs = rows.reduce((s, r) => s + r.selfUs, 0) / 1000;
  const lines = grouped(rows).map((r) => {
    const kind = opKind(r.name);
    const floorMs = kind === 'compute' ? r.flops / (floors.gflops * 1e6)
      : kind === 'node' ? 0
      : (r.elements * floors.elementBytes) / (floors.gbps * 1e6);
    return { ...r, ms: r.selfUs / 1000, share: totalMs > 0 ? r.selfUs / 1000 / totalMs : 0, floorMs };
  }).sort((a, b) => b.ms - a.ms);
  return { lines, totalMs };
}
