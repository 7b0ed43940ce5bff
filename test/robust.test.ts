/** Robust aggregation with exact numbers: norm clipping against the median, trimmed mean, median. */
import { describe, expect, it } from 'vitest';
import { clipScales, robustAggregate, trimCount } from '../coordinator/reduce/robust.js';

const part = (values: number[], count = 1) => ({ gradient: Float32Array.from(values), count });

describe('robust aggregation', () => {
  it('trims at least one value per end from three participants on, never the middle', () => {
    expect([1, 2, 3, 4, 5, 10, 11].map((k) => trimCount(k, 0.2))).toEqual([0, 0, 1, 1, 1, 2, 2]);
    expect(trimCount(3, 0.9)).toBe(1);
  });

  it('clips norms to a multiple of the median norm', () => {
    // norms 5, 1, 2: median 2, so the first is scaled to 2/5; clip 0 leaves everything
    expect(clipScales([part([3, 4]), part([1, 0]), part([0, 2])], 1)).toEqual([0.4, 1, 1]);
    expect(clipScales([part([3, 4]), part([1, 0]), part([0, 2])], 0)).toEqual([1, 1, 1]);
  });

  it('leaves batch norm statistics (unclipped ranges) out of the norms and unscaled', () => {
    // the last value of each is a statistic: norms 5, 1, 2 as above, whatever the statistics
    const parts = [part([3, 4, 10]), part([1, 0, 7]), part([0, 2, 9])];
    const unclipped = [{ offset: 2, size: 1 }];
    expect(clipScales(parts, 1, unclipped)).toEqual([0.4, 1, 1]);
    const out = new Float32Array(3);
    expect(robustAggregate(parts, out, { aggregation: 'median', trimFraction: 0.2, clip: 1, unclipped })).toBe(true);
    // gradients: medians of (1.2, 1, 0) and (1.6, 0, 2); the statistic: the median of 10, 7, 9, unscaled (scaled, the first would be 4 and the median 7)
    expect(Array.from(out)).toEqual([1, Math.fround(1.6), 9]);
  });

  it('median and trimmed mean, coordinate-wise: one poisoned participant moves nothing much', () => {
    const honest = [part([1, -1, 0.5]), part([1.2, -0.8, 0.25]), part([0.8, -1.2, 0.75]), part([1.1, -0.9, 0.5])];
    const poisoned = part([1e30, 1e30, -1e30]);
    const out = new Float32Array(3);
    expect(robustAggregate([...honest, poisoned], out, { aggregation: 'median', trimFraction: 0.2, clip: 0 })).toBe(true);
    expect(Array.from(out)).toEqual([1.1, -0.9, 0.5].map(Math.fround));
    expect(robustAggregate([...honest, poisoned], out, { aggregation: 'trimmedMean', trimFraction: 0.2, clip: 0 })).toBe(true);
    // per coordinate, the largest and smallest of five are dropped: mean of the middle three
    const f = Math.fround;
    expect(Array.from(out)).toEqual([(f(1) + f(1.1) + f(1.2)) / 3, (f(-1) + f(-0.9) + f(-0.8)) / 3, (f(0.25) + f(0.5) + f(0.5)) / 3].map(f));
    // a sign-flipped copy among five: the median is unmoved
    expect(robustAggregate([...honest, part([-1, 1, -0.5])], out, { aggregation: 'median', trimFraction: 0.2, clip: 1 })).toBe(true);
    expect(out[0]).toBeGreaterThan(0.9);
  });

  it('reports a non-finite result', () => {
    const out = new Float32Array(1);
    expect(robustAggregate([part([Number.NaN]), part([1])], out, { aggregation: 'median', trimFraction: 0.2, clip: 0 })).toBe(false);
  });
});
