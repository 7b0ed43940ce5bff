/**
 * Flat weights: the whole model's trainable parameters as one Float32Array, in Keras order
 * (for each layer with weights: kernel row-major, then bias; a Dense kernel is [fanIn, units], a
 * conv2d kernel [kernelHeight, kernelWidth, inChannels, filters], embeddings [inputDim,
 * outputDim]; batch norm: gamma, beta, moving mean, moving variance). The optimizer, the reduction
 * and the wire all work on this one array; only the gradient engine maps it to tensors.
 */
import { Rng } from '../math/rng.js';
import { isStatistic, layerShapes, layerType, type WeightKind } from './layers.js';
import type { LayerType, ModelSpec } from './spec.js';

export interface WeightEntry {
  readonly name: string;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly size: number;
  readonly kind: WeightKind;
  /** False for state set from batch statistics (batch norm's moving mean and variance). */
  readonly trainable: boolean;
}

export interface WeightLayout {
  readonly entries: readonly WeightEntry[];
  /** Total number of parameters. */
  readonly size: number;
}

const SNAKE: Readonly<Record<LayerType, string>> = {
  dense: 'dense',
  conv2d: 'conv2d',
  maxPooling2d: 'max_pooling2d',
  averagePooling2d: 'average_pooling2d',
  globalAveragePooling2d: 'global_average_pooling2d',
  dropout: 'dropout',
  activation: 'activation',
  batchNormalization: 'batch_normalization',
  flatten: 'flatten',
  reshape: 'reshape',
  embedding: 'embedding',
};

/** Weight names as tfjs-layers gives them (the last part of a LayerVariable's name). */
const KERAS_NAME: Readonly<Record<WeightKind, string>> = {
  kernel: 'kernel',
  bias: 'bias',
  embeddings: 'embeddings',
  gamma: 'gamma',
  beta: 'beta',
  movingMean: 'moving_mean',
  movingVariance: 'moving_variance',
};

/** Layer names used in built and saved models, numbered by position: dense_1, conv2d_1, max_pooling2d_2, ... */
export function layerName(type: LayerType, index: number): string {
  return `${SNAKE[type]}_${index + 1}`;
}

/** The init kind of a tfjs-layers weight, by its name's last part (unknown ones are kernels: glorot). */
function kindOfName(name: string): WeightKind {
  const last = name.split('/').at(-1)!;
  const known = (Object.entries(KERAS_NAME) as [WeightKind, string][]).find(([, n]) => n === last);
  return known ? known[0] : 'kernel';
}

export function weightLayout(spec: ModelSpec): WeightLayout {
  const entries: WeightEntry[] = [];
  let offset = 0;
  if (spec.keras) {
    for (const { name, shape } of spec.keras.weights) {
      const size = shape.reduce((a, n) => a * n, 1);
      entries.push({ name, shape, offset, size, kind: kindOfName(name), trainable: true });
      offset += size;
    }
    return { entries, size: offset };
  }
  layerShapes(spec).forEach(({ weights }, i) => {
    const name = layerName(layerType(spec.layers[i]!), i);
    for (const { kind, shape } of weights) {
      const size = shape.reduce((a, n) => a * n, 1);
      entries.push({ name: `${name}/${KERAS_NAME[kind]}`, shape, offset, size, kind, trainable: !isStatistic(kind) });
      offset += size;
    }
  });
  return { entries, size: offset };
}

/**
 * Keras defaults: glorotUniform kernels (limit sqrt(6 / (fanIn + fanOut)); for a conv kernel
 * [kh, kw, in, out], fanIn = kh kw in and fanOut = kh kw out), zero biases, embeddings uniform
 * in [-0.05, 0.05] (Keras's 'uniform'), batch norm's gamma and moving variance ones, its beta
 * and moving mean zeros.
 */
export function initialWeights(layout: WeightLayout, rng: Rng): Float32Array {
  const weights = new Float32Array(layout.size);
  for (const entry of layout.entries) {
    if (entry.kind === 'embeddings') {
      for (let i = 0; i < entry.size; i++) weights[entry.offset + i] = (rng.next() * 2 - 1) * 0.05;
      continue;
    }
    if (entry.kind === 'gamma' || entry.kind === 'movingVariance') weights.fill(1, entry.offset, entry.offset + entry.size);
    if (entry.kind !== 'kernel') continue;
    const receptive = entry.shape.slice(0, -2).reduce((a, n) => a * n, 1);
    const fanIn = receptive * entry.shape.at(-2)!;
    const fanOut = receptive * entry.shape.at(-1)!;
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    for (let i = 0; i < entry.size; i++) weights[entry.offset + i] = (rng.next() * 2 - 1) * limit;
  }
  return weights;
}
