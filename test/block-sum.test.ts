/**
 * The peer reduction's arithmetic (shared/math/block-sum.ts, shared/plan/parameter-shards.ts),
 * with exact numbers: the mean of a batch's blocks is taken in block order whatever order they
 * arrive in, so it has the same bits however the blocks were split among participants; with one
 * block per participant it is today's weighted mean bit for bit; owners applying the optimizer to
 * their shards give one optimizer's bits.
 */
import { describe, expect, it } from 'vitest';
import { createOptimizer, type OptimizerConfig } from '../shared/optimize/optimizers.js';
import { weightedAverage } from '../coordinator/reduce/reduce.js';
import { BlockSum } from '../shared/math/block-sum.js';
import { Rng } from '../shared/math/rng.js';
import { parameterShards } from '../shared/plan/parameter-shards.js';

function gradient(length: number, rng: Rng): Float32Array {
  return Float32Array.from({ length }, () => rng.normal() * 10 ** Math.floor(rng.next() * 6 - 3));
}

describe('BlockSum', () => {
  it('sums count x gradient in float64 and divides by the rows once', () => {
    const s = new BlockSum(2, 2);
    s.add(0, 2, Float32Array.of(1, 2));
    expect(s.complete).toBe(false);
    s.add(1, 1, Float32Array.of(4, -1));
    expect(Array.from(s.mean())).toEqual([2, 1]);
  });

  it('gives the same bits whatever order the blocks arrive in', () => {
    const rng = new Rng(3);
    const blocks = Array.from({ length: 7 }, (_, b) => ({ count: 1 + (b % 3), values: gradient(101, rng) }));
    const inOrder = new BlockSum(101, 7);
    blocks.forEach((b, k) => inOrder.add(k, b.count, b.values));
    const expected = inOrder.mean();
    for (let trial = 0; trial < 20; trial++) {
      const order = blocks.map((_, k) => k).sort(() => rng.next() - 0.5);
      const s = new BlockSum(101, 7);
      for (const k of order) s.add(k, blocks[k]!.count, blocks[k]!.values);
      expect(s.mean()).toEqual(expected);
    }
  });

  it("with one block per participant, in participant order: the coordinator's weighted mean bit for bit", () => {
    const rng = new Rng(5);
    for (const parts of [1, 2, 3, 5]) {
      const contributions = Array.from({ length: parts }, (_, k) => ({ count: 3 + 7 * k, gradient: gradient(257, rng) }));
      const s = new BlockSum(257, parts);
      contributions.forEach((c, k) => s.add(k, c.count, c.gradient));
      expect(s.mean()).toEqual(weightedAverage(contributions));
    }
  });

  it('refuses a block given twice, late, out of range, of the wrong length, and a mean with blocks missing', () => {
    const s = new BlockSum(3, 3);
    s.add(1, 2, Float32Array.of(1, 1, 1));
    expect(() => s.add(1, 2, Float32Array.of(1, 1, 1))).toThrow(/given already/);
    s.add(0, 2, Float32Array.of(1, 1, 1));
    expect(() => s.add(0, 2, Float32Array.of(1, 1, 1))).toThrow(/given already/);
    expect(() => s.add(3, 2, Float32Array.of(1, 1, 1))).toThrow(/not one of/);
    expect(() => s.add(2, 2, Float32Array.of(1, 1))).toThrow(/2 values, expected 3/);
    expect(() => s.add(2, 0, Float32Array.of(1, 1, 1))).toThrow(/row count 0/);
    expect(() => s.mean()).toThrow(/1 of 3 blocks are missing/);
  });

  it('keeps an early block of its own (the sender may reuse its array)', () => {
    const s = new BlockSum(1, 2);
    const reused = Float32Array.of(5);
    s.add(1, 1, reused);
    reused[0] = 1000;
    s.add(0, 1, Float32Array.of(1));
    expect(Array.from(s.mean())).toEqual([3]);
  });
});

describe('parameterShards', () => {
  it('cuts the layout into contiguous ranges of whole 4-float groups, differing by one group at most', () => {
    expect(parameterShards(10, 2)).toEqual([
      { start: 0, count: 8 },
      { start: 8, count: 2 },
    ]);
    expect(parameterShards(10, 4)).toEqual([
      { start: 0, count: 4 },
      { start: 4, count: 4 },
      { start: 8, count: 2 },
      { start: 10, count: 0 },
    ]);
    for (const [size, owners] of [[1000, 3], [7, 1], [4097, 8], [0, 2]] as const) {
      const shards = parameterShards(size, owners);
      expect(shards).toHaveLength(owners);
      let at = 0;
      for (const s of shards) {
        expect(s.start).toBe(at);
        at += s.count;
      }
      expect(at).toBe(size);
      shards.slice(0, -1).forEach((s) => expect(s.count % 4).toBe(0));
    }
  });

  for (const config of [
    { name: 'adam', learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    { name: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true },
    { name: 'rmsprop', learningRate: 0.001, rho: 0.9, momentum: 0.5, epsilon: 1e-7 },
  ] as OptimizerConfig[]) {
    for (const implementation of ['wasm', 'js'] as const) {
      it(`${config.name} (${implementation}) applied by 3 owners to their shards: one optimizer's bits`, () => {
        const size = 1003;
        const rng = new Rng(9);
        const whole = Float32Array.from({ length: size }, () => rng.normal());
        const sharded = whole.slice();
        const one = createOptimizer(config, size, undefined, implementation);
        const shards = parameterShards(size, 3);
        const owners = shards.map((s) => createOptimizer(config, s.count, undefined, implementation));
        for (let step = 0; step < 5; step++) {
          const g = gradient(size, rng);
          one.apply(whole, g);
          shards.forEach((s, k) => {
            const w = sharded.subarray(s.start, s.start + s.count);
            const part = w.slice();
            owners[k]!.apply(part, g.subarray(s.start, s.start + s.count));
            w.set(part);
          });
          expect(sharded).toEqual(whole);
        }
      });
    }
  }
});
