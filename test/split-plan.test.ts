import { describe, expect, it } from 'vitest';
import { Rng } from '../shared/math/rng.js';
import { chunkRange, inRanges, missingRanges, partitionRows } from '../shared/plan/shard-plan.js';
import { assignRows, epochBatches, epochOrder, splitCounts, stepsPerEpoch } from '../shared/plan/split-plan.js';

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

describe('assignRows (data-aware split)', () => {
  const batch = Int32Array.from([7, 2, 9, 4, 0, 5]);
  const list = (parts: ReturnType<typeof assignRows>) => parts.map((p) => [p.participant, Array.from(p.rows)]);

  it('gives nodes the rows they hold first, then fills in batch order', () => {
    const node = (rows: number[]) => (r: number) => rows.includes(r);
    // thread (holds all), node holding {4, 5, 9}, node holding {0}
    expect(list(assignRows(batch, [2, 2, 2], [undefined, node([4, 5, 9]), node([0])]))).toEqual([
      [0, [7, 2]],
      [1, [9, 4]],
      [2, [0, 5]], // 5 is held by node 1, which is full: node 2 gets it inline
    ]);
  });

  it('gives a node the rows only it holds before rows another node also holds', () => {
    // node 0 kept the whole set from when it was alone; node 1 joined and holds rows 5..9
    const rows = Int32Array.from([3, 8, 6, 1, 9, 0, 5, 2, 7, 4]);
    const holds = [(r: number) => r < 10, (r: number) => r >= 5];
    expect(list(assignRows(rows, [5, 5], holds))).toEqual([
      [0, [3, 1, 0, 2, 4]],
      [1, [8, 6, 9, 5, 7]],
    ]);
    // more rows of the newcomer's range than it may take: the old node takes the rest, none inline
    const parts = assignRows(rows, [7, 3], holds);
    parts.forEach((part) => part.rows.forEach((r) => expect(holds[part.participant]!(r)).toBe(true)));
  });

  it('is a plain contiguous split when everyone holds everything, and leaves out empty parts', () => {
    expect(list(assignRows(batch, [3, 0, 3], [undefined, undefined, undefined]))).toEqual([
      [0, [7, 2, 9]],
      [2, [4, 0, 5]],
    ]);
  });

  it('always covers the batch exactly once', () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 50; trial++) {
      const rows = epochOrder(40, true, rng).subarray(0, 1 + rng.int(39));
      const counts = splitCounts(rows.length, [1 + rng.int(3), 1 + rng.int(3), 1 + rng.int(3)]);
      const holds = [undefined, (r: number) => r < 20, (r: number) => r % 3 === 0];
      const parts = assignRows(rows, counts, holds);
      const all = parts.flatMap((p) => Array.from(p.rows)).sort((a, b) => a - b);
      expect(all).toEqual(Array.from(rows).sort((a, b) => a - b));
      parts.forEach((p) => expect(p.rows.length).toBe(counts[p.participant]));
    }
  });

  it('rejects counts that do not add up', () => {
    expect(() => assignRows(batch, [1, 1], [undefined, undefined])).toThrow('counts add up to 2, the batch has 6 rows');
  });
});

describe('shard plan', () => {
  it('partitions rows into near-equal contiguous ranges', () => {
    expect(partitionRows(10, 3)).toEqual([
      { start: 0, count: 4 },
      { start: 4, count: 3 },
      { start: 7, count: 3 },
    ]);
    expect(partitionRows(1, 2)).toEqual([
      { start: 0, count: 1 },
      { start: 1, count: 0 },
    ]);
  });

  it('finds what a node still needs after the plan changes', () => {
    // two nodes held 0-49 and 50-99; after a third joins, node 2 should hold 34-66
    expect(missingRanges([{ start: 50, count: 50 }], { start: 34, count: 33 })).toEqual([{ start: 34, count: 16 }]);
    expect(missingRanges([], { start: 5, count: 3 })).toEqual([{ start: 5, count: 3 }]);
    expect(missingRanges([{ start: 0, count: 10 }, { start: 20, count: 5 }], { start: 5, count: 30 })).toEqual([
      { start: 10, count: 10 },
      { start: 25, count: 10 },
    ]);
    expect(missingRanges([{ start: 0, count: 100 }], { start: 30, count: 10 })).toEqual([]);
  });

  it('chunks ranges and tests membership', () => {
    expect(chunkRange({ start: 10, count: 7 }, 3)).toEqual([
      { start: 10, count: 3 },
      { start: 13, count: 3 },
      { start: 16, count: 1 },
    ]);
    expect(inRanges([{ start: 10, count: 3 }], 12)).toBe(true);
    expect(inRanges([{ start: 10, count: 3 }], 13)).toBe(false);
  });
});
