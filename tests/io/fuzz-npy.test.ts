// Fuzzes loadNpy with seeded mutations of valid .npy files written by encodeNpy (every dtype, 0-d,
// empty, a version 2.0 header): every case must load or fail with a PansegError, never another error
// or a crash, and the process's peak RSS must stay within FUZZ_RSS_BOUND of where it started. CI runs
// 400 cases; set PANSEG_FUZZ_CASES for more (and PANSEG_FUZZ_SEED to explore or replay).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Tensor, liveTensors, tensor, zeros } from '../../src/engine/index.js';
import { encodeNpy, loadNpy } from '../../src/io/index.js';
import { MiB, fuzzCases, fuzzSeed, runFuzz } from '../helpers/fuzz.js';

/** Peak RSS growth allowed over a run (measured on a 2-core CI machine: +3 MiB for 400 cases, +12 MiB for 5,000; see notes/weights.md). */
const FUZZ_RSS_BOUND = 64 * MiB;

const tmp = mkdtempSync(join(tmpdir(), 'panseg-fuzz-npy-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function seeds(): Buffer[] {
  const ts: Tensor[] = [
    tensor(Float32Array.from({ length: 12 }, (_, i) => i - 5.5), [3, 4]),
    tensor(Float64Array.from([Math.E, -0]), [2]),
    tensor(Float32Array.from([0.5, -1, 65504]), [3], { dtype: 'float16' }),
    tensor(BigInt64Array.from([1n, -(2n ** 62n)]), [1, 2]),
    tensor(Int32Array.from([7]), []),
    tensor(Uint8Array.from([0, 128, 255]), [3]),
    tensor(Uint8Array.from([1, 0, 1, 1]), [2, 2], { dtype: 'bool' }),
    tensor(new Float32Array(0), [0, 3]),
    zeros(Array.from({ length: 40 }, () => 1)), // a long shape tuple
  ];
  const out = ts.map((t) => encodeNpy(t));
  for (const t of ts) t.dispose();
  // A version 2.0 file: the same header with a 4-byte length.
  const v1 = out[0];
  const hlen = v1.readUInt16LE(8);
  const v2 = Buffer.concat([v1.subarray(0, 8), Buffer.alloc(4), v1.subarray(10)]);
  v2[6] = 2;
  v2.writeUInt32LE(hlen, 8);
  out.push(v2);
  return out;
}

test('fuzz: mutated .npy files load or fail with a PansegError, within a bounded peak RSS', (t) => {
  const files = seeds();
  const live = liveTensors();
  const report = runFuzz({
    seeds: files, path: join(tmp, 'case.npy'), cases: fuzzCases(400), seed: fuzzSeed(0x4e50),
    load: (p) => loadNpy(p).dispose(),
    mutate: (i) => {
      const v2 = files[i][6] === 2;
      return { lengthFields: [8], hot: [0, (v2 ? 12 + files[i].readUInt32LE(8) : 10 + files[i].readUInt16LE(8))] };
    },
  });
  t.diagnostic(`cases ${report.cases}, loaded ${report.loaded}, refused ${report.refused}, crashes ${report.crashes.length}, peak RSS ${(report.peakRss / MiB).toFixed(0)} MiB (+${(report.peakGrowth / MiB).toFixed(1)} MiB), ${report.seconds.toFixed(1)} s`);
  assert.deepEqual(report.crashes, []);
  assert.ok(report.refused > report.cases / 4, `only ${report.refused} of ${report.cases} mutations were refused`);
  assert.ok(report.peakGrowth < FUZZ_RSS_BOUND, `peak RSS grew ${(report.peakGrowth / MiB).toFixed(1)} MiB, over ${FUZZ_RSS_BOUND / MiB} MiB`);
  assert.equal(liveTensors(), live);
});
