/**
 * "Synchronous" means: N threads with global batch B give the model one process gives with
 * batch B. The reference here is plain TensorFlow.js: a tfjs-layers model compiled with
 * tf.train.adam, trained with trainOnBatch on the same batches from the same initial weights.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { modelSpec, runRngs, type FitResult } from '../coordinator/fit/trainer.js';
import { maxAbsDiff, trainOnLanes } from './thread-runs.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import type { JobConfig } from '../shared/config/schema.js';
import { parseCsv } from '../shared/data/csv.js';
import { prepareData, type Dataset } from '../shared/data/dataset.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { TELCO_PREPROCESS, TRAINING_BACKENDS, type TrainingBackend } from './helpers.js';
import { referenceWeights } from './reference.js';

const TRAIN_ROWS = 32 * 9 + 2; // 10 steps per epoch; the last batch (2) is smaller than 4 threads
const EPOCHS = 3; // 30 steps

function jobConfig(threads: number, backend: TrainingBackend = 'wasm'): JobConfig {
  return validateConfig(
    {
      seed: 11,
      data: { label: { column: 'Churn', positive: 'Yes' } },
      model: { layers: [{ units: 16, activation: 'relu' }, { units: 8, activation: 'tanh' }, { units: 1, activation: 'sigmoid' }] },
      compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'binaryCrossentropy' },
      fit: { epochs: EPOCHS, batchSize: 32 },
      cluster: { threads, backend },
    },
    'test config',
  );
}

let dataset: Dataset;

beforeAll(async () => {
  const table = parseCsv(telcoDemoCsv(600, 3), 'demo');
  const prepared = prepareData(table, TELCO_PREPROCESS, { testSize: 0.2, stratify: true, standardize: true, validationSplit: 0 }, 5);
  dataset = { ...prepared.dataset, train: { start: 0, count: TRAIN_ROWS }, val: { start: TRAIN_ROWS, count: 0 } };
  await initBackend('cpu');
});

/** Plain single-process TensorFlow.js on the same batches. */
function reference(config: JobConfig): Promise<Float32Array> {
  return referenceWeights(config, dataset);
}



describe.each(TRAINING_BACKENDS)('synchronous data parallelism over threads on %s', (backend) => {
  let expected: Float32Array;
  const runs = new Map<number, FitResult>();

  beforeAll(async () => {
    await initBackend('cpu');
    expected = await reference(jobConfig(1));
  });

  for (const threads of [1, 2, 4]) {
    it(`${threads} thread(s), 30 steps: weights equal the single-process reference (max abs diff < 1e-4)`, async () => {
      const fit = await trainOnLanes(jobConfig(threads, backend), dataset, threads);
      runs.set(threads, fit);
      expect(fit.steps).toBe(30);
      expect(fit.samples).toBe(EPOCHS * TRAIN_ROWS);
      const init = initialWeights(weightLayout(modelSpec(jobConfig(1), dataset)), runRngs.weights(11));
      expect(maxAbsDiff(fit.weights, init)).toBeGreaterThan(1e-2); // it did train
      expect(maxAbsDiff(fit.weights, expected)).toBeLessThan(1e-4);
    });
  }

  it('leaks no tensors: every thread reports the same tf.memory().numTensors after every step', () => {
    for (const fit of runs.values()) {
      expect(fit.tensorCounts.length).toBeGreaterThanOrEqual(30);
      expect(new Set(fit.tensorCounts).size).toBe(1);
    }
  });

  it("in the coordinator's own thread (cluster.inProcess): bit-identical to one Piscina thread", async () => {
    const inProcess = await trainOnLanes(jobConfig(1, backend), dataset, 'in-process');
    expect(inProcess.steps).toBe(30);
    expect(new Set(inProcess.tensorCounts).size).toBe(1);
    expect(Buffer.from(inProcess.weights.buffer).equals(Buffer.from(runs.get(1)!.weights.buffer))).toBe(true);
  });

  it('is reproducible: two runs with the same seed and threads give bit-identical weights', async () => {
    const again = await trainOnLanes(jobConfig(2, backend), dataset, 2);
    const first = runs.get(2)!;
    expect(Buffer.from(again.weights.buffer).equals(Buffer.from(first.weights.buffer))).toBe(true);
  });
});
