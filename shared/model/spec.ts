/**
 * The model spec: a Keras-style Sequential stack of layers (Dense, and conv2d, pooling, flatten
 * and reshape for image-shaped data), as plain data. It travels to every participant (threads
 * and nodes) and is all they need to build the same model. Pure: no TensorFlow.js here, so the
 * config schema and protocol can import it cheaply. Shapes and weights per layer: layers.ts.
 */
import type { AugmentSpec } from './augment.js';

export const ACTIVATIONS = ['sigmoid', 'relu', 'leakyRelu', 'tanh', 'swish', 'softmax', 'linear'] as const;
export type ActivationName = (typeof ACTIVATIONS)[number];

export const LOSSES = [
  'binaryCrossentropy',
  'categoricalCrossentropy',
  'meanSquaredError',
  'meanAbsoluteError',
  'cosineSimilarity',
  'huber',
] as const;
export type LossName = (typeof LOSSES)[number];

/** Keras's loss arguments (compile.loss as an object); absent keys take Keras's defaults. */
export interface LossOptions {
  /** The cross-entropies: the outputs are logits (a linear last layer); the loss applies sigmoid or softmax. */
  readonly fromLogits?: boolean;
  /** The cross-entropies: labels moved towards 1/2 (binary) or 1/classes (categorical) by this share. */
  readonly labelSmoothing?: number;
  /** huber: where the loss turns from quadratic to linear (Keras's default 1). */
  readonly delta?: number;
}

/** The gradient engines (compute/): direct Dense backpropagation, or the stock tfjs-layers tape. */
export const ENGINES = ['dense', 'tape'] as const;
export type EngineName = (typeof ENGINES)[number];

export const METRICS = [
  'accuracy',
  'binaryAccuracy',
  'categoricalAccuracy',
  'topKCategoricalAccuracy',
  'meanSquaredError',
  'rootMeanSquaredError',
  'meanAbsoluteError',
  'precision',
  'recall',
  'f1Score',
  'auc',
  'prAuc',
] as const;
export type MetricName = (typeof METRICS)[number];

/**
 * A metric with Keras's arguments where they differ from the defaults: `k` of
 * topKCategoricalAccuracy (5), `numThresholds` of auc and prAuc (200), `threshold` above which an
 * output counts as positive for binaryAccuracy, precision, recall and f1Score (0.5).
 */
export interface MetricObject {
  readonly name: MetricName;
  readonly k?: number;
  readonly numThresholds?: number;
  readonly threshold?: number;
}
/** A metric by name (Keras's defaults) or with its arguments. */
export type MetricConfig = MetricName | MetricObject;

/** The metric's name, whichever form it takes. */
export function metricName(metric: MetricConfig): MetricName {
  return typeof metric === 'string' ? metric : metric.name;
}

/** The most metric sums one model may report (metric-sums.ts; frames that carry them are sized for this). */
export const MAX_METRIC_SUMS = 2048;

/** Layer types a spec may hold (the config's `model.layers[].type`). */
export const LAYER_TYPES = [
  'dense',
  'conv2d',
  'maxPooling2d',
  'averagePooling2d',
  'globalAveragePooling2d',
  'flatten',
  'reshape',
  'embedding',
  'dropout',
  'batchNormalization',
  'activation',
] as const;
export type LayerType = (typeof LAYER_TYPES)[number];
export const PADDINGS = ['valid', 'same'] as const;
export type Padding = (typeof PADDINGS)[number];

/** A Dense layer (no `type`: Dense is what a spec held before other layers, and still the default). */
export interface DenseSpec {
  readonly type?: 'dense';
  readonly units: number;
  readonly activation: ActivationName;
  readonly useBias: boolean;
  /** Negative slope for leakyRelu (Keras LeakyReLU default 0.3). */
  readonly alpha?: number;
}

/** A 2D convolution over [height, width, channels] (channels last, as Keras's default). */
export interface Conv2DSpec {
  readonly type: 'conv2d';
  readonly filters: number;
  readonly kernelSize: readonly [number, number];
  readonly strides: readonly [number, number];
  readonly padding: Padding;
  readonly activation: ActivationName;
  readonly useBias: boolean;
  readonly alpha?: number;
}

export interface Pool2DSpec {
  readonly type: 'maxPooling2d' | 'averagePooling2d';
  readonly poolSize: readonly [number, number];
  readonly strides: readonly [number, number];
  readonly padding: Padding;
}

export interface FlattenSpec {
  readonly type: 'flatten';
}

/** Reshapes each sample (e.g. 784 pixel columns to [28, 28, 1]). */
export interface ReshapeSpec {
  readonly type: 'reshape';
  readonly targetShape: readonly number[];
}

/** Integer inputs (token ids in [0, inputDim)) to vectors of outputDim: each sample [n] becomes [n, outputDim]. */
export interface EmbeddingSpec {
  readonly type: 'embedding';
  readonly inputDim: number;
  readonly outputDim: number;
}

/** Mean over height and width: [h, w, c] becomes [c]. */
export interface GlobalPool2DSpec {
  readonly type: 'globalAveragePooling2d';
}

/**
 * Dropout whose mask is a function of (seed, step, training row, element): the same whichever
 * participant computes a row, so the split of a batch does not change it.
 */
export interface DropoutSpec {
  readonly type: 'dropout';
  readonly rate: number;
  readonly seed: number;
}

/**
 * Batch normalisation over the last axis (channels last), with batch statistics taken over
 * virtual batches of `virtualBatchSize` consecutive rows of the global batch (ghost batch norm),
 * which the split plan never cuts; the moving statistics are updated once per step from them.
 */
export interface BatchNormSpec {
  readonly type: 'batchNormalization';
  readonly momentum: number;
  readonly epsilon: number;
  readonly virtualBatchSize: number;
}

/** An activation on its own (conv2d -> batchNormalization -> activation relu, the usual block). */
export interface ActivationSpec {
  readonly type: 'activation';
  readonly activation: ActivationName;
  readonly alpha?: number;
}

export type LayerSpec = ActivationSpec | DenseSpec | Conv2DSpec | Pool2DSpec | GlobalPool2DSpec | FlattenSpec | ReshapeSpec | EmbeddingSpec | DropoutSpec | BatchNormSpec;

export function isDense(layer: LayerSpec): layer is DenseSpec {
  return layer.type === undefined || layer.type === 'dense';
}

/** Every layer Dense: the direct Dense engine can compute it (else the tape engine does). */
export function isDenseStack(spec: ModelSpec): spec is ModelSpec & { readonly layers: readonly DenseSpec[] } {
  return spec.keras === undefined && spec.layers.every(isDense);
}

/**
 * A model the user built with tfjs-layers (Sequential or functional) instead of model.layers:
 * its own serialisation travels, so any layer tfjs-layers can serialise works. One input, one
 * output, trainable weights only (batch norm's statistics need model.layers' batchNormalization).
 */
export interface KerasModelSpec {
  readonly className: 'Sequential' | 'Model';
  /** model.getConfig() as JSON (tfjs-layers' own form, read back with fromConfig). */
  readonly config: Readonly<Record<string, unknown>>;
  /** A sample's shape (the model's input shape without the batch axis). */
  readonly inputShape: readonly number[];
  /** Every weight in layer order, which is the flat layout's: its name and shape. */
  readonly weights: readonly { readonly name: string; readonly shape: readonly number[] }[];
  /** Output units. */
  readonly outputs: number;
  /** The job's seed, for the masks of its Dropout layers (set by the trainer). */
  readonly seed?: number;
}

export interface ModelSpec {
  /** Features per sample as they arrive (flat); a reshape layer gives them an image's shape. */
  readonly inputDim: number;
  /**
   * The shape of a sample where the data has one (images [h, w, c], .npy arrays); its values
   * are the inputDim features in row-major order. Absent: [inputDim].
   */
  readonly inputShape?: readonly number[];
  /** The stack of layers; empty where `keras` holds the model. */
  readonly layers: readonly LayerSpec[];
  readonly keras?: KerasModelSpec;
  readonly loss: LossName;
  /** The loss's arguments, where any differs from Keras's default. */
  readonly lossOptions?: LossOptions;
  /** Metrics (a name, or a name with its arguments) in the order their sums travel in gradient results. */
  readonly metrics: readonly MetricConfig[];
  /** Metrics weighted by each row's sample and class weight (Keras's weighted_metrics); their sums travel after `metrics`'. */
  readonly weightedMetrics?: readonly MetricConfig[];
  /** Rows per forward and backward pass (cluster.microBatchSize): larger parts are computed in micro-batches and summed. */
  readonly microBatchSize?: number;
  /**
   * Each class's weight in the training loss (Keras's class_weight), by class index: [negative,
   * positive] for one sigmoid output, one per output for one-hot labels. Absent: all 1.
   */
  readonly classWeights?: readonly number[];
  /**
   * Random augmentation of training images before the first layer (model.layers' randomFlip,
   * randomTranslation, randomRotation, randomZoom, randomContrast, taken out of `layers`): off at
   * evaluation and prediction, and not in saved models (identity there, as in Keras).
   */
  readonly augment?: AugmentSpec;
}

/** The last layer, which must be Dense (its units are the outputs). */
export function outputLayer(spec: ModelSpec): DenseSpec {
  const last = spec.layers[spec.layers.length - 1];
  if (!last) throw new RangeError('model has no layers');
  if (!isDense(last)) throw new RangeError(`the last layer is ${last.type}; a model ends with a dense layer (its units are the outputs)`);
  return last;
}

/**
 * Rows per virtual batch of the model's batch normalisation (one value for all its layers), or
 * undefined where it has none: the split plan then cuts a batch anywhere.
 */
export function virtualBatchSize(spec: ModelSpec): number | undefined {
  const sizes = new Set(spec.layers.flatMap((l) => (l.type === 'batchNormalization' ? [l.virtualBatchSize] : [])));
  if (sizes.size > 1) throw new RangeError(`batch normalisation layers have virtualBatchSize ${[...sizes].join(' and ')}; a model uses one`);
  return sizes.size === 0 ? undefined : [...sizes][0];
}

/** Whether computing a gradient needs the rows' identities (dropout masks) or virtual batches. */
export function needsRowContext(spec: ModelSpec): boolean {
  const layers = (spec.keras?.config['layers'] as { className?: string }[] | undefined) ?? [];
  if (layers.some((l) => l.className === 'Dropout')) return true;
  return spec.layers.some((l) => l.type === 'dropout' || l.type === 'batchNormalization');
}

/** A sample's shape as the first layer gets it. */
export function inputShape(spec: ModelSpec): readonly number[] {
  return spec.keras?.inputShape ?? spec.inputShape ?? [spec.inputDim];
}

export function outputDim(spec: ModelSpec): number {
  if (spec.keras) return spec.keras.outputs;
  return outputLayer(spec).units;
}
