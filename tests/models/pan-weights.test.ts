// encoderWeights: torchvision ResNet checkpoints load into PAN's encoder exactly as smp loads them
// (reference: scripts/reference/pan_cases.py's tv_weights cases). Parity of the whole model runs in
// the shared tester (pan-family.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tidy, type Tensor } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { PAN, PAN_SPEC, optionsFromSmp } from '../../src/models/index.js';
import { reference } from '../helpers/reference.js';

const ref = reference('pan_cases.py', [], ['pan_model.py', 'st.py', 'cases_common.py']);
const index = JSON.parse(readFileSync(join(ref, 'index.json'), 'utf8')) as { cases: string[] };

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.to('float32').sub(b.to('float32')).abs().max().item());
}

function loadCase(name: string): { cfg: Record<string, unknown>; io: Map<string, Tensor> } {
  return { cfg: JSON.parse(readFileSync(join(ref, name, 'config.json'), 'utf8')), io: loadSafetensors(join(ref, name, 'io.safetensors')) };
}

test('encoderWeights loads a torchvision checkpoint (.pth, fc ignored), patching conv1 for 4 channels', () => {
  for (const name of index.cases.filter((n) => n.includes('tv_weights'))) {
    const { cfg, io } = loadCase(name);
    const { input_shape: _s, smp_supported: _u, notes: _n, seed: _d, encoder_weights: w, ...smp } = cfg;
    assert.ok(w, 'reference case should name its weights');
    const model = new PAN({ ...optionsFromSmp(PAN_SPEC, smp), encoderWeights: join(ref, w as string) });
    const sd = loadSafetensors(join(ref, name, 'model.safetensors'));
    for (const [k, t] of model.stateDict()) {
      if (!k.startsWith('encoder.')) continue;
      const d = maxAbsDiff(t, sd.get(k)!);
      assert.ok(d <= 1e-6, `${name}: ${k} differs by ${d}`);
    }
    for (const t of sd.values()) t.dispose();
    for (const t of io.values()) t.dispose();
    model.dispose();
  }
});
