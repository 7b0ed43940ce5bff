/**
 * Convolutional models (model.layers with reshape, conv2d, pooling, flatten, dense) keep the core
 * guarantee: N threads with global batch B give the model one process gives with batch B. The
 * reference is plain TensorFlow.js (cpu): the tfjs-layers model trained with trainOnBatch on the
 * same batches from the same initial weights; the threads run the tape engine on wasm, with
 * dptrain's convolution kernels (shared/wasm/tfjs/). The data are 8 x 8 images of three
 * kinds of stroke (horizontal, vertical, diagonal) with noise, as flat rows.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { modelSpec } from '../coordinator/fit/trainer.js';
import { maxAbsDiff, trainOnLanes } from './thread-runs.js';
import { checkAgainstData } from '../coordinator/validate.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import type { JobConfig } from '../shared/config/schema.js';
import type { Dataset } from '../shared/data/dataset.js';
import { describeModel } from '../shared/model/layers.js';
import { weightLayout } from '../shared/model/layout.js';
import { referenceWeights } from './reference.js';
import { ROWS, SIDE, strokes } from './strokes.js';

function jobConfig(threads: number): JobConfig {
  return validateConfig(
    {
      seed: 7,
      data: { label: { column: 'kind', type: 'categorical' } },
      model: {
        layers: [
          { type: 'reshape', targetShape: [SIDE, SIDE, 1] },
          { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' },
          { type: 'maxPooling2d', poolSize: 2 },
          { type: 'conv2d', filters: 6, kernelSize: [2, 3], strides: 1, padding: 'same', activation: 'relu' },
          { type: 'averagePooling2d', poolSize: 2, strides: 1 },
          { type: 'flatten' },
          { units: 8, activation: 'relu' },
          { units: 3, activation: 'softmax' },
        ],
      },
      compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 4, batchSize: 32 },
      cluster: { threads, backend: 'wasm' },
    },
    'test config',
  );
}

let dataset: Dataset;

beforeAll(async () => {
  dataset = strokes(ROWS, 3);
  await initBackend('cpu');
});



describe('convolutional models, data-parallel', () => {
  let expected: Float32Array;
  beforeAll(async () => {
    expected = await referenceWeights(jobConfig(1), dataset);
  });

  it('the spec: shapes chain, weights in Keras order, a one-line description', () => {
    const spec = modelSpec(jobConfig(1), dataset);
    expect(weightLayout(spec).entries.map((e) => `${e.name} [${e.shape.join(',')}]`)).toEqual([
      'conv2d_2/kernel [3,3,1,4]',
      'conv2d_2/bias [4]',
      'conv2d_4/kernel [2,3,4,6]',
      'conv2d_4/bias [6]',
      'dense_7/kernel [24,8]',
      'dense_7/bias [8]',
      'dense_8/kernel [8,3]',
      'dense_8/bias [3]',
    ]);
    expect(describeModel(spec)).toBe('64 -> reshape [8,8,1] -> conv 4x3x3 -> max-pool 2x2 -> conv 6x2x3 -> avg-pool 2x2 -> flatten -> dense 8 -> dense 3');
  });

  it.each([1, 2, 'in-process'] as const)('%s thread(s), 20 steps: the weights of one process (max abs diff < 1e-4), and it learns', async (threads) => {
    const fit = await trainOnLanes(jobConfig(threads === 'in-process' ? 1 : threads), dataset, threads);
    expect(fit.steps).toBe(20);
    expect(maxAbsDiff(fit.weights, expected)).toBeLessThan(1e-4);
    expect(fit.history.at(-1)!.values['loss']!).toBeLessThan(fit.history[0]!.values['loss']!);
  });

  it('a model that does not fit its data is a ConfigError naming the layer', () => {
    const bad = (layers: unknown[]): (() => void) => () => {
      const config = validateConfig({ ...jobConfig(1), model: { layers } } as never, 'test config');
      checkAgainstData(config, modelSpec(config, dataset), dataset);
    };
    expect(bad([{ type: 'conv2d', filters: 2, kernelSize: 3 }, { type: 'flatten' }, { units: 3 }])).toThrow(/model.layers\[0\] \(conv2d\) needs each sample as \[height, width, channels\]; it gets \[64\]: put a reshape layer before it/);
    expect(bad([{ type: 'reshape', targetShape: [8, 9, 1] }, { type: 'flatten' }, { units: 3 }])).toThrow(/model.layers\[0\] \(reshape\): \[8, 9, 1\] has 72 values per sample, its input \[64\] has 64/);
    expect(bad([{ type: 'reshape', targetShape: [8, 8, 1] }, { units: 3 }])).toThrow(/model.layers\[1\] \(dense\) needs a flat input; it gets \[8, 8, 1\]: put a flatten layer before it/);
    expect(bad([{ type: 'reshape', targetShape: [8, 8, 1] }, { type: 'flatten' }])).toThrow(/model.layers\[1\] is flatten: a model ends with a dense layer/);
    expect(bad([{ type: 'reshape', targetShape: [8, 8, 1] }, { type: 'maxPooling2d', poolSize: 9 }, { type: 'flatten' }, { units: 3 }])).toThrow(/model.layers\[1\]: a 9x9 window does not fit a 8x8 input/);
    expect(() => validateConfig({ ...jobConfig(1), model: { layers: [{ type: 'conv3d', filters: 2 }] } } as never, 'test config')).toThrow(/model.layers\[0\]/);
  });
});
