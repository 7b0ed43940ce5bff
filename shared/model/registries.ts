/**
 * Registries, one object per family, as in tfjs-layers: activations, losses, metrics.
 * Adding one means adding an entry here and its name in spec.ts; the types keep both in step.
 * Losses and metrics are TensorFlow.js's own Keras implementations (tfjs-layers), returning one
 * value per sample; the engine takes their mean.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { ActivationName, LossName, MetricName } from './spec.js';

type PerSample = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;

export interface ActivationEntry {
  /** The activation string tfjs-layers' Dense layer takes. */
  readonly dense: 'sigmoid' | 'relu' | 'tanh' | 'swish' | 'softmax' | 'linear';
  /** A layer to append after the Dense layer (for activations Dense has no string for). */
  readonly after?: (alpha: number | undefined) => tfl.layers.Layer;
  /** The function itself, for plots and checks. */
  readonly fn: (x: tf.Tensor) => tf.Tensor;
}

export const activations: Readonly<Record<ActivationName, ActivationEntry>> = {
  sigmoid: { dense: 'sigmoid', fn: (x) => tf.sigmoid(x) },
  relu: { dense: 'relu', fn: (x) => tf.relu(x) },
  leakyRelu: {
    dense: 'linear',
    after: (alpha) => tfl.layers.leakyReLU({ alpha: alpha ?? 0.3 }),
    fn: (x) => tf.leakyRelu(x, 0.3),
  },
  tanh: { dense: 'tanh', fn: (x) => tf.tanh(x) },
  swish: { dense: 'swish', fn: (x) => tf.mul(x, tf.sigmoid(x)) },
  softmax: { dense: 'softmax', fn: (x) => tf.softmax(x) },
  linear: { dense: 'linear', fn: (x) => x.clone() },
};

export interface LossEntry {
  readonly fn: PerSample;
}

export const losses: Readonly<Record<LossName, LossEntry>> = {
  binaryCrossentropy: { fn: (t, p) => tfl.metrics.binaryCrossentropy(t, p) },
  categoricalCrossentropy: { fn: (t, p) => tfl.metrics.categoricalCrossentropy(t, p) },
  meanSquaredError: { fn: (t, p) => tfl.metrics.meanSquaredError(t, p) },
  meanAbsoluteError: { fn: (t, p) => tfl.metrics.meanAbsoluteError(t, p) },
  // Keras' cosine_similarity loss: -sum(l2norm(yTrue) * l2norm(yPred)).
  cosineSimilarity: { fn: (t, p) => tfl.metrics.cosineProximity(t, p) },
};

export interface MetricEntry {
  /** Per-sample metric; `outputUnits` lets 'accuracy' pick binary or categorical like Keras. */
  readonly fn: (outputUnits: number) => PerSample;
}

export const metrics: Readonly<Record<MetricName, MetricEntry>> = {
  accuracy: {
    fn: (units) => (units === 1 ? (t, p) => tfl.metrics.binaryAccuracy(t, p) : (t, p) => tfl.metrics.categoricalAccuracy(t, p)),
  },
  binaryAccuracy: { fn: () => (t, p) => tfl.metrics.binaryAccuracy(t, p) },
  categoricalAccuracy: { fn: () => (t, p) => tfl.metrics.categoricalAccuracy(t, p) },
  meanSquaredError: { fn: () => (t, p) => tfl.metrics.meanSquaredError(t, p) },
  meanAbsoluteError: { fn: () => (t, p) => tfl.metrics.meanAbsoluteError(t, p) },
};
