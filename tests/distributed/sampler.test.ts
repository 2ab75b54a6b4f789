// DistributedSampler: each epoch's shards cover the dataset exactly once (plus padding to equal
// length), never overlap beyond the padding, reshuffle per epoch, and agree across ranks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DistributedSampler, evalShard } from '../../src/distributed/index.js';
import { Rng, mixSeed, permutation } from '../../src/data/index.js';

const shards = (n: number, world: number, epoch: number, o: { seed?: number; shuffle?: boolean; dropLast?: boolean } = {}) =>
  Array.from({ length: world }, (_, rank) => new DistributedSampler(n, { numReplicas: world, rank, ...o }).indices(epoch));

describe('DistributedSampler', () => {
  it('covers every sample exactly once per epoch when the world size divides the length', () => {
    for (const epoch of [0, 1, 7]) {
      const s = shards(12, 4, epoch, { seed: 3 });
      assert.ok(s.every((x) => x.length === 3));
      assert.deepEqual(s.flat().sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i));
    }
  });

  it('pads to equal length by repeating the head of the shuffled order, as torch does', () => {
    const n = 10;
    const s = shards(n, 4, 2, { seed: 5 });
    assert.ok(s.every((x) => x.length === 3), 'ceil(10 / 4) = 3 per rank');
    const all = s.flat();
    assert.deepEqual([...new Set(all)].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), 'every sample appears');
    const order = permutation(n, new Rng(mixSeed(5, 2, 0x5eed)));
    const counts = new Map<number, number>();
    for (const i of all) counts.set(i, (counts.get(i) ?? 0) + 1);
    assert.deepEqual([...counts].filter(([, c]) => c === 2).map(([i]) => i).sort((a, b) => a - b), order.slice(0, 2).sort((a, b) => a - b));
    // rank r takes positions r, r + W, ... of the padded order
    assert.deepEqual(s[1], [order[1], order[5], order[9]]);
  });

  it('dropLast trims instead of padding, so nothing repeats', () => {
    const s = shards(10, 4, 0, { dropLast: true });
    assert.ok(s.every((x) => x.length === 2));
    assert.equal(new Set(s.flat()).size, 8);
  });

  it('reshuffles per epoch, deterministically from the seed, and matches the DataLoader order', () => {
    assert.notDeepEqual(shards(64, 2, 0)[0], shards(64, 2, 1)[0]);
    assert.deepEqual(shards(64, 2, 3, { seed: 9 }), shards(64, 2, 3, { seed: 9 }));
    assert.notDeepEqual(shards(64, 2, 3, { seed: 9 })[0], shards(64, 2, 3, { seed: 10 })[0]);
    // one process (world 1) visits exactly the DataLoader's shuffle for (seed, epoch)
    assert.deepEqual(shards(20, 1, 4, { seed: 2 })[0], permutation(20, new Rng(mixSeed(2, 4, 0x5eed))));
    assert.deepEqual(shards(6, 2, 0, { shuffle: false }), [[0, 2, 4], [1, 3, 5]]);
  });

  it('validates its options with messages naming them', () => {
    assert.throws(() => new DistributedSampler(10, { numReplicas: 2, rank: 2 }), /DistributedSampler: .*rank/);
    assert.throws(() => new DistributedSampler(10, { numReplicas: 0, rank: 0 }), /DistributedSampler: .*numReplicas/);
    assert.throws(() => new DistributedSampler(0, { numReplicas: 2, rank: 0 }), /DistributedSampler: cannot pad an empty dataset/);
  });

  it('evaluation shards split without padding, so confusion matrices sum to the whole set', () => {
    const parts = [0, 1, 2].map((r) => evalShard(7, r, 3));
    assert.deepEqual(parts, [[0, 3, 6], [1, 4], [2, 5]]);
  });
});
