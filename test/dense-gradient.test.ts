/**
 * The direct Dense engine against the stock one (tfjs-layers model + tf.variableGrads): same
 * gradients, losses and metrics for every activation and loss.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/backend.js';
import { Rng } from '../shared/math/rng.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { ACTIVATIONS, LOSSES, type ActivationName, type LossName, type ModelSpec } from '../shared/model/spec.js';
import { Transposer } from '../shared/wasm/transpose-kernel.js';
import { DenseGradientEngine } from '../compute/dense-gradient.js';
import { TapeGradientEngine } from '../compute/gradient.js';
import { maxRelativeDiff } from './thread-runs.js';

async function compare(hidden: ActivationName, output: ActivationName, loss: LossName, units: number, useBias = true): Promise<void> {
  const spec: ModelSpec = {
    inputDim: 7,
    layers: [
      { units: 6, activation: hidden, useBias },
      { units: 5, activation: hidden, useBias: true, alpha: 0.1 },
      { units, activation: output, useBias },
    ],
    loss,
    metrics: ['accuracy', 'meanSquaredError'],
  };
  const rng = new Rng(3);
  const weights = initialWeights(weightLayout(spec), rng);
  weights.forEach((_, i) => (weights[i] = weights[i]! + rng.normal() * 0.1)); // non-zero biases too
  const n = 9;
  const x = Float32Array.from({ length: n * 7 }, () => rng.normal());
  const y = Float32Array.from({ length: n * units }, () => (loss.includes('Crossentropy') ? (rng.next() < 0.5 ? 0 : 1) : rng.normal()));
  const dense = new DenseGradientEngine(spec);
  const tape = new TapeGradientEngine(spec);
  dense.setWeights(weights);
  tape.setWeights(weights);
  expect(() => dense.setWeights(weights.subarray(1))).toThrow(`weights have ${weights.length - 1} values, the model has ${weights.length}`);
  const a = await dense.gradient(x, y, n);
  const b = await tape.gradient(x, y, n);
  expect(maxRelativeDiff(a.gradient, b.gradient)).toBeLessThan(2e-5);
  // into a given array (a thread's result packet): the same values, in that array
  for (const engine of [dense, tape]) {
    const out = new Float32Array(weights.length);
    expect((await engine.gradient(x, y, n, out)).gradient).toBe(out);
    expect(out).toEqual(engine === dense ? a.gradient : b.gradient);
    await expect(engine.gradient(x, y, n, new Float32Array(3))).rejects.toThrow(`gradient output has 3 values, the model has ${weights.length}`);
  }
  expect(a.lossSum).toBeCloseTo(b.lossSum, 4);
  a.metricSums.forEach((m, k) => expect(m).toBeCloseTo(b.metricSums[k]!, 4));
  const ea = await dense.evaluate(x, y, n);
  const eb = await tape.evaluate(x, y, n);
  expect(ea.lossSum).toBeCloseTo(eb.lossSum, 4);
  expect(maxRelativeDiff((await dense.predict(x, n)), (await tape.predict(x, n)))).toBeLessThan(1e-5);
  dense.dispose();
  tape.dispose();
}

// on native (every product on onnxruntime in tests) the engine passes transposes as flags instead
describe.each(['wasm', 'native'] as const)('DenseGradientEngine equals the stock tape gradients on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });
  for (const act of ACTIVATIONS.filter((a) => a !== 'softmax')) {
    it(`hidden ${act}, sigmoid output, binaryCrossentropy`, () => compare(act, 'sigmoid', 'binaryCrossentropy', 1));
  }
  it('softmax output, categoricalCrossentropy', () => compare('relu', 'softmax', 'categoricalCrossentropy', 3));
  for (const loss of LOSSES.filter((l) => !l.includes('Crossentropy'))) {
    it(`linear output, ${loss}`, () => compare('tanh', 'linear', loss, 2));
  }
  it('layers without bias', () => compare('swish', 'sigmoid', 'binaryCrossentropy', 1, false));
});

/**
 * Odd sizes, so that the kernel's 4 x 4 blocks and its edges both take part; the third layer's
 * transpose lands where the second's was in the kernel's memory (a tensor that kept that memory
 * instead of copying it would change).
 */
const oddSpec: ModelSpec = {
  inputDim: 45,
  layers: [
    { units: 66, activation: 'relu', useBias: true },
    { units: 37, activation: 'tanh', useBias: true },
    { units: 50, activation: 'swish', useBias: true },
    { units: 1, activation: 'sigmoid', useBias: true },
  ],
  loss: 'binaryCrossentropy',
  metrics: ['accuracy'],
};

function batches(spec: ModelSpec, steps: number, n: number): { weights: Float32Array; x: Float32Array; y: Float32Array }[] {
  const rng = new Rng(8);
  return Array.from({ length: steps }, () => ({
    weights: initialWeights(weightLayout(spec), rng).map((w) => w + rng.normal() * 0.05),
    x: Float32Array.from({ length: n * spec.inputDim }, () => rng.normal()),
    y: Float32Array.from({ length: n }, () => (rng.next() < 0.5 ? 0 : 1)),
  }));
}

describe('DenseGradientEngine transposes', () => {
  it('with the SIMD kernel on wasm, giving the bits of tf.transpose, step after step', async () => {
    await initBackend('wasm');
    const fast = new DenseGradientEngine(oddSpec);
    const stock = new DenseGradientEngine(oddSpec, null);
    for (const [k, { weights, x, y }] of batches(oddSpec, 3, 29).entries()) {
      fast.setWeights(weights);
      stock.setWeights(weights);
      const a = (await fast.gradient(x, y, 29)).gradient;
      const b = (await stock.gradient(x, y, 29)).gradient;
      expect(new Uint32Array(a.buffer), `step ${k}`).toEqual(new Uint32Array(b.buffer));
    }
    fast.dispose();
    stock.dispose();
  });

  it('reports the end of the gradient final as the backward pass finishes it, layer by layer', async () => {
    await initBackend('wasm');
    const engine = new DenseGradientEngine(oddSpec);
    const { weights, x, y } = batches(oddSpec, 1, 29)[0]!;
    engine.setWeights(weights);
    const layout = weightLayout(oddSpec);
    const out = new Float32Array(layout.size).fill(Number.NaN);
    const seen: { start: number; values: Float32Array }[] = [];
    const result = await engine.gradient(x, y, 29, out, (start) => seen.push({ start, values: out.slice(start) }));
    // one call per layer, at each kernel's offset, last layer first
    expect(seen.map((s) => s.start)).toEqual(layout.entries.filter((e) => e.kind === 'kernel').map((e) => e.offset).reverse());
    // what was reported final did not change afterwards
    for (const { start, values } of seen) expect(values, `from ${start}`).toEqual(result.gradient.subarray(start));
    expect(result.gradient).toBe(out);
    expect(out.every(Number.isFinite)).toBe(true);
    engine.dispose();
  });

  describe('on cpu (tf.transpose there: a cpu tensor keeps the array it is made from)', () => {
    beforeAll(async () => {
      await initBackend('cpu');
    });
    afterAll(async () => {
      await initBackend('wasm');
    });
    it('equals the stock tape gradients step after step', async () => {
      const dense = new DenseGradientEngine(oddSpec, Transposer.create());
      const tape = new TapeGradientEngine(oddSpec);
      expect(tf.getBackend()).toBe('cpu');
      for (const [k, { weights, x, y }] of batches(oddSpec, 3, 29).entries()) {
        dense.setWeights(weights);
        tape.setWeights(weights);
        expect(maxRelativeDiff((await dense.gradient(x, y, 29)).gradient, (await tape.gradient(x, y, 29)).gradient), `step ${k}`).toBeLessThan(2e-5);
      }
      dense.dispose();
      tape.dispose();
    });
  });
});
