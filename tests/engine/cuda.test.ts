// CUDA cases: they run only where panseg was built against a CUDA libtorch and a GPU is present
// (LIBTORCH=<CUDA libtorch>); elsewhere node:test reports them as skipped, with this reason.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { autocast, buildInfo, F, noGrad, randn, tidy } from '../../src/engine/index.js';
import { PAN } from '../../src/models/index.js';

const info = buildInfo();
const skip = info.cuda && info.cudaDevices > 0 ? false : 'no CUDA device: this libtorch has no CUDA or no GPU is present';

describe('CUDA', { skip }, () => {
  it('moves tensors and runs ops and autograd on the GPU, matching the CPU', () => tidy(() => {
    const x = randn([2, 3, 16, 16]);
    const w = randn([4, 3, 3, 3], { requiresGrad: true });
    const yc = F.conv2d(x, w, null, { padding: 1 });
    const wg = w.to('cuda').detach().requiresGrad_(true);
    const yg = F.conv2d(x.to('cuda'), wg, null, { padding: 1 });
    assert.equal(yg.device, 'cuda:0');
    assert.ok(yg.to('cpu').sub(yc).abs().max().item() < 1e-4);
    yg.sum().backward();
    yc.sum().backward();
    assert.ok(wg.grad!.to('cpu').sub(w.grad!).abs().max().item() < 1e-3);
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
      assert.ok(gpu.sub(cpu).abs().max().item() < 1e-3);
      for (const dtype of ['bfloat16', 'float16'] as const) {
        const y = noGrad(() => autocast(() => m.forward(xg), { deviceType: 'cuda', dtype }));
        assert.equal(y.dtype, dtype);
      }
    });
    m.dispose();
  });
});
