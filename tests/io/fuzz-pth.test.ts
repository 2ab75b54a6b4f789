// Fuzzes loadTorchCheckpoint with seeded mutations of valid checkpoints: torch.save files from the
// reference script (stored and deflated) and checkpoints assembled here (shared storages, views,
// expands). Every case must load or fail with a PansegError, never another error or a crash, and the
// process's peak RSS must stay within FUZZ_RSS_BOUND of where it started. CI runs 400 cases; set
// PANSEG_FUZZ_CASES for more (and PANSEG_FUZZ_SEED to explore other seeds or replay a reported case).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveTensors } from '../../src/engine/index.js';
import { loadTorchCheckpoint } from '../../src/io/index.js';
import { MiB, fuzzCases, fuzzSeed, runFuzz } from '../helpers/fuzz.js';
import { reference } from '../helpers/reference.js';
import { statePickle, torchCheckpoint } from '../helpers/torch-zip.js';

/** Peak RSS growth allowed over a run (measured on a 2-core CI machine: +13 MiB for 400 cases, +29 MiB for 5,000; see notes/weights.md). */
const FUZZ_RSS_BOUND = 192 * MiB;

const tmp = mkdtempSync(join(tmpdir(), 'panseg-fuzz-pth-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Offsets of the zip's size and offset fields (local headers, central records, end record): the length fields to inflate. */
function zipLengthFields(b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 4 <= b.length; i++) {
    const sig = b.readUInt32LE(i);
    if (sig === 0x04034b50) out.push(i + 18, i + 22, i + 26, i + 28);
    else if (sig === 0x02014b50) out.push(i + 20, i + 24, i + 28, i + 30, i + 42);
    else if (sig === 0x06054b50) out.push(i + 8, i + 10, i + 12, i + 16);
  }
  return out;
}

const f32 = (xs: number[]): Uint8Array => new Uint8Array(Float32Array.from(xs).buffer);
const views = statePickle([
  ['w', { key: '0', storage: 'FloatStorage', numel: 6, offset: 0, size: [2, 3], stride: [3, 1] }],
  ['wt', { key: '0', storage: 'FloatStorage', numel: 6, offset: 0, size: [3, 2], stride: [1, 3] }],
  ['tail', { key: '0', storage: 'FloatStorage', numel: 6, offset: 4, size: [2], stride: [1] }],
  ['e', { key: '1', storage: 'LongStorage', numel: 2, offset: 0, size: [3, 2], stride: [0, 1] }],
]);
const storages = { 0: f32([1, 2, 3, 4, 5, 6]), 1: new Uint8Array(BigInt64Array.from([5n, -6n]).buffer) };

function seeds(): Buffer[] {
  const ref = reference('weights.py');
  return [
    readFileSync(join(ref, 'conv_net.pth')),
    readFileSync(join(ref, 'dtypes.pth')),
    readFileSync(join(ref, 'deflated.pth')),
    torchCheckpoint(views, storages),
    torchCheckpoint(views, storages, true),
  ];
}

test('fuzz: mutated .pth checkpoints load or fail with a PansegError, within a bounded peak RSS', (t) => {
  const files = seeds();
  const fields = files.map(zipLengthFields);
  const live = liveTensors();
  const report = runFuzz({
    seeds: files, path: join(tmp, 'case.pth'), cases: fuzzCases(400), seed: fuzzSeed(0x7047),
    load: (p) => { for (const x of loadTorchCheckpoint(p).values()) x.dispose(); },
    mutate: (i) => ({ lengthFields: fields[i] }),
  });
  t.diagnostic(`cases ${report.cases}, loaded ${report.loaded}, refused ${report.refused}, crashes ${report.crashes.length}, peak RSS ${(report.peakRss / MiB).toFixed(0)} MiB (+${(report.peakGrowth / MiB).toFixed(1)} MiB), ${report.seconds.toFixed(1)} s`);
  assert.deepEqual(report.crashes, []);
  assert.ok(report.refused > report.cases / 4, `only ${report.refused} of ${report.cases} mutations were refused`);
  assert.ok(report.peakGrowth < FUZZ_RSS_BOUND, `peak RSS grew ${(report.peakGrowth / MiB).toFixed(1)} MiB, over ${FUZZ_RSS_BOUND / MiB} MiB`);
  assert.equal(liveTensors(), live);
});

test('fuzz: mutated pickles inside a valid archive load or fail with a PansegError, within a bounded peak RSS', (t) => {
  // The zip stays valid, so every case reaches the unpickler and the tensor records.
  const other = statePickle([
    ['a', { key: '0', storage: 'FloatStorage', numel: 6, offset: 1, size: [5], stride: [1] }],
    ['b', { key: '1', storage: 'LongStorage', numel: 2, offset: 0, size: [], stride: [] }],
  ]);
  const live = liveTensors();
  const report = runFuzz({
    seeds: [views, other], path: join(tmp, 'case-pkl.pth'), cases: fuzzCases(400), seed: fuzzSeed(0x9c1e),
    load: (p) => { for (const x of loadTorchCheckpoint(p).values()) x.dispose(); },
    wrap: (pkl, i) => torchCheckpoint(pkl, storages, i === 1),
  });
  t.diagnostic(`cases ${report.cases}, loaded ${report.loaded}, refused ${report.refused}, crashes ${report.crashes.length}, peak RSS ${(report.peakRss / MiB).toFixed(0)} MiB (+${(report.peakGrowth / MiB).toFixed(1)} MiB), ${report.seconds.toFixed(1)} s`);
  assert.deepEqual(report.crashes, []);
  assert.ok(report.refused > report.cases / 4, `only ${report.refused} of ${report.cases} mutations were refused`);
  assert.ok(report.peakGrowth < FUZZ_RSS_BOUND, `peak RSS grew ${(report.peakGrowth / MiB).toFixed(1)} MiB, over ${FUZZ_RSS_BOUND / MiB} MiB`);
  assert.equal(liveTensors(), live);
});
