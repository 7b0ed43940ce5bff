/**
 * A tfjs-layers model the user built (functional, two branches) trains through train(): its
 * serialisation (getConfig) goes to the threads, its own weights are the initial ones, and 2
 * threads give the weights of stock TensorFlow.js (trainOnBatch, cpu) on the same batches from
 * the same weights. The saved model is the user's architecture, read by tf.loadLayersModel.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadSavedModel, train, type TrainConfig } from '../index.js';
import { readJobData } from '../coordinator/job-data.js';
import { initBackend } from '../shared/backend.js';
import { ROOT, TRAINING_BACKENDS, type TrainingBackend } from './helpers.js';
import { validateConfig } from '../shared/config/load.js';
import { loadModel } from '../shared/model/io.js';
import { kerasSpecOf } from '../shared/model/keras-model.js';
import { TOKEN, maxAbsDiff, readRunWeights, startWorker, type Proc } from './cluster-helpers.js';

import { referenceWeights } from './reference.js';

/** Pixels through a dense branch and a convolutional branch, concatenated; optionally a Dropout on the dense branch. */
function twoBranches(dropout = 0): tfl.LayersModel {
  const input = tfl.input({ shape: [784] });
  const hidden = tfl.layers.dense({ units: 16, activation: 'relu' }).apply(input) as tfl.SymbolicTensor;
  const dense = dropout > 0 ? (tfl.layers.dropout({ rate: dropout }).apply(hidden) as tfl.SymbolicTensor) : hidden;
  const image = tfl.layers.reshape({ targetShape: [28, 28, 1] }).apply(input) as tfl.SymbolicTensor;
  const conv = tfl.layers.conv2d({ filters: 4, kernelSize: 5, strides: 3, activation: 'relu' }).apply(image) as tfl.SymbolicTensor;
  const both = tfl.layers.concatenate().apply([dense, tfl.layers.flatten().apply(conv) as tfl.SymbolicTensor]) as tfl.SymbolicTensor;
  const output = tfl.layers.dense({ units: 10, activation: 'softmax' }).apply(both) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: output });
}

/** The same architecture without its regularizers (a fresh model from its config). */
function withoutRegularizers(model: tfl.LayersModel): tfl.LayersModel {
  const config = JSON.parse(JSON.stringify(model.getConfig())) as { layers: { config: Record<string, unknown> }[] };
  for (const layer of config.layers) {
    delete layer.config['kernelRegularizer'];
    delete layer.config['biasRegularizer'];
  }
  return tfl.Sequential.fromConfig(tfl.Sequential, config as never) as tfl.LayersModel;
}

let dataFile: string;
beforeAll(async () => {
  await initBackend('cpu');
  dataFile = join(mkdtempSync(join(tmpdir(), 'dptrain-layers-model-')), 'digits.csv');
  const written = spawnSync(process.execPath, [join(ROOT, 'scripts', 'mnist-csv.mjs'), '--out', dataFile, '--rows', '400'], { encoding: 'utf8' });
  expect(written.status, written.stderr).toBe(0);
});

const jobConfig = (model: TrainConfig['model'], out: string, backend: TrainingBackend = 'wasm'): TrainConfig => ({
  seed: 9,
  data: { path: dataFile, label: { column: 'digit', type: 'categorical' } },
  model,
  compile: { optimizer: { name: 'adam', learningRate: 0.003 }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
  fit: { epochs: 2, batchSize: 32 },
  cluster: { threads: 2, backend },
  metrics: { listen: false },
  output: { dir: out },
});

describe.each(TRAINING_BACKENDS)('a user-built tf.LayersModel through train() on %s', { timeout: 300_000 }, (backend) => {
  it('functional, two branches, 2 threads, 20 steps: the weights of stock tfjs from its own initial weights; saved as its architecture', async () => {
    const model = twoBranches();
    const { keras, weights: initial } = await kerasSpecOf(model);
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-layers-model-')), 'run');
    const result = await train(jobConfig(model, out, backend), { log: () => {} });
    expect(result.summary.steps).toBe(20);
    expect(result.summary.test['accuracy']).toBeGreaterThan(0.3);
    const config = validateConfig({ ...jobConfig({ keras: keras as never }, out) } as never, 'c');
    const expected = await referenceWeights(config, readJobData(config).dataset, initial);
    const trained = readRunWeights(out);
    expect(maxAbsDiff(trained, expected)).toBeLessThan(1e-4);
    expect(maxAbsDiff(trained, initial)).toBeGreaterThan(1e-3);
    // tf.loadLayersModel reads the user's architecture back; it predicts as dptrain's saved model does
    const loaded = await loadModel(join(out, 'model'));
    expect(loaded.layers.map((l) => l.getClassName())).toEqual(model.layers.map((l) => l.getClassName()));
    const saved = await loadSavedModel(out, 'cpu');
    const x = readJobData(config).dataset.x.slice(0, 5 * 784);
    const stock = tf.tidy(() => (loaded.predict(tf.tensor2d(x, [5, 784])) as tf.Tensor).dataSync() as Float32Array);
    expect(maxAbsDiff((await saved.engine.predict(x, 5)), stock)).toBeLessThan(1e-5);
    saved.engine.dispose();
  });

  it("its regularizers' penalties join the loss, as in its own model.fit: the weights of stock tfjs", async () => {
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [784], units: 8, activation: 'relu', kernelRegularizer: tfl.regularizers.l1l2({ l1: 0.01, l2: 0.05 }), biasRegularizer: tfl.regularizers.l2({ l2: 0.1 }) }),
        tfl.layers.dense({ units: 10, activation: 'softmax', kernelRegularizer: tfl.regularizers.l2({ l2: 0.2 }) }),
      ],
    });
    const { keras, weights: initial } = await kerasSpecOf(model);
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-layers-model-')), 'run');
    await train({ ...jobConfig(model, out, backend), fit: { epochs: 1, batchSize: 32 } }, { log: () => {} });
    const config = validateConfig({ ...jobConfig({ keras: keras as never }, out), fit: { epochs: 1, batchSize: 32 } } as never, 'c');
    const expected = await referenceWeights(config, readJobData(config).dataset, initial);
    const unregularized = await referenceWeights(validateConfig({ ...jobConfig({ keras: (await kerasSpecOf(withoutRegularizers(model))).keras } as never, out), fit: { epochs: 1, batchSize: 32 } } as never, 'c'), readJobData(config).dataset, initial);
    const trained = readRunWeights(out);
    expect(maxAbsDiff(trained, expected)).toBeLessThan(1e-4);
    // and the penalties matter here: without them the weights differ by far more
    expect(maxAbsDiff(unregularized, expected)).toBeGreaterThan(1e-3);
  });

  it('1 thread + 1 worker node process: the node builds the model from its serialisation; the same weights', async () => {
    const model = twoBranches();
    const { keras, weights: initial } = await kerasSpecOf(model);
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-layers-model-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const out = join(dir, 'run');
    const base = jobConfig(model, out, backend);
    const procs: Proc[] = [];
    try {
      const result = await train(
        { ...base, cluster: { threads: 1, backend, listen: '127.0.0.1:0', tokenFile, minWorkers: 1, heartbeatInterval: 0.5, heartbeatTimeout: 60, stepTimeout: 180, waitTimeout: 300 } },
        { log: () => {}, onListening: (url) => void procs.push(startWorker('w1', url, tokenFile, ['--backend', backend])) },
      );
      expect(result.summary.participants.find((p) => p.kind === 'node')!.samples).toBeGreaterThan(0);
      expect(await procs[0]!.exited, procs[0]!.output).toBe(0);
    } finally {
      for (const p of procs) p.kill();
    }
    const config = validateConfig({ ...base, model: { keras: keras as never } } as never, 'c');
    expect(maxAbsDiff(readRunWeights(out), await referenceWeights(config, readJobData(config).dataset, initial))).toBeLessThan(1e-4);
  });

});

describe('a user-built tf.LayersModel through train()', { timeout: 300_000 }, () => {
  it('its Dropout layers draw masks from (seed, step, row): the same model twice on 1 lane and on 2 threads, the same weights', async () => {
    // stock tfjs Dropout draws from tfjs's random stream: two runs would differ
    const model = twoBranches(0.4);
    const runs: Float32Array[] = [];
    for (const threads of [1, 1, 2]) {
      const out = join(mkdtempSync(join(tmpdir(), 'dptrain-layers-model-')), 'run');
      await train({ ...jobConfig(model, out), seed: 3, cluster: { threads, backend: 'wasm' } }, { log: () => {} });
      runs.push(readRunWeights(out));
    }
    expect(maxAbsDiff(runs[0]!, runs[1]!)).toBe(0);
    expect(maxAbsDiff(runs[2]!, runs[0]!)).toBeLessThan(1e-4);
    // and the masks matter: the same weights without the Dropout layer train elsewhere
    const plain = twoBranches();
    // each weighted layer takes the weights of the dropout model's layer of the same shapes
    const sources = model.layers.filter((l) => l.weights.length > 0);
    const shapes = (l: tfl.layers.Layer): string => JSON.stringify(l.weights.map((w) => w.shape));
    for (const layer of plain.layers.filter((l) => l.weights.length > 0)) {
      const from = sources.splice(sources.findIndex((l) => shapes(l) === shapes(layer)), 1)[0]!;
      layer.setWeights(from.getWeights());
    }
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-layers-model-')), 'run');
    await train({ ...jobConfig(plain, out), seed: 3, cluster: { threads: 1, backend: 'wasm' } }, { log: () => {} });
    expect(maxAbsDiff(readRunWeights(out), runs[0]!)).toBeGreaterThan(1e-3);
  });

  it('a model that cannot be split exactly, or does not fit the data, is a ConfigError naming it', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-layers-model-')), 'run');
    const bn = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [784], units: 4 }), tfl.layers.batchNormalization(), tfl.layers.dense({ units: 10, activation: 'softmax' })] });
    await expect(train(jobConfig(bn, out))).rejects.toThrow(/non-trainable weights \(batch_normalization_\w+\/moving_mean.*use model.layers with type batchNormalization/);
    const narrow = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [100], units: 10, activation: 'softmax' })] });
    await expect(train(jobConfig(narrow, out))).rejects.toThrow(ConfigError);
    await expect(train(jobConfig(narrow, out))).rejects.toThrow(/model: its input \[100\] takes 100 values per sample, the data has 784/);
  });
});
