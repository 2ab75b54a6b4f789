// optimizedForInference: BatchNorm folded (float32 outputs within 1e-4 of the original model),
// and building the copy leaves the caller's random stream untouched.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, noGrad, rand, randn, tidy } from '../../src/engine/index.js';
import { PAN } from '../../src/models/index.js';

it('optimizedForInference matches the model and does not consume random numbers', () => {
  manualSeed(0);
  const m = new PAN({ encoderName: 'resnet18', encoderDepth: 4, classes: 3, decoderChannels: 16 });
  m.train();
  noGrad(() => tidy(() => { m.forward(randn([2, 3, 128, 128])); })); // non-trivial running statistics
  m.eval();
  manualSeed(7);
  const fast = m.optimizedForInference({ channelsLast: true });
  const after = rand([4]).toNumbers();
  manualSeed(7);
  assert.deepEqual(after, rand([4]).toNumbers());
  tidy(() => {
    const x = randn([1, 3, 128, 128]);
    const d = fast.predict(x).sub(m.predict(x)).abs().max().item();
    assert.ok(d <= 1e-4, `folded output differs by ${d}`);
  });
  fast.dispose();
  m.dispose();
});
