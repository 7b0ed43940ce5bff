/**
 * Dropout masks as a pure function of (seed, step, training row, element): a counter-based hash
 * (no stream state), so a row's mask is the same whichever participant computes it and in
 * whatever order, and the split of a batch cannot change the model.
 */

/** A 32-bit integer hash with good avalanche (the "lowbias32" finaliser). */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The key of one row's mask in one step: every element's draw derives from it. */
export function rowKey(seed: number, step: number, row: number): number {
  return mix32(mix32(mix32(seed ^ 0x2545f491) ^ step) ^ Math.imul(row, 0x9e3779b9));
}

/** Element `j`'s uniform draw in [0, 1) under a row's key. */
export function elementDraw(key: number, j: number): number {
  return mix32((key + Math.imul(j, 0x85ebca6b)) >>> 0) / 4294967296;
}

/**
 * Multipliers for `rows.length` rows of `perRow` elements, written into `out`: 0 for a dropped
 * element (probability `rate`), 1 / (1 - rate) for a kept one (as tf.dropout scales them).
 */
export function dropoutMask(seed: number, step: number, rows: ArrayLike<number>, perRow: number, rate: number, out = new Float32Array(rows.length * perRow)): Float32Array {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropout rate must be in [0, 1), got ${rate}`);
  if (out.length !== rows.length * perRow) throw new RangeError(`mask has ${out.length} values, ${rows.length} rows of ${perRow} need ${rows.length * perRow}`);
  const keep = Math.fround(1 / (1 - rate));
  for (let r = 0; r < rows.length; r++) {
    const key = rowKey(seed, step, rows[r]!);
    const base = r * perRow;
    for (let j = 0; j < perRow; j++) out[base + j] = elementDraw(key, j) < rate ? 0 : keep;
  }
  return out;
}
