// The one rule for valid input sizes: H and W multiples of the model's output stride and at least its
// minimum. Shared by models, padding, export, onnxruntime inference and the CLI.
import { fail } from './errors.js';

/** What a model accepts: sides divisible by `stride`, and at least `min`. */
export interface InputSizeRule {
  stride: number;
  min: number;
}

/** The smallest valid side >= n. */
export function validSide(n: number, r: InputSizeRule): number {
  return Math.max(r.min, Math.ceil(n / r.stride) * r.stride);
}

/** The size an h x w input is padded to. */
export function paddedSize(h: number, w: number, r: InputSizeRule): [number, number] {
  return [validSide(h, r), validSide(w, r)];
}

/** Throws `op: ...` naming the size that would work when h x w is not valid. */
export function checkInputSize(op: string, h: number, w: number, r: InputSizeRule, why = ''): void {
  const [ph, pw] = paddedSize(h, w, r);
  if (h % r.stride || w % r.stride) fail(op, `input height and width must be divisible by the output stride ${r.stride}, got ${h}x${w}; pad it to ${ph}x${pw} (see padToMultiple)`);
  if (h < r.min || w < r.min) fail(op, `input ${h}x${w} is too small: H and W must be >= ${r.min} at output stride ${r.stride}${why ? ` (${why})` : ''}; pad it to ${ph}x${pw}`);
}
