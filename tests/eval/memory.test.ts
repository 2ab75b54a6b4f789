// Sliding-window memory bound, in a child process (its own peak RSS): segmenting a 2400x1600 image with
// tile 256 and a 21-class model grows the peak by about 63 MB (measured: the overlap rows carried to the next
// row of windows, 21 x 64 x 2400 float32 = 13 MB, one window's partial sums, the labels, one window's
// activations and the allocator's slack); the whole image at once needs far more (21 x 2400 x 1600 float32
// probabilities alone are 323 MB, made more than once). Bound: 128 MB. About 8 s of CPU.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../helpers/reference.js';

describe('sliding-window memory', () => {
  it('a 2400x1600 image with tile 256 grows peak RSS by under 128 MB', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'tests/eval/fixtures/tiled-rss.ts', '2400', '1600', '256'], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    assert.equal(r.status, 0, r.stderr);
    const m = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { growthMB: number; labels: number };
    assert.equal(m.labels, 2400 * 1600);
    assert.ok(m.growthMB < 128, `peak RSS grew by ${m.growthMB.toFixed(0)} MB`);
  });
});
