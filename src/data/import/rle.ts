// COCO run-length encoding: runs alternate background/foreground starting with background, over the pixels in
// column-major order (down each column, then the next column). Counts come as a number list or as COCO's
// compact string: each count (after the first two, minus the count two places back) in 5-bit groups, low group
// first, 0x20 marking "more groups follow", 0x10 in the last group the sign, each group plus 48 as an ASCII char.
import { fail } from '../../common/errors.js';

const MAX_GROUPS = 10; // 50 bits: beyond any real count, and still exact in a double

/**
 * Decodes COCO's compressed RLE string to run lengths.
 * @throws a PansegError (`op: ...`) on a character outside the alphabet, a count longer than 50 bits or a negative count
 * @example decodeRleString('52203') // [20, 0, 3] style counts (see encodeRleString)
 */
export function decodeRleString(s: string, op = 'rle'): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= s.length) fail(op, `the RLE string ends inside a count (at character ${p}); it is truncated`);
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) fail(op, `the RLE string has ${JSON.stringify(s[p])} at character ${p}; COCO's alphabet is ASCII 48-111`);
      if (k >= MAX_GROUPS) fail(op, `the RLE string has a count longer than ${5 * MAX_GROUPS} bits at character ${p}`);
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x -= 2 ** (5 * k); // sign-extend the last group
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    if (x < 0) fail(op, `the RLE string decodes to a negative run (${x}) at count ${counts.length}`);
    counts.push(x);
  }
  return counts;
}

/** Encodes run lengths as COCO's compressed RLE string (the inverse of {@link decodeRleString}). */
export function encodeRleString(counts: readonly number[]): string {
  let s = '';
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i] - (i > 2 ? counts[i - 2] : 0);
    for (;;) {
      const group = ((x % 32) + 32) % 32; // low 5 bits, two's complement
      x = (x - group) / 32;
      const more = group & 0x10 ? x !== -1 : x !== 0;
      s += String.fromCharCode(48 + group + (more ? 0x20 : 0));
      if (!more) break;
    }
  }
  return s;
}

/**
 * Paints an RLE mask (column-major runs) into a row-major `h x w` mask: `value` where the RLE is foreground.
 * @param target row-major, h * w long; null: only check the counts and return the area
 * @returns the number of foreground pixels
 * @throws a PansegError when a count is not a non-negative integer or the counts do not add up to h * w
 */
export function paintRle(counts: readonly number[], h: number, w: number, target: Uint8Array | null, value: number, op = 'rle'): number {
  const n = h * w;
  let total = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (!Number.isSafeInteger(c) || c < 0) fail(op, `RLE count ${i} is ${String(c)}; counts are non-negative integers`);
    total += c;
  }
  if (total !== n) fail(op, `the RLE counts add up to ${total} pixels but the mask is ${h}x${w} = ${n}; the counts or "size" are wrong`);
  let p = 0;
  let area = 0;
  for (let i = 0; i < counts.length; i++) {
    const end = p + counts[i];
    if (i % 2 === 1) {
      area += counts[i];
      if (target) for (let q = p; q < end; q++) {
        const col = Math.floor(q / h);
        target[(q - col * h) * w + col] = value;
      }
    }
    p = end;
  }
  return area;
}

/** Encodes a row-major binary mask (non-zero = foreground) as COCO run lengths in column-major order. */
export function maskToRle(mask: ArrayLike<number>, h: number, w: number): number[] {
  const counts: number[] = [];
  let cur = 0;
  let run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = mask[y * w + x] ? 1 : 0;
      if (v !== cur) {
        counts.push(run);
        run = 0;
        cur = v;
      }
      run++;
    }
  }
  counts.push(run);
  return counts;
}
