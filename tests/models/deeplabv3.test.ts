// DeepLabV3 in the shared model tester, with its PyTorch reference (scripts/reference/deeplab_model.py, smp 0.5's DeepLabV3).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { createModel } from '../../src/models/index.js';
import { testArchitecture } from './model-tester.js';

testArchitecture({
  arch: 'deeplabv3',
  // decoderAsppDropout 0: the training check compares two losses, which dropout would make random.
  options: { encoderName: 'resnet18', decoderChannels: 32, decoderAsppSeparable: true, decoderAsppDropout: 0 },
  size: 32,
  reference: { script: 'deeplabv3_cases.py', deps: ['deeplab_cases.py', 'deeplab_model.py', 'pan_model.py', 'cases_common.py', 'st.py'] },
});

it('DeepLabV3 refuses options smp would not build, naming the valid ones', () => {
  const bad = (o: Record<string, unknown>, message: string) => assert.throws(() => createModel('deeplabv3', o), { message });
  bad({ encoderOutputStride: 32 }, 'DeepLabV3: expected 8 or 16 for encoderOutputStride but received 32 of type number');
  bad({ decoderAtrousRates: [6, 12] }, 'DeepLabV3: expected 3 positive integers for decoderAtrousRates (the ASPP\'s three dilation rates) but received [6, 12], e.g. [12, 24, 36]');
});
