// Conv2d for inference copies on CPU: the weight reordered once into oneDNN's blocked format, and
// activations that can stay blocked from one convolution to the next (see optimizedForInference).
import { type ConvAlgorithm, mkldnnConv2d, noGrad, packConv2dWeight, type Tensor, winogradApplies } from '../engine/index.js';
import { addMacs } from './flops.js';
import { Conv2d } from './layers.js';

/**
 * A Conv2d (BatchNorm already folded into it) whose weight is packed for oneDNN. It takes strided or
 * blocked input; it returns blocked tensors when `blockedOutput` (for layers feeding other blocked
 * ops: convolutions, ReLU, add, max pooling) and strided ones otherwise. Inference only.
 */
export class MkldnnConv2d extends Conv2d {
  readonly blockedOutput: boolean;
  /** Winograd where oneDNN has it for this shape (see winogradApplies), else direct. */
  readonly algorithm: ConvAlgorithm;

  /** Packs a copy of `conv`'s CPU float32/bfloat16 weight; `conv` itself is left unchanged. */
  constructor(conv: Conv2d, opts: { blockedOutput?: boolean } = {}) {
    super(conv.inChannels, conv.outChannels, conv.kernelSize, {
      stride: conv.stride, padding: conv.padding, dilation: conv.dilation, groups: conv.groups, bias: conv.bias !== null,
    });
    this.blockedOutput = opts.blockedOutput ?? true;
    const geometry = { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups };
    this.algorithm = winogradApplies(conv.weight.shape, { ...geometry, dtype: conv.weight.dtype }) ? 'winograd' : 'direct';
    noGrad(() => {
      this.replace('weight', packConv2dWeight(conv.weight, { ...geometry, algorithm: this.algorithm }));
      if (conv.bias) this.replace('bias', conv.bias.clone());
    });
    this.eval();
  }

  override forward(x: Tensor): Tensor {
    const y = mkldnnConv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups, algorithm: this.algorithm, blockedOutput: this.blockedOutput });
    addMacs(() => y.numel * (this.inChannels / this.groups) * this.kernelSize[0] * this.kernelSize[1]);
    return y;
  }
}
