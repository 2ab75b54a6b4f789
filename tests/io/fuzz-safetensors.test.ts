// Fuzzes loadSafetensors with seeded mutations of valid files written by saveSafetensors: every
// case must load or fail with a PansegError, never another error or a crash, and the process's peak
// RSS must stay within FUZZ_RSS_BOUND of where it started. CI runs 400 cases; set PANSEG_FUZZ_CASES
// for more (and PANSEG_FUZZ_SEED to explore other seeds or replay a reported case).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Tensor, liveTensors, tensor } from '../../src/engine/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/index.js';
import { MiB, fuzzCases, fuzzSeed, runFuzz } from '../helpers/fuzz.js';

/** Peak RSS growth allowed over a run (measured on a 2-core CI machine: +9 MiB for 400 cases, +11 MiB for 5,000; see notes/weights.md). */
const FUZZ_RSS_BOUND = 64 * MiB;

const tmp = mkdtempSync(join(tmpdir(), 'panseg-fuzz-st-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function seeds(): Uint8Array[] {
  const sets: [Record<string, Tensor>, Record<string, string> | undefined][] = [
    [{
      'conv.weight': tensor(Float32Array.from({ length: 54 }, (_, i) => i / 7 - 3), [2, 3, 3, 3]),
      'bn.num_batches_tracked': tensor(BigInt64Array.from([7n]), []),
      'half': tensor(Float32Array.from([0.5, -2, 65504]), [3], { dtype: 'float16' }),
      'bf': tensor(Float32Array.from([1, -3.140625]), [2], { dtype: 'bfloat16' }),
    }, { format: 'pt' }],
    [{
      '10': tensor(Float64Array.from([Math.PI]), [1]),
      '2': tensor(Int32Array.from([1, -2, 3, -4]), [2, 2]),
      'mask': tensor(Uint8Array.from([1, 0, 1]), [3], { dtype: 'bool' }),
      'u8': tensor(Uint8Array.from([0, 255]), [2]),
      'empty': tensor(new Float32Array(0), [0, 5]),
    }, undefined],
    [Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`layer${i}.bias`, tensor(Float32Array.from([i, -i]), [2])])), { note: 'héllo', format: 'pt' }],
  ];
  return sets.map(([ts, meta], i) => {
    const p = join(tmp, `seed${i}.safetensors`);
    saveSafetensors(p, ts, meta);
    for (const t of Object.values(ts)) t.dispose();
    return readFileSync(p);
  });
}

test('fuzz: mutated safetensors files load or fail with a PansegError, within a bounded peak RSS', (t) => {
  const files = seeds();
  const live = liveTensors();
  const report = runFuzz({
    seeds: files, path: join(tmp, 'case.safetensors'), cases: fuzzCases(400), seed: fuzzSeed(0x5afe),
    load: (p) => { for (const x of loadSafetensors(p).values()) x.dispose(); },
    // Most mutations land in the header, where parsing happens; the 8-byte length is a length field.
    mutate: (i) => ({ lengthFields: [0], hot: [0, 8 + Number(Buffer.from(files[i]).readBigUInt64LE(0))] }),
  });
  t.diagnostic(`cases ${report.cases}, loaded ${report.loaded}, refused ${report.refused}, crashes ${report.crashes.length}, peak RSS ${(report.peakRss / MiB).toFixed(0)} MiB (+${(report.peakGrowth / MiB).toFixed(1)} MiB), ${report.seconds.toFixed(1)} s`);
  assert.deepEqual(report.crashes, []);
  assert.ok(report.refused > report.cases / 4, `only ${report.refused} of ${report.cases} mutations were refused`);
  assert.ok(report.peakGrowth < FUZZ_RSS_BOUND, `peak RSS grew ${(report.peakGrowth / MiB).toFixed(1)} MiB, over ${FUZZ_RSS_BOUND / MiB} MiB`);
  assert.equal(liveTensors(), live);
});
