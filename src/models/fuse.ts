// Inference-only rewrites: BatchNorm folded into the preceding convolution, optional
// channels-last memory order and reduced-precision weights.
import { fail } from '../common/errors.js';
import { noGrad, tidy } from '../engine/index.js';
import { BatchNorm2d, Conv2d, Identity, type Module, Sequential } from '../nn/index.js';

/** Child-name pairs (conv, its BatchNorm) in torchvision's and smp's module trees. */
const PAIRS: [string, string][] = [['conv1', 'bn1'], ['conv2', 'bn2'], ['conv3', 'bn3'], ['conv', 'bn'], ['0', '1']];

/** A Conv2d whose weight and bias absorb `bn` in eval mode: w' = w * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta. */
export function fuseConvBn(conv: Conv2d, bn: BatchNorm2d): Conv2d {
  if (!bn.runningMean || !bn.runningVar) fail('fuseConvBn', 'the BatchNorm has no running statistics to fold');
  const fused = new Conv2d(conv.inChannels, conv.outChannels, conv.kernelSize, {
    stride: conv.stride, padding: conv.padding, dilation: conv.dilation, groups: conv.groups, bias: true,
  });
  noGrad(() => tidy(() => {
    const scale = bn.runningVar!.add(bn.eps).rsqrt();
    const g = bn.weight ? scale.mul(bn.weight) : scale;
    fused.weight.copy_(conv.weight.mul(g.reshape(-1, 1, 1, 1)));
    const b0 = conv.bias ? conv.bias.sub(bn.runningMean!) : bn.runningMean!.neg();
    const b = b0.mul(g);
    fused.bias!.copy_(bn.bias ? b.add(bn.bias) : b);
  }));
  fused.eval();
  return fused;
}

/** Folds every (conv, BatchNorm) pair of `root` in place, replacing the BatchNorm by Identity. Returns the number folded. */
export function foldBatchNorms(root: Module): number {
  let n = 0;
  for (const [, m] of [...root.namedModules()]) {
    for (const [cn, bn] of PAIRS) {
      const conv = m._children.get(cn);
      const norm = m._children.get(bn);
      if (!(conv instanceof Conv2d) || !(norm instanceof BatchNorm2d)) continue;
      const fused = fuseConvBn(conv, norm);
      const id = new Identity();
      m._children.set(cn, fused);
      m._children.set(bn, id);
      if (m instanceof Sequential) {
        m.layers[m.layers.indexOf(conv)] = fused;
        m.layers[m.layers.indexOf(norm)] = id;
      }
      conv.dispose();
      norm.dispose();
      n++;
    }
  }
  return n;
}
