// evaluate(): a model whose head predicts one class everywhere, on a folder dataset with
// non-divisible image sizes and ignored pixels, must give exactly the hand-counted confusion matrix
// (padding never counts). Counts are exact integers: compared exactly.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DataLoader, openDataset } from '../../src/data/index.js';
import { liveTensors, noGrad, randn, setNumThreads, type Tensor, tensor, tidy } from '../../src/engine/index.js';
import { evaluate } from '../../src/eval/evaluate.js';
import { predictProbs, probsToLabels } from '../../src/eval/inference.js';
import { PAN } from '../../src/models/index.js';
import { pattern, tmp as makeTmp, writeGrey, writeRgb, writeText } from '../data/helpers.js';

setNumThreads(1);
const { dir, cleanup } = makeTmp('panseg-evaluate-');
after(cleanup);

const SIZES = [[70, 50], [64, 64]] as const; // 70x50 pads to 72x64 at output stride 8
const LABELS = pattern([0, 1, 2, 255, 2, 2], 3);

before(async () => {
  writeText(`${dir}/classes.json`, JSON.stringify({ classes: ['bg', 'a', 'b'] }));
  for (const [i, [w, h]] of SIZES.entries()) {
    await writeRgb(`${dir}/val/images/im${i}.png`, w, h, (x, y) => [(x * 7) % 256, (y * 5) % 256, 90]);
    await writeGrey(`${dir}/val/masks/im${i}.png`, w, h, LABELS);
  }
});

/** A depth-3 PAN whose head ignores its input: logits = bias, so argmax = `cls` everywhere. */
function constantModel(cls: number): PAN {
  const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, decoderChannels: 8, classes: 3 });
  const params = new Map(m.namedParameters());
  noGrad(() => {
    params.get('segmentation_head.0.weight')!.zero_();
    const b = tensor([0, 0, 0].map((_, k) => (k === cls ? 5 : 0)));
    params.get('segmentation_head.0.bias')!.copy_(b);
    b.dispose();
  });
  return m;
}

describe('evaluate', () => {
  it('counts every valid pixel once, skips ignored ones and padding, and restores the model mode', async () => {
    const live0 = liveTensors();
    // Hand count: gt class per valid pixel over both images.
    const gt = [0, 0, 0];
    for (const [w, h] of SIZES) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) { const v = LABELS(x, y); if (v !== 255) gt[v]++; }
    const ds = openDataset('folder', dir, { split: 'val' });
    const m = constantModel(1);
    assert.equal(m.training, true);
    const loader = new DataLoader(ds, { mode: 'eval', stride: m.outputStride, mean: m.preprocessing.mean, std: m.preprocessing.std, workers: 0 });
    for (const tta of [{}, { flip: true, scales: [0.75, 1] }]) {
      const r = await evaluate(m, loader, tta);
      assert.equal(r.images, 2);
      assert.deepEqual([...r.confusion.counts], [0, gt[0], 0, 0, gt[1], 0, 0, gt[2], 0], 'rows = gt, all predicted class 1');
      const total = gt[0] + gt[1] + gt[2];
      assert.equal(r.pixelAccuracy, gt[1] / total);
      assert.deepEqual(r.perClassIou, [0, gt[1] / total, 0]);
      assert.equal(r.miou, gt[1] / total / 3);
      assert.equal(m.training, true, 'training mode restored');
    }
    await loader.close();
    m.dispose();
    assert.equal(liveTensors(), live0, 'tensors leaked');
  });
});

describe('predictProbs', () => {
  // A model built with an output activation already returns probabilities: they must not be squashed
  // again (a sigmoid applied twice puts every pixel above 0.5). Tolerance 1e-6 (fp32, same forward).
  const x = randn([1, 3, 64, 64]);
  after(() => x.dispose());
  const cases: [string, number, (y: Tensor) => Tensor][] = [
    ['identity', 1, (y) => y.sigmoid()],
    ['identity', 3, (y) => y.softmax(1)],
    ['sigmoid', 1, (y) => y],
    ['softmax2d', 3, (y) => y],
    ['logsoftmax', 3, (y) => y.exp()],
    ['tanh', 1, (y) => y.add(1).div(2)],
  ];
  for (const [activation, classes, expected] of cases) {
    it(`${activation}, ${classes} class(es)`, () => {
      const m = new PAN({ encoderName: 'resnet18', encoderDepth: 3, decoderChannels: 8, classes, activation: activation as 'sigmoid' });
      tidy(() => {
        const p = predictProbs(m, x, { precision: 'fp32' });
        const want = expected(m.predict(x));
        assert.ok(p.sub(want).abs().max().item() <= 1e-6, 'probabilities');
        if (classes === 1) { // thresholding at 0.5 means logit 0 (pixels within 1e-6 of it may flip)
          const agree = probsToLabels(p).eq(want.squeeze(1).gt(0.5).to('int64')).to('float32').mean().item();
          assert.ok(agree >= 0.999, `labels agree on ${agree} of the pixels`);
        }
      });
      m.dispose();
    });
  }
});
