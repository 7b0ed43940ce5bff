/**
 * Builds a tfjs-layers Sequential model from a ModelSpec and moves flat weights in and out of it.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ModelError } from '../errors.js';
import { layerShapes, layerType } from './layers.js';
import { layerName, weightLayout, type WeightLayout } from './layout.js';
import { buildKerasModel } from './keras-model.js';
import { activations } from './registries.js';
import { GhostBatchNormalization, SeededDropout, type RowContext } from './row-layers.js';
import { inputShape, isDense, type ModelSpec } from './spec.js';

/** The activation string a layer takes, and any layer to put after it (leakyRelu). */
function activationOf(name: string, where: string): (typeof activations)[keyof typeof activations] {
  const activation = activations[name as keyof typeof activations];
  if (!activation) throw new ModelError(`unknown activation "${name}" in ${where}`);
  return activation;
}

/**
 * `logitsOutput`: the last layer without its activation (the model outputs its pre-activation),
 * for an engine that computes the loss from the logits. Same weights either way.
 * `rows`: for a gradient engine, dropout and batch norm as row-layers.ts's (masks from the rows,
 * statistics per virtual batch); without it, the stock layers (saved models, predictions).
 */
export function buildModel(spec: ModelSpec, { logitsOutput = false, rows }: { logitsOutput?: boolean; rows?: RowContext } = {}): tfl.LayersModel {
  if (spec.keras) {
    if (logitsOutput) throw new ModelError('a tfjs-layers model is trained on its outputs, not logits');
    return buildKerasModel(spec.keras, rows, spec.keras.seed);
  }
  layerShapes(spec); // every layer fits the one before it, or a ModelError naming it
  const model = tfl.sequential();
  spec.layers.forEach((layer, i) => {
    const where = `layer ${i + 1}`;
    const first = i === 0 ? { inputShape: [...inputShape(spec)] } : {};
    const name = layerName(layerType(layer), i);
    if (isDense(layer)) {
      const activation = activationOf(layer.activation, where);
      const bare = logitsOutput && i === spec.layers.length - 1;
      if (bare && activation.after) throw new ModelError(`${where}: a ${layer.activation} output has no logits form`);
      model.add(tfl.layers.dense({ name, units: layer.units, activation: bare ? 'linear' : activation.dense, useBias: layer.useBias, ...first }));
      if (activation.after) model.add(activation.after(layer.alpha));
      return;
    }
    switch (layer.type) {
      case 'conv2d': {
        const activation = activationOf(layer.activation, where);
        model.add(
          tfl.layers.conv2d({ name, filters: layer.filters, kernelSize: [...layer.kernelSize], strides: [...layer.strides], padding: layer.padding, activation: activation.dense, useBias: layer.useBias, dataFormat: 'channelsLast', ...first }),
        );
        if (activation.after) model.add(activation.after(layer.alpha));
        return;
      }
      case 'maxPooling2d':
      case 'averagePooling2d': {
        const args = { name, poolSize: [...layer.poolSize] as [number, number], strides: [...layer.strides] as [number, number], padding: layer.padding, dataFormat: 'channelsLast' as const, ...first };
        model.add(layer.type === 'maxPooling2d' ? tfl.layers.maxPooling2d(args) : tfl.layers.averagePooling2d(args));
        return;
      }
      case 'globalAveragePooling2d':
        model.add(tfl.layers.globalAveragePooling2d({ name, dataFormat: 'channelsLast', ...first }));
        return;
      case 'flatten':
        model.add(tfl.layers.flatten({ name, ...first }));
        return;
      case 'activation': {
        const activation = activationOf(layer.activation, where);
        const bare = logitsOutput && i === spec.layers.length - 1;
        if (bare) throw new ModelError(`${where}: the model ends with a dense layer`);
        model.add(activation.after ? activation.after(layer.alpha) : tfl.layers.activation({ name, activation: activation.dense, ...first }));
        return;
      }
      case 'dropout':
        if (i === 0) throw new ModelError(`${where}: dropout cannot be the first layer; put it after the layer whose outputs it drops`);
        model.add(rows ? new SeededDropout({ name, rate: layer.rate, seed: layer.seed }, rows) : tfl.layers.dropout({ name, rate: layer.rate }));
        return;
      case 'batchNormalization':
        if (i === 0) throw new ModelError(`${where}: batch normalisation cannot be the first layer; standardise the data (data.standardize: true) or put it after a layer`);
        model.add(rows ? new GhostBatchNormalization({ name, epsilon: layer.epsilon }, rows) : tfl.layers.batchNormalization({ name, axis: -1, momentum: layer.momentum, epsilon: layer.epsilon }));
        return;
      case 'reshape':
        model.add(tfl.layers.reshape({ name, targetShape: [...layer.targetShape], ...first }));
        return;
      case 'embedding':
        if (i !== 0) throw new ModelError(`${where}: an embedding reads the integer inputs, so it is the first layer`);
        model.add(tfl.layers.embedding({ name, inputDim: layer.inputDim, outputDim: layer.outputDim, inputLength: spec.inputDim, ...first }));
        return;
    }
  });
  return model;
}

/** A model's weights in layer order (each layer's in its own order: Keras's save order). */
function layerOrderWeights(model: tfl.LayersModel): tfl.LayerVariable[] {
  return model.layers.flatMap((layer) => layer.weights);
}

/** The model's variables (trainable and statistics) in flat-layout order, checked against the layout. */
export function modelVariables(model: tfl.LayersModel, layout: WeightLayout): tf.Variable[] {
  const weights = layerOrderWeights(model);
  if (weights.length !== layout.entries.length) {
    throw new ModelError(`model has ${weights.length} weight tensors, layout expects ${layout.entries.length}`);
  }
  return weights.map((w, i) => {
    const entry = layout.entries[i]!;
    if (w.shape.join(',') !== entry.shape.join(',')) {
      throw new ModelError(`weight ${entry.name} has shape [${w.shape.join(', ')}], expected [${entry.shape.join(', ')}]`);
    }
    return w.read() as tf.Variable;
  });
}

/** Copies flat weights into the variables (copying, so later changes to `flat` do not leak in). */
export function assignFlatWeights(variables: readonly tf.Variable[], layout: WeightLayout, flat: Float32Array): void {
  if (flat.length !== layout.size) throw new ModelError(`weights have ${flat.length} values, model needs ${layout.size}`);
  layout.entries.forEach((entry, i) => {
    const values = flat.slice(entry.offset, entry.offset + entry.size);
    const t = tf.tensor(values, entry.shape as number[], 'float32');
    variables[i]!.assign(t);
    t.dispose();
  });
}

/** Builds the model for `spec` and loads `flat` into it. */
export function modelWithWeights(spec: ModelSpec, flat: Float32Array): tfl.LayersModel {
  const model = buildModel(spec);
  const layout = weightLayout(spec);
  assignFlatWeights(modelVariables(model, layout), layout, flat);
  return model;
}

/** Reads a model's weights (batch norm's statistics too) into one flat array, in layer order. */
export async function readFlatWeights(model: tfl.LayersModel): Promise<Float32Array> {
  const variables = layerOrderWeights(model).map((w) => w.read());
  const total = variables.reduce((a, v) => a + v.size, 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const v of variables) {
    out.set((await v.data()) as Float32Array, offset);
    offset += v.size;
  }
  return out;
}
