// smp's Conv2dReLU (base/modules.py): conv -> norm -> ReLU as a Sequential, so its keys are `.0.weight`
// (conv) and `.1.*` (norm), and smp's `use_norm` option (0.5's replacement for `use_batchnorm`).
import { describe, fail } from '../../common/errors.js';
import { BatchNorm2d, Conv2d, Identity, type Layer, type OnnxEmitter, type OnnxValue, ReLU, Sequential } from '../../nn/index.js';

/** smp's `use_norm`: true = 'batchnorm', false = 'identity' (no norm; the conv gets a bias). */
export type NormOption = boolean | 'batchnorm' | 'identity';

const SMP_ONLY_NORMS = ['layernorm', 'instancenorm', 'inplace'];

/** Checks a `use_norm` value (strings case-insensitively, as smp) and returns whether it means BatchNorm. */
export function usesBatchNorm(op: string, name: string, useNorm: unknown): boolean {
  if (typeof useNorm === 'boolean') return useNorm;
  if (typeof useNorm === 'string') {
    const s = useNorm.toLowerCase();
    if (s === 'batchnorm') return true;
    if (s === 'identity') return false;
    if (SMP_ONLY_NORMS.includes(s)) fail(op, `${name} '${useNorm}' is one of smp's norms that panseg does not implement; use 'batchnorm' (true) or 'identity' (false)`);
  }
  if (typeof useNorm === 'object' && useNorm !== null && !Array.isArray(useNorm)) {
    fail(op, `${name} as an object ({ type, ...kwargs }, smp's custom-norm form) is not supported; use 'batchnorm' (true) or 'identity' (false)`);
  }
  return fail(op, `expected true, false, 'batchnorm' or 'identity' for ${name} but received ${describe(useNorm)}`);
}

export interface Conv2dReLUOptions {
  padding?: number;
  stride?: number;
  /** Default 'batchnorm'. */
  useNorm?: NormOption;
}

/** Conv2d (bias only without a norm) -> BatchNorm2d or Identity -> ReLU (in place). */
export class Conv2dReLU extends Sequential {
  constructor(inChannels: number, outChannels: number, kernelSize: number, o: Conv2dReLUOptions = {}) {
    const bn = usesBatchNorm('Conv2dReLU', 'useNorm', o.useNorm ?? 'batchnorm');
    super(
      new Conv2d(inChannels, outChannels, kernelSize, { stride: o.stride ?? 1, padding: o.padding ?? 0, bias: !bn }),
      bn ? new BatchNorm2d(outChannels) : new Identity(),
      new ReLU(true),
    );
  }

  /** One Conv (BatchNorm folded) + Relu. */
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    const [conv, norm] = [this.at(0), this.at(1)];
    // After optimizedForInference the pair may already be folded (conv with bias, Identity): the same call covers it.
    return e.conv(x, conv as Conv2d, norm as Layer, true, `${name}.0`);
  }
}
