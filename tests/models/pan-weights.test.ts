// PAN vs the PyTorch reference (scripts/reference/pan_model.py, smp's PAN re-implemented), with the
// same weights exchanged as safetensors. Tolerances (float32, CPU):
//   outputs: max |diff| <= 1e-4 (absolute, values are O(1));
//   grads: max |diff| <= 1e-3 x max |grad| (long reductions over 2x128x128 pixels reorder sums);
//   BatchNorm running stats after one train forward: max |diff| <= 1e-5, num_batches_tracked exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad, tidy, type Tensor, liveTensors } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { PAN, PAN_SPEC, optionsFromSmp } from '../../src/models/index.js';
import type { Layer } from '../../src/nn/index.js';
import { reference } from '../helpers/reference.js';

const ref = reference('pan_cases.py', [], ['pan_model.py', 'st.py']);
const index = JSON.parse(readFileSync(join(ref, 'index.json'), 'utf8')) as { cases: string[] };

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.to('float32').sub(b.to('float32')).abs().max().item());
}
function maxAbs(a: Tensor): number {
  return tidy(() => a.abs().max().item());
}

interface CaseFiles {
  cfg: Record<string, unknown> & { aux_params?: { dropout?: number } | null } & { input_shape: number[]; smp_supported?: boolean; notes?: string; seed?: number };
  io: Map<string, Tensor>;
  params: { trainable: number; keys: string[]; parameters: string[] };
}

function loadCase(name: string): CaseFiles {
  const dir = join(ref, name);
  return {
    cfg: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    io: loadSafetensors(join(dir, 'io.safetensors')),
    params: JSON.parse(readFileSync(join(dir, 'params.json'), 'utf8')),
  };
}

function build(name: string, cfg: CaseFiles['cfg']): PAN {
  const { input_shape: _s, smp_supported: _u, notes: _n, seed: _d, encoder_weights: _w, ...smp } = cfg;
  const model = new PAN(optionsFromSmp(PAN_SPEC, smp));
  const sd = loadSafetensors(join(ref, name, 'model.safetensors'));
  model.loadStateDict(sd);
  for (const t of sd.values()) t.dispose();
  return model;
}

for (const name of index.cases) {
  test(`PAN parity: ${name}`, () => {
    const live0 = liveTensors();
    const { cfg, io, params } = loadCase(name);
    const model = build(name, cfg);

    // Same keys in the same order, and the same trainable parameter count.
    assert.deepEqual([...model.stateDict().keys()], params.keys);
    assert.equal(model.numParameters(true), params.trainable);

    const x = io.get('input')!;
    // Eval mode.
    model.eval();
    const ev = noGrad(() => model.forwardWithAux(x));
    const evalDiff = maxAbsDiff(ev.masks, io.get('eval_logits')!);
    assert.ok(evalDiff <= 1e-4, `eval logits differ by ${evalDiff}`);
    if (io.has('eval_labels')) assert.ok(maxAbsDiff(ev.labels!, io.get('eval_labels')!) <= 1e-4, 'eval labels differ');
    ev.masks.dispose();
    ev.labels?.dispose();

    // Train mode: outputs, gradients of the fixed loss, updated BN statistics.
    model.train();
    if (cfg.aux_params?.dropout) (model.classificationHead!.at(2) as Layer).eval(); // the reference disables dropout (see pan_cases.py)
    tidy(() => {
      const tr = model.forwardWithAux(x);
      const trainDiff = maxAbsDiff(tr.masks, io.get('train_logits')!);
      assert.ok(trainDiff <= 1e-4, `train logits differ by ${trainDiff}`);
      let loss = tr.masks.mul(io.get('upstream')!).sum();
      if (tr.labels) {
        assert.ok(maxAbsDiff(tr.labels, io.get('train_labels')!) <= 1e-4, 'train labels differ');
        loss = loss.add(tr.labels.mul(io.get('upstream_labels')!).sum());
      }
      const refLoss = io.get('loss')!.item();
      assert.ok(Math.abs(loss.item() - refLoss) <= 1e-4 * Math.max(1, Math.abs(refLoss)), `loss ${loss.item()} vs ${refLoss}`);
      loss.backward();
    });
    const named = new Map(model.namedParameters());
    let checked = 0;
    for (const [k, want] of io) {
      if (!k.startsWith('grad.')) continue;
      const p = named.get(k.slice(5));
      assert.ok(p, `no parameter ${k.slice(5)}`);
      const g = p.grad;
      assert.ok(g, `${k} has no gradient`);
      const d = maxAbsDiff(g, want);
      assert.ok(d <= 1e-3 * Math.max(maxAbs(want), 1e-6), `${k}: max diff ${d} vs max |grad| ${maxAbs(want)}`);
      g.dispose();
      checked++;
    }
    assert.ok(checked >= 4, 'too few gradients compared');
    // Every parameter's gradient norm (0 = no grad), in named_parameters order.
    const norms = io.get('grad_norms')!.toArray() as Float32Array;
    params.parameters.forEach((pname, i) => {
      const g = named.get(pname)!.grad;
      const n = g ? tidy(() => g.norm().item()) : 0;
      g?.dispose();
      assert.ok(Math.abs(n - norms[i]) <= 1e-3 * Math.max(norms[i], 1e-3), `grad norm of ${pname}: ${n} vs ${norms[i]}`);
    });
    const buffers = new Map(model.namedBuffers());
    for (const [k, want] of io) {
      if (!k.startsWith('after_train.')) continue;
      const b = buffers.get(k.slice('after_train.'.length));
      assert.ok(b, `no buffer ${k}`);
      if (k.endsWith('num_batches_tracked')) assert.equal(b.item(), want.item(), k);
      else assert.ok(maxAbsDiff(b, want) <= 1e-5, `${k} differs by ${maxAbsDiff(b, want)}`);
    }
    model.dispose();
    for (const t of io.values()) t.dispose();
    assert.equal(liveTensors(), live0, 'tensors leaked');
  });
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
