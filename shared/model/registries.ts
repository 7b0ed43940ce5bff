/**
 * Registries, one object per family, as in tfjs-layers: activations and losses (metrics, which
 * keep sums, are in metric-sums.ts).
 * Adding one means adding an entry here and its name in spec.ts; the types keep both in step.
 * Losses and metrics are TensorFlow.js's own Keras implementations (tfjs-layers), returning one
 * value per sample; the engine takes their mean.
 *
 * Two pairs are computed from the logits, as tf.keras does (its backend looks through a Sigmoid
 * or Softmax output op and calls sigmoid_cross_entropy_with_logits /
 * softmax_cross_entropy_with_logits): a sigmoid output with binaryCrossentropy and a softmax
 * output with categoricalCrossentropy. tfjs-layers instead clips the probability to
 * [epsilon, 1 - epsilon] and takes its log; the clip's gradient is zero, so a saturated sample
 * (|logit| beyond ~16) stops contributing to training. Other pairs keep the clipped form.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { ActivationName, LossName, LossOptions } from './spec.js';

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
  /** Per-sample loss of the model's output (probabilities for the cross-entropies). */
  readonly fn: PerSample;
  /** Per-sample loss of the last layer's pre-activation, used when that layer's activation is `activation`. */
  readonly fromLogits?: { readonly activation: ActivationName; readonly fn: PerSample };
}

/**
 * Keras' binary_crossentropy from logits z, averaged over the last axis:
 * max(z, 0) - z * y + softplus(-|z|) (not log1p(exp(-|z|)): tfjs-wasm's log1p is log(1 + x),
 * which turns softplus(-20) = 2e-9 into 0). Its gradient, sigmoid(z) - y, is taken as
 * (1 - y) sigmoid(z) - y sigmoid(-z): the same number, without sigmoid(z) rounding to 1 in
 * float32 (autodiff of the loss's three terms adds 1 - 1 + 2e-9 and gets 0 at z = 20, y = 1).
 */
const sigmoidCrossEntropyTerms = tf.customGrad(((y: tf.Tensor, z: tf.Tensor, save: tf.GradSaveFunc) => {
  save([y, z]);
  return {
    value: tf.add(tf.sub(tf.relu(z), tf.mul(z, y)), tf.softplus(tf.neg(tf.abs(z)))),
    gradFunc: (dy: tf.Tensor, [ys, zs]: tf.Tensor[]) => [
      tf.mul(dy, tf.neg(zs!)),
      tf.mul(dy, tf.sub(tf.mul(tf.sub(1, ys!), tf.sigmoid(zs!)), tf.mul(ys!, tf.sigmoid(tf.neg(zs!))))),
    ],
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (y: tf.Tensor, z: tf.Tensor) => tf.Tensor;

function sigmoidCrossEntropyWithLogits(y: tf.Tensor, z: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mean(sigmoidCrossEntropyTerms(y, z), -1));
}

/** Keras' categorical_crossentropy from logits: -sum(y * logSoftmax(z)) over the last axis. */
function softmaxCrossEntropyWithLogits(y: tf.Tensor, z: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(z)), -1)));
}

export const losses: Readonly<Record<LossName, LossEntry>> = {
  binaryCrossentropy: {
    fn: (t, p) => tfl.metrics.binaryCrossentropy(t, p),
    fromLogits: { activation: 'sigmoid', fn: sigmoidCrossEntropyWithLogits },
  },
  categoricalCrossentropy: {
    fn: (t, p) => tfl.metrics.categoricalCrossentropy(t, p),
    fromLogits: { activation: 'softmax', fn: softmaxCrossEntropyWithLogits },
  },
  meanSquaredError: { fn: (t, p) => tfl.metrics.meanSquaredError(t, p) },
  meanAbsoluteError: { fn: (t, p) => tfl.metrics.meanAbsoluteError(t, p) },
  // Keras' cosine_similarity loss: -sum(l2norm(yTrue) * l2norm(yPred)).
  cosineSimilarity: { fn: (t, p) => tfl.metrics.cosineProximity(t, p) },
  huber: { fn: huber(1) },
};

/**
 * Keras's huber loss, averaged over the last axis: 0.5 e^2 where |e| <= delta, else
 * delta |e| - 0.5 delta^2 (e = prediction - label), written as 0.5 m^2 + delta (|e| - m) with
 * m = min(|e|, delta): the same values, and a gradient tfjs can take (a where() on a comparison
 * has none); at |e| = delta it is the quadratic side's, as Keras's.
 */
function huber(delta: number): PerSample {
  return (t, p) =>
    tf.tidy(() => {
      const abs = tf.abs(tf.sub(p, t));
      const m = tf.minimum(abs, delta);
      return tf.mean(tf.add(tf.mul(0.5, tf.square(m)), tf.mul(delta, tf.sub(abs, m))), -1);
    });
}

/** Keras's label smoothing: labels towards 1/2 (binary) or 1/classes (categorical) by `share`. */
function smoothed(loss: LossName, share: number, fn: PerSample): PerSample {
  return (t, p) =>
    tf.tidy(() => {
      const toward = loss === 'binaryCrossentropy' ? 0.5 : 1 / t.shape[t.shape.length - 1]!;
      return fn(tf.add(tf.mul(t, 1 - share), share * toward), p);
    });
}

/** The loss a model's engines take, from its name, its arguments and the last layer's activation. */
export interface ResolvedLoss {
  /** Per-sample loss of the model's output. */
  readonly fn: PerSample;
  /** Per-sample loss of the last pre-activation, where the loss is computed from it (see the opening comment). */
  readonly logits?: PerSample;
}

export function resolveLoss(loss: LossName, options: LossOptions | undefined, lastActivation: ActivationName | undefined): ResolvedLoss {
  const entry = losses[loss];
  const share = options?.labelSmoothing ?? 0;
  const wrap = (fn: PerSample): PerSample => (share > 0 ? smoothed(loss, share, fn) : fn);
  if (loss === 'huber') return { fn: huber(options?.delta ?? 1) };
  // fromLogits: the output is the logits (a linear layer); the loss takes it as tf.keras does
  if (options?.fromLogits && entry.fromLogits) return { fn: wrap(entry.fromLogits.fn) };
  const logits = entry.fromLogits && lastActivation !== undefined && entry.fromLogits.activation === lastActivation ? wrap(entry.fromLogits.fn) : undefined;
  return { fn: wrap(entry.fn), ...(logits ? { logits } : {}) };
}


/**
 * The batch's training loss: the mean over its rows of each row's loss times its class's weight
 * (Keras's class_weight: the sum of weighted losses over the rows, divided by the rows), so the
 * count-weighted average of participants' losses is the whole batch's. Without weights, the mean.
 */
/** An evaluation's loss sum: each row's loss, times its weight where given (data.sampleWeight; class weights are training's only, as in Keras). */
export function evaluationLossSum(perSample: tf.Tensor, sampleWeights?: Float32Array): tf.Scalar {
  if (!sampleWeights) return tf.sum(perSample);
  return tf.sum(tf.mul(tf.reshape(perSample, [sampleWeights.length]), tf.tensor1d(sampleWeights)));
}

export function batchLoss(perSample: tf.Tensor, ys: tf.Tensor, classWeights: readonly number[] | undefined, sampleWeights?: Float32Array): tf.Scalar {
  const rows = ys.shape[0]!;
  // Keras's sample_weight: each row's loss times its weight, the sum over the rows divided by them
  const weighted = sampleWeights ? tf.mul(tf.reshape(perSample, [rows]), tf.tensor1d(sampleWeights)) : perSample;
  if (!classWeights) return tf.mean(weighted);
  const weights =
    ys.shape[1] === 1
      ? tf.add(tf.mul(ys, classWeights[1]! - classWeights[0]!), classWeights[0]!)
      : tf.matMul(ys, tf.tensor2d(classWeights as number[], [classWeights.length, 1]));
  return tf.mean(tf.mul(tf.reshape(weighted, [rows]), tf.reshape(weights, [rows])));
}
