// Bad input: every mistake gives a PansegError (or, for libtorch's own checks, an Error) whose
// message starts with the op's name; nothing crashes. Texts checked by TypeScript are asserted
// exactly; those from libtorch by an anchored pattern, as their wording belongs to PyTorch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  F, arange, autocast, empty, full, manualSeed, ones, rand, randint, randn, setNumThreads, tensor, tidy, zeros,
} from '../../src/engine/index.js';
import { PansegError } from '../../src/common/errors.js';

type Case = [string, () => unknown, string | RegExp];

function check(cases: Case[]): void {
  for (const [name, fn, want] of cases) {
    it(name, () => tidy(() => {
      let caught: unknown;
      try { fn(); } catch (e) { caught = e; }
      assert.ok(caught instanceof Error, `${name}: expected an Error, got ${String(caught)}`);
      const msg = caught.message;
      if (typeof want === 'string') {
        assert.equal(msg, want);
        assert.ok(caught instanceof PansegError, `${name}: a PansegError`);
      } else assert.match(msg, want);
    }));
  }
}

const int64 = { dtype: 'int64' } as const;
const x4 = () => randn([1, 3, 8, 8]);
const w3 = () => randn([4, 3, 3, 3]);

describe('wrong ranks and shapes', () => check([
  ['conv2d: 3-D input', () => F.conv2d(randn([3, 8, 8]), w3()), 'conv2d: expected input of 4 dims [N, C, H, W], got [3, 8, 8]'],
  ['conv2d: 3-D weight', () => F.conv2d(x4(), randn([4, 3, 3])), 'conv2d: expected weight of 4 dims [O, C/groups, kH, kW], got [4, 3, 3]'],
  ['conv2d: channel mismatch', () => F.conv2d(randn([1, 2, 8, 8]), w3()), 'conv2d: input has 2 channels but weight expects 3 (3 per group x 1 groups)'],
  ['conv2d: groups mismatch', () => F.conv2d(x4(), w3(), null, { groups: 2 }), 'conv2d: input has 3 channels but weight expects 6 (3 per group x 2 groups)'],
  ['conv2d: input smaller than kernel', () => F.conv2d(randn([1, 3, 2, 2]), w3()), 'conv2d: input 2x2 (padded 2x2) is smaller than the dilated kernel 3x3'],
  ['conv2d: bias shape', () => F.conv2d(x4(), w3(), randn([3])), 'conv2d: expected bias of shape [4], got [3]'],
  ['batchNorm: 1-D input', () => F.batchNorm(randn([3]), null, null, { training: true }), 'batchNorm: expected input of at least 2 dims [N, C, ...], got [3]'],
  ['batchNorm: weight shape', () => F.batchNorm(x4(), zeros([3]), ones([3]), { weight: ones([4]) }), 'batchNorm: expected weight of shape [3], got [4]'],
  ['batchNorm: one value per channel', () => F.batchNorm(randn([1, 3]), null, null, { training: true }),
    'batchNorm: expected more than 1 value per channel when training, got input [1, 3]; use a batch size > 1 or eval mode'],
  ['batchNorm: eval without running stats', () => F.batchNorm(x4(), null, null), 'batchNorm: running statistics are required in eval mode'],
  ['maxPool2d: 2-D input', () => F.maxPool2d(randn([8, 8]), 2), 'maxPool2d: expected input of 4 dims [N, C, H, W], got [8, 8]'],
  ['maxPool2d: kernel too big', () => F.maxPool2d(x4(), 9), 'maxPool2d: input 8x8 is smaller than the kernel 9x9'],
  ['maxPool2d: padding over half the kernel', () => F.maxPool2d(x4(), 2, { padding: 2 }), 'maxPool2d: padding [2, 2] should be at most half of kernelSize [2, 2]'],
  ['interpolate: 3-D input', () => F.interpolate(randn([3, 8, 8]), { size: 4 }), 'interpolate: expected input of 4 dims [N, C, H, W], got [3, 8, 8]'],
  ['linear: inner size', () => F.linear(randn([2, 5]), randn([3, 4])), "linear: input's last dim is 5 but weight expects 4"],
  ['crossEntropy: target shape', () => F.crossEntropy(randn([2, 3, 4, 4]), zeros([2, 4], int64)),
    'crossEntropy: expected target of shape [2, 4, 4] for input [2, 3, 4, 4], got [2, 4]'],
  ['crossEntropy: weight shape', () => F.crossEntropy(randn([2, 3]), zeros([2], int64), { weight: ones([2]) }), 'crossEntropy: expected weight of shape [3], got [2]'],
  ['crossEntropy: class out of range', () => F.crossEntropy(randn([2, 3]), tensor([0, 7], undefined, int64)), /^crossEntropy: Target 7 is out of bounds/],
  ['nllLoss: target shape', () => F.nllLoss(randn([2, 3]), zeros([3], int64)), 'nllLoss: expected target of shape [2] for input [2, 3], got [3]'],
  ['pad: odd count', () => F.pad(x4(), [1, 2, 3]), 'pad: expected an even number of integer pads (at most 8) but received [1, 2, 3]'],
  ['pad: reflect of the wrong rank', () => F.pad(x4(), [1, 1], { mode: 'reflect' }),
    "pad: mode 'reflect' with 2 pads needs an input of 2 or 3 dims, got [1, 3, 8, 8]; for [N, C, H, W] give 4 pads [left, right, top, bottom]"],
  ['pad: reflect wider than the input', () => F.pad(x4(), [9, 9, 0, 0], { mode: 'reflect' }), /^pad: .*Padding size should be less than the corresponding input dimension/],
  ['cat: mismatched sizes', () => F.cat([zeros([2, 3]), zeros([3, 2])], 1), /^cat: Sizes of tensors must match except in dimension 1/],
  ['cat: empty list', () => F.cat([]), 'cat: expected a non-empty array of tensors but received []'],
  ['stack: mismatched sizes', () => F.stack([zeros([2]), zeros([3])]), /^stack: stack expects each tensor to be equal size/],
  ['where: shapes', () => F.where(zeros([2]).eq(0), zeros([3]), zeros([2])), /^where: The size of tensor a \(2\) must match the size of tensor b \(3\)/],
  ['add: broadcast', () => zeros([2, 3]).add(zeros([4])), /^add: The size of tensor a \(3\) must match the size of tensor b \(4\) at non-singleton dimension 1$/],
  ['add_: result shape', () => zeros([2]).add_(zeros([3, 2])), "add_: output with shape [2] doesn't match the broadcast shape [3, 2]"],
  ['copy_: shape', () => zeros([2]).copy_(zeros([3])), /^copy_: The size of tensor a \(2\) must match/],
  ['matmul: shapes', () => zeros([2, 3]).matmul(zeros([2, 3])), /^matmul: mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)$/],
  ['reshape: element count', () => zeros([2, 3]).reshape(4, 2), 'reshape: shape [4, 2] is invalid for input of size 6 (shape [2, 3])'],
  ['view: incompatible strides', () => zeros([2, 3]).transpose(0, 1).view(6), /^view: view size is not compatible with input tensor's size and stride.*Use \.reshape\(\.\.\.\) instead\.$/],
  ['permute: too few dims', () => zeros([2, 3]).permute(0), 'permute: expected 2 dims for a tensor of shape [2, 3] but received [0]'],
  ['permute: repeated dim', () => zeros([2, 3]).permute(0, 0), 'permute: dims repeat in [0, 0]'],
  ['transpose: dim out of range', () => zeros([2, 3]).transpose(0, 2), 'transpose: expected dim1 in [-2, 1] for a tensor of 2 dims but received 2 of type number'],
  ['sum: dim out of range', () => zeros([2, 3]).sum(2), 'sum: expected dim in [-2, 1] for a tensor of 2 dims but received 2 of type number'],
  ['argmax: several dims', () => zeros([2, 3]).argmax([0, 1] as unknown as number), 'argmax: expected a single dim but received [0, 1]'],
  ['softmax: dim out of range', () => zeros([2, 3]).softmax(5), 'softmax: expected dim in [-2, 1] for a tensor of 2 dims but received 5 of type number'],
  ['unsqueeze: dim out of range', () => zeros([2, 3]).unsqueeze(3), 'unsqueeze: expected dim in [-3, 2] for a tensor of 3 dims but received 3 of type number'],
  ['expand: non-singleton', () => zeros([2, 3]).expand(4, 3), /^expand: The expanded size of the tensor \(4\) must match the existing size \(2\)/],
  ['narrow: past the end', () => zeros([2, 3]).narrow(1, 2, 2), 'narrow: expected integer in [0, 1] for length but received 2 of type number'],
  ['split: sizes do not sum', () => zeros([2, 3]).split([1, 1], 1), 'split: sizes [1, 1] must sum to 3, the size of dim 1'],
  ['indexSelect: index out of range', () => zeros([2, 3]).indexSelect(0, tensor([5], undefined, int64)), /^indexSelect: index out of range in self$/],
  ['item: many elements', () => zeros([2, 3]).item(), 'item: a tensor with 6 elements cannot be converted to a number'],
  ['size: dim out of range', () => zeros([2]).size(1), 'size: expected dim in [-1, 0] for a tensor of 1 dims but received 1 of type number'],
  ['contiguous: channelsLast of 2-D', () => zeros([3, 2]).contiguous('channelsLast'), 'contiguous: channelsLast needs a 4-D tensor, got [3, 2]'],
  ['tensor: ragged nesting', () => tensor([[1, 2], [3]]), 'tensor: nested arrays are ragged at depth 1: expected length 2, got 1'],
  ['tensor: shape vs data', () => tensor([1, 2, 3], [2, 2]), 'tensor: shape [2, 2] needs 4 elements but data has 3'],
  ['bincount: 2-D', () => F.bincount(zeros([2, 2], int64)), 'bincount: expected a 1-D input, got [2, 2]'],
]));

describe('wrong dtypes', () => check([
  ['conv2d: integer input', () => F.conv2d(x4().long(), w3()), 'conv2d: expected a floating-point input, got int64'],
  ['conv2d: float64 input with float32 weight', () => F.conv2d(x4().to('float64'), w3()), /^conv2d: expected scalar type Double but found Float$/],
  ['crossEntropy: float target', () => F.crossEntropy(randn([2, 3]), zeros([2])),
    "crossEntropy: expected target of dtype int64 (class indices), got float32; convert it with .to('int64')"],
  ['oneHot: float input', () => F.oneHot(zeros([3])), 'oneHot: expected an int64 tensor of class indices, got float32'],
  ['where: float condition', () => F.where(zeros([2]), zeros([2]), zeros([2])), 'where: expected a bool condition, got float32'],
  ['softmax: integer input', () => zeros([2, 3], int64).softmax(1), /^softmax: .*not implemented for 'Long'$/],
  ['mul_: int64 by a fraction', () => zeros([2], int64).mul_(0.5), "mul_: result type Float can't be cast to the desired output type Long"],
  ['indexSelect: float index', () => zeros([2, 3]).indexSelect(0, tensor([0])), /^indexSelect: index_select\(\): Expected dtype int32 or int64 for index$/],
  ['zeros: unknown dtype', () => zeros([2], { dtype: 'float128' as never }),
    "zeros: expected dtype one of float32, float64, float16, bfloat16, int64, int32, uint8, bool but received 'float128' of type string"],
  ['to: unknown dtype', () => zeros([2]).to({ dtype: 'int8' as never }),
    "to: expected dtype one of float32, float64, float16, bfloat16, int64, int32, uint8, bool but received 'int8' of type string"],
  ['tensor: Uint16Array', () => tensor(new Uint16Array(2)), 'tensor: unsupported typed array Uint16Array; use Float32Array, Float64Array, BigInt64Array, Int32Array or Uint8Array'],
  ['tensor: strings', () => tensor(['a'] as never), "tensor: expected numbers in data but received 'a' of type string"],
  ['add: a string operand', () => zeros([2]).add('1' as never), "add: expected a Tensor or a number for other but received '1' of type string"],
  ['conv2d: not a tensor', () => F.conv2d([1, 2] as never, w3()), 'conv2d: expected a Tensor for input but received [1, 2]'],
  ['requiresGrad_: integer tensor', () => zeros([2], int64).requiresGrad_(), 'requiresGrad_: Only Tensors of floating point and complex dtype can require gradients'],
  ['autocast: float32 is not a lower precision', () => autocast(() => 1, { dtype: 'float32' as never }),
    "autocast: expected one of 'bfloat16', 'float16' for dtype but received 'float32' of type string"],
]));

const CUDA_MSG = 'CUDA is not available: this panseg was built against a CPU libtorch. Set LIBTORCH to a CUDA libtorch and run `npm run setup`';
describe('devices', () => check([
  ['zeros on cuda (CPU build)', () => zeros([2], { device: 'cuda' }), `zeros: ${CUDA_MSG}`],
  ['randn on cuda:1 (CPU build)', () => randn([2], { device: 'cuda:1' }), `randn: ${CUDA_MSG}`],
  ['tensor on cuda (CPU build)', () => tensor([1], undefined, { device: 'cuda' }), `tensor: ${CUDA_MSG}`],
  ['to cuda (CPU build)', () => zeros([2]).to('cuda'), `to: ${CUDA_MSG}`],
  ['to { device: cuda } (CPU build)', () => zeros([2]).to({ device: 'cuda', dtype: 'float64' }), `to: ${CUDA_MSG}`],
  ['zeros on tpu', () => zeros([2], { device: 'tpu' }), "zeros: expected device 'cpu', 'cuda' or 'cuda:N' but received 'tpu' of type string"],
  ['to tpu', () => zeros([2]).to('tpu'), "to: expected device 'cpu', 'cuda' or 'cuda:N' but received 'tpu' of type string"],
  ['to a number', () => zeros([2]).to(3 as never), 'to: expected a dtype, a device or { dtype, device } but received 3 of type number'],
  ['autocast on tpu', () => autocast(() => 1, { deviceType: 'tpu' as never }), "autocast: expected one of 'cpu', 'cuda' for deviceType but received 'tpu' of type string"],
]));

describe('NaN, Infinity and fractions where a size or count is expected', () => check([
  ['zeros [NaN]', () => zeros([NaN]), 'zeros: expected an array of non-negative integers for shape but received [NaN]'],
  ['ones [Infinity]', () => ones([Infinity]), 'ones: expected an array of non-negative integers for shape but received [Infinity]'],
  ['empty [1.5]', () => empty([1.5]), 'empty: expected an array of non-negative integers for shape but received [1.5]'],
  ['rand [2, -3]', () => rand([2, -3]), 'rand: expected an array of non-negative integers for shape but received [2, -3]'],
  ['full [NaN]', () => full([NaN], 1), 'full: expected an array of non-negative integers for shape but received [NaN]'],
  ['full value NaN', () => full([2], NaN), 'full: expected number for value but received NaN of type number'],
  ['randint shape [NaN]', () => randint(0, 5, [NaN]), 'randint: expected an array of non-negative integers for shape but received [NaN]'],
  ['randint high <= low', () => randint(5, 5, [2]), 'randint: expected integer >= 6 for high but received 5 of type number'],
  ['arange to Infinity', () => arange(0, Infinity), 'arange: expected finite number for end but received Infinity of type number'],
  ['arange(NaN)', () => arange(NaN), 'arange: expected finite number for end but received NaN of type number'],
  ['arange step 0', () => arange(0, 5, 0), 'arange: step must be non-zero'],
  ['tensor shape [NaN]', () => tensor([1, 2, 3], [NaN]), 'tensor: expected an array of non-negative integers for shape but received [NaN]'],
  ['reshape(NaN, 6)', () => zeros([2, 3]).reshape(NaN, 6), 'reshape: expected a shape of non-negative integers with at most one -1 but received [NaN, 6]'],
  ['view(-1, -1)', () => zeros([2, 3]).view(-1, -1), 'view: expected a shape of non-negative integers with at most one -1 but received [-1, -1]'],
  ['expand(NaN, 3)', () => zeros([2, 3]).expand(NaN, 3), 'expand: expected a shape of integers >= -1 but received [NaN, 3]'],
  ['repeat([Infinity])', () => zeros([2]).repeat([Infinity]), 'repeat: expected an array of non-negative integers for repeats but received [Infinity]'],
  ['narrow length NaN', () => zeros([2, 3]).narrow(1, 0, NaN), 'narrow: expected integer in [0, 3] for length but received NaN of type number'],
  ['slice step 0', () => zeros([2, 3]).slice(1, 0, 3, 0), 'slice: expected positive integer for step but received 0 of type number'],
  ['split(NaN)', () => zeros([2, 3]).split(NaN), 'split: expected positive integer for size but received NaN of type number'],
  ['chunk(Infinity)', () => zeros([2, 3]).chunk(Infinity), 'chunk: expected positive integer for chunks but received Infinity of type number'],
  ['unsqueeze(NaN)', () => zeros([2]).unsqueeze(NaN), 'unsqueeze: expected dim in [-2, 1] for a tensor of 2 dims but received NaN of type number'],
  ['topk k beyond the dim', () => zeros([3]).topk(5), 'topk: expected integer in [0, 3] for k but received 5 of type number'],
  ['conv2d stride NaN', () => F.conv2d(x4(), w3(), null, { stride: NaN }), 'conv2d: expected an integer >= 1 or a pair of them for stride but received NaN of type number'],
  ['conv2d stride 0', () => F.conv2d(x4(), w3(), null, { stride: 0 }), 'conv2d: expected an integer >= 1 or a pair of them for stride but received 0 of type number'],
  ['maxPool2d kernel NaN', () => F.maxPool2d(x4(), NaN), 'maxPool2d: expected an integer >= 1 or a pair of them for kernelSize but received NaN of type number'],
  ['avgPool2d kernel 1.5', () => F.avgPool2d(x4(), 1.5), 'avgPool2d: expected an integer >= 1 or a pair of them for kernelSize but received 1.5 of type number'],
  ['adaptiveAvgPool2d Infinity', () => F.adaptiveAvgPool2d(x4(), Infinity), 'adaptiveAvgPool2d: expected an integer >= 1 or a pair of them for outputSize but received Infinity of type number'],
  ['interpolate size NaN', () => F.interpolate(x4(), { size: NaN }), 'interpolate: expected an integer >= 1 or a pair of them for size but received NaN of type number'],
  ['interpolate scaleFactor Infinity', () => F.interpolate(x4(), { scaleFactor: Infinity, mode: 'bilinear' }),
    'interpolate: expected a positive finite number or pair for scaleFactor but received Infinity of type number'],
  ['interpolate scaleFactor 0', () => F.interpolate(x4(), { scaleFactor: 0 }), 'interpolate: expected a positive finite number or pair for scaleFactor but received 0 of type number'],
  ['interpolate size and scaleFactor', () => F.interpolate(x4(), { size: 4, scaleFactor: 2 }), 'interpolate: expected exactly one of size or scaleFactor'],
  ['interpolate alignCorners with nearest', () => F.interpolate(x4(), { size: 4, alignCorners: true }),
    "interpolate: alignCorners only applies to bilinear and bicubic modes, not 'nearest'"],
  ['crossEntropy ignoreIndex NaN', () => F.crossEntropy(randn([2, 3]), zeros([2], int64), { ignoreIndex: NaN }),
    'crossEntropy: expected integer for ignoreIndex but received NaN of type number'],
  ['crossEntropy labelSmoothing 1.5', () => F.crossEntropy(randn([2, 3]), zeros([2], int64), { labelSmoothing: 1.5 }),
    'crossEntropy: expected finite number in [0, 1] for labelSmoothing but received 1.5 of type number'],
  ['batchNorm momentum NaN', () => F.batchNorm(x4(), zeros([3]), ones([3]), { momentum: NaN }),
    'batchNorm: expected finite number in [0, 1] for momentum but received NaN of type number'],
  ['dropout p NaN', () => F.dropout(x4(), NaN), 'dropout: expected finite number in [0, 1] for p but received NaN of type number'],
  ['dropout p 1.5', () => F.dropout(x4(), 1.5), 'dropout: expected finite number in [0, 1] for p but received 1.5 of type number'],
  ['pad [NaN, 1]', () => F.pad(x4(), [NaN, 1]), 'pad: expected an even number of integer pads (at most 8) but received [NaN, 1]'],
  ['oneHot numClasses NaN', () => F.oneHot(zeros([2], int64), NaN), 'oneHot: expected integer >= -1 for numClasses but received NaN of type number'],
  ['clamp min NaN', () => zeros([2]).clamp(NaN), 'clamp: expected number for min but received NaN of type number'],
  ['manualSeed -1', () => manualSeed(-1), 'manualSeed: expected integer in [0, 9007199254740991] for seed but received -1 of type number'],
  ['setNumThreads 0', () => setNumThreads(0), 'setNumThreads: expected integer in [1, 1024] for n but received 0 of type number'],
  ['normal_ negative std', () => zeros([3]).normal_(0, -1), 'normal_: expected finite number in [0, Infinity] for std but received -1 of type number'],
]));

describe('sizes too large to allocate fail cleanly', () => check([
  // Sizes over the machine's memory are refused in TS, naming the bytes (issue 15); libtorch's own errors are the fallback.
  ['zeros of 2^53 elements', () => zeros([2 ** 53]), /^zeros: shape \[9007199254740992\] would allocate about 3\.603e\+16 bytes \(33554432\.0 GiB\) of float32, more than this machine's memory/],
  ['empty with an overflowing size', () => empty([2 ** 31, 2 ** 31, 4]), /^empty: shape \[2147483648, 2147483648, 4\] would allocate about 7\.379e\+19 bytes/],
  ['interpolate to 2^40 x 2^40', () => F.interpolate(x4(), { size: 2 ** 40 }), /^interpolate: an output of \[1, 3, 1099511627776, 1099511627776\] would allocate/],
  ['repeat 2^40 times', () => ones([1]).repeat([2 ** 40]), /^repeat: .*can't allocate memory/],
]));

describe('disposed tensors', () => {
  const gone = () => { const t = zeros([2]); t.dispose(); return t; };
  const KEEP = 'keep it alive with keep() or return it from tidy()';
  check([
    ['method on a disposed tensor', () => gone().add(1), `add: this tensor was disposed; ${KEEP}`],
    ['in-place method on a disposed tensor', () => gone().zero_(), `zero_: this tensor was disposed; ${KEEP}`],
    ['reading a disposed tensor', () => gone().toArray(), `toArray: this tensor was disposed; ${KEEP}`],
    ['backward of a disposed tensor', () => gone().backward(), `backward: this tensor was disposed; ${KEEP}`],
    ['a disposed argument', () => zeros([2]).mul(gone()), `mul: an argument tensor was disposed; ${KEEP}`],
    ['a disposed source for copy_', () => zeros([2]).copy_(gone()), `copy_: an argument tensor was disposed; ${KEEP}`],
    ['F op with a disposed input', () => F.conv2d(gone(), w3()), 'conv2d: input was disposed'],
    ['F op with a disposed list entry', () => F.cat([zeros([2]), gone()]), 'cat: tensors[1] was disposed'],
    ['shape of a disposed tensor', () => gone().shape, `tensor: this tensor was disposed; ${KEEP}`],
  ]);
  it('dispose() twice and isDisposed', () => {
    const t = gone();
    t.dispose();
    assert.equal(t.isDisposed, true);
  });
});

describe('errors leave the engine usable', () => {
  it('after many failures, ops still work and nothing leaked', () => {
    for (let i = 0; i < 200; i++) {
      assert.throws(() => tidy(() => F.conv2d(randn([1, 2, 8, 8]), w3())));
      assert.throws(() => tidy(() => zeros([2, 3]).matmul(zeros([2, 3]))));
    }
    const y = tidy(() => F.conv2d(x4(), w3(), null, { padding: 1 }).shape);
    assert.deepEqual(y, [1, 4, 8, 8]);
  });
});
