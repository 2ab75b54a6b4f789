// PSPNet in the shared model tester, with its PyTorch reference (scripts/reference/pspnet_model.py, smp 0.5's PSPNet),
// plus what is PSPNet's own: adaptive pooling to 2, 3 and 6 bins in ONNX at sizes those bins do not divide.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { manualSeed, noGrad, randn, tensor, tidy } from '../../src/engine/index.js';
import { exportOnnx } from '../../src/export/index.js';
import { createModel } from '../../src/models/index.js';
import { calibrate, runOnnx, tempDir } from '../export/helpers.js';
import { testArchitecture } from './model-tester.js';

// pspDropout 0: the tester's training check compares the loss of two passes, and Dropout2d's random channel
// masks move it as much as one small SGD step does (it passed or failed with the seed at smp's default 0.2).
const options = { encoderName: 'resnet18', pspOutChannels: 64, pspDropout: 0 };

testArchitecture({
  arch: 'pspnet',
  options,
  size: 32, // depth 3: a 4x5 bottleneck in the tester's 32x40 inputs, which bins 3 and 6 do not divide
  reference: { script: 'pspnet_cases.py', deps: ['pspnet_model.py', 'unet_model.py', 'pan_model.py', 'cases_common.py', 'st.py'] },
});

it('PSPNet: one dynamic-size ONNX export matches the model where bins 3 and 6 overlap or repeat pixels', async () => {
  using tmp = tempDir();
  manualSeed(1);
  const m = calibrate(createModel('pspnet', options), [64, 64]);
  const path = join(tmp.dir, 'pspnet.onnx');
  exportOnnx(m, { path, dynamicSize: true });
  // Bottlenecks 1x2, 2x3 (smaller than 6 bins), 5x7, 11x13.
  for (const [h, w] of [[8, 16], [16, 24], [40, 56], [88, 104]]) {
    const x = randn([1, 3, h, w]);
    const want = noGrad(() => m.forward(x));
    const got = await runOnnx(path, x.toArray() as Float32Array, [1, 3, h, w]);
    const d = tidy(() => want.sub(tensor(got.logits.data, want.shape)).abs().max().item());
    const tol = 1e-4 * Math.max(1, tidy(() => want.abs().max().item()));
    assert.ok(d <= tol, `${h}x${w}: ONNX logits differ by ${d}`);
    x.dispose();
    want.dispose();
  }
  m.dispose();
});
