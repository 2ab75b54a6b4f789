// smp's encoder utilities (encoders/_utils.py), shared by every family: dilation in place of strides,
// and the first conv patched for another number of input channels, found by its in-channels.
import { fail } from '../../common/errors.js';
import { noGrad, tensor, tidy } from '../../engine/index.js';
import { Conv2d, type Module, Sequential } from '../../nn/index.js';

/**
 * smp's replace_strides_with_dilation: every Conv2d under `m` gets stride 1, dilation `rate` and
 * padding (kH // 2) * rate on both axes (smp uses the kernel height for both; all kernels here are square).
 */
export function replaceStridesWithDilation(m: Module, rate: number): void {
  for (const [, c] of m.namedModules()) {
    if (!(c instanceof Conv2d)) continue;
    const pad = Math.floor(c.kernelSize[0] / 2) * rate;
    c.stride = [1, 1];
    c.dilation = [rate, rate];
    c.padding = [pad, pad];
  }
}

/**
 * smp's make_dilated: each stage deeper than `outputStride` has its strides replaced by dilation
 * stage / outputStride (16: the 1/32 stage by 2; 8: the 1/16 stage by 2 and the 1/32 stage by 4).
 * `stages` maps a stage's stride to its modules (smp's get_stages).
 */
export function makeDilated(stages: ReadonlyMap<number, readonly Module[]>, outputStride: number): void {
  if (outputStride !== 8 && outputStride !== 16) fail('makeDilated', `expected output stride 16 or 8 but received ${outputStride}`);
  for (const [stride, modules] of stages) {
    if (stride <= outputStride) continue;
    for (const m of modules) replaceStridesWithDilation(m, stride / outputStride);
  }
}

/** The dotted path of the first Conv2d (in module order) with `inChannels` input channels, as smp's patch_first_conv finds it. */
export function findFirstConv(root: Module, inChannels: number): string {
  for (const [path, m] of root.namedModules()) if (m instanceof Conv2d && m.inChannels === inChannels) return path;
  return fail('patchFirstConv', `no Conv2d with ${inChannels} input channels to patch`);
}

/** The module at a dotted path below `root`. */
export function moduleAt(root: Module, path: string): Module {
  return path.split('.').reduce((m, name) => m.getChild(name), root);
}

/** Replaces the module at `path` (keeping its place in the state_dict order) and disposes the old one. */
export function replaceModuleAt(root: Module, path: string, m: Module): void {
  const names = path.split('.');
  const name = names.pop()!;
  const parent = names.reduce((p, n) => p.getChild(n), root);
  const old = parent.getChild(name);
  parent._children.set(name, m);
  if (parent instanceof Sequential) parent.layers[parent.layers.indexOf(old as never)] = m as never;
  old.dispose();
}

/** A Conv2d with `conv`'s geometry and bias but `inChannels` inputs (PyTorch's default init). */
export function convLike(conv: Conv2d, inChannels: number): Conv2d {
  return new Conv2d(inChannels, conv.outChannels, conv.kernelSize, {
    stride: conv.stride, padding: conv.padding, dilation: conv.dilation, groups: conv.groups, bias: conv.bias !== null,
  });
}

/**
 * smp's patch_first_conv on the conv at `path` (a conv with 3 input channels), for `inChannels` inputs.
 * Random weights (pretrained false): a fresh conv with PyTorch's default init (smp: reset_parameters).
 * Pretrained: 1 channel sums the RGB kernels; n channels cycle them (w[:, i % 3]), scaled by 3 / n.
 */
export function patchFirstConv(root: Module, path: string, inChannels: number, pretrained: boolean): void {
  const conv = moduleAt(root, path);
  if (!(conv instanceof Conv2d) || conv.inChannels !== 3) fail('patchFirstConv', `${path} is not a Conv2d with 3 input channels`);
  if (conv.groups !== 1) fail('patchFirstConv', `${path} is a grouped conv; smp patches only ungrouped first convs`);
  const fresh = convLike(conv, inChannels);
  if (pretrained) {
    noGrad(() => tidy(() => {
      const rgb = conv.weight;
      const idx = tensor(Array.from({ length: inChannels }, (_, i) => i % 3), [inChannels], { dtype: 'int64' });
      fresh.weight.copy_(inChannels === 1 ? rgb.sum(1, true) : rgb.indexSelect(1, idx).mul(3 / inChannels));
      if (conv.bias) fresh.bias!.copy_(conv.bias);
    }));
  }
  replaceModuleAt(root, path, fresh);
}
