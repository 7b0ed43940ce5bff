/**
 * ShardPlan: which contiguous range of the training set each worker node holds. Nodes receive
 * their range once (in chunks) instead of rows every step. When nodes join or leave, the plan
 * is recomputed and each node is sent only the rows of its new range it does not hold yet
 * (it keeps what it has). Pure functions over row ranges.
 */
import type { RowRange } from '../data/dataset.js';

/** `n` rows cut into `k` contiguous ranges whose sizes differ by at most one (larger first). */
export function partitionRows(n: number, k: number): RowRange[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`rows must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`parts must be a positive integer, got ${k}`);
  const ranges: RowRange[] = [];
  let start = 0;
  for (let i = 0; i < k; i++) {
    const count = Math.floor(n / k) + (i < n % k ? 1 : 0);
    ranges.push({ start, count });
    start += count;
  }
  return ranges;
}

/** The parts of `want` not covered by `held` (held ranges may overlap and come in any order). */
export function missingRanges(held: readonly RowRange[], want: RowRange): RowRange[] {
  const sorted = [...held].filter((r) => r.count > 0).sort((a, b) => a.start - b.start);
  const missing: RowRange[] = [];
  let cursor = want.start;
  const end = want.start + want.count;
  for (const r of sorted) {
    if (r.start + r.count <= cursor) continue;
    if (r.start >= end) break;
    if (r.start > cursor) missing.push({ start: cursor, count: r.start - cursor });
    cursor = Math.max(cursor, r.start + r.count);
    if (cursor >= end) break;
  }
  if (cursor < end) missing.push({ start: cursor, count: end - cursor });
  return missing;
}

/** Splits a range into chunks of at most `maxRows` rows (for messages under the size limit). */
export function chunkRange(range: RowRange, maxRows: number): RowRange[] {
  if (!Number.isInteger(maxRows) || maxRows < 1) throw new RangeError(`maxRows must be a positive integer, got ${maxRows}`);
  const chunks: RowRange[] = [];
  for (let start = range.start; start < range.start + range.count; start += maxRows) {
    chunks.push({ start, count: Math.min(maxRows, range.start + range.count - start) });
  }
  return chunks;
}

/** Whether `row` lies in one of `ranges`. */
export function inRanges(ranges: readonly RowRange[], row: number): boolean {
  for (const r of ranges) if (row >= r.start && row < r.start + r.count) return true;
  return false;
}
