/**
 * Splitting counts: a total in proportion to weights, and the runs of a batch's virtual batches
 * (units no split may cut). Pure; used by the coordinator's plan and by a node that splits its
 * part among its devices.
 */

/**
 * Divides `total` samples in proportion to `weights` (largest-remainder rounding; ties go to the
 * lower index). Equal weights give sizes that differ by at most one, larger ones first:
 * 32 over 3 -> [11, 11, 10]; 2 over 4 -> [1, 1, 0, 0].
 */
export function splitCounts(total: number, weights: readonly number[]): number[] {
  if (!Number.isInteger(total) || total < 0) throw new RangeError(`total must be a non-negative integer, got ${total}`);
  if (weights.length === 0) throw new RangeError('cannot split a batch over zero participants');
  let sum = 0;
  for (const w of weights) {
    if (!(w >= 0) || !Number.isFinite(w)) throw new RangeError(`weights must be finite and >= 0, got ${w}`);
    sum += w;
  }
  if (sum === 0) throw new RangeError('at least one weight must be positive');
  const exact = weights.map((w) => (total * w) / sum);
  const counts = exact.map((x) => Math.floor(x));
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = exact
    .map((x, i) => ({ i, frac: x - Math.floor(x) }))
    .sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (let k = 0; left > 0; k++, left--) {
    const slot = order[k % order.length] as { i: number };
    counts[slot.i] = (counts[slot.i] as number) + 1;
  }
  return counts;
}

/** The exclusive ends of the runs of equal groups in `groups` (rows of one group are consecutive). */
export function runEnds(groups: Int32Array): Int32Array {
  const ends: number[] = [];
  for (let i = 1; i <= groups.length; i++) if (i === groups.length || groups[i] !== groups[i - 1]) ends.push(i);
  return Int32Array.from(ends);
}
