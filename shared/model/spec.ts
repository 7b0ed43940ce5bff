/**
 * The model spec: a Keras-style Sequential stack of Dense layers, as plain data. It travels to
 * every participant (threads and nodes) and is all they need to build the same model.
 * Pure: no TensorFlow.js here, so the config schema and protocol can import it cheaply.
 */
export const ACTIVATIONS = ['sigmoid', 'relu', 'leakyRelu', 'tanh', 'swish', 'softmax', 'linear'] as const;
export type ActivationName = (typeof ACTIVATIONS)[number];

export const LOSSES = [
  'binaryCrossentropy',
  'categoricalCrossentropy',
  'meanSquaredError',
  'meanAbsoluteError',
  'cosineSimilarity',
] as const;
export type LossName = (typeof LOSSES)[number];

/** The gradient engines (compute/): direct Dense backpropagation, or the stock tfjs-layers tape. */
export const ENGINES = ['dense', 'tape'] as const;
export type EngineName = (typeof ENGINES)[number];

export const METRICS = ['accuracy', 'binaryAccuracy', 'categoricalAccuracy', 'meanSquaredError', 'meanAbsoluteError'] as const;
export type MetricName = (typeof METRICS)[number];

/** Whether larger is better, per metric (early stopping's mode 'auto'); losses are minimised. */
export const METRIC_HIGHER_IS_BETTER: Readonly<Record<MetricName, boolean>> = {
  accuracy: true,
  binaryAccuracy: true,
  categoricalAccuracy: true,
  meanSquaredError: false,
  meanAbsoluteError: false,
};

export interface DenseSpec {
  readonly units: number;
  readonly activation: ActivationName;
  readonly useBias: boolean;
  /** Negative slope for leakyRelu (Keras LeakyReLU default 0.3). */
  readonly alpha?: number;
}

export interface ModelSpec {
  readonly inputDim: number;
  readonly layers: readonly DenseSpec[];
  readonly loss: LossName;
  /** Metric names in the order their sums travel in gradient results. */
  readonly metrics: readonly MetricName[];
}

export function outputDim(spec: ModelSpec): number {
  const last = spec.layers[spec.layers.length - 1];
  if (!last) throw new RangeError('model has no layers');
  return last.units;
}
