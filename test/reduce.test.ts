import { describe, expect, it } from 'vitest';
import { firstNonFinite, weightedAverage } from '../coordinator/reduce/reduce.js';

describe('weightedAverage', () => {
  it('weights each mean gradient by its sample count', () => {
    const out = weightedAverage([
      { gradient: Float32Array.from([1, 2, -4]), count: 1 },
      { gradient: Float32Array.from([4, 8, 0]), count: 3 },
    ]);
    expect(Array.from(out)).toEqual([3.25, 6.5, -1]);
  });
  it('for an uneven split (11, 11, 10 of 32) equals the mean over all 32 samples', () => {
    // per-sample gradients g_i = i (one parameter); the mean over 0..31 is 15.5
    const parts = [
      { from: 0, count: 11 },
      { from: 11, count: 11 },
      { from: 22, count: 10 },
    ].map(({ from, count }) => {
      let sum = 0;
      for (let i = from; i < from + count; i++) sum += i;
      return { gradient: Float32Array.from([sum / count]), count };
    });
    expect(Array.from(weightedAverage(parts))).toEqual([15.5]);
  });
  it('sums in float64 in participant order and rounds once, with two parts (its fast path) and with more', () => {
    const values = (seed: number): Float32Array => Float32Array.from({ length: 1000 }, (_, i) => Math.sin(seed * 1000 + i) * 10 ** ((i % 9) - 4));
    const g = [values(1), values(2), values(3)];
    const n = [7, 3, 11];
    const two = weightedAverage([0, 1].map((k) => ({ gradient: g[k]!, count: n[k]! })));
    const three = weightedAverage([0, 1, 2].map((k) => ({ gradient: g[k]!, count: n[k]! })));
    for (let i = 0; i < 1000; i++) {
      expect(two[i]).toBe(Math.fround((0 + 7 * g[0]![i]! + 3 * g[1]![i]!) / 10));
      expect(three[i]).toBe(Math.fround((0 + 7 * g[0]![i]! + 3 * g[1]![i]! + 11 * g[2]![i]!) / 21));
    }
  });
  it('writes into a given output array', () => {
    const out = new Float32Array(2);
    const result = weightedAverage([{ gradient: Float32Array.from([2, 4]), count: 2 }], out);
    expect(result).toBe(out);
    expect(Array.from(out)).toEqual([2, 4]);
  });
  it('rejects mismatched lengths, bad counts and empty input', () => {
    expect(() => weightedAverage([])).toThrow(/no gradients/);
    expect(() =>
      weightedAverage([
        { gradient: new Float32Array(2), count: 1 },
        { gradient: new Float32Array(3), count: 1 },
      ]),
    ).toThrow(/gradient 1 has length 3, expected 2/);
    expect(() => weightedAverage([{ gradient: new Float32Array(2), count: 0 }])).toThrow(/sample count 0/);
  });
  it('is non-finite exactly where some part is (so the trainer checks the mean, not every part)', () => {
    const max = 3.4028234663852886e38; // the largest float32
    const parts = [
      { gradient: Float32Array.from([max, max, 1, Number.NaN, 0, max, -max]), count: 1000 },
      { gradient: Float32Array.from([max, -max, Number.POSITIVE_INFINITY, 1, 0, max, -max]), count: 3 },
      { gradient: Float32Array.from([max, 0, 1, 1, Number.NEGATIVE_INFINITY, max, Number.POSITIVE_INFINITY]), count: 2 ** 30 },
    ];
    for (const k of [2, 3]) {
      const mean = weightedAverage(parts.slice(0, k));
      const expected = parts[0]!.gradient.map((_, i) => (parts.slice(0, k).some((p) => !Number.isFinite(p.gradient[i])) ? 1 : 0));
      expect(Array.from(mean.map((v) => (Number.isFinite(v) ? 0 : 1))), `${k} parts`).toEqual(Array.from(expected));
    }
    expect(weightedAverage(parts.slice(0, 2))[0]).toBe(max); // the largest value averages to itself, not to infinity
  });
  it('finds non-finite values', () => {
    expect(firstNonFinite(Float32Array.from([0, 1, Number.NaN]))).toBe(2);
    expect(firstNonFinite(Float32Array.from([0, Number.POSITIVE_INFINITY]))).toBe(1);
    expect(firstNonFinite(Float32Array.from([0, 1]))).toBe(-1);
    // every position of the unrolled loop and its tail, each kind of non-finite value
    const max = 3.4028234663852886e38;
    for (const length of [1, 4, 7, 1029]) {
      const values = Float32Array.from({ length }, (_, i) => [max, -max, -0, 1e-45][i % 4]!);
      expect(firstNonFinite(values), `all finite, length ${length}`).toBe(-1);
      for (let at = 0; at < length; at += length > 8 ? 97 : 1) {
        for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
          const copy = values.slice();
          copy[at] = bad;
          if (at + 1 < length) copy[length - 1] = bad;
          expect(firstNonFinite(copy), `${bad} at ${at} of ${length}`).toBe(at);
        }
      }
    }
  });
});
