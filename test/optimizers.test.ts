import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/backend.js';
import { createOptimizer, type OptimizerConfig, type OptimizerImplementation } from '../shared/optimize/optimizers.js';
import { Rng } from '../shared/math/rng.js';

/** Runs `steps` steps of the tfjs optimizer on one variable; returns the final value. */
function tfjsRun(make: () => tf.Optimizer, init: Float32Array, grads: Float32Array[]): Float32Array {
  const v = tf.variable(tf.tensor1d(init));
  const opt = make();
  for (const g of grads) {
    const gt = tf.tensor1d(g);
    opt.applyGradients({ [v.name]: gt });
    gt.dispose();
  }
  const out = v.dataSync() as Float32Array;
  v.dispose();
  opt.dispose();
  return out;
}

function randomArrays(n: number, size: number, seed: number, scale: number): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: size }, () => rng.normal() * scale * (rng.next() < 0.2 ? 1e-6 : 1)));
}

const cases: { config: OptimizerConfig; reference: () => tf.Optimizer }[] = [
  { config: { name: 'adam', learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 }, reference: () => tf.train.adam(0.001, 0.9, 0.999, 1e-7) },
  { config: { name: 'adam', learningRate: 0.05, beta1: 0.8, beta2: 0.99, epsilon: 1e-4 }, reference: () => tf.train.adam(0.05, 0.8, 0.99, 1e-4) },
  { config: { name: 'sgd', learningRate: 0.1, momentum: 0, nesterov: false }, reference: () => tf.train.sgd(0.1) },
  { config: { name: 'sgd', learningRate: 0.01, momentum: 0.9, nesterov: false }, reference: () => tf.train.momentum(0.01, 0.9) },
  { config: { name: 'sgd', learningRate: 0.01, momentum: 0.9, nesterov: true }, reference: () => tf.train.momentum(0.01, 0.9, true) },
  { config: { name: 'rmsprop', learningRate: 0.001, rho: 0.9, momentum: 0, epsilon: 1e-7 }, reference: () => tf.train.rmsprop(0.001, 0.9, 0, 1e-7) },
  { config: { name: 'rmsprop', learningRate: 0.01, rho: 0.95, momentum: 0.5, epsilon: 1e-6 }, reference: () => tf.train.rmsprop(0.01, 0.95, 0.5, 1e-6) },
];

describe('pure optimizers match tf.train bit for bit', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });
  for (const { config, reference } of cases) for (const implementation of ['wasm', 'js'] as OptimizerImplementation[]) {
    it(`${implementation} ${JSON.stringify(config)}`, () => {
      const size = 257;
      const [init] = randomArrays(1, size, 1, 0.5);
      const grads = randomArrays(40, size, 2, 0.1);
      const expected = tfjsRun(reference, init!, grads);
      const weights = init!.slice();
      const opt = createOptimizer(config, size, undefined, implementation);
      expect(opt.implementation).toBe(implementation);
      for (const g of grads) opt.apply(weights, g);
      expect(opt.iterations).toBe(40);
      expect(Array.from(weights)).toEqual(Array.from(expected));
    });
  }
  it('rejects a gradient of the wrong length', () => {
    const opt = createOptimizer({ name: 'adam', learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 }, 3);
    expect(() => opt.apply(new Float32Array(3), new Float32Array(2))).toThrow(/expects 3 parameters/);
  });
  it('continues exactly from a saved state', () => {
    const config: OptimizerConfig = { name: 'adam', learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
    const grads = randomArrays(10, 8, 5, 1);
    const straight = new Float32Array(8);
    const a = createOptimizer(config, 8);
    grads.forEach((g) => a.apply(straight, g));
    const resumed = new Float32Array(8);
    const b = createOptimizer(config, 8);
    grads.slice(0, 4).forEach((g) => b.apply(resumed, g));
    const c = createOptimizer(config, 8, b.state());
    grads.slice(4).forEach((g) => c.apply(resumed, g));
    expect(Array.from(resumed)).toEqual(Array.from(straight));
  });
});

describe('AdamW and Adagrad', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });
  const size = 129;

  it('Adagrad equals tf.train.adagrad bit for bit, and a float64 reference of its rule to rounding', () => {
    const [init] = randomArrays(1, size, 3, 0.5);
    const grads = randomArrays(30, size, 4, 0.1);
    const expected = tfjsRun(() => tf.train.adagrad(0.05, 0.1), init!, grads);
    const weights = init!.slice();
    const opt = createOptimizer({ name: 'adagrad', learningRate: 0.05, initialAccumulatorValue: 0.1, epsilon: 1e-7 }, size);
    for (const g of grads) opt.apply(weights, g);
    expect(Array.from(weights)).toEqual(Array.from(expected));
    // Keras's rule in float64: acc += g^2; w -= lr g / sqrt(acc + eps)
    const w64 = Float64Array.from(init!);
    const acc = new Float64Array(size).fill(0.1);
    for (const g of grads) for (let i = 0; i < size; i++) {
      acc[i]! += g[i]! * g[i]!;
      w64[i]! -= (0.05 * g[i]!) / Math.sqrt(acc[i]! + 1e-7);
    }
    weights.forEach((v, i) => expect(Math.abs(v - w64[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(w64[i]!))));
  });

  for (const implementation of ['wasm', 'js'] as OptimizerImplementation[]) {
    it(`AdamW (${implementation}): with weightDecay 0 Adam's bits; with decay a float64 reference of Keras's rule to rounding`, () => {
      const [init] = randomArrays(1, size, 5, 0.5);
      const grads = randomArrays(30, size, 6, 0.1);
      const adamConfig = { learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
      const plain = init!.slice();
      const noDecay = init!.slice();
      const adamOpt = createOptimizer({ name: 'adam', ...adamConfig }, size, undefined, implementation);
      const adamwOpt = createOptimizer({ name: 'adamw', ...adamConfig, weightDecay: 0 }, size, undefined, implementation);
      for (const g of grads) {
        adamOpt.apply(plain, g);
        adamwOpt.apply(noDecay, g);
      }
      expect(noDecay).toEqual(plain);
      const decayed = init!.slice();
      const opt = createOptimizer({ name: 'adamw', ...adamConfig, weightDecay: 0.1 }, size, undefined, implementation);
      expect(opt.implementation).toBe(implementation);
      for (const g of grads) opt.apply(decayed, g);
      // float64: w -= w wd lr; then Adam (tf.train.adam's form: epsilon after the bias-corrected sqrt)
      const w = Float64Array.from(init!);
      const m = new Float64Array(size);
      const v = new Float64Array(size);
      grads.forEach((g, t) => {
        for (let i = 0; i < size; i++) {
          w[i]! -= w[i]! * 0.1 * 0.01;
          m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
          v[i] = 0.999 * v[i]! + 0.001 * g[i]! * g[i]!;
          const mHat = m[i]! / (1 - 0.9 ** (t + 1));
          const vHat = v[i]! / (1 - 0.999 ** (t + 1));
          w[i]! -= (0.01 * mHat) / (Math.sqrt(vHat) + 1e-7);
        }
      });
      decayed.forEach((x, i) => expect(Math.abs(x - w[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(w[i]!))));
      // and the decay did something
      expect(Math.max(...decayed.map((x, i) => Math.abs(x - plain[i]!)))).toBeGreaterThan(1e-4);
      // its state is AdamW's, and continues exactly
      const state = opt.state();
      expect(state.name).toBe('adamw');
      const resumed = createOptimizer({ name: 'adamw', ...adamConfig, weightDecay: 0.1 }, size, state, implementation);
      const a = decayed.slice();
      const b = decayed.slice();
      opt.apply(a, grads[0]!);
      resumed.apply(b, grads[0]!);
      expect(b).toEqual(a);
    });
  }
});

describe('Adamax and Nadam', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });
  const size = 129;

  it('Adamax equals tf.train.adamax bit for bit, and a float64 reference of its rule to rounding', () => {
    const [init] = randomArrays(1, size, 7, 0.5);
    const grads = randomArrays(30, size, 8, 0.1);
    const expected = tfjsRun(() => tf.train.adamax(0.01, 0.9, 0.999, 1e-7), init!, grads);
    const weights = init!.slice();
    const opt = createOptimizer({ name: 'adamax', learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 }, size);
    for (const g of grads) opt.apply(weights, g);
    expect(Array.from(weights)).toEqual(Array.from(expected));
    const w = Float64Array.from(init!);
    const m = new Float64Array(size);
    const u = new Float64Array(size);
    grads.forEach((g, t) => {
      for (let i = 0; i < size; i++) {
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        u[i] = Math.max(0.999 * u[i]!, Math.abs(g[i]!));
        w[i]! -= ((0.01 / (1 - 0.9 ** (t + 1))) * m[i]!) / (u[i]! + 1e-7);
      }
    });
    weights.forEach((x, i) => expect(Math.abs(x - w[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(w[i]!))));
  });

  it("Nadam equals a float64 reference of Keras 3's rule to rounding, and continues exactly from its state", () => {
    const [init] = randomArrays(1, size, 9, 0.5);
    const grads = randomArrays(30, size, 10, 0.1);
    const config = { name: 'nadam', learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 } as const;
    const weights = init!.slice();
    const opt = createOptimizer(config, size);
    grads.slice(0, 20).forEach((g) => opt.apply(weights, g));
    const resumed = createOptimizer(config, size, opt.state());
    const copy = weights.slice();
    grads.slice(20).forEach((g) => {
      opt.apply(weights, g);
      resumed.apply(copy, g);
    });
    expect(copy).toEqual(weights);
    const w = Float64Array.from(init!);
    const m = new Float64Array(size);
    const v = new Float64Array(size);
    let uProduct = 1;
    grads.forEach((g, t) => {
      const step = t + 1;
      const ut = 0.9 * (1 - 0.5 * 0.96 ** (0.004 * step));
      const ut1 = 0.9 * (1 - 0.5 * 0.96 ** (0.004 * (step + 1)));
      const up = uProduct * ut;
      const up1 = up * ut1;
      for (let i = 0; i < size; i++) {
        m[i]! += (g[i]! - m[i]!) * 0.1;
        v[i]! += (g[i]! * g[i]! - v[i]!) * 0.001;
        const mHat = (ut1 * m[i]!) / (1 - up1) + ((1 - ut) * g[i]!) / (1 - up);
        const vHat = v[i]! / (1 - 0.999 ** step);
        w[i]! -= (mHat * 0.01) / (Math.sqrt(vHat) + 1e-7);
      }
      uProduct = up;
    });
    weights.forEach((x, i) => expect(Math.abs(x - w[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(w[i]!))));
  });
});
