// Sizes too large to allocate are PansegErrors naming the bytes, never a V8 abort (issue 15): copying
// a huge tensor out into an ArrayBuffer, and size arguments such as oneHot's class count.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:buffer';
import { totalmem } from 'node:os';
import { toBytes } from '../../src/engine/bytes.js';
import { F, arange, liveTensors, randperm, tensor, zeros } from '../../src/engine/index.js';

const over = 2 ** 50; // bytes past both the ArrayBuffer limit and any machine's memory

describe('large sizes', () => {
  test('toArray, toBytes and toNumbers of a tensor too large for an ArrayBuffer throw a PansegError, before copying', () => {
    const live = liveTensors();
    const one = zeros([1, 1]);
    const big = one.expand([2 ** 40, 2 ** 8]); // a view: no memory of its own
    const limit = Math.min(constants.MAX_LENGTH, totalmem());
    const why = over > constants.MAX_LENGTH ? `the largest ArrayBuffer Node allows (${constants.MAX_LENGTH} bytes)` : `this machine's memory (${totalmem()} bytes)`;
    assert.ok(limit < over);
    const msg = (op: string, dtype: string) => `${op}: a tensor of shape [1099511627776, 256] as ${dtype} is 1125899906842624 bytes (1048576.0 GiB), more than ${why}; copy it out in pieces with narrow() or slice()`;
    assert.throws(() => big.toArray(), { name: 'PansegError', message: msg('toArray', 'float32') });
    assert.throws(() => toBytes(big), { name: 'PansegError', message: msg('toBytes', 'float32') });
    assert.throws(() => big.toNumbers(), { name: 'PansegError', message: msg('toArray', 'float32') });
    const half = one.to('float16');
    const bigHalf = half.expand([2 ** 40, 2 ** 8]);
    // float16 widens to float32 for toArray: the check counts the widened copy.
    assert.throws(() => bigHalf.toArray(), { name: 'PansegError', message: msg('toArray', 'float32') });
    for (const t of [one, big, half, bigHalf]) t.dispose();
    assert.equal(liveTensors(), live);
  });

  test('oneHot with a huge class count names the bytes it would allocate', () => {
    const x = tensor([0, 1], undefined, { dtype: 'int64' });
    assert.throws(() => F.oneHot(x, 1e9), { name: 'PansegError', message: 'oneHot: numClasses 1000000000 asks for 1000000000 classes, which would allocate 16000000000 bytes of int64 for 2 indices; expected at most 1048576 classes' });
    const far = tensor([0, 5e9], undefined, { dtype: 'int64' });
    assert.throws(() => F.oneHot(far), { name: 'PansegError', message: 'oneHot: the largest index 5000000000 asks for 5000000001 classes, which would allocate 80000000016 bytes of int64 for 2 indices; expected at most 1048576 classes' });
    const ok = F.oneHot(x, 3);
    assert.deepEqual(ok.toNumbers(), [1, 0, 0, 0, 1, 0]);
    for (const t of [x, far, ok]) t.dispose();
  });

  test('creation functions refuse sizes over the machine memory, naming the bytes', () => {
    const mem = totalmem();
    assert.throws(() => zeros([2 ** 25, 2 ** 25]), { name: 'PansegError', message: `zeros: shape [33554432, 33554432] would allocate 4503599627370496 bytes (4194304.0 GiB) of float32, more than this machine's memory (${mem} bytes)` });
    assert.throws(() => arange(0, 1e15), { name: 'PansegError', message: `arange: arange(0, 1000000000000000, 1) would allocate 8000000000000000 bytes (7450580.6 GiB) of int64, more than this machine's memory (${mem} bytes)` });
    assert.throws(() => randperm(2 ** 50), { name: 'PansegError', message: /^randperm: randperm\(1125899906842624\) would allocate about 9\.007e\+15 bytes/ });
  });

  test('interpolate, pad and bincount check the output they would allocate', () => {
    const x = zeros([1, 1, 2, 2]);
    assert.throws(() => F.interpolate(x, { size: [2 ** 26, 2 ** 26] }), { name: 'PansegError', message: /^interpolate: an output of \[1, 1, 67108864, 67108864\] would allocate about 1\.801e\+16 bytes/ });
    assert.throws(() => F.interpolate(x, { scaleFactor: 1e8 }), { name: 'PansegError', message: /^interpolate: an output of \[1, 1, 200000000, 200000000\] would allocate about 1\.600e\+17 bytes/ });
    assert.throws(() => F.pad(x, [0, 2 ** 40]), { name: 'PansegError', message: /^pad: an output of \[1, 1, 2, 1099511627778\] would allocate 8796093022224 bytes/ });
    const i = tensor([1], undefined, { dtype: 'int64' });
    assert.throws(() => F.bincount(i, 2 ** 50), { name: 'PansegError', message: /^bincount: minlength 1125899906842624 would allocate about 9\.007e\+15 bytes/ });
    const ok = F.pad(x, [1, 1]);
    assert.deepEqual(ok.shape, [1, 1, 2, 4]);
    for (const t of [x, i, ok]) t.dispose();
  });
});
