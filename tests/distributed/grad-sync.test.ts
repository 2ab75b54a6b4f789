// Gradient buckets in one process (a world of one rank): each .grad becomes a view into its bucket
// with its parameter's strides, so channels-last parameters keep channels-last gradients (autograd's
// layout contract, as DDP's Reducer), and averaging over one rank changes nothing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GradientSync, ProcessGroup } from '../../src/distributed/index.js';
import { F, manualSeed, randint, randn, tidy } from '../../src/engine/index.js';
import { PAN } from '../../src/models/index.js';
import { freePort } from './helpers.js';

describe('GradientSync in one process', () => {
  it('gives channels-last parameters channels-last gradient views, equal to unsynchronized gradients', async () => {
    const pg = await ProcessGroup.init({ rank: 0, worldSize: 1, masterPort: await freePort() });
    try {
      manualSeed(0);
      const m = new PAN({ encoderName: 'resnet18', classes: 2, decoderChannels: 16, encoderOutputStride: 8 });
      m.to({ memoryFormat: 'channelsLast' });
      m.train();
      const x = randn([2, 3, 64, 64]).contiguous('channelsLast');
      const y = randint(0, 2, [2, 64, 64]);
      const backward = () => tidy(() => F.crossEntropy(m.forward(x), y).backward());
      backward();
      const plain = m.parameters().map((p) => p.grad!);
      for (const p of m.parameters()) p.grad = null;
      const sync = new GradientSync(pg, m.parameters(), { bucketMB: 1 });
      sync.prepare();
      backward();
      sync.finish();
      m.parameters().forEach((p, i) => {
        const g = p.grad!;
        if (p.ndim === 4) assert.equal(g.isContiguous('channelsLast'), p.isContiguous('channelsLast'), `parameter ${i}: gradient layout`);
        assert.ok(tidy(() => g.sub(plain[i]).abs().max().item()) <= 1e-6, `parameter ${i}: gradient value`);
        g.dispose();
        plain[i].dispose();
      });
      sync.dispose();
      m.dispose();
      x.dispose();
      y.dispose();
    } finally {
      await pg.destroy();
    }
  });
});
