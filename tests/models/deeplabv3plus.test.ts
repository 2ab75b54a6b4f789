// DeepLabV3Plus in the shared model tester, with its PyTorch reference (scripts/reference/deeplab_model.py, smp 0.5's DeepLabV3Plus).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, type Tensor, tidy } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';
import type { Layer } from '../../src/nn/index.js';
import { testArchitecture } from './model-tester.js';

testArchitecture({
  arch: 'deeplabv3plus',
  // decoderAsppDropout 0: the training check compares two losses, which dropout would make random. At 32x32 the
  // ASPP would see 2x2 maps (its pooling BatchNorm 2 values a channel): one SGD step at lr 0.005 overshoots there.
  options: { encoderName: 'resnet18', decoderChannels: 32, decoderAsppDropout: 0 },
  size: 64,
  reference: { script: 'deeplabv3plus_cases.py', deps: ['deeplab_cases.py', 'deeplab_model.py', 'pan_model.py', 'cases_common.py', 'st.py'] },
});

it("DeepLabV3Plus: the heads keep PyTorch's default init (smp's DeepLab never calls initialize(), so no xavier)", () => {
  manualSeed(0);
  const m = createModel('deeplabv3plus', { encoderName: 'resnet18', decoderChannels: 64, classes: 2, auxParams: { classes: 3 } });
  const params = (l: Layer) => l as Layer & { weight: Tensor; bias: Tensor };
  // Default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias; xavier would reach sqrt(6 / (fan_in + fan_out)) with zero bias.
  for (const [l, fanIn] of [[m.segmentationHead.at(0), 64], [m.classificationHead!.at(3), 512]] as const) {
    const { weight, bias } = params(l);
    tidy(() => {
      assert.ok(weight.abs().max().item() <= 1 / Math.sqrt(fanIn));
      assert.ok(bias.abs().max().item() <= 1 / Math.sqrt(fanIn) && bias.abs().max().item() > 0);
    });
  }
  m.dispose();
});

it('DeepLabV3Plus refuses an output stride smp does not build, and upsampling null (smp needs a factor)', () => {
  assert.throws(() => createModel('deeplabv3plus', { encoderOutputStride: 32 }), { message: 'DeepLabV3Plus: expected 8 or 16 for encoderOutputStride but received 32 of type number' });
  assert.throws(() => createModel('deeplabv3plus', { upsampling: null }), { message: 'DeepLabV3Plus: expected positive integer for upsampling but received null' });
});
