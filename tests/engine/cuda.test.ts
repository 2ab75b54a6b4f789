// CUDA cases: they run only where panseg was built against a CUDA libtorch and a GPU is present
// (LIBTORCH=<CUDA libtorch> or a CUDA PyTorch); elsewhere node:test reports them as skipped, with this reason.
// Tolerances, relative to the largest |logit|: GPU vs CPU float32 <= 1e-2, because cuDNN runs float32
// convolutions in TF32 (10-bit mantissa) by default, in libtorch as in PyTorch; folded-BN copies vs
// eager on the GPU <= 1e-2 (fp32), 5e-2 (bf16 weights), 1e-2 (fp16 weights).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthetic } from '../../src/data/index.js';
import { GradientSync, ncclAvailable, ProcessGroup } from '../../src/distributed/index.js';
import { autocast, buildInfo, cudaSynchronize, F, manualSeed, noGrad, randint, randn, tensor, tidy } from '../../src/engine/index.js';
import { predictProbs } from '../../src/eval/inference.js';
import { PAN } from '../../src/models/index.js';
import { GradScaler } from '../../src/train/grad-scaler.js';
import { AdamW, SGD } from '../../src/train/optimizers.js';
import { train } from '../../src/train/train.js';
import { freePort } from '../distributed/helpers.js';

const info = buildInfo();
const skip = info.cuda && info.cudaDevices > 0 ? false : 'no CUDA device: this libtorch has no CUDA or no GPU is present';
const tmp = mkdtempSync(join(tmpdir(), 'panseg-cuda-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('CUDA', { skip }, () => {
  it('moves tensors and runs ops and autograd on the GPU, matching the CPU', () => tidy(() => {
    const x = randn([2, 3, 16, 16]);
    const w = randn([4, 3, 3, 3], { requiresGrad: true });
    const yc = F.conv2d(x, w, null, { padding: 1 });
    const wg = w.to('cuda').detach().requiresGrad_(true);
    const yg = F.conv2d(x.to('cuda'), wg, null, { padding: 1 });
    assert.equal(yg.device, 'cuda:0');
    const rel = (a: typeof x, b: typeof x) => a.to('cpu').sub(b).abs().max().item() / b.abs().max().item();
    assert.ok(rel(yg, yc) < 1e-2, `conv: ${rel(yg, yc)}`);
    yg.sum().backward();
    yc.sum().backward();
    assert.ok(rel(wg.grad!, w.grad!) < 1e-2, `weight grad: ${rel(wg.grad!, w.grad!)}`);
    cudaSynchronize();
  }));

  it('runs PAN on the GPU in fp32 and under bf16/fp16 autocast', () => {
    const m = new PAN({ encoderName: 'resnet18', classes: 3 });
    m.eval();
    const x = randn([1, 3, 128, 128]);
    const cpu = noGrad(() => m.forward(x));
    m.to({ device: 'cuda' });
    tidy(() => {
      const xg = x.to('cuda');
      const gpu = noGrad(() => m.forward(xg)).to('cpu');
      const diff = gpu.sub(cpu).abs().max().item() / cpu.abs().max().item();
      assert.ok(diff < 1e-2, `fp32 GPU vs CPU: ${diff}`);
      for (const dtype of ['bfloat16', 'float16'] as const) {
        // Convolutions run in the autocast dtype (PAN's output dtype follows libtorch's autocast
        // lists: e.g. bilinear upsampling runs in float32 on CUDA in recent versions).
        const w = randn([4, 3, 3, 3]).to('cuda');
        assert.equal(autocast(() => F.conv2d(xg, w), { deviceType: 'cuda', dtype }).dtype, dtype);
        const y = noGrad(() => autocast(() => m.forward(xg), { deviceType: 'cuda', dtype }));
        const rel = y.to('float32').to('cpu').sub(cpu).abs().max().item() / cpu.abs().max().item();
        assert.ok(rel < 5e-2, `${dtype} vs fp32: ${rel}`);
      }
    });
    m.dispose();
    x.dispose();
    cpu.dispose();
  });

  it('inference copies (BatchNorm folded, channels-last, bf16/fp16 weights) run on the GPU and match eager', () => {
    const m = new PAN({ encoderName: 'resnet18', classes: 4, encoderOutputStride: 8 });
    m.to({ device: 'cuda' });
    m.eval();
    tidy(() => {
      const x = randn([2, 3, 96, 128]).to('cuda');
      const ref = m.predict(x);
      const scale = ref.abs().max().item();
      for (const [o, tol] of [[{}, 1e-2], [{ channelsLast: true }, 1e-2], [{ channelsLast: true, dtype: 'bfloat16' }, 5e-2], [{ channelsLast: true, dtype: 'float16' }, 1e-2]] as const) {
        const fast = m.optimizedForInference(o);
        const y = fast.predict(x);
        assert.equal(y.device, 'cuda:0');
        const rel = y.to('float32').sub(ref).abs().max().item() / scale;
        assert.ok(rel < tol, `${JSON.stringify(o)}: ${rel}`);
        fast.dispose();
      }
    });
    m.dispose();
  });

  for (const [name, dtype] of [['fp32', null], ['bf16', 'bfloat16'], ['fp16 with a GradScaler', 'float16']] as const) {
    it(`training steps on the GPU lower the loss (${name}; SGD and AdamW state on the GPU)`, () => {
      for (const Opt of [SGD, AdamW]) {
        manualSeed(0);
        const m = new PAN({ encoderName: 'resnet18', classes: 3, decoderChannels: 16, encoderOutputStride: 8 });
        m.to({ device: 'cuda', memoryFormat: 'channelsLast' });
        m.train();
        const opt = Opt === SGD ? new SGD(m.parameters(), { lr: 0.01, momentum: 0.9 }) : new AdamW(m.parameters(), { lr: 3e-3 });
        const scaler = dtype === 'float16' ? new GradScaler() : null;
        const x = randn([4, 3, 64, 64]).to('cuda').contiguous('channelsLast');
        const y = randint(0, 3, [4, 64, 64]).to('cuda');
        const losses: number[] = [];
        for (let i = 0; i < 12; i++) {
          opt.zeroGrad();
          losses.push(tidy(() => {
            const logits = dtype ? autocast(() => m.forward(x), { deviceType: 'cuda', dtype }) : m.forward(x);
            const loss = F.crossEntropy(logits.to('float32'), y);
            (scaler ? scaler.scaleLoss(loss) : loss).backward();
            return loss.item();
          }));
          // At the initial scale (2^16) fp16 gradients may overflow: those steps are skipped and the scale halves.
          if (scaler) scaler.step(opt);
          else opt.step();
        }
        if (scaler) assert.ok(scaler.scale >= 2 ** 10, `the scale backed off to ${scaler.scale}`);
        assert.ok(losses[11] < losses[0], `${Opt.name}: loss ${losses[0]} -> ${losses[11]}`);
        for (const t of opt.stateTensors().tensors.values()) assert.equal(t.device, 'cuda:0');
        opt.dispose();
        m.dispose();
        x.dispose();
        y.dispose();
      }
    });
  }

  it('predicts CPU images with a GPU model (the input moves to the model\'s device)', () => tidy(() => {
    const m = new PAN({ encoderName: 'resnet18', classes: 3, encoderOutputStride: 8 });
    m.to({ device: 'cuda' });
    const probs = predictProbs(m, randn([1, 3, 64, 80]), { precision: 'bf16' });
    assert.equal(probs.device, 'cuda:0');
    assert.deepEqual(probs.shape, [1, 3, 64, 80]);
    assert.ok(Math.abs(probs.sum(1).mean().item() - 1) < 1e-3);
    m.dispose();
  }));

  it('train() and its validation run end to end with device cuda (fp16: the GradScaler path)', async () => {
    const data = (await generateSynthetic(join(tmp, 'shapes'), { train: 16, val: 4, size: 64, seed: 0 })).dir;
    const res = await train({
      dataset: 'folder', dataRoot: data, out: join(tmp, 'run'), encoder: 'resnet18', outputStride: 8, decoderChannels: 16,
      crop: 64, batchSize: 4, epochs: 2, optimizer: 'adamw', lr: 3e-3, precision: 'fp16', device: 'cuda', seed: 0, workers: 0, quiet: true,
    });
    assert.ok(res.lastEval && Number.isFinite(res.lastEval.miou));
    const back = PAN.fromPretrained(join(tmp, 'run', 'checkpoints', 'last'));
    assert.equal(back.parameters()[0].device, 'cpu');
    back.dispose();
  });
});

describe('NCCL (one rank on one GPU)', { skip: skip || (ncclAvailable() ? false : 'this build has no NCCL backend') }, () => {
  it('all-reduces and broadcasts GPU tensors and CPU tensors (through the GPU), and averages gradients in buckets', async () => {
    const pg = await ProcessGroup.init({ rank: 0, worldSize: 1, masterPort: await freePort(), backend: 'nccl' });
    try {
      assert.equal(pg.device, 'cuda:0');
      tidy(() => {
        const g = tensor([1, 2, 3]).to('cuda');
        pg.allreduce([g], 'sum');
        assert.deepEqual(g.toNumbers(), [1, 2, 3]);
        const c = tensor([4, 5]);
        pg.broadcast([c]);
        pg.allreduce([c], 'avg');
        assert.equal(c.device, 'cpu');
        assert.deepEqual(c.toNumbers(), [4, 5]);
        assert.deepEqual(pg.allreduceNumbers([2.5]), [2.5]);
      });
      const m = new PAN({ encoderName: 'resnet18', classes: 2, decoderChannels: 16, encoderOutputStride: 8 });
      m.to({ device: 'cuda' });
      m.train();
      const sync = new GradientSync(pg, m.parameters(), { bucketMB: 4 });
      sync.prepare();
      tidy(() => F.crossEntropy(m.forward(randn([2, 3, 64, 64]).to('cuda')), randint(0, 2, [2, 64, 64]).to('cuda')).backward());
      const ref = tidy(() => m.parameters()[0].grad!.to('cpu'));
      sync.finish();
      const after = tidy(() => m.parameters()[0].grad!.to('cpu'));
      assert.ok(tidy(() => after.sub(ref).abs().max().item()) === 0, 'the mean over one rank is the gradient itself');
      ref.dispose();
      after.dispose();
      sync.dispose();
      m.dispose();
    } finally {
      await pg.destroy();
    }
  });

  it('train({ distributed }) with device cuda uses NCCL', async () => {
    const data = (await generateSynthetic(join(tmp, 'shapes-dist'), { train: 8, val: 4, size: 64, seed: 1 })).dir;
    const res = await train({
      dataset: 'folder', dataRoot: data, out: join(tmp, 'run-dist'), encoder: 'resnet18', outputStride: 8, decoderChannels: 16,
      crop: 64, batchSize: 4, epochs: 1, lr: 0.01, precision: 'bf16', device: 'cuda', seed: 0, workers: 0, quiet: true,
      distributed: { rank: 0, worldSize: 1, masterPort: await freePort() },
    });
    assert.equal(res.distributed?.worldSize, 1);
    assert.ok(res.lastEval && Number.isFinite(res.lastEval.miou));
  });
});
