// Reference cases from scripts/reference/ops.py and the comparisons the parity tests share.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Tensor, isTensor, tidy } from '../../src/engine/index.js';
import { loadNpy } from '../../src/io/npy.js';
import { reference } from '../helpers/reference.js';

/** |actual - expected| <= atol + rtol * |expected|, elementwise. */
export interface Tol { atol: number; rtol: number }

/** Integer, bool and pure data-movement results must match bit for bit. */
export const EXACT: Tol = { atol: 0, rtol: 0 };
/** float32 elementwise math: 1e-5 relative; the tiny atol only covers results that round to ~0. */
export const ELEMENTWISE: Tol = { atol: 1e-7, rtol: 1e-5 };
/**
 * Anything that accumulates (reductions, matmul, conv, pooling, norms, losses and most gradients):
 * libtorch may split sums differently across threads, so absolute error scales with the inputs (~1).
 */
export const ACCUM: Tol = { atol: 1e-5, rtol: 1e-5 };

// Case parameters are plain JSON written by ops.py; each test reads the ones its op takes.
type Params = Record<string, any>;

interface CaseRecord {
  params: Params;
  inputs: Record<string, string>;
  outputs: Record<string, string>;
  grads: Record<string, string>;
  gy: string | null;
  dtypes: Record<string, string>;
  meta: Params;
}

const dir = reference('ops.py');
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { torch: string; cases: Record<string, CaseRecord> };

export class RefCase {
  constructor(readonly name: string, private readonly rec: CaseRecord) {}
  get params(): Params { return this.rec.params; }
  get meta(): Params { return this.rec.meta; }
  get inputNames(): string[] { return Object.keys(this.rec.inputs); }
  get outputNames(): string[] { return Object.keys(this.rec.outputs); }
  get gradNames(): string[] { return Object.keys(this.rec.grads); }
  /** The torch dtype of an input or output (bfloat16 arrays are stored as float32). */
  dtype(name: string): string { return this.rec.dtypes[name]; }
  input(name: string): Tensor { return this.load(this.rec.inputs[name], `input ${name}`); }
  output(name: string): Tensor { return this.load(this.rec.outputs[name], `output ${name}`); }
  grad(name: string): Tensor { return this.load(this.rec.grads[name], `grad ${name}`); }
  upstream(): Tensor | null { return this.rec.gy ? this.load(this.rec.gy, 'gy') : null; }
  private load(file: string | undefined, what: string): Tensor {
    if (!file) assert.fail(`${this.name}: the reference has no ${what}`);
    return loadNpy(join(dir, file));
  }
}

export function refCase(name: string): RefCase {
  const rec = manifest.cases[name];
  if (!rec) assert.fail(`no reference case ${name}; regenerate with scripts/reference/ops.py`);
  return new RefCase(name, rec);
}

/** All cases whose name starts with `prefix` (e.g. 'conv2d/'). */
export function refCases(prefix: string): RefCase[] {
  const out = Object.keys(manifest.cases).filter((n) => n.startsWith(prefix)).map((n) => new RefCase(n, manifest.cases[n]));
  assert.ok(out.length > 0, `no reference cases start with ${prefix}`);
  return out;
}

function numbers(t: Tensor): number[] {
  return t.toNumbers();
}

/** Asserts equal shapes and values within `tol`; NaN matches NaN, infinities must match exactly. */
export function assertClose(actual: Tensor, expected: Tensor, tol: Tol, label: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  const a = numbers(actual);
  const e = numbers(expected);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = e[i];
    if (Number.isNaN(y) && Number.isNaN(x)) continue;
    if (!Number.isFinite(y) || !Number.isFinite(x)) {
      if (x !== y) { worst = i; worstExcess = Infinity; break; }
      continue;
    }
    const excess = Math.abs(x - y) - (tol.atol + tol.rtol * Math.abs(y));
    if (excess > worstExcess) { worstExcess = excess; worst = i; }
  }
  if (worst >= 0) {
    assert.fail(`${label}: element ${worst} is ${a[worst]}, expected ${e[worst]} (|diff| ${Math.abs(a[worst] - e[worst]).toExponential(3)} > atol ${tol.atol} + rtol ${tol.rtol} * |expected|)`);
  }
}

type Outputs = Tensor | Tensor[] | Record<string, Tensor>;

/**
 * Runs `run` on the case's inputs (those with reference gradients get requiresGrad) and checks
 * every output against PyTorch's, then backpropagates the case's upstream gradient from output
 * `y` and checks the input gradients. Every tensor made here is freed.
 */
export function checkCase(c: RefCase, run: (ins: Record<string, Tensor>, params: Params) => Outputs, tol: Tol, gradTol: Tol = tol): void {
  tidy(() => {
    const ins: Record<string, Tensor> = {};
    for (const k of c.inputNames) {
      ins[k] = c.input(k);
      if (c.gradNames.includes(k)) ins[k].requiresGrad_(true);
    }
    const raw = run(ins, c.params);
    const outs: Record<string, Tensor> = Array.isArray(raw) ? Object.fromEntries(raw.map((t, i) => [`y${i}`, t]))
      : isTensor(raw) ? { y: raw } : raw;
    assert.deepEqual(Object.keys(outs).sort(), [...c.outputNames].sort(), `${c.name}: output names`);
    for (const k of c.outputNames) {
      assert.equal(outs[k].dtype, c.dtype(k), `${c.name}: dtype of ${k}`);
      const exact = !outs[k].isFloatingPoint;
      assertClose(outs[k], c.output(k), exact ? EXACT : tol, `${c.name}: ${k}`);
    }
    const gy = c.upstream();
    if (gy) {
      outs.y.backward(gy);
      for (const k of c.gradNames) {
        const g = ins[k].grad;
        assert.ok(g, `${c.name}: no gradient for ${k}`);
        assertClose(g, c.grad(k), gradTol, `${c.name}: grad ${k}`);
      }
    }
  });
}
