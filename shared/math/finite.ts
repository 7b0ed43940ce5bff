/** Finite checks on gradients, used on both sides of the wire (the codec and the reduction). */

/** Index of the first non-finite value, or -1. */
export function firstNonFinite(values: Float32Array): number {
  // Fast path: x * 0 is 0 for finite x and NaN otherwise; four sums keep the adder busy (2.5x a
  // plain loop). Only when one is NaN does the exact search run.
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const quads = values.length & ~3;
  let i = 0;
  for (; i < quads; i += 4) {
    s0 += (values[i] as number) * 0;
    s1 += (values[i + 1] as number) * 0;
    s2 += (values[i + 2] as number) * 0;
    s3 += (values[i + 3] as number) * 0;
  }
  for (; i < values.length; i++) s0 += (values[i] as number) * 0;
  if (s0 + s1 + s2 + s3 === 0) return -1;
  for (let k = 0; k < values.length; k++) {
    if (!Number.isFinite(values[k])) return k;
  }
  return -1;
}
