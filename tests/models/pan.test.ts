// The shared PAN model suite: shapes across configurations, predict(), save/load round trips,
// input validation with exact messages, state-dict loading reports, parameter count, no leaks.
// (Numerical parity with PyTorch lives in pan-parity.test.ts.) Tolerances: a save/load round trip
// must reproduce outputs exactly (max |diff| == 0: same weights, same ops, same thread count).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveTensors, manualSeed, noGrad, randn, setNumThreads, type Tensor, tensor, tidy } from '../../src/engine/index.js';
import { encoderNames, PAN, type PANOptions } from '../../src/models/index.js';

setNumThreads(1);
manualSeed(0);
const tmp = mkdtempSync(join(tmpdir(), 'panseg-pan-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const maxAbsDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().item());

describe('PAN output shapes', () => {
  // [options, input shape, expected encoder output stride]; sizes are the smallest valid ones or close.
  const cases: [string, PANOptions, number[], number][] = [
    ['resnet18 default (OS 16, depth 5), 1 class', { encoderName: 'resnet18' }, [2, 3, 128, 128], 16],
    ['resnet34, 5 classes, non-square', { encoderName: 'resnet34', classes: 5 }, [1, 3, 128, 192], 16],
    ['resnet50 (bottleneck), 5 classes', { encoderName: 'resnet50', classes: 5, decoderChannels: 16 }, [1, 3, 128, 128], 16],
    ['resnet18 OS 8', { encoderName: 'resnet18', encoderOutputStride: 8, classes: 5 }, [1, 3, 64, 96], 8],
    ['resnet18 OS 32', { encoderName: 'resnet18', encoderOutputStride: 32, classes: 2 }, [1, 3, 256, 256], 32],
    ['resnet18 depth 4, non-square', { encoderName: 'resnet18', encoderDepth: 4, classes: 5 }, [1, 3, 192, 128], 16],
    ['resnet34 depth 3, 1 input channel', { encoderName: 'resnet34', encoderDepth: 3, inChannels: 1 }, [2, 1, 64, 64], 8],
    ['resnet18 upsampling 2 (half-resolution masks)', { encoderName: 'resnet18', encoderDepth: 3, classes: 3, upsampling: 2 }, [1, 3, 64, 64], 8],
  ];
  for (const [name, opts, shape, os] of cases) {
    it(name, () => {
      const m = new PAN(opts).eval();
      assert.equal(m.outputStride, os);
      assert.equal(m.minInputSize, os * 8);
      const y = tidy(() => noGrad(() => m.forward(randn(shape))));
      const up = opts.upsampling ?? 4;
      assert.deepEqual(y.shape, [shape[0], opts.classes ?? 1, (shape[2] * up) / 4, (shape[3] * up) / 4]);
      y.dispose();
      m.dispose();
    });
  }

  it('aux head: forwardWithAux returns labels [N, auxClasses]; without it labels is null', () => {
    const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, classes: 4, auxParams: { classes: 7, pooling: 'max', dropout: 0.3, activation: 'sigmoid' } }).eval();
    const x = randn([2, 3, 64, 64]);
    noGrad(() => {
      const out = m.forwardWithAux(x);
      assert.deepEqual(out.masks.shape, [2, 4, 64, 64]);
      assert.deepEqual(out.labels!.shape, [2, 7]);
      assert.ok(tidy(() => out.labels!.gt(0).logicalAnd(out.labels!.lt(1)).all().item()) === 1, 'sigmoid activation on labels');
      out.masks.dispose();
      out.labels!.dispose();
    });
    const plain = new PAN({ encoderName: 'resnet18', encoderDepth: 3 }).eval();
    const o2 = noGrad(() => plain.forwardWithAux(x));
    assert.equal(o2.labels, null);
    o2.masks.dispose();
    for (const t of [x]) t.dispose();
    m.dispose();
    plain.dispose();
  });

  it('activations apply to the masks (sigmoid in (0, 1), softmax2d sums to 1 over classes)', () => {
    const x = randn([1, 3, 64, 64]);
    for (const [activation, check] of [
      ['sigmoid', (y: Tensor) => y.gt(0).logicalAnd(y.lt(1)).all().item() === 1],
      ['softmax2d', (y: Tensor) => y.sum(1).sub(1).abs().max().item() < 1e-5],
      ['logsoftmax', (y: Tensor) => y.exp().sum(1).sub(1).abs().max().item() < 1e-5],
    ] as const) {
      const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, classes: 3, activation }).eval();
      assert.ok(tidy(() => check(m.predict(x))), activation);
      m.dispose();
    }
    x.dispose();
  });
});

describe('PAN behaviour', () => {
  it('predict() runs in eval mode without grad and restores the training mode', () => {
    const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, classes: 2 });
    assert.equal(m.training, true);
    const x = randn([1, 3, 64, 64]); // batch 1 is fine in eval mode
    const y = m.predict(x);
    assert.equal(y.requiresGrad, false);
    assert.equal(m.training, true, 'training mode restored');
    assert.ok([...m.namedModules()].every(([, c]) => c.training), 'every submodule back in training mode');
    m.eval();
    const z = noGrad(() => m.forward(x));
    assert.equal(maxAbsDiff(y, z), 0, 'predict = eval-mode forward');
    assert.equal(m.training, false, 'eval mode kept');
    m.predict(x).dispose();
    assert.equal(m.training, false);
    for (const t of [x, y, z]) t.dispose();
    m.dispose();
  });

  it('PAN-resnet34 with 1 class has 21,475,816 parameters (as smp)', () => {
    const m = new PAN({ encoderName: 'resnet34', classes: 1 });
    assert.equal(m.numParameters(), 21_475_816);
    assert.equal(m.numParameters(true), 21_475_816);
    m.dispose();
  });

  /** Runs `step` once to warm up, then 3 times, and returns the growth of the live-tensor count. */
  const growth = (step: () => void): number => {
    step();
    const live = liveTensors();
    for (let i = 0; i < 3; i++) step();
    return liveTensors() - live;
  };

  it('keeps the live-tensor count flat over repeated forward passes (train with backward, and eval)', () => {
    const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, classes: 3, auxParams: { classes: 3 } });
    const x = randn([2, 3, 64, 64]);
    assert.equal(growth(() => {
      tidy(() => {
        const out = m.forwardWithAux(x);
        out.masks.mean().add(out.labels!.mean()).backward();
      });
      for (const p of m.parameters()) p.grad = null;
      tidy(() => { noGrad(() => m.eval().forward(x)); });
      m.train();
    }), 0, 'tensors leaked per forward pass');
    const plain = new PAN({ encoderName: 'resnet18', encoderDepth: 3, classes: 3 });
    assert.equal(growth(() => plain.predict(x).dispose()), 0, 'predict() without an aux head leaks nothing');
    plain.dispose();
    x.dispose();
    m.dispose();
  });

  it('predict()/forward() outside tidy with an aux head free the unused labels', () => {
    const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, classes: 3, auxParams: { classes: 3 } });
    const x = randn([1, 3, 64, 64]);
    try {
      assert.equal(growth(() => m.predict(x).dispose()), 0, 'tensors leaked per predict()');
    } finally {
      x.dispose();
      m.dispose();
    }
  });
});

describe('savePretrained / fromPretrained', () => {
  it('round-trips to identical outputs and writes an smp directory (config.json + model.safetensors)', () => {
    const opts: PANOptions = {
      encoderName: 'resnet18', encoderDepth: 4, encoderOutputStride: 16, decoderChannels: 24, decoderInterpolation: 'nearest',
      classes: 3, activation: 'softmax2d', auxParams: { classes: 3, pooling: 'avg', dropout: 0.1 },
    };
    const m = new PAN(opts).eval();
    const dir = join(tmp, 'saved');
    m.savePretrained(dir, { classNames: ['a', 'b', 'c'] });
    assert.ok(existsSync(join(dir, 'model.safetensors')));
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(cfg, {
      encoder_name: 'resnet18', encoder_depth: 4, encoder_weights: null, encoder_output_stride: 16, decoder_channels: 24,
      decoder_interpolation: 'nearest', in_channels: 3, classes: 3, activation: 'softmax2d', upsampling: 4,
      aux_params: { classes: 3, pooling: 'avg', dropout: 0.1, activation: null }, _model_class: 'PAN',
    });
    const { model: back, meta } = PAN.loadPretrained(dir);
    assert.deepEqual(meta.classNames, ['a', 'b', 'c']);
    assert.deepEqual(back.config, { ...m.config, auxParams: { ...m.config.auxParams!, activation: null } });
    back.eval();
    const x = randn([2, 3, 128, 128]);
    noGrad(() => {
      const a = m.forwardWithAux(x);
      const b = back.forwardWithAux(x);
      assert.equal(maxAbsDiff(a.masks, b.masks), 0);
      assert.equal(maxAbsDiff(a.labels!, b.labels!), 0);
      for (const t of [a.masks, a.labels!, b.masks, b.labels!]) t.dispose();
    });
    // Buffers too (BN running stats, num_batches_tracked).
    const sa = m.stateDict();
    const sb = back.stateDict();
    assert.deepEqual([...sb.keys()], [...sa.keys()]);
    for (const [k, t] of sa) assert.equal(maxAbsDiff(t.to('float64'), sb.get(k)!.to('float64')), 0, k);
    x.dispose();
    m.dispose();
    back.dispose();
  });

  it('reports a missing directory, missing weights and a corrupt or foreign config', () => {
    const live0 = liveTensors();
    const missing = join(tmp, 'does-not-exist');
    assert.throws(() => PAN.fromPretrained(missing), { message: `fromPretrained: model directory '${missing}' of type string does not exist` });
    const dir = join(tmp, 'broken');
    const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3 });
    m.savePretrained(dir);
    m.dispose();
    const cfgPath = join(dir, 'config.json');
    const good = readFileSync(cfgPath, 'utf8');
    writeFileSync(cfgPath, '{"encoder_name": "resnet18",');
    assert.throws(() => PAN.fromPretrained(dir), new RegExp(`^PansegError: fromPretrained: ${cfgPath} is not valid JSON: `));
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(good), _model_class: 'Unet' }));
    assert.throws(() => PAN.fromPretrained(dir), { message: `fromPretrained: ${cfgPath}: _model_class is 'Unet', not PAN; load it with loadModel(dir)` });
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(good), decoder_dropout: 0.2 }));
    assert.throws(() => PAN.fromPretrained(dir), { message: `fromPretrained: ${cfgPath}: unknown PAN options decoder_dropout; valid: encoder_name, encoder_depth, encoder_weights, encoder_output_stride, decoder_channels, decoder_interpolation, in_channels, classes, activation, upsampling, aux_params` });
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(good), classes: 4 }));
    assert.throws(() => PAN.fromPretrained(dir), /^PansegError: fromPretrained: .*model\.safetensors: loadStateDict: mis-shaped keys: segmentation_head\.0\.weight: expected \[4, 32, 3, 3\], got \[1, 32, 3, 3\], segmentation_head\.0\.bias: expected \[4\], got \[1\]$/);
    writeFileSync(cfgPath, good);
    rmSync(join(dir, 'model.safetensors'));
    assert.throws(() => PAN.fromPretrained(dir), { message: `fromPretrained: ${join(dir, 'model.safetensors')} not found; expected a directory written by save_pretrained / savePretrained` });
    assert.equal(liveTensors(), live0, 'failed loads leak no tensors');
  });
});

describe('PAN input and option validation (exact messages)', () => {
  const m = new PAN({ encoderName: 'resnet18' });
  after(() => m.dispose());
  const check = (shape: number[], message: string, opts: { dtype?: 'int64' } = {}): void => {
    const x = opts.dtype ? tensor(new BigInt64Array(shape.reduce((a, b) => a * b, 1)), shape) : randn(shape);
    assert.throws(() => m.forward(x), { message });
    x.dispose();
  };

  it('rejects wrong rank, channels and dtype', () => {
    m.eval();
    check([3, 128, 128], 'PAN: expected input of 4 dims [N, C, H, W], got [3, 128, 128]');
    check([1, 4, 128, 128], 'PAN: expected 3 input channels, got input [1, 4, 128, 128]');
    check([1, 3, 128, 128], 'PAN: expected a floating-point input, got int64', { dtype: 'int64' });
  });

  it('names the padded size for a non-divisible input and the minimum for a too-small one', () => {
    m.eval();
    check([1, 3, 130, 128], 'PAN: input height and width must be divisible by the output stride 16, got 130x128; pad it to 144x128 (see padToMultiple)');
    check([1, 3, 128, 200], 'PAN: input height and width must be divisible by the output stride 16, got 128x200; pad it to 128x208 (see padToMultiple)');
    check([1, 3, 64, 64], 'PAN: input 64x64 is too small: H and W must be >= 128 at output stride 16 (the FPA bottleneck needs at least 8 px); pad it to 128x128');
    check([1, 3, 128, 112], 'PAN: input 128x112 is too small: H and W must be >= 128 at output stride 16 (the FPA bottleneck needs at least 8 px); pad it to 128x128');
  });

  it('suggests a padded size that is also large enough', () => {
    m.eval();
    check([1, 3, 100, 100], 'PAN: input height and width must be divisible by the output stride 16, got 100x100; pad it to 128x128 (see padToMultiple)');
  });

  it('rejects batch 1 in training mode', () => {
    m.train();
    check([1, 3, 128, 128], 'PAN: batch size 1 in training mode: BatchNorm needs more than one value per channel; use a batch of 2 or more, or call model.eval()');
  });

  it('lists the valid encoders for an unknown one, and validates options', () => {
    assert.throws(() => new PAN({ encoderName: 'resnet9' }), { message: `encoder: unknown encoder 'resnet9'; valid encoders: ${encoderNames().join(', ')}` });
    assert.deepEqual(encoderNames().slice(0, 3), ['resnet18', 'resnet34', 'resnet50']);
    assert.throws(() => new PAN({ encoderOutputStride: 4 as never }), { message: "PAN: expected one of '8', '16', '32' for encoderOutputStride but received '4' of type string" });
    assert.throws(() => new PAN({ encoderDepth: 6 as never }), /PAN: expected integer in \[3, 5\] for encoderDepth/);
    assert.throws(() => new PAN({ classes: 0 }), { message: 'PAN: expected positive integer for classes but received 0 of type number' });
    assert.throws(() => new PAN({ activation: 'relu' as never }), /PAN: expected one of 'identity', 'sigmoid', .* for activation but received 'relu' of type string/);
  });
});

describe('loadStateDict', () => {
  it('strict mode reports missing, unexpected and mis-shaped keys together; non-strict returns them and loads the rest', () => {
    const live0 = liveTensors();
    const a = new PAN({ encoderName: 'resnet18', encoderDepth: 3, classes: 2 });
    const b = new PAN({ encoderName: 'resnet18', encoderDepth: 3, classes: 2 });
    const sd = new Map(a.stateDict());
    sd.delete('encoder.conv1.weight');
    const extra = tensor([1]);
    const wrong = randn([3, 32, 3, 3]);
    sd.set('decoder.extra.weight', extra);
    sd.set('segmentation_head.0.weight', wrong);
    assert.throws(() => b.loadStateDict(sd), {
      message: 'loadStateDict: missing keys: encoder.conv1.weight; unexpected keys: decoder.extra.weight; mis-shaped keys: segmentation_head.0.weight: expected [2, 32, 3, 3], got [3, 32, 3, 3]',
    });
    const res = b.loadStateDict(sd, { strict: false });
    assert.deepEqual(res, {
      missing: ['encoder.conv1.weight'], unexpected: ['decoder.extra.weight'],
      mismatched: ['segmentation_head.0.weight: expected [2, 32, 3, 3], got [3, 32, 3, 3]'],
    });
    const pa = a.stateDict();
    const pb = b.stateDict();
    const k = 'decoder.fpa.branch1.1.conv.weight';
    assert.equal(maxAbsDiff(pa.get(k)!, pb.get(k)!), 0, 'matching keys loaded');
    assert.ok(maxAbsDiff(pa.get('encoder.conv1.weight')!, pb.get('encoder.conv1.weight')!) > 0, 'missing key left as it was');
    assert.ok(maxAbsDiff(pa.get('segmentation_head.0.bias')!, pb.get('segmentation_head.0.bias')!) === 0);
    extra.dispose();
    wrong.dispose();
    a.dispose();
    b.dispose();
    assert.equal(liveTensors(), live0, 'tensors leaked');
  });
});
