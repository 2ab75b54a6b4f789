// Segmentation losses on logits [N, C, H, W] and int64 targets [N, H, W] with an ignore index.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { F, type Tensor, tensor, tidy } from '../engine/index.js';

export interface LossOptions {
  ignoreIndex?: number;
}

export interface CrossEntropyLossOptions extends LossOptions {
  /** Per-class weights. */
  classWeights?: number[] | null;
  labelSmoothing?: number;
}

export type LossFn = (logits: Tensor, target: Tensor) => Tensor;

export function crossEntropyLoss(o: CrossEntropyLossOptions = {}): LossFn {
  const ignoreIndex = o.ignoreIndex ?? 255;
  return (logits, target) => tidy(() => {
    const weight = o.classWeights ? tensor(o.classWeights, undefined, { dtype: logits.dtype, device: logits.device }) : null;
    return F.crossEntropy(logits, target, { weight, ignoreIndex, labelSmoothing: o.labelSmoothing ?? 0 });
  });
}

/** Softmax probabilities, one-hot targets and the valid-pixel mask [N, 1, H, W] (ignored pixels 0). */
function probsAndOneHot(logits: Tensor, target: Tensor, ignoreIndex: number): { probs: Tensor; onehot: Tensor; valid: Tensor } {
  const c = logits.shape[1];
  const validBool = target.ne(ignoreIndex);
  const safe = F.where(validBool, target, target.mul(0));
  const valid = validBool.unsqueeze(1).to(logits.dtype);
  const onehot = F.oneHot(safe, c).permute(0, 3, 1, 2).to(logits.dtype).mul(valid);
  return { probs: logits.softmax(1).mul(valid), onehot, valid };
}

/**
 * Multiclass soft Dice loss (smp's DiceLoss in multiclass mode): per class over the batch,
 * 1 - 2|P∩T| / (|P| + |T|), averaged over the classes present in the target (smp zeroes absent
 * classes too but divides by all classes, so its value is smaller when classes are absent).
 */
export function diceLoss(o: LossOptions & { smooth?: number; eps?: number } = {}): LossFn {
  const ignoreIndex = o.ignoreIndex ?? 255;
  const smooth = o.smooth ?? 0;
  const eps = o.eps ?? 1e-7;
  return (logits, target) => tidy(() => {
    const { probs, onehot } = probsAndOneHot(logits, target, ignoreIndex);
    const dims = [0, 2, 3];
    const inter = probs.mul(onehot).sum(dims);
    const card = probs.add(onehot).sum(dims);
    const dice = inter.mul(2).add(smooth).div(card.add(smooth).clamp(eps));
    const present = onehot.sum(dims).gt(0).to(logits.dtype);
    return dice.rsub(1).mul(present).sum().div(present.sum().clamp(1));
  });
}

/** Focal loss (Lin et al.): mean over valid pixels of -alpha (1 - p_t)^gamma log p_t. */
export function focalLoss(o: LossOptions & { gamma?: number; alpha?: number } = {}): LossFn {
  const ignoreIndex = o.ignoreIndex ?? 255;
  const gamma = o.gamma ?? 2;
  const alpha = o.alpha ?? 1;
  return (logits, target) => tidy(() => {
    const logpt = F.crossEntropy(logits, target, { ignoreIndex, reduction: 'none' }).neg(); // 0 where ignored
    const pt = logpt.exp();
    const valid = target.ne(ignoreIndex).to(logits.dtype);
    const loss = pt.rsub(1).pow(gamma).mul(logpt).mul(-alpha).mul(valid);
    return loss.sum().div(valid.sum().clamp(1));
  });
}

export type LossName = 'ce' | 'dice' | 'focal';
export interface LossTerm {
  name: LossName;
  weight?: number;
}

/** A weighted sum of losses, e.g. `[{ name: 'ce' }, { name: 'dice', weight: 0.5 }]`. */
export function combinedLoss(terms: LossTerm[], o: CrossEntropyLossOptions = {}): LossFn {
  if (!Array.isArray(terms) || !terms.length) fail('loss', 'expected at least one loss term');
  const fns = terms.map((t) => {
    const w = v.num('loss', `weight of ${t.name}`, t.weight ?? 1, { min: 0 });
    const fn = t.name === 'ce' ? crossEntropyLoss(o) : t.name === 'dice' ? diceLoss(o) : t.name === 'focal' ? focalLoss(o)
      : fail('loss', `unknown loss '${String(t.name)}'; valid: ce, dice, focal`);
    return { w, fn };
  });
  return (logits, target) => tidy(() => fns.map(({ w, fn }) => fn(logits, target).mul(w)).reduce((a, b) => a.add(b)));
}

/** Parses 'ce', 'ce+dice', 'ce+0.5*dice' into loss terms. */
export function parseLoss(spec: string): LossTerm[] {
  return spec.split('+').map((part) => {
    const m = /^\s*(?:([\d.]+)\s*\*\s*)?(ce|dice|focal)\s*$/.exec(part);
    if (!m) fail('loss', `cannot parse '${part}' in '${spec}'; use e.g. 'ce', 'ce+dice' or 'ce+0.5*dice'`);
    return { name: m[2] as LossName, weight: m[1] ? Number(m[1]) : 1 };
  });
}

/** Auxiliary-head loss: cross-entropy of class-presence logits against multi-hot targets from the mask. */
export function auxPresenceLoss(labels: Tensor, target: Tensor, classes: number, ignoreIndex = 255): Tensor {
  return tidy(() => {
    const n = target.shape[0];
    const flat = target.reshape(n, -1);
    const valid = flat.ne(ignoreIndex);
    const safe = F.where(valid, flat, flat.mul(0));
    const presence = F.oneHot(safe, classes).mul(valid.unsqueeze(2).to('int64')).max(1).to(labels.dtype);
    return F.binaryCrossEntropyWithLogits(labels, presence);
  });
}
