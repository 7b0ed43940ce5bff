import { describe, expect, it } from 'vitest';
import { Rng } from '../shared/math/rng.js';
import { epochBatches, epochOrder, planBatch, splitCounts, stepsPerEpoch } from '../shared/math/split-plan.js';

describe('splitCounts', () => {
  it('splits 32 over 3 equal participants as 11, 11, 10', () => {
    expect(splitCounts(32, [1, 1, 1])).toEqual([11, 11, 10]);
  });
  it('gives the last batch of an epoch smaller than the thread count to the first participants', () => {
    expect(splitCounts(2, [1, 1, 1, 1])).toEqual([1, 1, 0, 0]);
    expect(splitCounts(0, [1, 1])).toEqual([0, 0]);
  });
  it('splits in proportion to weights with largest remainders', () => {
    expect(splitCounts(10, [3, 1])).toEqual([8, 2]); // 7.5 / 2.5 -> tie broken to the lower index
    expect(splitCounts(7, [1, 2, 4])).toEqual([1, 2, 4]);
    expect(splitCounts(100, [1, 1, 1])).toEqual([34, 33, 33]);
  });
  it('rejects impossible splits', () => {
    expect(() => splitCounts(4, [])).toThrow(/zero participants/);
    expect(() => splitCounts(4, [0, 0])).toThrow(/positive/);
    expect(() => splitCounts(-1, [1])).toThrow(/non-negative/);
    expect(() => splitCounts(4, [1, Number.NaN])).toThrow(/finite/);
  });
});

describe('planBatch', () => {
  it('cuts the batch rows into contiguous parts and leaves out empty ones', () => {
    const rows = Int32Array.from([5, 9, 2, 7, 1]);
    const parts = planBatch(rows, [1, 1, 1]);
    expect(parts.map((p) => [p.participant, Array.from(p.rows)])).toEqual([
      [0, [5, 9]],
      [1, [2, 7]],
      [2, [1]],
    ]);
    const small = planBatch(Int32Array.from([3, 4]), [1, 1, 1, 1]);
    expect(small.map((p) => [p.participant, Array.from(p.rows)])).toEqual([
      [0, [3]],
      [1, [4]],
    ]);
  });
});

describe('epoch batches', () => {
  it('covers every row exactly once per epoch, last batch smaller', () => {
    const order = epochOrder(70, true, new Rng(1));
    const batches = epochBatches(order, 32);
    expect(batches.map((b) => b.length)).toEqual([32, 32, 6]);
    expect(stepsPerEpoch(70, 32)).toBe(3);
    const seen = batches.flatMap((b) => Array.from(b)).sort((a, b) => a - b);
    expect(seen).toEqual(Array.from({ length: 70 }, (_, i) => i));
  });
  it('is seeded: same seed, same order; no shuffle keeps row order', () => {
    expect(Array.from(epochOrder(20, true, new Rng(3)))).toEqual(Array.from(epochOrder(20, true, new Rng(3))));
    expect(Array.from(epochOrder(20, true, new Rng(3)))).not.toEqual(Array.from(epochOrder(20, true, new Rng(4))));
    expect(Array.from(epochOrder(5, false, new Rng(3)))).toEqual([0, 1, 2, 3, 4]);
  });
});
