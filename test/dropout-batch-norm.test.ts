/**
 * Dropout and batch normalisation keep the core guarantee. Dropout masks come from (seed, step,
 * training row), so any split of a batch gives the same masks; batch statistics are taken over
 * virtual batches the split never cuts (ghost batch norm), and the moving statistics are set once
 * per step. With virtualBatchSize = batchSize on one lane, the model is Keras's: the stock
 * tfjs-layers BatchNormalization trained with trainOnBatch (cpu) on the same batches.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { modelSpec } from '../coordinator/fit/trainer.js';
import { checkAgainstData } from '../coordinator/validate.js';
import type { Callback, FitLoopView } from '../coordinator/callbacks/callback.js';
import type { TrainingState } from '../coordinator/checkpoint.js';
import { assignUnits, runEnds, virtualBatches } from '../shared/plan/split-plan.js';
import { stepWithStatistics } from '../shared/optimize/moving-statistics.js';
import { createEngine } from '../compute/gradient.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import type { JobConfig } from '../shared/config/schema.js';
import { dropoutMask } from '../shared/math/dropout-mask.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { Rng } from '../shared/math/rng.js';
import { TRAINING_BACKENDS, type TrainingBackend } from './helpers.js';
import { referenceWeights } from './reference.js';
import { SIDE, strokes } from './strokes.js';
import { maxAbsDiff, trainOnLanes } from './thread-runs.js';
import type { Dataset } from '../shared/data/dataset.js';

function jobConfig(layers: unknown[], batchSize = 32, backend: TrainingBackend = 'wasm'): JobConfig {
  return validateConfig(
    {
      seed: 11,
      data: { label: { column: 'kind', type: 'categorical' } },
      model: {
        layers: [
          { type: 'reshape', targetShape: [SIDE, SIDE, 1] },
          // no bias before batch norm (its gradient is zero up to rounding, which Adam would amplify)
          { type: 'conv2d', filters: 4, kernelSize: 3, useBias: false },
          ...layers,
          { type: 'flatten' },
          { units: 8, activation: 'relu' },
          { units: 3, activation: 'softmax' },
        ],
      },
      compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 4, batchSize },
      cluster: { threads: 1, backend },
    },
    'test config',
  );
}

/** Moving mean and variance of the model's first batch norm layer. */
function movingStatistics(config: JobConfig, dataset: Dataset, weights: Float32Array): Float32Array {
  const layout = weightLayout(modelSpec(config, dataset));
  return Float32Array.from(layout.entries.filter((e) => !e.trainable).flatMap((e) => Array.from(weights.subarray(e.offset, e.offset + e.size))));
}

let dataset: Dataset;

beforeAll(async () => {
  dataset = strokes(160, 5);
  await initBackend('cpu');
});

describe('dropout masks', () => {
  it('depend on (seed, step, row) only: the same row gives the same mask in any batch, in any order', () => {
    const a = dropoutMask(1, 4, [10, 11, 12], 100, 0.3);
    const b = dropoutMask(1, 4, [12, 10], 100, 0.3);
    expect(b.subarray(0, 100)).toEqual(a.subarray(200, 300));
    expect(b.subarray(100, 200)).toEqual(a.subarray(0, 100));
    expect(dropoutMask(1, 5, [10], 100, 0.3)).not.toEqual(a.subarray(0, 100));
    expect(dropoutMask(2, 4, [10], 100, 0.3)).not.toEqual(a.subarray(0, 100));
    const big = dropoutMask(7, 0, Array.from({ length: 100 }, (_, i) => i), 1000, 0.3);
    const dropped = big.filter((v) => v === 0).length / big.length;
    expect(dropped).toBeGreaterThan(0.29);
    expect(dropped).toBeLessThan(0.31);
    expect(new Set(big)).toEqual(new Set([0, Math.fround(1 / 0.7)]));
    expect(() => dropoutMask(1, 0, [1], 4, 1)).toThrow(/rate/);
  });
});

describe('the split plan keeps virtual batches whole', () => {
  it('units of 12, 12, 8 rows over two participants, data-aware', () => {
    const batch = Int32Array.from({ length: 32 }, (_, i) => 100 + i);
    const groups = virtualBatches(batch, 12);
    const ends = runEnds(batch.map((r) => groups.get(r)!));
    expect(Array.from(ends)).toEqual([12, 24, 32]);
    // the node holds rows 112..123 (all of the second group) and 124: it gets the second group
    const parts = assignUnits(batch, ends, [1, 2], [(r) => r >= 112 && r <= 124, undefined]);
    expect(parts.map((p) => [p.participant, p.rows[0], p.rows.length])).toEqual([
      [0, 112, 12],
      [1, 100, 20],
    ]);
    expect(() => assignUnits(batch, ends, [1, 1], [undefined, undefined])).toThrow(/3 units/);
  });

  it('moving statistics follow tfjs-layers: w - (w - target) (1 - momentum), the optimizer leaves them', () => {
    const weights = Float32Array.from([1, 2, 3, 4]);
    const gradient = Float32Array.from([0.5, 0.5, 10, 20]);
    stepWithStatistics(weights, gradient, [{ offset: 2, size: 2, momentum: 0.9 }], (w, g) => {
      expect(Array.from(g)).toEqual([0.5, 0.5, 0, 0]);
      for (let i = 0; i < w.length; i++) w[i]! -= g[i]! + 1; // an "optimizer" that would move every weight
    });
    const f = Math.fround;
    expect(Array.from(weights)).toEqual([-0.5, 0.5, f(3 - f(f(3 - 10) * f(1 - 0.9))), f(4 - f(f(4 - 20) * f(1 - 0.9)))]);
  });
});

describe('ghost batch norm in the engine', () => {
  it('one virtual batch: the stock layer\'s output gradient and statistics; rows in any order with groups give the same gradient', async () => {
    const config = jobConfig([{ type: 'batchNormalization', virtualBatchSize: 8 }], 8);
    const spec = modelSpec(config, dataset);
    const engine = createEngine(spec);
    const layout = weightLayout(spec);
    const weights = initialWeights(layout, new Rng(3));
    engine.setWeights(weights);
    const n = 16;
    const x = dataset.x.slice(0, n * dataset.features);
    const y = dataset.y.slice(0, n * 3);
    const rows = Int32Array.from({ length: n }, (_, i) => i);
    const groups = Int32Array.from({ length: n }, (_, i) => (i < 8 ? 5 : 9));
    const g1 = (await engine.gradient(x, y, n, undefined, undefined, { step: 0, rows, groups })).gradient.slice();
    // the same rows reversed: the same gradient up to rounding
    const order = Array.from({ length: n }, (_, i) => n - 1 - i);
    const xr = new Float32Array(x.length);
    const yr = new Float32Array(y.length);
    order.forEach((r, i) => {
      xr.set(x.subarray(r * dataset.features, (r + 1) * dataset.features), i * dataset.features);
      yr.set(y.subarray(r * 3, (r + 1) * 3), i * 3);
    });
    const g2 = (await engine.gradient(xr, yr, n, undefined, undefined, { step: 0, rows: Int32Array.from(order), groups: Int32Array.from(order, (r) => groups[r]!) })).gradient;
    expect(maxAbsDiff(g1, g2)).toBeLessThan(1e-6);
    // two groups differ from one group of 16
    const g3 = (await engine.gradient(x, y, n, undefined, undefined, { step: 0, rows, groups: new Int32Array(n) })).gradient;
    expect(maxAbsDiff(g1, g3)).toBeGreaterThan(1e-4);
    // the statistics' entries: the mean over the groups of tf.moments of the conv outputs
    const mean = layout.entries.find((e) => e.name.endsWith('moving_mean'))!;
    const conv = tf.tidy(() => {
      const images = tf.tensor4d(x, [n, SIDE, SIDE, 1]);
      const out = tf.conv2d(images, tf.tensor4d(weights.slice(0, 36), [3, 3, 1, 4]), 1, 'valid');
      const [a, b] = tf.split(out, 2);
      return tf.div(tf.add(tf.moments(a!, [0, 1, 2]).mean, tf.moments(b!, [0, 1, 2]).mean), 2).dataSync() as Float32Array;
    });
    expect(maxAbsDiff(g1.slice(mean.offset, mean.offset + 4), conv)).toBeLessThan(1e-5);
    await expect(engine.gradient(x, y, n)).rejects.toThrow(/needs the step and the rows/);
    engine.dispose();
  });
});

describe.each(TRAINING_BACKENDS)('dropout and batch norm, data-parallel on %s', (backend) => {
  it('one lane with virtualBatchSize = batchSize is Keras\'s BatchNormalization (stock tfjs-layers, trainOnBatch), statistics too', async () => {
    const config = jobConfig([{ type: 'batchNormalization', virtualBatchSize: 32, momentum: 0.9 }, { type: 'maxPooling2d', poolSize: 2 }], 32, backend);
    await initBackend('cpu');
    const expected = await referenceWeights(config, dataset);
    const fit = await trainOnLanes(config, dataset, 'in-process');
    expect(fit.steps).toBe(20);
    expect(maxAbsDiff(fit.weights, expected)).toBeLessThan(1e-4);
    const stats = movingStatistics(config, dataset, fit.weights);
    expect(stats.some((v, i) => Math.abs(v - (i < 4 ? 0 : 1)) > 0.05)).toBe(true); // they moved
    expect(maxAbsDiff(stats, movingStatistics(config, dataset, expected))).toBeLessThan(1e-4);
  });

  const layers = [{ type: 'batchNormalization', virtualBatchSize: 8 }, { type: 'maxPooling2d', poolSize: 2 }, { type: 'dropout', rate: 0.25 }, { type: 'activation', activation: 'relu' }];
  let inProcess: Float32Array;
  beforeAll(async () => {
    inProcess = (await trainOnLanes(jobConfig(layers, 32, backend), dataset, 'in-process')).weights;
  });

  it.each([1, 2, 3])('%s thread(s), dropout 0.25 and virtual batches of 8, 20 steps: the weights of one process (< 1e-4)', async (threads) => {
    const fit = await trainOnLanes(jobConfig(layers, 32, backend), dataset, threads);
    expect(fit.steps).toBe(20);
    expect(maxAbsDiff(fit.weights, inProcess)).toBeLessThan(1e-4);
    expect(fit.history.at(-1)!.values['loss']!).toBeLessThan(fit.history[0]!.values['loss']!);
  });

  it('stopped after step 7 and resumed from its snapshot (2 threads): the bits of the run never stopped, moving statistics included', async () => {
    const config = jobConfig(layers, 32, backend);
    const whole = await trainOnLanes(config, dataset, 2);
    let loop: FitLoopView | undefined;
    let snapshot: TrainingState | undefined;
    const stopper: Callback = {
      setLoop: (l) => void (loop = l),
      onBatchEnd: (log) => {
        if (log.step !== 7) return;
        loop!.stop('interrupted');
        snapshot = loop!.snapshot();
      },
    };
    const first = await trainOnLanes(config, dataset, 2, { callbacks: [stopper] });
    expect(first.interrupted).toBe(true);
    const resumed = await trainOnLanes(config, dataset, 2, { resume: snapshot! });
    const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
    expect(bits(resumed.weights)).toEqual(bits(whole.weights));
    expect(maxAbsDiff(movingStatistics(config, dataset, first.weights), movingStatistics(config, dataset, whole.weights))).toBeGreaterThan(0);
  });

  it('the dropout and the virtual batches matter (so the equalities above say something)', async () => {
    const noDropout = await trainOnLanes(jobConfig([layers[0], layers[1], layers[3]], 32, backend), dataset, 'in-process');
    expect(maxAbsDiff(noDropout.weights, inProcess)).toBeGreaterThan(1e-3);
    const wholeBatch = await trainOnLanes(jobConfig([{ ...layers[0], virtualBatchSize: 32 }, layers[1], layers[2], layers[3]], 32, backend), dataset, 'in-process');
    expect(maxAbsDiff(wholeBatch.weights, inProcess)).toBeGreaterThan(1e-3);
  });
});

describe('configs that cannot be', () => {
  it('name the layer: a virtual batch larger than the batch, two virtual batch sizes, dropout first', () => {
    const bad = (layers: unknown[]): (() => void) => () => {
      const config = jobConfig(layers);
      checkAgainstData(config, modelSpec(config, dataset), dataset);
    };
    expect(bad([{ type: 'batchNormalization', virtualBatchSize: 64 }])).toThrow(/model.layers\[2\].virtualBatchSize \(64\) is larger than fit.batchSize \(32\)/);
    expect(bad([{ type: 'batchNormalization', virtualBatchSize: 8 }, { type: 'batchNormalization', virtualBatchSize: 16 }])).toThrow(/virtualBatchSize 8 and 16; a model uses one/);
    expect(() => validateConfig({ ...jobConfig([]), model: { layers: [{ type: 'dropout', rate: 1 }, { units: 3 }] } } as never, 'c')).toThrow(/model.layers\[0\].rate/);
    const first = validateConfig({ ...jobConfig([]), model: { layers: [{ type: 'dropout', rate: 0.5 }, { units: 3, activation: 'softmax' }] } } as never, 'c');
    expect(() => checkAgainstData(first, modelSpec(first, dataset), dataset)).toThrow(/model.layers\[0\] \(dropout\) cannot be the first layer/);
  });
});
