// Unet in the shared model tester, with its PyTorch reference (scripts/reference/unet_model.py, smp 0.5's Unet),
// plus what is Unet's own: any input size (smp >= 0.5), and each decoderInterpolation in ONNX at such a size.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { noGrad, randn, tensor, tidy } from '../../src/engine/index.js';
import { exportOnnx } from '../../src/export/index.js';
import { createModel } from '../../src/models/index.js';
import { calibrate, runOnnx, tempDir } from '../export/helpers.js';
import { testArchitecture } from './model-tester.js';

testArchitecture({
  arch: 'unet',
  options: { encoderName: 'resnet18', decoderChannels: [32, 32, 16, 16, 16], decoderAttentionType: 'scse' },
  size: 32,
  reference: { script: 'unet_cases.py', deps: ['unet_model.py', 'pan_model.py', 'cases_common.py', 'st.py'] },
});

for (const mode of ['nearest', 'bilinear', 'bicubic', 'area', 'nearest-exact']) {
  it(`Unet takes any input size; '${mode}' decoder resampling matches onnxruntime at 50x70`, async () => {
    using tmp = tempDir();
    const m = calibrate(createModel('unet', { encoderName: 'resnet18', decoderChannels: [32, 32, 16, 16, 16], decoderInterpolation: mode }), [50, 70]);
    const path = join(tmp.dir, 'unet.onnx');
    exportOnnx(m, { path, height: 50, width: 70 });
    const x = randn([1, 3, 50, 70]);
    const want = noGrad(() => m.forward(x));
    const got = await runOnnx(path, x.toArray() as Float32Array, [1, 3, 50, 70]);
    const d = tidy(() => want.sub(tensor(got.logits.data, want.shape)).abs().max().item());
    assert.ok(d <= 1e-4 * Math.max(1, tidy(() => want.abs().max().item())), `ONNX logits differ by ${d}`);
    if (mode === 'area') assert.throws(() => exportOnnx(m, { path, dynamicSize: true }), { message: /decoderInterpolation 'area' \(adaptive average pooling\) exports only at a fixed input size/ });
    for (const t of [x, want]) t.dispose();
    m.dispose();
  });
}

it('Unet refuses options smp would not build, or panseg does not implement, naming a fix', () => {
  const bad = (o: Record<string, unknown>, message: string) => assert.throws(() => createModel('unet', o), { message });
  bad({ encoderDepth: 3 }, 'Unet: expected 3 entries for decoderChannels (one per encoder stage at encoderDepth 3) but received [256, 128, 64, 32, 16], e.g. [256, 128, 64]');
  bad({ decoderUseNorm: 'layernorm' }, "Unet: decoderUseNorm 'layernorm' is one of smp's norms that panseg does not implement; use 'batchnorm' (true) or 'identity' (false)");
  bad({ decoderAttentionType: 'scse', decoderChannels: [256, 128, 64, 32, 8] }, "Unet: decoderAttentionType 'scse' needs decoderChannels of at least 16 (it squeezes channels by 16) but received [256, 128, 64, 32, 8]");
  bad({ decoderInterpolation: 'linear' }, "Unet: expected one of 'nearest', 'bilinear', 'bicubic', 'area', 'nearest-exact' for decoderInterpolation but received 'linear' of type string");
});
