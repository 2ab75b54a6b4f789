// Dataset-independent label options: a configurable ignore value and mmseg's reduce_zero_label,
// folded into the dataset's lookup table so workers apply them with no extra pass.
import { fail } from '../../common/errors.js';
import { Dataset, type LabelOptions } from './dataset.js';

/**
 * Returns `ds` with `ignoreIndex` and `reduceZeroLabel` applied to its label lookup table (or `ds` itself when neither is set).
 * `ignoreIndex` N: stored N is ignored (the layout's own void values are ignored as N too). `reduceZeroLabel`:
 * stored 0 is ignored and v becomes v - 1, as in mmseg (ADE20K's 150 classes are stored as 1..150).
 * @example withLabelOptions(openFolder('data/ade'), { reduceZeroLabel: true })
 */
export function withLabelOptions(ds: Dataset, o: LabelOptions): Dataset {
  const op = ds.name;
  const { ignoreIndex, reduceZeroLabel } = o;
  if (ignoreIndex === undefined && !reduceZeroLabel) return ds;
  const k = ds.numClasses;
  const old = ds.ignoreIndex;
  let ign = old;
  if (ignoreIndex !== undefined) {
    if (!Number.isInteger(ignoreIndex) || ignoreIndex < 0 || ignoreIndex > 255) fail(op, `expected an integer 0-255 for ignoreIndex (--ignore-index) but received ${String(ignoreIndex)}`);
    if (ignoreIndex < k) {
      fail(op, `ignoreIndex ${ignoreIndex} is a class index (classes 0-${k - 1}); pick a value from ${k} to 255${ignoreIndex === 0 ? ', or pass reduceZeroLabel (--reduce-zero-label) to ignore 0 and shift the other values down' : ''}`);
    }
    ign = ignoreIndex;
  }
  if (reduceZeroLabel !== undefined && typeof reduceZeroLabel !== 'boolean') fail(op, `expected true or false for reduceZeroLabel but received ${String(reduceZeroLabel)}`);
  const base = ds.spec.labels.lut;
  const lut = Array.from({ length: 256 }, (_, r) => {
    const v = base ? base[r] : r;
    // A layout's void (mapped to its old ignore value) stays void under the new value.
    const mapped = base && v === old ? ign : v;
    if (!reduceZeroLabel) return mapped;
    if (r === 0 || mapped === ign) return ign;
    return mapped - 1;
  });
  return new Dataset({ ...ds.spec, ignoreIndex: ign, labels: { ...ds.spec.labels, lut } });
}
