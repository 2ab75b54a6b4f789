// The shared model tester (as smp's tests/models/base.py): every architecture runs the same checks.
// An architecture's own test file names its registry id, small options and its PyTorch reference script.
// Tolerances (float32, CPU):
//   parity vs the PyTorch reference: outputs max |diff| <= 1e-4 (values O(1)), eval and train mode;
//     gradients <= 1e-3 x max |grad| (long reductions reorder sums); BatchNorm running stats <= 1e-5;
//   save/load round trip: identical outputs;
//   inference copies (folded BatchNorm, blocked and strided layouts): <= 1e-4 x max(1, max |logits|);
//   ONNX in onnxruntime vs the model: <= 1e-4 x max(1, max |logits|).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { F, getNumThreads, liveTensors, manualSeed, setNumThreads, setWinogradTraining, winogradTraining, setFusedKernels, fusedKernels, mkldnnAvailable, noGrad, randint, randn, type Tensor, tensor, tidy } from '../../src/engine/index.js';
import { exportOnnx } from '../../src/export/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { architecture, createModel, loadModel, type SegmentationModel } from '../../src/models/index.js';
import { Conv2d, Dropout, Dropout2d } from '../../src/nn/index.js';
import { SGD } from '../../src/train/optimizers.js';
import { calibrate, runOnnx, tempDir } from '../export/helpers.js';
import { reference } from '../helpers/reference.js';

export interface ArchitectureTest {
  /** Registry id ('pan', 'unet', ...). */
  arch: string;
  /** Small options for the generic checks (an aux head and inChannels are added by the tester). */
  options: Record<string, unknown>;
  /** A valid square input side for those options; `size + stride` must be valid too. */
  size: number;
  /** The reference generator in scripts/reference (pan_cases.py's output format), the files it reads and its arguments (case names). */
  reference?: { script: string; deps: string[]; args?: string[] };
}

const maxAbsDiff = (a: Tensor, b: Tensor) => tidy(() => a.to('float32').sub(b.to('float32')).abs().max().item());
const maxAbs = (a: Tensor) => tidy(() => a.abs().max().item());

function build(t: ArchitectureTest, extra: Record<string, unknown> = {}, seed = 0): SegmentationModel {
  manualSeed(seed);
  return createModel(t.arch, { ...t.options, ...extra });
}

/** Registers the shared checks for one architecture. */
export function testArchitecture(t: ArchitectureTest): void {
  const spec = architecture(t.arch);
  describe(`${spec.name}: shared model tests`, () => {
    it('gives [N, classes, H, W] logits and aux labels, in train and eval mode', () => {
      const live = liveTensors();
      const m = build(t, { classes: 3, auxParams: { classes: 4, dropout: 0 } });
      assert.equal(m.architecture, spec.name);
      tidy(() => {
        const x = randn([2, 3, t.size, t.size + m.outputStride]);
        const out = m.forwardWithAux(x);
        assert.deepEqual(out.masks.shape, [2, 3, t.size, t.size + m.outputStride]);
        assert.deepEqual(out.labels!.shape, [2, 4]);
        m.eval();
        assert.deepEqual(m.predict(x.narrow(0, 0, 1)).shape, [1, 3, t.size, t.size + m.outputStride]);
      });
      m.dispose();
      assert.equal(liveTensors(), live, 'tensors leaked');
    });

    it('names the valid size for a non-divisible or too small input', () => {
      const m = build(t);
      const { stride, min } = m.inputSizeRule;
      tidy(() => {
        const bad = t.size + 2;
        const want = Math.ceil(bad / stride) * stride;
        if (stride > 1) assert.throws(() => m.forward(randn([2, 3, bad, t.size])), { message: new RegExp(`^${spec.name}: input height and width must be divisible by the output stride ${stride}, got ${bad}x${t.size}; pad it to ${want}x${t.size}`) });
        if (min > stride) assert.throws(() => m.forward(randn([2, 3, min - stride, min])), { message: new RegExp(`^${spec.name}: input ${min - stride}x${min} is too small: H and W must be >= ${min}`) });
        assert.throws(() => m.forward(randn([1, 3, t.size, t.size])), { message: new RegExp(`^${spec.name}: batch size 1 in training mode`) });
        assert.throws(() => m.forward(randn([2, 4, t.size, t.size])), { message: `${spec.name}: expected 3 input channels, got input [2, 4, ${t.size}, ${t.size}]` });
      });
      assert.throws(() => createModel(t.arch, { ...t.options, decoderBogus: 1 }), { message: new RegExp(`^${spec.name}: unknown option decoderBogus; valid options: encoderName, `) });
      m.dispose();
    });

    it('takes inChannels != 3 (the first conv patched)', () => {
      const m = build(t, { inChannels: 1, classes: 2 }).eval();
      tidy(() => assert.deepEqual(m.predict(randn([1, 1, t.size, t.size])).shape, [1, 2, t.size, t.size]));
      const [, first] = [...m.encoder.namedModules()].find(([, l]) => l instanceof Conv2d) as [string, Conv2d];
      assert.deepEqual([first.inChannels, first.weight.shape[1]], [1, 1]);
      m.dispose();
    });

    it('saves an smp directory and loads it back by its _model_class, with identical outputs', () => {
      using tmp = tempDir();
      const m = calibrate(build(t, { classes: 2, auxParams: { classes: 3 } }), [t.size, t.size]);
      m.savePretrained(tmp.dir, { classNames: ['a', 'b'] });
      const cfg = JSON.parse(readFileSync(join(tmp.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg._model_class, spec.name);
      assert.equal(cfg.encoder_weights, null);
      const back = loadModel(tmp.dir);
      assert.equal(back.architecture, spec.name);
      assert.deepEqual(back.config, { ...m.config, auxParams: { classes: 3, pooling: 'avg', dropout: 0.2, activation: null } });
      tidy(() => {
        const x = randn([1, 3, t.size, t.size]);
        assert.equal(maxAbsDiff(back.eval().predict(x), m.predict(x)), 0);
      });
      back.dispose();
      m.dispose();
    });

    it('trains: one SGD step lowers the loss on a fixed batch, gradients reach every used parameter', () => {
      const m = build(t, { classes: 3 });
      const opt = new SGD(m.parameters(), { lr: 0.005 });
      const x = randn([2, 3, t.size, t.size]);
      const y = randint(0, 3, [2, t.size, t.size]);
      const losses: number[] = [];
      for (let i = 0; i < 2; i++) {
        opt.zeroGrad();
        tidy(() => {
          const loss = F.crossEntropy(m.forward(x), y);
          loss.backward();
          losses.push(loss.item());
        });
        if (i === 0) {
          const decoderGrads = [...m.decoder.namedParameters()].filter(([, p]) => p.grad);
          assert.ok(decoderGrads.length > 0 && decoderGrads.every(([, p]) => tidy(() => p.grad!.isfinite().all().item()) === 1), 'decoder gradients missing or not finite');
        }
        opt.step();
      }
      assert.ok(losses[1] < losses[0], `loss did not fall: ${losses.map((l) => l.toFixed(4)).join(' -> ')}`);
      x.dispose();
      y.dispose();
      opt.dispose();
      m.dispose();
    });

    const layouts = [{ layout: 'strided' as const }, ...(mkldnnAvailable() ? [{ layout: 'mkldnn' as const }] : [])];
    for (const o of layouts) {
      it(`inference copy (${o.layout}, float32) matches the model`, () => {
        const m = calibrate(build(t, { classes: 3, auxParams: { classes: 2, dropout: 0 } }), [t.size, t.size]);
        const fast = m.optimizedForInference(o);
        assert.equal(fast.architecture, spec.name);
        tidy(() => {
          const x = randn([2, 3, t.size, t.size + m.outputStride]);
          const want = noGrad(() => m.forwardWithAux(x));
          const got = noGrad(() => fast.forwardWithAux(x));
          const tol = 1e-4 * Math.max(1, maxAbs(want.masks));
          assert.ok(maxAbsDiff(got.masks, want.masks) <= tol, `logits differ by ${maxAbsDiff(got.masks, want.masks)}`);
          assert.ok(maxAbsDiff(got.labels!, want.labels!) <= tol, 'labels differ');
        });
        assert.throws(() => fast.train(), { message: new RegExp(`^${spec.name}: this copy was optimized for inference`) });
        fast.dispose();
        m.dispose();
      });
    }

    it('bfloat16 inference copies (strided and blocked) agree with the model on most pixels', () => {
      const m = calibrate(build(t, { classes: 3 }), [t.size, t.size]);
      for (const o of layouts) {
        const fast = m.optimizedForInference({ ...o, dtype: 'bfloat16' });
        tidy(() => {
          const x = randn([1, 3, t.size, t.size]);
          const agree = m.predict(x).argmax(1).eq(fast.predict(x).argmax(1)).to('float32').mean().item();
          assert.ok(agree > 0.9, `bf16 ${o.layout} labels agree on ${(agree * 100).toFixed(1)}% of pixels`);
        });
        fast.dispose();
      }
      m.dispose();
    });

    for (const dynamicSize of [false, true]) {
      it(`exports to ONNX (${dynamicSize ? 'dynamic' : 'fixed'} size) and matches onnxruntime`, async () => {
        using tmp = tempDir();
        const m = calibrate(build(t, { classes: 3, auxParams: { classes: 2, dropout: 0.5 } }), [t.size, t.size]);
        const path = join(tmp.dir, 'model.onnx');
        exportOnnx(m, dynamicSize ? { path, dynamicSize } : { path, height: t.size, width: t.size + m.outputStride });
        const dims = [2, 3, t.size, t.size + m.outputStride];
        const x = randn(dims);
        const want = noGrad(() => m.forwardWithAux(x));
        const got = await runOnnx(path, x.toArray() as Float32Array, dims);
        assert.deepEqual([...got.logits.dims], want.masks.shape);
        const tol = 1e-4 * Math.max(1, maxAbs(want.masks));
        const d = tidy(() => maxAbsDiff(want.masks, tensor(got.logits.data, want.masks.shape)));
        assert.ok(d <= tol, `ONNX logits differ by ${d} (tolerance ${tol})`);
        const dl = tidy(() => maxAbsDiff(want.labels!, tensor(got.labels.data, want.labels!.shape)));
        assert.ok(dl <= tol, `ONNX labels differ by ${dl}`);
        for (const v of [x, want.masks, want.labels!]) v.dispose();
        m.dispose();
      });
    }

    if (t.reference) parityTests(t, t.reference);
  });
}

interface CaseFiles {
  cfg: Record<string, unknown> & { input_shape: number[]; aux_params?: { dropout?: number } | null };
  io: Map<string, Tensor>;
  params: { trainable: number; keys: string[]; parameters: string[] };
}

/** Every case of the reference script: same keys, logits, gradients and BatchNorm statistics as PyTorch. */
function parityTests(t: ArchitectureTest, r: { script: string; deps: string[]; args?: string[] }): void {
  const spec = architecture(t.arch);
  const ref = reference(r.script, r.args ?? [], r.deps);
  const index = JSON.parse(readFileSync(join(ref, 'index.json'), 'utf8')) as { cases: string[] };
  const load = (name: string): CaseFiles => ({
    cfg: JSON.parse(readFileSync(join(ref, name, 'config.json'), 'utf8')),
    io: loadSafetensors(join(ref, name, 'io.safetensors')),
    params: JSON.parse(readFileSync(join(ref, name, 'params.json'), 'utf8')),
  });
  for (const name of index.cases) {
    it(`parity with PyTorch: ${name}`, () => {
      // The references run at 2 threads; random deep ResNets in train mode (r50) amplify another summation order beyond 1e-4.
      // Likewise ATen's direct convolutions and op sequences (PyTorch's), not the Winograd convolutions and fused kernels
      // training uses by default (tests/engine/winograd.test.ts, cross-entropy.test.ts, batch-norm-relu.test.ts).
      const threads = getNumThreads();
      const winograd = winogradTraining();
      const fused = fusedKernels();
      setNumThreads(2);
      setWinogradTraining(false);
      setFusedKernels(false);
      try { parityCase(name); } finally { setNumThreads(threads); setWinogradTraining(winograd); setFusedKernels(fused); }
    });
  }

  function parityCase(name: string): void {
    {
      const live0 = liveTensors();
      const { cfg, io, params } = load(name);
      const { input_shape: _s, smp_supported: _u, notes: _n, seed: _d, ...smp } = cfg;
      // Loaded as users load an smp save_pretrained directory: config.json (smp's kwargs + _model_class) and the weights.
      using dir = tempDir();
      writeFileSync(join(dir.dir, 'config.json'), JSON.stringify({ ...smp, _model_class: spec.name }));
      symlinkSync(join(ref, name, 'model.safetensors'), join(dir.dir, 'model.safetensors'));
      const model = loadModel(dir.dir);
      assert.equal(model.architecture, spec.name);
      assert.deepEqual([...model.stateDict().keys()], params.keys);
      assert.equal(model.numParameters(true), params.trainable);

      const x = io.get('input')!;
      model.eval();
      const ev = noGrad(() => model.forwardWithAux(x));
      const evalDiff = maxAbsDiff(ev.masks, io.get('eval_logits')!);
      assert.ok(evalDiff <= 1e-4, `eval logits differ by ${evalDiff}`);
      if (io.has('eval_labels')) assert.ok(maxAbsDiff(ev.labels!, io.get('eval_labels')!) <= 1e-4, 'eval labels differ');
      ev.masks.dispose();
      ev.labels?.dispose();

      model.train();
      // The references run dropout layers in eval mode (random masks cannot be reproduced outside torch).
      for (const [, m] of model.namedModules()) if (m instanceof Dropout || m instanceof Dropout2d) m.eval();
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
        const g = named.get(k.slice(5))?.grad;
        assert.ok(g, `${k} has no gradient`);
        const d = maxAbsDiff(g, want);
        assert.ok(d <= 1e-3 * Math.max(maxAbs(want), 1e-6), `${k}: max diff ${d} vs max |grad| ${maxAbs(want)}`);
        g.dispose();
        checked++;
      }
      assert.ok(checked >= 4, 'too few gradients compared');
      const norms = io.get('grad_norms')!.toArray() as Float32Array;
      // A gradient that is zero analytically comes out as rounding noise of the large ones (MobileNetV2's
      // projection BatchNorm biases: the next train-mode BatchNorm removes any constant shift; 6e-6 apart
      // for norms of 9e-5 when the largest is 3e4), so differences up to 1e-8 of the largest norm pass.
      const noise = 1e-8 * norms.reduce((a, b) => Math.max(a, b), 0);
      params.parameters.forEach((pname, i) => {
        const g = named.get(pname)!.grad;
        const n = g ? tidy(() => g.norm().item()) : 0;
        g?.dispose();
        assert.ok(Math.abs(n - norms[i]) <= Math.max(1e-3 * Math.max(norms[i], 1e-3), noise), `grad norm of ${pname}: ${n} vs ${norms[i]}`);
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
      for (const v of io.values()) v.dispose();
      assert.equal(liveTensors(), live0, 'tensors leaked');
    }
  }
}
