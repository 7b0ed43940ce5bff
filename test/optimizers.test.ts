import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/backend.js';
import { decodeCheckpoint, encodeCheckpoint, type TrainingState } from '../coordinator/checkpoint.js';
import { OptimizerObject } from '../shared/config/schema.js';
import { createOptimizer, stateLayout, type OptimizerConfig, type OptimizerImplementation, type OptimizerState } from '../shared/optimize/optimizers.js';
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
  // the options off: the same bits (and kernels) as without them
  { config: { name: 'adam', learningRate: 0.05, beta1: 0.8, beta2: 0.99, epsilon: 1e-4, amsgrad: false }, reference: () => tf.train.adam(0.05, 0.8, 0.99, 1e-4) },
  { config: { name: 'rmsprop', learningRate: 0.01, rho: 0.95, momentum: 0.5, epsilon: 1e-6, centered: false }, reference: () => tf.train.rmsprop(0.01, 0.95, 0.5, 1e-6) },
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

/** The largest |actual - expected| over `scale` (per value; default max(1, |expected|)): float32 against a float64 reference. */
function relativeError(actual: Float32Array, expected: Float64Array, scale?: Float64Array): number {
  return Math.max(...Array.from(actual, (x, i) => Math.abs(x - expected[i]!) / (scale ? scale[i]! : Math.max(1, Math.abs(expected[i]!)))));
}

/** The largest |a - b|. */
function largestDifference(a: Float32Array, b: Float32Array): number {
  return Math.max(...Array.from(a, (x, i) => Math.abs(x - b[i]!)));
}

/** Runs `grads` straight, and again stopping after `cut` steps to continue from state(): both final weights. */
function straightAndResumed(config: OptimizerConfig, init: Float32Array, grads: Float32Array[], cut: number): { straight: Float32Array; resumed: Float32Array; state: OptimizerState } {
  const straight = init.slice();
  const a = createOptimizer(config, init.length);
  grads.forEach((g) => a.apply(straight, g));
  const resumed = init.slice();
  const b = createOptimizer(config, init.length);
  grads.slice(0, cut).forEach((g) => b.apply(resumed, g));
  const state = b.state();
  const c = createOptimizer(config, init.length, state);
  grads.slice(cut).forEach((g) => c.apply(resumed, g));
  return { straight, resumed, state };
}

describe("Keras's amsgrad, centered RMSprop and Adadelta", () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });
  const size = 129;
  const steps = 20;

  for (const name of ['adam', 'adamw'] as const) {
    it(`${name} with amsgrad equals a float64 reference of Keras 3's rule to rounding, and continues exactly from its state`, () => {
      const [init] = randomArrays(1, size, 11, 0.5);
      // shrinking gradients, so v falls and the running maximum matters
      const grads = randomArrays(steps, size, 12, 0.1).map((g, t) => g.map((x) => x * 0.8 ** t));
      const [lr, b1, b2, eps, wd] = [0.01, 0.9, 0.99, 1e-7, 0.1];
      const base = { learningRate: lr, beta1: b1, beta2: b2, epsilon: eps };
      const config: OptimizerConfig = name === 'adam' ? { name, ...base, amsgrad: true } : { name, ...base, weightDecay: wd, amsgrad: true };
      const weights = init!.slice();
      const opt = createOptimizer(config, size, undefined, 'wasm');
      expect(opt.implementation).toBe('js'); // no kernel for amsgrad
      grads.forEach((g) => opt.apply(weights, g));
      // keras/src/optimizers/adam.py, update_step; AdamW's decay first (weight_decay, before the step)
      const w = Float64Array.from(init!);
      const [m, v, vHat] = [new Float64Array(size), new Float64Array(size), new Float64Array(size)];
      grads.forEach((g, t) => {
        const step = t + 1;
        const alpha = (lr * Math.sqrt(1 - b2 ** step)) / (1 - b1 ** step);
        // Keras adds epsilon to sqrt(v_hat); Adam here (tfjs) adds it to the bias-corrected sqrt(v_hat / (1 - beta2^t)): Keras's epsilon x sqrt(1 - beta2^t)
        const epsHat = eps * Math.sqrt(1 - b2 ** step);
        for (let i = 0; i < size; i++) {
          if (name === 'adamw') w[i]! -= w[i]! * wd * lr;
          m[i]! += (g[i]! - m[i]!) * (1 - b1);
          v[i]! += (g[i]! * g[i]! - v[i]!) * (1 - b2);
          vHat[i] = Math.max(vHat[i]!, v[i]!);
          w[i]! -= (m[i]! * alpha) / (Math.sqrt(vHat[i]!) + epsHat);
        }
      });
      expect(relativeError(weights, w)).toBeLessThan(1e-5);
      // the maximum did something: without amsgrad the weights end elsewhere
      const plain = init!.slice();
      const withoutAmsgrad = createOptimizer({ ...config, amsgrad: false }, size);
      grads.forEach((g) => withoutAmsgrad.apply(plain, g));
      expect(largestDifference(plain, weights)).toBeGreaterThan(1e-4);
      // vHat is saved, and the run continues bit for bit from the saved state
      const { straight, resumed, state } = straightAndResumed(config, init!, grads, 8);
      expect(Object.keys(state.slots)).toEqual(['m', 'v', 'vHat']);
      expect(stateLayout(config).slots).toEqual(['m', 'v', 'vHat']);
      expect(resumed).toEqual(straight);
      expect(straight).toEqual(weights);
    });
  }

  it("amsgrad off is Adam's bits; on, where v never falls, too", () => {
    const [init] = randomArrays(1, size, 13, 0.5);
    const grads = randomArrays(steps, size, 14, 0.1);
    const base = { learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
    for (const implementation of ['wasm', 'js'] as OptimizerImplementation[]) {
      for (const [a, b] of [
        [{ name: 'adam', ...base }, { name: 'adam', ...base, amsgrad: false }],
        [{ name: 'adamw', ...base, weightDecay: 0.1 }, { name: 'adamw', ...base, weightDecay: 0.1, amsgrad: false }],
      ] as [OptimizerConfig, OptimizerConfig][]) {
        const [x, y] = [init!.slice(), init!.slice()];
        const [p, q] = [createOptimizer(a, size, undefined, implementation), createOptimizer(b, size, undefined, implementation)];
        expect(q.implementation).toBe(implementation);
        grads.forEach((g) => {
          p.apply(x, g);
          q.apply(y, g);
        });
        expect(y).toEqual(x);
        expect(Object.keys(q.state().slots)).toEqual(['m', 'v']);
      }
    }
    // |g| growing at every value: v grows, max(vHat, v) = v, and the steps are Adam's
    const rng = new Rng(23);
    const growing = grads.map((_, t) => grads[0]!.map((x) => x * 1.5 ** t * (rng.next() < 0.5 ? -1 : 1)));
    const [x, y] = [init!.slice(), init!.slice()];
    const [p, q] = [createOptimizer({ name: 'adam', ...base }, size), createOptimizer({ name: 'adam', ...base, amsgrad: true }, size)];
    growing.forEach((g) => {
      p.apply(x, g);
      q.apply(y, g);
    });
    expect(y).toEqual(x);
  });

  it('a state cannot switch amsgrad or centered on or off', () => {
    const base = { learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
    const plain = createOptimizer({ name: 'adam', ...base }, 4).state();
    const ams = createOptimizer({ name: 'adam', ...base, amsgrad: true }, 4).state();
    expect(() => createOptimizer({ name: 'adam', ...base, amsgrad: true }, 4, plain)).toThrow(/optimizer state has slots m, v, expected m, v, vHat/);
    expect(() => createOptimizer({ name: 'adam', ...base }, 4, ams)).toThrow(/optimizer state has slots m, v, vHat, expected m, v$/);
    const rms = { learningRate: 0.01, rho: 0.9, momentum: 0, epsilon: 1e-7 };
    const uncentered = createOptimizer({ name: 'rmsprop', ...rms }, 4).state();
    expect(() => createOptimizer({ name: 'rmsprop', ...rms, centered: true }, 4, uncentered)).toThrow(/expected rms, momentum, mg/);
  });

  for (const momentum of [0, 0.5]) {
    it(`centered RMSprop (momentum ${momentum}) equals a float64 reference of Keras 3's rule to rounding, tf.train.rmsprop's centered form bit for bit at epsilon 0, and continues exactly`, () => {
      const [init] = randomArrays(1, size, 15, 0.5);
      const grads = randomArrays(steps, size, 16, 0.1);
      const [lr, rho, eps] = [0.01, 0.9, 1e-7];
      const config: OptimizerConfig = { name: 'rmsprop', learningRate: lr, rho, momentum, epsilon: eps, centered: true };
      const weights = init!.slice();
      const opt = createOptimizer(config, size, undefined, 'wasm');
      expect(opt.implementation).toBe('js'); // no kernel for centered
      grads.forEach((g) => opt.apply(weights, g));
      // keras/src/optimizers/rmsprop.py, update_step
      const w = Float64Array.from(init!);
      const [velocity, averageGrad, moment] = [new Float64Array(size), new Float64Array(size), new Float64Array(size)];
      for (const g of grads) for (let i = 0; i < size; i++) {
        velocity[i] = rho * velocity[i]! + (1 - rho) * g[i]! * g[i]!;
        averageGrad[i] = rho * averageGrad[i]! + (1 - rho) * g[i]!;
        const increment = (lr * g[i]!) / Math.sqrt(velocity[i]! - averageGrad[i]! ** 2 + eps);
        if (momentum > 0) {
          moment[i] = momentum * moment[i]! + increment;
          w[i]! -= moment[i]!;
        } else w[i]! -= increment;
      }
      expect(relativeError(weights, w)).toBeLessThan(1e-5);
      // centering did something
      const uncentered = init!.slice();
      const plain = createOptimizer({ ...config, centered: false }, size);
      grads.forEach((g) => plain.apply(uncentered, g));
      expect(largestDifference(uncentered, weights)).toBeGreaterThan(1e-3);
      // tfjs's centered rule is sqrt(rms - (mg^2 + epsilon)): Keras's at epsilon 0
      const noEpsilon = init!.slice();
      const zero = createOptimizer({ ...config, epsilon: 0 }, size);
      grads.forEach((g) => zero.apply(noEpsilon, g));
      expect(noEpsilon).toEqual(tfjsRun(() => tf.train.rmsprop(lr, rho, momentum, 0, true), init!, grads));
      const { straight, resumed, state } = straightAndResumed(config, init!, grads, 8);
      expect(Object.keys(state.slots)).toEqual(['rms', 'momentum', 'mg']);
      expect(resumed).toEqual(straight);
      expect(straight).toEqual(weights);
    });
  }

  it("Adadelta equals a float64 reference of Keras 3's rule to rounding, and continues exactly from its state", () => {
    // weights from 0, so they are the sum of the steps and rounding is measured against the steps' size
    const init = new Float32Array(size);
    const grads = randomArrays(steps, size, 17, 0.1);
    const [lr, rho, eps] = [1, 0.95, 1e-7];
    const config: OptimizerConfig = { name: 'adadelta', learningRate: lr, rho, epsilon: eps };
    const weights = init.slice();
    const opt = createOptimizer(config, size);
    expect(opt.implementation).toBe('js');
    grads.forEach((g) => opt.apply(weights, g));
    // keras/src/optimizers/adadelta.py, update_step
    const w = new Float64Array(size);
    const travelled = new Float64Array(size);
    const [accumulatedGrad, accumulatedDeltaVar] = [new Float64Array(size), new Float64Array(size)];
    const rms = (x: number): number => Math.sqrt(x + eps);
    for (const g of grads) for (let i = 0; i < size; i++) {
      accumulatedGrad[i] = rho * accumulatedGrad[i]! + (1 - rho) * g[i]! * g[i]!;
      const deltaVar = -(rms(accumulatedDeltaVar[i]!) * g[i]!) / rms(accumulatedGrad[i]!);
      accumulatedDeltaVar[i] = rho * accumulatedDeltaVar[i]! + (1 - rho) * deltaVar * deltaVar;
      w[i]! += lr * deltaVar;
      travelled[i]! += Math.abs(lr * deltaVar);
    }
    expect(relativeError(weights, w, travelled)).toBeLessThan(1e-5);
    const { straight, resumed, state } = straightAndResumed(config, init, grads, 8);
    expect(Object.keys(state.slots)).toEqual(['accumulatedGrad', 'accumulatedDeltaVar']);
    expect(resumed).toEqual(straight);
    expect(straight).toEqual(weights);
  });

  it('Adadelta equals tf.train.adadelta bit for bit where their rules agree (a steady accumulatedGrad), and not elsewhere', async () => {
    // tf.train.adadelta divides by accumulatedGrad before this step's g^2 is added, Keras after. With |g| a
    // power of two for each value, rho 0.75 and accumulatedGrad = g^2 to start with, accumulatedGrad stays
    // g^2 exactly, and the rest of the rule (epsilon in both square roots, accumulatedDeltaVar, the step) is compared.
    const rng = new Rng(18);
    const magnitude = Float32Array.from({ length: size }, () => 2 ** Math.floor(rng.next() * 7 - 4));
    const grads = Array.from({ length: steps }, () => magnitude.map((x) => (rng.next() < 0.5 ? -x : x)));
    const [init] = randomArrays(1, size, 19, 0.5);
    const accumulatedGrad = magnitude.map((x) => x * x);
    const accumulatedDeltaVar = Float32Array.from({ length: size }, () => rng.next() * 0.01);
    const [lr, rho, eps] = [0.5, 0.75, 1e-6];
    const from: OptimizerState = { name: 'adadelta', iterations: 0, slots: { accumulatedGrad, accumulatedDeltaVar }, scalars: {} };
    const weights = init!.slice();
    const opt = createOptimizer({ name: 'adadelta', learningRate: lr, rho, epsilon: eps }, size, from);
    grads.forEach((g) => opt.apply(weights, g));
    expect(opt.state().slots['accumulatedGrad']).toEqual(accumulatedGrad);

    const variable = tf.variable(tf.tensor1d(init!));
    const reference: tf.Optimizer = tf.train.adadelta(lr, rho, eps);
    await reference.setWeights([
      { name: 'iter', tensor: tf.scalar(0) },
      { name: `${variable.name}/accum_grad`, tensor: tf.tensor1d(accumulatedGrad) },
      { name: `${variable.name}/accum_var`, tensor: tf.tensor1d(accumulatedDeltaVar) },
    ]);
    for (const g of grads) {
      const gt = tf.tensor1d(g);
      reference.applyGradients({ [variable.name]: gt });
      gt.dispose();
    }
    expect(weights).toEqual(variable.dataSync() as Float32Array);
    variable.dispose();
    reference.dispose();

    // from zero state with changing gradients, the one-step lag makes tfjs's steps another rule's
    const [start] = randomArrays(1, size, 20, 0.5);
    const changing = randomArrays(steps, size, 21, 0.1);
    const ours = start!.slice();
    const keras = createOptimizer({ name: 'adadelta', learningRate: 1, rho: 0.95, epsilon: 1e-7 }, size);
    changing.forEach((g) => keras.apply(ours, g));
    expect(largestDifference(ours, tfjsRun(() => tf.train.adadelta(1, 0.95, 1e-7), start!, changing))).toBeGreaterThan(1e-3);
  });

  it("the config's forms: adadelta with Keras's defaults, amsgrad and centered only where Keras has them", () => {
    expect(OptimizerObject.parse({ name: 'adadelta' })).toEqual({ name: 'adadelta', learningRate: 0.001, rho: 0.95, epsilon: 1e-7 });
    expect(OptimizerObject.parse({ name: 'adam', amsgrad: true })).toMatchObject({ name: 'adam', amsgrad: true });
    expect(OptimizerObject.parse({ name: 'adamw', amsgrad: true })).toMatchObject({ name: 'adamw', amsgrad: true, weightDecay: 0.004 });
    expect(OptimizerObject.parse({ name: 'rmsprop', centered: true })).toMatchObject({ name: 'rmsprop', centered: true });
    // absent stays absent (false), so configs that do not name them keep their checkpoints' fingerprint
    expect(OptimizerObject.parse({ name: 'adam' })).not.toHaveProperty('amsgrad');
    for (const bad of [{ name: 'sgd', amsgrad: true }, { name: 'nadam', amsgrad: true }, { name: 'adam', centered: true }, { name: 'adadelta', momentum: 0.9 }, { name: 'adam', amsgrad: 'yes' }]) {
      expect(OptimizerObject.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });

  it("a checkpoint carries an option's slot, and an optimizer without that option refuses it", () => {
    const n = 16;
    const config: OptimizerConfig = { name: 'adamw', learningRate: 0.01, beta1: 0.9, beta2: 0.99, epsilon: 1e-7, weightDecay: 0.1, amsgrad: true };
    const grads = randomArrays(6, n, 22, 0.1);
    const weights = new Float32Array(n).fill(0.5);
    const opt = createOptimizer(config, n);
    grads.slice(0, 3).forEach((g) => opt.apply(weights, g));
    const training: TrainingState = {
      epoch: 0,
      batch: 3,
      step: 3,
      samples: 0,
      trainSeconds: 1,
      phases: { compute: 0, reduce: 0, apply: 0, broadcast: 0 },
      history: [],
      epochProgress: { lossSum: 1, metricSums: [], seconds: 1 },
      shuffle: 7,
      finished: false,
      stoppedEarly: false,
      optimizer: opt.state(),
      weights,
      fingerprint: 'f',
    };
    const back = decodeCheckpoint(encodeCheckpoint(training), 'mem');
    expect(back.optimizer).toEqual(training.optimizer);
    const resumed = weights.slice();
    const again = createOptimizer(config, n, back.optimizer);
    grads.slice(3).forEach((g) => {
      opt.apply(weights, g);
      again.apply(resumed, g);
    });
    expect(resumed).toEqual(weights);
    // vHat is one of adamw's arrays, not sgd's
    const sgd = { ...training, optimizer: { ...training.optimizer, name: 'sgd' as const, scalars: {}, slots: { momentum: weights, vHat: weights } } };
    expect(() => decodeCheckpoint(encodeCheckpoint(sgd), 'f.ckpt')).toThrow(/"optimizer\.vHat" is not one of the arrays of a sgd checkpoint/);
  });
});
