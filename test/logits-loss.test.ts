/**
 * Sigmoid + binaryCrossentropy and softmax + categoricalCrossentropy are computed from the logits,
 * as tf.keras does. Checked against a float64 reference on saturated inputs (|logit| 20 to 100),
 * where tfjs-layers' clipped form has a gradient of exactly zero, in both engines and on both
 * CPU backends.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/backend.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { DenseGradientEngine } from '../compute/dense-gradient.js';
import type { BatchEngine } from '../compute/engine.js';
import { TapeGradientEngine } from '../compute/gradient.js';

const LOGITS = [20, 35, 50, 65, 80, 100].flatMap((z) => [z, -z]);

/** float64: d loss / d z = sigmoid(z) - y, without rounding sigmoid(z) to 1. */
function sigmoidMinusY(z: number, y: number): number {
  const e = Math.exp(-Math.abs(z));
  const s = z >= 0 ? 1 / (1 + e) : e / (1 + e);
  // sigmoid(z) - 1 for z >= 0 is -e / (1 + e): taken directly, not as a difference
  return y === 1 && z >= 0 ? -e / (1 + e) : y === 0 && z < 0 ? s : s - y;
}

/** float64 binary cross-entropy of the logit: softplus(z) - z * y. */
function bce64(z: number, y: number): number {
  return Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
}

/** float64 log-softmax, shifted by the max. */
function logSoftmax64(z: number[]): number[] {
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
  return z.map((v) => v - lse);
}

/** Below float32's normal range a value may flush to zero (tfjs-wasm's sigmoid(-100) is 0). */
const TINY = 2 ** -126;

/** |a - b| within rel of |b|, or within `abs` (default: below float32's normal range). */
function expectNear(a: number, b: number, what: string, rel = 1e-5, abs = TINY): void {
  expect(Math.abs(a - b), `${what}: ${a} vs ${b}`).toBeLessThanOrEqual(rel * Math.abs(b) + abs);
}

const sigmoidSpec: ModelSpec = { inputDim: 1, layers: [{ units: 1, activation: 'sigmoid', useBias: true }], loss: 'binaryCrossentropy', metrics: ['accuracy'] };
const softmaxSpec: ModelSpec = { inputDim: 3, layers: [{ units: 3, activation: 'softmax', useBias: true }], loss: 'categoricalCrossentropy', metrics: ['accuracy'] };

const engines: Record<string, (spec: ModelSpec) => BatchEngine> = {
  dense: (spec) => new DenseGradientEngine(spec),
  tape: (spec) => new TapeGradientEngine(spec),
};

afterAll(async () => {
  await initBackend('wasm');
});

for (const backend of ['wasm', 'native', 'cpu'] as const) {
  describe(`losses from the logits on ${backend}`, () => {
    for (const [name, make] of Object.entries(engines)) {
      it(`${name}: sigmoid + binaryCrossentropy, one saturated sample at a time`, async () => {
        await initBackend(backend);
        const engine = make(sigmoidSpec);
        engine.setWeights(Float32Array.of(1, 0)); // kernel 1, bias 0: the logit is x
        for (const z of LOGITS) {
          for (const y of [0, 1]) {
            const { gradient, lossSum } = await engine.gradient(Float32Array.of(z), Float32Array.of(y), 1);
            const dz = sigmoidMinusY(z, y);
            expect(dz).not.toBe(0);
            // where dz is a normal float32, the logits form must not lose it
            if (Math.abs(dz) > TINY) expect((await engine.gradient(Float32Array.of(z), Float32Array.of(y), 1)).gradient[1], `z=${z}, y=${y}`).not.toBe(0);
            expectNear(gradient[1]!, dz, `bias gradient at z=${z}, y=${y}`);
            expectNear(gradient[0]!, dz * z, `kernel gradient at z=${z}, y=${y}`, 1e-5, TINY * Math.abs(z));
            expectNear(lossSum, bce64(z, y), `loss at z=${z}, y=${y}`);
            expectNear((await engine.evaluate(Float32Array.of(z), Float32Array.of(y), 1)).lossSum, bce64(z, y), `evaluated loss at z=${z}, y=${y}`);
          }
        }
        // predictions are still probabilities
        const p = await engine.predict(Float32Array.of(-100, 0, 100), 3);
        expect(p[0]).toBeLessThan(TINY);
        expect(Array.from(p.subarray(1))).toEqual([0.5, 1]);
        engine.dispose();
      });

      it(`${name}: softmax + categoricalCrossentropy, one saturated sample at a time`, async () => {
        await initBackend(backend);
        const engine = make(softmaxSpec);
        engine.setWeights(Float32Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0)); // identity kernel: logits are x
        for (const z of LOGITS.filter((v) => v > 0)) {
          for (const label of [0, 2]) {
            const logits = [z, 0, -z];
            const y = [0, 1, 2].map((k) => (k === label ? 1 : 0));
            const { gradient, lossSum } = await engine.gradient(Float32Array.from(logits), Float32Array.from(y), 1);
            const ls = logSoftmax64(logits);
            const p = ls.map(Math.exp);
            // The true class's softmax(z) - 1 is a float32 difference near 1 (tf.keras's
            // softmax_cross_entropy_with_logits rounds it the same way): within 2^-24 there; every
            // other class's gradient is its probability, however small, to float32 precision.
            for (let j = 0; j < 3; j++) {
              const dz = p[j]! - y[j]!;
              const abs = j === label ? 2 ** -24 : TINY;
              expectNear(gradient[9 + j]!, dz, `bias gradient ${j} at z=${z}, label ${label}`, 2e-5, abs);
              for (let i = 0; i < 3; i++) expectNear(gradient[i * 3 + j]!, logits[i]! * dz, `kernel gradient ${i},${j} at z=${z}, label ${label}`, 2e-5, abs * z);
            }
            // a confidently wrong sample pushes with its whole weight
            if (label === 2) expectNear(gradient[9 + 2]!, -1, `true-class gradient at z=${z}`);
            expectNear(lossSum, -ls[label]!, `loss at z=${z}, label ${label}`, 1e-5, 2 ** -24);
          }
        }
        engine.dispose();
      });
    }

    it("tfjs-layers' clipped form has no gradient there (what the logits form fixes)", async () => {
      await initBackend(backend);
      for (const z of [20, -20, 100, -100]) {
        for (const y of [0, 1]) {
          const grad = tf.tidy(() => tf.grad((p: tf.Tensor) => tf.sum(tfl.metrics.binaryCrossentropy(tf.tensor2d([[y]]), tf.sigmoid(p))))(tf.tensor2d([[z]])).dataSync()[0]);
          expect(grad, `z=${z}, y=${y}`).toBe(0);
        }
      }
    });
  });
}

describe('other pairs keep the output form', () => {
  it('a sigmoid output with meanSquaredError, a linear output with binaryCrossentropy', async () => {
    await initBackend('wasm');
    const mse: ModelSpec = { ...sigmoidSpec, loss: 'meanSquaredError' };
    const engine = new DenseGradientEngine(mse);
    engine.setWeights(Float32Array.of(1, 0));
    // (sigmoid(50) - 0)^2 = 1 in float32, and its gradient is 2 p (1 - p) = 0 there
    const r = await engine.gradient(Float32Array.of(50), Float32Array.of(0), 1);
    expect(r.lossSum).toBe(1);
    expect(Array.from(r.gradient)).toEqual([0, 0]);
    engine.dispose();
  });
});
