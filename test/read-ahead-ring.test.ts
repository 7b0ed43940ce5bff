/**
 * The read-ahead ring as a cache of rows: rows found in a filled slot come from it, the others
 * from the disk, and the features are the disk's either way; a slot refilled with other rows
 * no longer serves the old ones; fills for steps already past are skipped; a fill that fails
 * leaves its slot empty, so the lanes read (and meet the error) themselves.
 */
import { describe, expect, it } from 'vitest';
import { featureRows, type FeatureRows } from '../shared/data/feature-rows.js';
import { ReadAheadRing, RingRows } from '../shared/data/read-ahead-ring.js';

/** 10 rows of 3 features (row r: r, r + 0.5, -r), counting the rows read. */
function disk(): FeatureRows & { reads: number[] } {
  const x = Float32Array.from({ length: 30 }, (_, i) => [Math.floor(i / 3), Math.floor(i / 3) + 0.5, -Math.floor(i / 3)][i % 3]!);
  const rows = featureRows({ x, features: 3 });
  const reads: number[] = [];
  return {
    features: 3,
    reads,
    gather: (r, out) => {
      reads.push(...Array.from(r));
      return rows.gather(r, out);
    },
    range: (start, count, out) => rows.range(start, count, out),
  };
}

describe('ReadAheadRing', () => {
  it('serves the rows it holds and reads the others from disk, with the same features', () => {
    const source = disk();
    const ring = ReadAheadRing.create(3, 4, 3);
    expect(ring.fill(0, 0, Int32Array.from([5, 1, 7]), source)).toBe(true);
    expect(ring.fill(1, 1, Int32Array.from([2, 3]), source)).toBe(true);
    expect(ring.fills).toBe(2);
    source.reads.length = 0;
    const rows = new RingRows(ring, source);
    const got = rows.gather([7, 2, 9, 5]);
    expect(Array.from(got)).toEqual(Array.from(source.gather([7, 2, 9, 5])));
    expect(rows.served).toEqual({ ring: 3, disk: 1 });
    expect(source.reads.slice(0, 1)).toEqual([9]);
    // the reader gone: every slot emptied, the rows come from disk
    ring.clear();
    expect(Array.from(rows.gather([7]))).toEqual([7, 7.5, -7]);
    expect(rows.served).toEqual({ ring: 3, disk: 2 });
  });

  it('a refilled slot no longer serves its old rows; fills for past steps are skipped; a failed fill leaves the slot empty', () => {
    const source = disk();
    const ring = ReadAheadRing.create(2, 4, 3);
    ring.fill(0, 0, Int32Array.from([4, 6]), source);
    const rows = new RingRows(ring, source);
    expect(Array.from(rows.gather([4]))).toEqual([4, 4.5, -4]);
    ring.fill(0, 2, Int32Array.from([8]), source);
    expect(Array.from(rows.gather([4, 8]))).toEqual([4, 4.5, -4, 8, 8.5, -8]);
    expect(rows.served).toEqual({ ring: 2, disk: 1 });
    ring.setCurrent(5);
    expect(ring.fill(1, 4, Int32Array.from([1]), source)).toBe(false);
    const broken: FeatureRows = {
      features: 3,
      gather: () => {
        throw new Error('shard-003.tar: member k.png: a PNG file that does not decode');
      },
      range: () => new Float32Array(0),
    };
    expect(() => ring.fill(1, 6, Int32Array.from([3]), broken)).toThrow(/k\.png/);
    expect(() => ring.fill(0, 7, Int32Array.from([9]), broken)).toThrow();
    expect(Array.from(rows.gather([3, 9]))).toEqual([3, 3.5, -3, 9, 9.5, -9]);
    expect(rows.served.disk).toBe(3);
  });
});
