// Counting multiply-accumulates of convolutions and linear layers during a forward pass.
let counting = false;
let macs = 0;

/** @internal Called by Conv2d and Linear; `n` is only evaluated while counting. */
export function addMacs(n: () => number): void {
  if (counting) macs += n();
}

/** Runs `fn` and returns the multiply-accumulates its Conv2d/Linear layers performed (FLOPs = 2 x MACs). */
export function countMacs(fn: () => void): number {
  const prev = [counting, macs] as const;
  counting = true;
  macs = 0;
  try {
    fn();
    return macs;
  } finally {
    [counting, macs] = [prev[0], prev[1] + (prev[0] ? macs : 0)];
  }
}
