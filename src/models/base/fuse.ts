// Inference-only rewrites: BatchNorm folded into the preceding convolution, convolutions packed for
// oneDNN's blocked layout, optional channels-last memory order and reduced-precision weights.
import { fail } from '../../common/errors.js';
import { noGrad, type Tensor, tidy } from '../../engine/index.js';
import { BatchNorm2d, Conv2d, Identity, type Layer, MkldnnConv2d, type Module, Sequential } from '../../nn/index.js';

/** The Conv2d a following BatchNorm normalizes: `m` itself, or the last layer of a Sequential ending in one (smp's SeparableConv2d). */
export function trailingConv(m: unknown): Conv2d | null {
  if (m instanceof Conv2d) return m;
  if (m instanceof Sequential && m.layers.length) return trailingConv(m.layers[m.layers.length - 1]);
  return null;
}

/**
 * The one rule for (conv, BatchNorm) pairs, here and in the ONNX exporter: a BatchNorm2d registered
 * right after a Conv2d (or a Sequential ending in one) in the same parent, over the conv's output
 * channels. It holds for torchvision's blocks (conv1/bn1, downsample.0/.1) and smp's (conv/bn,
 * Sequential conv, norm, relu; SeparableConv2d, norm).
 */
export function isConvBnPair(conv: unknown, bn: unknown): bn is BatchNorm2d {
  const c = trailingConv(conv);
  return c !== null && bn instanceof BatchNorm2d && bn.numFeatures === c.outChannels;
}

/** Replaces `parent`'s child `name` (keeping a Sequential's layer list in step). */
function replaceChild(parent: Module, name: string, m: Module): void {
  const old = parent._children.get(name)!;
  parent._children.set(name, m);
  if (parent instanceof Sequential) parent.layers[parent.layers.indexOf(old as Layer)] = m as Layer;
}

/** The [conv name, BatchNorm name] pairs among `m`'s direct children. */
export function convBnPairs(m: Module): [string, string][] {
  const names = [...m._children.keys()];
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < names.length; i++) {
    if (isConvBnPair(m._children.get(names[i]), m._children.get(names[i + 1]))) out.push([names[i], names[i + 1]]);
  }
  return out;
}

/**
 * The weight and bias of `conv` with eval-mode `bn` folded in: w' = w * g / sqrt(v + eps),
 * b' = (b - m) * g / sqrt(v + eps) + beta. Computed in float64 and rounded once to the conv's dtype.
 * Used for inference copies and by the ONNX exporter.
 */
export function foldedConvBnParams(conv: Conv2d, bn: BatchNorm2d): { weight: Tensor; bias: Tensor } {
  const mean = bn.runningMean;
  const variance = bn.runningVar;
  if (!mean || !variance) fail('fuseConvBn', 'the BatchNorm has no running statistics to fold');
  return noGrad(() => tidy(() => {
    const f64 = (t: Tensor) => t.to('float64');
    const scale = f64(variance).add(bn.eps).rsqrt();
    const g = bn.weight ? scale.mul(f64(bn.weight)) : scale;
    const weight = f64(conv.weight).mul(g.reshape(-1, 1, 1, 1));
    let bias = (conv.bias ? f64(conv.bias).sub(f64(mean)) : f64(mean).neg()).mul(g);
    if (bn.bias) bias = bias.add(f64(bn.bias));
    return { weight: weight.to(conv.weight.dtype), bias: bias.to(conv.weight.dtype) };
  }));
}

/** A Conv2d (with bias) that computes conv followed by `bn` in eval mode. */
export function fuseConvBn(conv: Conv2d, bn: BatchNorm2d): Conv2d {
  const { weight, bias } = foldedConvBnParams(conv, bn);
  const fused = new Conv2d(conv.inChannels, conv.outChannels, conv.kernelSize, {
    stride: conv.stride, padding: conv.padding, dilation: conv.dilation, groups: conv.groups, bias: true,
  });
  noGrad(() => {
    fused.weight.copy_(weight);
    fused.bias!.copy_(bias);
  });
  weight.dispose();
  bias.dispose();
  fused.eval();
  return fused;
}

/** Folds every (conv, BatchNorm) pair of `root` in place, replacing the BatchNorm by Identity. Returns the number folded. */
export function foldBatchNorms(root: Module): number {
  let n = 0;
  for (const [, m] of [...root.namedModules()]) {
    for (const [cn, bn] of convBnPairs(m)) {
      // The conv to replace and its parent: the child itself, or the last layer down a Sequential chain.
      let parent: Module = m;
      let name = cn;
      while (parent._children.get(name) instanceof Sequential) {
        const s = parent._children.get(name) as Sequential;
        [parent, name] = [s, String(s.layers.length - 1)];
      }
      const conv = parent._children.get(name) as Conv2d;
      const norm = m._children.get(bn) as BatchNorm2d;
      replaceChild(parent, name, fuseConvBn(conv, norm));
      replaceChild(m, bn, new Identity());
      conv.dispose();
      norm.dispose();
      n++;
    }
  }
  return n;
}

/**
 * Replaces every Conv2d of `root` (BatchNorm already folded) by an MkldnnConv2d. Those under a path
 * for which `blocked(path)` holds keep blocked outputs; the others return strided tensors, for ops
 * oneDNN has no blocked kernel for (interpolation, broadcasting multiply, sigmoid). Returns the count.
 */
export function packConvsForMkldnn(root: Module, blocked: (path: string) => boolean): number {
  let n = 0;
  for (const [path, m] of [...root.namedModules()]) {
    for (const [name, conv] of [...m._children]) {
      if (!(conv instanceof Conv2d) || conv instanceof MkldnnConv2d) continue;
      const packed = new MkldnnConv2d(conv, { blockedOutput: blocked(path ? `${path}.${name}` : name) });
      m._children.set(name, packed);
      if (m instanceof Sequential) m.layers[m.layers.indexOf(conv)] = packed;
      conv.dispose();
      n++;
    }
  }
  return n;
}
