import { describe, expect, it } from 'vitest';
import { prepareJobData } from '../coordinator/job.js';
import { modelSpec, runRngs } from '../coordinator/fit/trainer.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { parseCsv } from '../shared/data/csv.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { decodeFloat16, encodeFloat16, float16ScaleExp, fromFloat16Bits, toFloat16Bits, type GradientDtype } from '../shared/math/float16.js';
import { createOptimizer } from '../shared/optimize/optimizers.js';
import { weightedAverage } from '../coordinator/reduce/reduce.js';
import { epochBatches, epochOrder } from '../shared/plan/split-plan.js';
import { initialWeights } from '../shared/model/layout.js';
import { decodeMessage, encodeMessage } from '../shared/protocol/codec.js';
import { expectGradient } from '../shared/protocol/context-checks.js';
import { createEngine } from '../compute/gradient.js';

describe('float16 bits', () => {
  it('encodes the IEEE 754 half-precision patterns', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest finite
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
    ];
    for (const [value, bits] of cases) {
      expect(toFloat16Bits(value), String(value)).toBe(bits);
      expect(fromFloat16Bits(bits), String(value)).toBe(value);
    }
    expect(toFloat16Bits(1 / 3)).toBe(0x3555);
    expect(fromFloat16Bits(0x3555)).toBe(0.333251953125);
    expect(toFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(fromFloat16Bits(toFloat16Bits(NaN))).toBeNaN();
  });

  it('rounds to nearest, ties to even, in normal and subnormal range; overflows to Infinity', () => {
    expect(toFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie, even stays
    expect(toFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, odd rounds up
    expect(toFloat16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above the tie
    expect(toFloat16Bits(2047.9999)).toBe(0x6800); // carries into the exponent: 2048
    expect(toFloat16Bits(2 ** -25)).toBe(0x0000); // half the smallest subnormal: tie to even (0)
    expect(toFloat16Bits(3 * 2 ** -25)).toBe(0x0002); // 1.5 units: tie to even (2)
    expect(toFloat16Bits(2 ** -25 + 2 ** -35)).toBe(0x0001);
    expect(toFloat16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up from the subnormals into the normals
    expect(toFloat16Bits(65520)).toBe(0x7c00); // halfway to 2^16 rounds to Infinity
    expect(toFloat16Bits(65519)).toBe(0x7bff);
  });

  it('decodes every finite pattern back to itself', () => {
    const wrong: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) !== 0x7c00 && toFloat16Bits(fromFloat16Bits(h)) !== h) wrong.push(h); // all but Inf, NaN
    }
    expect(wrong).toEqual([]);
  });
});

describe('scaled float16 gradients', () => {
  it('scales the largest value into [2^14, 2^15) by a power of two', () => {
    expect(float16ScaleExp(Float32Array.from([0.001, -0.5]))).toBe(15); // 0.5 * 2^15 = 2^14
    expect(float16ScaleExp(Float32Array.from([1e6]))).toBe(-5); // 1e6 / 32 = 31250
    expect(float16ScaleExp(Float32Array.from([2 ** 14]))).toBe(0);
    expect(float16ScaleExp(Float32Array.from([2 ** 15]))).toBe(-1);
    expect(float16ScaleExp(new Float32Array(4))).toBe(0);
    expect(float16ScaleExp(Float32Array.from([Infinity, 1]))).toBe(14); // Infinity is not a scale
  });

  it('keeps values down to 2^-28 of the largest within 2^-11 relative, smaller ones within 2^-39 of it', () => {
    const values = Float32Array.from([3.0517578125e-5, -1e-9, 0.1234567, -7.25e-3, 2 ** -20, 0, 1e-12, -3e-11]);
    const { halves, scaleExp } = encodeFloat16(values);
    expect(halves).toHaveLength(values.length);
    expect(scaleExp).toBe(18);
    const back = decodeFloat16(halves, scaleExp);
    const max = 0.1234567;
    values.forEach((v, i) => {
      const bound = Math.abs(v) >= max * 2 ** -28 ? Math.abs(v) * 2 ** -11 : max * 2 ** -39;
      expect(Math.abs(back[i]! - v), `value ${v}`).toBeLessThanOrEqual(bound);
    });
    expect(back[4]).toBe(2 ** -20); // powers of two are exact
    expect(back[5]).toBe(0);
    expect(back[6]).not.toBe(0); // plain float16 would flush 1e-12 to zero; scaled, it survives
  });

  it('keeps NaN and Infinity so the receiver rejects them', () => {
    const { halves, scaleExp } = encodeFloat16(Float32Array.from([0.5, NaN, -Infinity]));
    const back = decodeFloat16(halves, scaleExp);
    expect(back[0]).toBe(0.5);
    expect(back[1]).toBeNaN();
    expect(back[2]).toBe(-Infinity);
  });
});

/**
 * Training with float16 gradients on the wire: two participants per step, each gradient through
 * the real protocol (encodeMessage / decodeMessage) as float32 or float16, then the weighted
 * average and Adam. Generated Telco-schema data, the seed's 45-64-64-1 model, standardised.
 */
describe('training with float16 gradients on the wire', () => {
  type Run = { weights: Float32Array; firstLoss: number; lastLoss: number; testLoss: number; testAccuracy: number; bytes: number };

  async function train(dtype: GradientDtype): Promise<Run> {
    const config = validateConfig(
      {
        seed: 3,
        data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, testSize: 0.2, standardize: true },
        model: { layers: [{ units: 64, activation: 'relu' }, { units: 64, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
        compile: { optimizer: { name: 'adam', learningRate: 0.001 }, loss: 'binaryCrossentropy', metrics: ['accuracy'] },
        fit: { epochs: 2, batchSize: 32 },
      },
      'float16 test',
    );
    const { dataset } = prepareJobData(config, parseCsv(telcoDemoCsv(1000, 11), 'demo.csv'));
    const spec = modelSpec(config, dataset);
    const engine = createEngine(spec, 'dense');
    const weights = initialWeights(engine.layout, runRngs.weights(config.seed));
    const optimizer = createOptimizer(config.compile.optimizer, weights.length);
    const rng = runRngs.shuffle(config.seed);
    const { features, train, test } = dataset;
    const rows = (indices: ArrayLike<number>) => {
      const x = new Float32Array(indices.length * features);
      const y = new Float32Array(indices.length);
      Array.from(indices).forEach((r, i) => {
        x.set(dataset.x.subarray(r * features, (r + 1) * features), i * features);
        y[i] = dataset.y[r]!;
      });
      return { x, y };
    };
    const losses: number[] = [];
    let bytes = 0;
    for (let epoch = 0; epoch < config.fit.epochs; epoch++) {
      let lossSum = 0;
      for (const batch of epochBatches(epochOrder(train.count, true, rng), config.fit.batchSize)) {
        engine.setWeights(weights);
        const half = Math.ceil(batch.length / 2);
        const parts: { gradient: Float32Array; count: number }[] = [];
        for (const [k, part] of [batch.slice(0, half), batch.slice(half)].entries()) {
          const { x, y } = rows(part.map((r) => train.start + r));
          const g = await engine.gradient(x, y, part.length);
          lossSum += g.lossSum;
          const frame = encodeMessage({ type: 'gradient', step: k, count: part.length, lossSum: g.lossSum, metricSums: g.metricSums, computeMs: 0, dtype, parts: 0, gradient: g.gradient });
          bytes += frame.byteLength;
          const received = expectGradient(decodeMessage(frame), k, weights.length, 1);
          parts.push({ gradient: received.gradient, count: received.count });
        }
        optimizer.apply(weights, weightedAverage(parts));
      }
      losses.push(lossSum / train.count);
    }
    engine.setWeights(weights);
    const t = rows(Array.from({ length: test.count }, (_, i) => test.start + i));
    const sums = await engine.evaluate(t.x, t.y, test.count);
    engine.dispose();
    return { weights, firstLoss: losses[0]!, lastLoss: losses.at(-1)!, testLoss: sums.lossSum / test.count, testAccuracy: sums.metricSums[0]! / test.count, bytes };
  }

  it('converges like float32: same test loss within 0.5%, accuracy within 1 point, half the gradient bytes', async () => {
    await initBackend('cpu');
    const exact = await train('float32');
    const half = await train('float16');
    // training happened
    expect(exact.lastLoss).toBeLessThan(exact.firstLoss * 0.9);
    expect(half.lastLoss).toBeLessThan(half.firstLoss * 0.9);
    // the float16 run took other (rounded) steps, and still lands in the same place
    let diff = 0;
    exact.weights.forEach((w, i) => (diff = Math.max(diff, Math.abs(w - half.weights[i]!))));
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThan(1e-3); // 6e-5 when written
    expect(Math.abs(half.testLoss - exact.testLoss)).toBeLessThan(0.005 * exact.testLoss);
    expect(Math.abs(half.testAccuracy - exact.testAccuracy)).toBeLessThanOrEqual(0.01);
    expect(half.bytes / exact.bytes).toBeGreaterThan(0.5);
    expect(half.bytes / exact.bytes).toBeLessThan(0.52);
  }, 600_000);
});
