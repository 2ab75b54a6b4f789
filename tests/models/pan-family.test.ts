// PAN in the shared model tester, with its PyTorch reference (scripts/reference/pan_model.py).
import { testArchitecture } from './model-tester.js';

testArchitecture({
  arch: 'pan',
  options: { encoderName: 'resnet18', decoderChannels: 16 },
  size: 128,
  reference: { script: 'pan_cases.py', deps: ['pan_model.py', 'st.py', 'cases_common.py'] },
});
