/**
 * The single-process reference for "synchronous": plain TensorFlow.js, a tfjs-layers model
 * compiled with tf.train.adam and trained with trainOnBatch on the batches our trainer uses
 * (same seed streams, same epoch order), from the same initial weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import { modelSpec, runRngs } from '../coordinator/fit/trainer.js';
import type { JobConfig } from '../shared/config/schema.js';
import type { Dataset } from '../shared/data/dataset.js';
import { epochBatches, epochOrder } from '../shared/plan/split-plan.js';
import { assignFlatWeights, buildModel, modelVariables, readFlatWeights } from '../shared/model/build.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { outputLayer } from '../shared/model/spec.js';

export async function referenceWeights(config: JobConfig, dataset: Dataset, initial?: Float32Array): Promise<Float32Array> {
  const optimizer = config.compile.optimizer;
  if (optimizer.name !== 'adam') throw new Error('the reference uses adam');
  const spec = modelSpec(config, dataset);
  // As tf.keras: a sigmoid + binary or softmax + categorical cross-entropy model is trained on
  // its logits, with tfjs-core's own tf.losses (the engines have their own formulas).
  const last = spec.keras ? undefined : outputLayer(spec).activation;
  const fromLogits =
    config.compile.loss === 'binaryCrossentropy' && last === 'sigmoid'
      ? (y: tf.Tensor, z: tf.Tensor) => tf.losses.sigmoidCrossEntropy(y, z, undefined, 0, tf.Reduction.NONE)
      : config.compile.loss === 'categoricalCrossentropy' && last === 'softmax'
        ? (y: tf.Tensor, z: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, z, undefined, 0, tf.Reduction.NONE)
        : undefined;
  const model = buildModel(spec, { logitsOutput: fromLogits !== undefined });
  const layout = weightLayout(spec);
  assignFlatWeights(modelVariables(model, layout), layout, initial ?? initialWeights(layout, runRngs.weights(config.seed)));
  model.compile({ optimizer: tf.train.adam(optimizer.learningRate, optimizer.beta1, optimizer.beta2, optimizer.epsilon), loss: fromLogits ?? (config.compile.loss as string) });
  const rng = runRngs.shuffle(config.seed);
  const { features, outputs, train } = dataset;
  for (let epoch = 0; epoch < config.fit.epochs; epoch++) {
    for (const batch of epochBatches(epochOrder(train.count, config.fit.shuffle, rng), config.fit.batchSize)) {
      const x = new Float32Array(batch.length * features);
      const y = new Float32Array(batch.length * outputs);
      batch.forEach((r, i) => {
        const row = train.start + r;
        x.set(dataset.x.subarray(row * features, (row + 1) * features), i * features);
        y.set(dataset.y.subarray(row * outputs, (row + 1) * outputs), i * outputs);
      });
      const xs = tf.tensor2d(x, [batch.length, features]);
      const ys = tf.tensor2d(y, [batch.length, outputs]);
      await model.trainOnBatch(xs, ys);
      tf.dispose([xs, ys]);
    }
  }
  const weights = await readFlatWeights(model);
  model.dispose();
  return weights;
}
