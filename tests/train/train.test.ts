// End-to-end training on tiny synthetic sets: learning happens, resume is exact, checkpoints are atomic.
// libtorch runs on 1 thread here: on a shared 2-core machine 2 threads are up to 10x slower under load,
// and a fixed thread count keeps float reductions, hence runs, bit-reproducible.
// Tolerances: resumed vs uninterrupted final weights: exact (max |diff| == 0; float32 state round-trips
// through safetensors bit for bit and the data order/augmentation and RNG are restored).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoader, generateSynthetic, openDataset } from '../../src/data/index.js';
import { cudaAvailable, fusedKernels, manualSeed, setNumThreads, winogradTraining } from '../../src/engine/index.js';
import { evaluate } from '../../src/eval/evaluate.js';
import { PAN } from '../../src/models/index.js';
import { restoreCheckpoint, saveCheckpoint, type TrainerState } from '../../src/train/checkpoint.js';
import { AdamW, type Optimizer } from '../../src/train/optimizers.js';
import { train, type TrainOptions } from '../../src/train/train.js';
import { writeTrainingReport } from '../../src/train/report.js';
import { writeFileDurable, writeFileDurableAsync } from '../../src/io/file.js';
import { makeTinyRun, maxStateDiff, type TinyRun, tinyRunOptions } from './helpers.js';

setNumThreads(1);
const tmp = mkdtempSync(join(tmpdir(), 'panseg-train-'));
after(() => rmSync(tmp, { recursive: true, force: true }));


describe('train: a short run on synthetic shapes (resnet18, 128 px, 32 steps)', () => {
  let data: string;
  before(async () => { data = (await generateSynthetic(join(tmp, 'shapes128'), { train: 32, val: 8, size: 128, seed: 0 })).dir; });

  it('lowers the loss and beats the untrained model on val mIoU; writes best/last and metrics.jsonl', async () => {
    const modelOptions = { encoderName: 'resnet18', encoderOutputStride: 16 as const, decoderChannels: 16, classes: 6 };
    manualSeed(0); // train() seeds the same way before building its model
    const untrained = new PAN(modelOptions);
    const valDs = openDataset('folder', data, { split: 'val' });
    const pre = untrained.preprocessing;
    const loader = new DataLoader(valDs, { mode: 'eval', stride: untrained.outputStride, mean: pre.mean, std: pre.std, workers: 0 });
    const before = await evaluate(untrained, loader, { precision: 'fp32' });
    await loader.close();
    untrained.dispose();

    const records: Record<string, number | string>[] = [];
    const out = join(tmp, 'run-a');
    const res = await train({
      dataset: 'folder', dataRoot: data, out, encoder: 'resnet18', outputStride: 16, decoderChannels: 16,
      crop: 128, batchSize: 4, epochs: 4, optimizer: 'adamw', lr: 3e-3, valEvery: 4, precision: 'fp32', // machine-independent numbers
      seed: 0, threads: 1, workers: 0, quiet: true, onLog: (r) => records.push(r),
    });
    try {
      const epochs = records.filter((r) => r.type === 'epoch');
      assert.equal(epochs.length, 4);
      assert.equal(epochs[3].iter, 32);
      const first = epochs[0].loss as number; // an EMA over the epoch's steps
      const last = epochs[3].loss as number;
      assert.ok(last < 0.75 * first, `loss went from ${first} to ${last}`);
      assert.ok(res.lastEval, 'validated after the last epoch');
      assert.ok(res.lastEval.miou > before.miou + 0.02, `val mIoU ${res.lastEval.miou} vs untrained ${before.miou}`);
      assert.equal(res.bestEpoch, 4);
      assert.equal(res.bestMiou, res.lastEval.miou);
      assert.equal(res.history.length, 4);

      const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(lines, JSON.parse(JSON.stringify(records)), 'metrics.jsonl holds every onLog record');
      const best = PAN.loadPretrained(join(out, 'checkpoints', 'best'));
      assert.deepEqual(best.meta.classNames, [...valDs.classes]);
      assert.equal(best.meta.epoch, 4);
      assert.equal(maxStateDiff(best.model.stateDict(), res.model.stateDict()), 0, 'best = the final model here');
      best.model.dispose();
    } finally {
      res.model.dispose();
    }
  });
});

describe('train: resume and checkpoints (resnet18 depth 3 + aux head with dropout, 64 px)', () => {
  let run: TinyRun;
  const base = (): TrainOptions => tinyRunOptions(run);
  before(async () => { run = await makeTinyRun(tmp); });

  it('winograd and fusedKernels false: kept in config.json, in force during the run, the process settings restored after', async () => {
    const during: boolean[] = [];
    const out = join(tmp, 'kernel-settings');
    const r = await train({ ...base(), out, maxSteps: 2, winograd: false, fusedKernels: false, onLog: () => { during.push(winogradTraining(), fusedKernels()); } });
    r.model.dispose();
    assert.ok(during.length > 0 && during.every((on) => !on), String(during));
    assert.deepEqual([winogradTraining(), fusedKernels()], [true, true]);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')); // the options, to re-run with --config
    assert.deepEqual([config.winograd, config.fusedKernels], [false, false]);
  });

  it('1 epoch + resume gives exactly the weights of 2 uninterrupted epochs', async () => {
    const a = await train({ ...base(), out: join(tmp, 'resume-a') });
    const outB = join(tmp, 'resume-b');
    const b1 = await train({ ...base(), out: outB, maxSteps: 4 }); // 16 images / batch 4 = 4 steps per epoch
    b1.model.dispose();
    const last = join(outB, 'checkpoints', 'last');
    for (const f of ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer.json', 'rng.safetensors', 'panseg.json']) {
      assert.ok(existsSync(join(last, f)), `checkpoints/last/${f}`);
    }
    const st = JSON.parse(readFileSync(join(last, 'trainer.json'), 'utf8')) as TrainerState;
    assert.equal(st.epoch, 1);
    assert.equal(st.iter, 4);
    assert.equal(st.history.length, 1);
    assert.ok(existsSync(join(outB, 'checkpoints', 'best', 'model.safetensors')));
    assert.deepEqual(readdirSync(join(outB, 'checkpoints')).sort(), ['best', 'last'], 'no temporary directories left');

    const b2 = await train({ ...base(), out: outB, resume: true });
    try {
      const diff = maxStateDiff(a.model.stateDict(), b2.model.stateDict());
      assert.equal(diff, 0, `resumed weights differ by ${diff}`);
      assert.deepEqual(b2.history.map((h) => h.iter), [4, 8]);
      assert.deepEqual(b2.history.map((h) => h.valMiou), a.history.map((h) => h.valMiou));
      const st2 = JSON.parse(readFileSync(join(last, 'trainer.json'), 'utf8')) as TrainerState;
      assert.equal(st2.epoch, 2);
      assert.equal(st2.iter, 8);
    } finally {
      a.model.dispose();
      b2.model.dispose();
    }
  });

  it('a crash in epoch 2 + resume equals an uninterrupted run, with gradient accumulation', async () => {
    // 4 batches per epoch, accumulate 3: one step per epoch and a trailing partial accumulation.
    const opts = { ...base(), accumulate: 3 };
    const a = await train({ ...opts, out: join(tmp, 'accum-a') });
    const outB = join(tmp, 'accum-b');
    const crash = (r: Record<string, number | string>): void => { if (r.epoch === 2) throw new Error('simulated crash'); };
    await assert.rejects(train({ ...opts, out: outB, onLog: crash }), /simulated crash/);
    assert.equal((JSON.parse(readFileSync(join(outB, 'checkpoints', 'last', 'trainer.json'), 'utf8')) as TrainerState).iter, 1);
    const b = await train({ ...opts, out: outB, resume: true });
    try {
      assert.deepEqual(b.history.map((h) => h.iter), [1, 2]);
      const diff = maxStateDiff(a.model.stateDict(), b.model.stateDict());
      assert.equal(diff, 0, `resumed weights differ by ${diff}`);
    } finally {
      a.model.dispose();
      b.model.dispose();
    }
  });

  it('refuses to resume without a checkpoint or with changed options', async () => {
    const outB = join(tmp, 'resume-b');
    await assert.rejects(train({ ...base(), out: join(tmp, 'nothing-here'), resume: true }), /train: --resume: no checkpoint at .*checkpoints\/last; start without --resume/);
    await assert.rejects(train({ ...base(), out: outB, lr: 1e-2, resume: true }), /train: --resume: the options differ from the checkpoint's run in one of dataset, arch, encoder, .*; resume with the same options or use a new --out/);
  });

  it('refuses an unknown device, and CUDA in a build without it, before any work', async () => {
    await assert.rejects(train({ ...base(), out: join(tmp, 'dev-a'), device: 'gpu' }), /^PansegError: train: expected 'cpu' or 'cuda\[:N\]' for device but received "gpu"$/);
    if (!cudaAvailable()) await assert.rejects(train({ ...base(), out: join(tmp, 'dev-b'), device: 'cuda' }), /train: device cuda: this panseg was built against a CPU libtorch; set LIBTORCH/);
    assert.equal(existsSync(join(tmp, 'dev-a')), false, 'nothing was written');
  });

  it('a save that fails mid-write leaves the previous checkpoint intact', () => {
    const dir = join(tmp, 'atomic', 'last');
    mkdirSync(join(tmp, 'atomic'), { recursive: true });
    const model = PAN.fromPretrained(run.init);
    const opt = new AdamW(model.parameters(), { lr: 1e-3 });
    const state: TrainerState = { epoch: 1, iter: 4, bestMiou: 0.5, bestEpoch: 1, history: [], configHash: 'abc' };
    saveCheckpoint(dir, model, opt, state, { classNames: ['a'] });
    const snapshot = (): Record<string, string> => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f)).toString('base64')]));
    const before = snapshot();

    const broken = { stateTensors: () => { throw new Error('ENOSPC: no space left on device'); } } as unknown as Optimizer;
    assert.throws(() => saveCheckpoint(dir, model, broken, { ...state, epoch: 2 }, {}), /ENOSPC/);
    assert.deepEqual(snapshot(), before, 'last is unchanged');
    assert.deepEqual(readdirSync(join(tmp, 'atomic')), ['last'], 'the partial directory is cleaned up');

    // A good save replaces it, and restoreCheckpoint reads it back.
    saveCheckpoint(dir, model, opt, { ...state, epoch: 2 }, {});
    const opt2 = new AdamW(model.parameters(), { lr: 1e-3 });
    assert.equal(restoreCheckpoint(dir, opt2).epoch, 2);
    assert.throws(() => restoreCheckpoint(join(tmp, 'atomic'), opt2), /resume: .*trainer\.json not found: .* is not a complete training checkpoint/);
    opt.dispose();
    opt2.dispose();
    model.dispose();
  });
});

describe('train: corrupt samples, durable state and exact resume (issue 15)', () => {
  let data: string;
  let init: string;
  let corrupt: string;
  const base = (): TrainOptions => ({
    dataset: 'folder', dataRoot: data, out: '', model: init, crop: 64, batchSize: 4, epochs: 2,
    optimizer: 'adamw', lr: 2e-3, seed: 7, threads: 1, workers: 0, quiet: true,
  });
  before(async () => {
    data = (await generateSynthetic(join(tmp, 'shapes64-bad'), { train: 16, val: 4, size: 64, seed: 2 })).dir;
    // The first sample in dataset order: the report's first picture when it shows the training set.
    corrupt = openDataset('folder', data, { split: 'train' }).samples[0].imagePath;
    writeFileSync(corrupt, Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 251)));
    manualSeed(5);
    const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, decoderChannels: 16, classes: 6 });
    init = join(tmp, 'init-bad');
    m.savePretrained(init);
    m.dispose();
  });

  it('a corrupt image (16 images, batch 4): the epoch completes and is checkpointed; the file is reported once per epoch and in the result', async (t) => {
    const warn = t.mock.method(console, 'warn', () => {});
    const out = join(tmp, 'bad-a');
    const res = await train({ ...base(), out, epochs: 1, valSplit: null });
    try {
      const st = JSON.parse(readFileSync(join(out, 'checkpoints', 'last', 'trainer.json'), 'utf8')) as TrainerState;
      assert.deepEqual([st.epoch, st.iter], [1, 4], 'last/ is written; the skipped image is made up for, so the epoch keeps its 4 steps');
      assert.deepEqual(res.skipped, [corrupt]);
      assert.deepEqual(st.skipped, [corrupt]);
      assert.equal(res.history[0].skipped, 1);
      const lines = warn.mock.calls.map((c) => String(c.arguments[0]));
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0], /^panseg: epoch 1 skipped 1 unreadable or invalid training sample: .*\.png \(folder: cannot read .*\); fix or remove it$/);
      // The report without a validation set shows training images, the corrupt one first: it passes over it.
      const report = await writeTrainingReport({ model: res.model, outDir: out, dataset: res.trainDataset, evaluation: null, config: {}, samples: 2, attention: false });
      assert.ok(existsSync(report));
    } finally {
      res.model.dispose();
    }
  });

  it('resume after a crash: temporaries go, last/ comes back from a cut-short rename, metrics.jsonl is cut to the checkpoint, best/ is the truth', async () => {
    const a = await train({ ...base(), out: join(tmp, 'bad-whole') });
    const out = join(tmp, 'bad-b');
    const crash = (r: Record<string, number | string>): void => { if (r.epoch === 2) throw new Error('simulated crash'); };
    await assert.rejects(train({ ...base(), out, onLog: crash }), /simulated crash/);
    const ckpt = join(out, 'checkpoints');
    // What a kill -9 can leave: a half-written checkpoint and model directory, a temporary file, and
    // last/ renamed away just before its replacement was renamed in.
    mkdirSync(join(ckpt, 'last.partial-4242'));
    writeFileSync(join(ckpt, 'last.partial-4242', 'model.safetensors'), 'half');
    mkdirSync(join(ckpt, 'best.tmp-4242'));
    writeFileSync(join(out, 'config.json.tmp-4242-0badf00d'), '{');
    mkdirSync(join(out, 'report'));
    writeFileSync(join(out, 'report', 'sample-0-a-image.png.tmp-4242-0badf00d'), 'half');
    renameSync(join(ckpt, 'last'), join(ckpt, 'last.old-4242'));
    // The crashed run's best/ claims a better score than the resumed run will reach: it is kept.
    const bestMeta = JSON.parse(readFileSync(join(ckpt, 'best', 'panseg.json'), 'utf8'));
    writeFileSync(join(ckpt, 'best', 'panseg.json'), JSON.stringify({ ...bestMeta, miou: 0.99, epoch: 2 }));
    const bestWeights = readFileSync(join(ckpt, 'best', 'model.safetensors'));

    const b = await train({ ...base(), out, resume: true });
    try {
      assert.equal(maxStateDiff(a.model.stateDict(), b.model.stateDict()), 0, 'resumed == uninterrupted');
      assert.deepEqual(readdirSync(ckpt).sort(), ['best', 'last']);
      assert.deepEqual(readdirSync(out).filter((f) => f.includes('.tmp-')), []);
      assert.deepEqual(readdirSync(join(out, 'report')).filter((f) => f.includes('.tmp-')), [], 'report pictures cut short go too');
      const strip = (p: string): unknown[] => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).map(({ imgPerSec: _, ...r }) => r);
      assert.deepEqual(strip(join(out, 'metrics.jsonl')), strip(join(tmp, 'bad-whole', 'metrics.jsonl')), 'no record of the crashed epoch is left over');
      assert.deepEqual([b.bestMiou, b.bestEpoch], [0.99, 2], 'bestMiou follows best/');
      assert.ok(readFileSync(join(ckpt, 'best', 'model.safetensors')).equals(bestWeights), 'best/ is not replaced by a worse model');
      assert.equal((JSON.parse(readFileSync(join(ckpt, 'last', 'trainer.json'), 'utf8')) as TrainerState).bestMiou, 0.99);
    } finally {
      a.model.dispose();
      b.model.dispose();
    }
  });

  it('a full disk (PANSEG_TEST_FAIL_WRITE_AFTER): one-line error, the previous checkpoint intact, no temporaries', async () => {
    const parent = join(tmp, 'full');
    const dir = join(parent, 'last');
    const model = PAN.fromPretrained(init);
    const opt = new AdamW(model.parameters(), { lr: 1e-3 });
    const state: TrainerState = { epoch: 1, iter: 4, bestMiou: 0.5, bestEpoch: 1, history: [], configHash: 'abc', scaler: { scale: 1024, goodSteps: 3 } };
    try {
      saveCheckpoint(dir, model, opt, state, {});
      const before = readFileSync(join(dir, 'model.safetensors'));
      process.env.PANSEG_TEST_FAIL_WRITE_AFTER = String(before.length + 1000); // room for the model, not for the rest
      assert.throws(() => saveCheckpoint(dir, model, opt, { ...state, epoch: 2 }, {}),
        /^PansegError: saveCheckpoint: cannot write .*full\/last: saveSafetensors: .*\/last\.partial-\d+\/\w+\.safetensors: cannot write the file: no space left on device; the previous checkpoint in .*full\/last is intact$/);
      assert.throws(() => writeFileDurable(join(parent, 'note.json'), '{}'), /ENOSPC/);
      await assert.rejects(writeFileDurableAsync(join(parent, 'note.json'), '{}'), /ENOSPC/);
      delete process.env.PANSEG_TEST_FAIL_WRITE_AFTER;
      assert.deepEqual(readdirSync(parent), ['last'], 'no temporaries');
      assert.ok(readFileSync(join(dir, 'model.safetensors')).equals(before));
      const back = restoreCheckpoint(dir, opt);
      assert.deepEqual([back.epoch, back.scaler], [1, { scale: 1024, goodSteps: 3 }], 'the GradScaler state round-trips');
      writeFileDurable(join(parent, 'note.json'), '{"a":1}');
      writeFileDurable(join(parent, 'note.json'), '{"a":2}');
      assert.deepEqual(readdirSync(parent).sort(), ['last', 'note.json']);
      assert.equal(readFileSync(join(parent, 'note.json'), 'utf8'), '{"a":2}');
    } finally {
      delete process.env.PANSEG_TEST_FAIL_WRITE_AFTER;
      opt.dispose();
      model.dispose();
    }
  });

  it('fp16 on CUDA: the GradScaler state is saved and restored on resume', { skip: !cudaAvailable() && 'no CUDA in this build' }, async () => {
    const out = join(tmp, 'fp16');
    const opts = { ...base(), precision: 'fp16' as const, device: 'cuda' };
    (await train({ ...opts, out, maxSteps: 4 })).model.dispose();
    const st1 = JSON.parse(readFileSync(join(out, 'checkpoints', 'last', 'trainer.json'), 'utf8')) as TrainerState;
    assert.ok(st1.scaler, 'trainer.json holds the scaler');
    (await train({ ...opts, out, resume: true })).model.dispose();
    const st2 = JSON.parse(readFileSync(join(out, 'checkpoints', 'last', 'trainer.json'), 'utf8')) as TrainerState;
    assert.ok(st2.scaler!.goodSteps === st1.scaler!.goodSteps + 4 || st2.scaler!.scale !== st1.scaler!.scale, 'the resumed run continued the scaler, not a fresh one');
  });
});
