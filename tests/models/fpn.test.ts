// FPN in the shared model tester, with its PyTorch reference (scripts/reference/fpn_model.py).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { setNumThreads } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';
import { testArchitecture } from './model-tester.js';

// The reference runs torch at 2 threads. A random-init resnet50 in train mode amplifies summation-order
// differences block by block (PyTorch alone, 1 vs 2 threads: 2.6e-4 on r50_64px's train logits, 3% on
// layer4 gradients), so parity is checked at the reference's thread count, where it is bit-exact.
setNumThreads(2);

testArchitecture({
  arch: 'fpn',
  options: { encoderName: 'resnet18', decoderPyramidChannels: 32, decoderSegmentationChannels: 32 },
  size: 64,
  reference: { script: 'fpn_cases.py', deps: ['fpn_model.py', 'pan_model.py', 'cases_common.py', 'st.py'] },
});

it('FPN: GroupNorm(32) needs decoderSegmentationChannels in multiples of 32', () => {
  assert.throws(() => createModel('fpn', { decoderSegmentationChannels: 48 }), { message: 'FPN: decoderSegmentationChannels must be a multiple of 32 (GroupNorm uses 32 groups), got 48; try 64' });
});
