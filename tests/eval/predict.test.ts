// predictFiles' output names: each input keeps its path below the folder all inputs share, so two
// inputs never write the same file.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { outputStems } from '../../src/eval/predict.js';

describe('outputStems', () => {
  it('keeps relative paths below the shared folder', () => {
    assert.deepEqual(outputStems(['a/x.png', 'b/x.png']), [join('a', 'x'), join('b', 'x')]);
    assert.deepEqual(outputStems(['photos/1.jpg', 'photos/2.jpg']), ['1', '2']);
    assert.deepEqual(outputStems(['photos/1.jpg']), ['1']);
    assert.deepEqual(outputStems(['in/a/deep/x.png', 'in/b/x.png']), [join('a', 'deep', 'x'), join('b', 'x')]);
    assert.deepEqual(outputStems([resolve('/data/a/x.png'), resolve('/other/x.png')]), [join('data', 'a', 'x'), join('other', 'x')]);
  });

  it('keeps the extension of files that differ only in it; the same file twice is one name', () => {
    assert.deepEqual(outputStems(['p/x.jpg', 'p/x.png', 'p/y.png']), ['x_jpg', 'x_png', 'y']);
    assert.deepEqual(outputStems(['p/x.png', './p/x.png']), ['x', 'x']);
  });
});
