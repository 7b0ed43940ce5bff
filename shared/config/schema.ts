/**
 * The job config: data, model, compile, fit, cluster, output (plus a seed). Validated with zod;
 * every object is strict, so an unknown key fails with its path, like a wrong type does.
 * Defaults follow Keras where Keras has one.
 */
import { z } from 'zod';
import { BACKENDS } from '../backend-choice.js';
import { DEFAULT_MAX_CATEGORIES } from '../data/preprocess.js';
import { GRADIENT_DTYPES } from '../math/float16.js';
import { optimizerDefaults, type OptimizerConfig } from './optimizer-config.js';
import { ACTIVATIONS, LOSSES, METRICS, PADDINGS, metricName, type LossName, type LossOptions, type MetricObject } from '../model/spec.js';
import { METRIC_ARGUMENTS, METRIC_KINDS } from '../model/metric-sums.js';
import { FILL_MODES, FLIP_MODES } from '../model/augment.js';

/**
 * The label: for CSV data its column (required) and type (default binary); for .npy targets the
 * type only (default: from the values); image folders need none (categorical, from the folders).
 */
const Label = z.strictObject({
  column: z.string().min(1).optional(),
  type: z.enum(['binary', 'categorical', 'numeric']).optional(),
  positive: z.string().optional(),
  negative: z.string().optional(),
});

const Data = z.strictObject({
  /**
   * A CSV file, a folder with one sub-folder of PNG/JPEG images per class, a .npy array of
   * samples (with `labels`), or tar shards of images (WebDataset's key.png + key.cls; a .tar, a
   * pattern with * or a {000..009} range); relative paths are resolved against the config file's folder.
   */
  path: z.string().min(1).optional(),
  /** The .npy targets of a .npy `path` (one per sample: class ids, one-hot rows or numbers). */
  labels: z.string().min(1).optional(),
  /**
   * A validation set of its own (Keras's validation_data): data of the same kind as `path`
   * (with `labels` for .npy), encoded with the preprocessing fitted on `path`; instead of
   * fit.validationSplit.
   */
  validation: z.strictObject({ path: z.string().min(1), labels: z.string().min(1).optional() }).optional(),
  /** Images: [height, width] every image is resized to (bilinear); without it, all must have one size. */
  imageSize: z.tuple([z.int().positive(), z.int().positive()]).optional(),
  /** Images: grayscale (1 channel) or rgb (3), as Keras's color_mode. */
  colorMode: z.enum(['grayscale', 'rgb']).default('rgb'),
  /** Images and .npy arrays: features = values x rescale (default 1/255 for images, 1 for arrays). */
  rescale: z.number().positive().optional(),
  /**
   * .npy samples and tar shards: true reads them into memory; false leaves them in the files,
   * read per batch (a data set larger than memory); auto keeps files larger than a quarter of the
   * memory on disk.
   */
  inMemory: z.union([z.boolean(), z.literal('auto')]).default('auto'),
  /**
   * Data left on disk: batches a reader thread reads and decodes ahead of the step computing
   * (0: the lanes read their own rows). Costs this many global batches of float32 features.
   */
  readAhead: z.int().min(0).max(64).default(2),
  drop: z.array(z.string()).default([]),
  numeric: z.array(z.string()).default([]),
  categorical: z.array(z.string()).default([]),
  /** Most distinct values a text column may have to be one-hot encoded (more: an id column, refused). */
  maxCategories: z.int().positive().default(DEFAULT_MAX_CATEGORIES),
  /**
   * Values that are not numbers in a CSV column of mostly (>= 90%) numbers: 'drop' their rows,
   * each reported with its line and value, or 'error': refuse the file.
   */
  strayValues: z.enum(['drop', 'error']).default('drop'),
  label: Label.optional(),
  /** CSV: the column of each row's weight in the training loss (Keras's sample_weight); not a feature. */
  sampleWeight: z.string().min(1).optional(),
  testSize: z.number().min(0).lt(1).default(0.2),
  stratify: z.boolean().default(true),
  standardize: z.boolean().default(false),
});

/** A size for both axes (3) or each ([3, 5]). */
const Pair = z.union([z.int().positive(), z.tuple([z.int().positive(), z.int().positive()])]);

const DenseLayer = z.strictObject({
  type: z.literal('dense'),
  units: z.int().positive(),
  activation: z.enum(ACTIVATIONS).default('linear'),
  useBias: z.boolean().default(true),
  alpha: z.number().nonnegative().optional(),
});
const Conv2DLayer = z.strictObject({
  type: z.literal('conv2d'),
  filters: z.int().positive(),
  kernelSize: Pair,
  strides: Pair.default(1),
  padding: z.enum(PADDINGS).default('valid'),
  activation: z.enum(ACTIVATIONS).default('linear'),
  useBias: z.boolean().default(true),
  alpha: z.number().nonnegative().optional(),
});
/** strides default to poolSize, as Keras's. */
const Pool2DLayer = (type: 'maxPooling2d' | 'averagePooling2d') =>
  z.strictObject({ type: z.literal(type), poolSize: Pair.default(2), strides: Pair.optional(), padding: z.enum(PADDINGS).default('valid') });
const FlattenLayer = z.strictObject({ type: z.literal('flatten') });
const ReshapeLayer = z.strictObject({ type: z.literal('reshape'), targetShape: z.array(z.int().positive()).min(1) });
/** Integer features (token ids in [0, inputDim)) to vectors; the first layer. */
const EmbeddingLayer = z.strictObject({ type: z.literal('embedding'), inputDim: z.int().positive(), outputDim: z.int().positive() });

const ActivationLayer = z.strictObject({ type: z.literal('activation'), activation: z.enum(ACTIVATIONS), alpha: z.number().nonnegative().optional() });
const GlobalAveragePooling2DLayer = z.strictObject({ type: z.literal('globalAveragePooling2d') });
/** seed: the masks' (default: from the job's seed and the layer's position). */
const DropoutLayer = z.strictObject({ type: z.literal('dropout'), rate: z.number().min(0).lt(1), seed: z.int().optional() });
/**
 * virtualBatchSize: rows per batch-statistics group (ghost batch norm; default 32, or the batch
 * size if smaller); virtualBatchSize = fit.batchSize on one lane is Keras's BatchNormalization.
 */
const BatchNormalizationLayer = z.strictObject({
  type: z.literal('batchNormalization'),
  momentum: z.number().min(0).lt(1).default(0.99),
  epsilon: z.number().positive().default(1e-3),
  virtualBatchSize: z.int().positive().optional(),
});

/** A factor f (the range [-f, f]) or a range [lower, upper], as Keras's augmentation layers take them. */
const Factor = z.union([z.number().nonnegative(), z.tuple([z.number(), z.number()])]).refine((f) => typeof f === 'number' || f[0] <= f[1], 'a range [lower, upper] with lower <= upper');
const fill = { fillMode: z.enum(FILL_MODES).default('reflect'), fillValue: z.number().default(0), seed: z.int().optional() };
/** Keras's random preprocessing layers: training images only, before every layer but reshape. */
const RandomFlipLayer = z.strictObject({ type: z.literal('randomFlip'), mode: z.enum(FLIP_MODES).default('horizontal_and_vertical'), seed: z.int().optional() });
const RandomTranslationLayer = z.strictObject({ type: z.literal('randomTranslation'), heightFactor: Factor, widthFactor: Factor, ...fill });
const RandomRotationLayer = z.strictObject({ type: z.literal('randomRotation'), factor: Factor, ...fill });
const RandomZoomLayer = z.strictObject({ type: z.literal('randomZoom'), heightFactor: Factor, widthFactor: Factor.optional(), ...fill });
const RandomContrastLayer = z.strictObject({
  type: z.literal('randomContrast'),
  factor: z.union([z.number().min(0).max(1), z.tuple([z.number().min(0).max(1), z.number().min(0)])]),
  valueRange: z.tuple([z.number(), z.number()]).default([0, 1]),
  seed: z.int().optional(),
});

/** A layer of model.layers; without `type`, a dense layer. */
const Layer = z.preprocess(
  (value) => (value !== null && typeof value === 'object' && !Array.isArray(value) && !('type' in value) ? { type: 'dense', ...value } : value),
  z.discriminatedUnion('type', [
    DenseLayer,
    Conv2DLayer,
    Pool2DLayer('maxPooling2d'),
    Pool2DLayer('averagePooling2d'),
    GlobalAveragePooling2DLayer,
    FlattenLayer,
    ReshapeLayer,
    EmbeddingLayer,
    DropoutLayer,
    BatchNormalizationLayer,
    ActivationLayer,
    RandomFlipLayer,
    RandomTranslationLayer,
    RandomRotationLayer,
    RandomZoomLayer,
    RandomContrastLayer,
  ]),
);
export type LayerConfig = z.output<typeof Layer>;

const KerasModel = z.strictObject({
  className: z.enum(['Sequential', 'Model']),
  config: z.record(z.string(), z.unknown()),
  inputShape: z.array(z.int().positive()).min(1),
  weights: z.array(z.strictObject({ name: z.string(), shape: z.array(z.int().positive()) })),
  outputs: z.int().positive(),
});

/** Keras's learning-rate schedules, from the optimizer's learningRate. */
const Schedule = z.discriminatedUnion('name', [
  z.strictObject({ name: z.literal('exponentialDecay'), decaySteps: z.number().positive(), decayRate: z.number().positive(), staircase: z.boolean().default(false) }),
  z
    .strictObject({ name: z.literal('piecewiseConstantDecay'), boundaries: z.array(z.int().nonnegative()).min(1), values: z.array(z.number().nonnegative()).min(2) })
    .refine((s) => s.values.length === s.boundaries.length + 1, { message: 'values needs one more entry than boundaries' })
    .refine((s) => s.boundaries.every((b, i) => i === 0 || b > s.boundaries[i - 1]!), { message: 'boundaries must increase' }),
  z.strictObject({ name: z.literal('polynomialDecay'), decaySteps: z.number().positive(), endLearningRate: z.number().nonnegative().default(0.0001), power: z.number().positive().default(1), cycle: z.boolean().default(false) }),
  z.strictObject({ name: z.literal('cosineDecay'), decaySteps: z.number().positive(), alpha: z.number().min(0).max(1).default(0), warmupTarget: z.number().positive().optional(), warmupSteps: z.int().nonnegative().default(0) }),
]);

/** Keras's clipnorm, clipvalue and global_clipnorm (one of them at most: checked below). */
const clip = {
  clipnorm: z.number().positive().optional(),
  clipvalue: z.number().positive().optional(),
  globalClipnorm: z.number().positive().optional(),
};

/** The rules with Adam's settings: adam, adamw (and its weight decay), adamax, nadam. */
const adamLike = <N extends 'adam' | 'adamw' | 'adamax' | 'nadam'>(name: N) =>
  z.strictObject({
    name: z.literal(name),
    ...clip,
    learningRate: z.number().positive().default(optimizerDefaults[name].learningRate),
    beta1: z.number().min(0).lt(1).default(optimizerDefaults[name].beta1),
    beta2: z.number().min(0).lt(1).default(optimizerDefaults[name].beta2),
    epsilon: z.number().positive().default(optimizerDefaults[name].epsilon),
  });
/** Keras's amsgrad, for adam and adamw; absent: false (so configs without it keep their checkpoints' fingerprint). */
const amsgrad = { amsgrad: z.boolean().optional() };
const Adam = adamLike('adam').extend(amsgrad);
const Sgd = z.strictObject({
  name: z.literal('sgd'),
  ...clip,
  learningRate: z.number().positive().default(optimizerDefaults.sgd.learningRate),
  momentum: z.number().min(0).lt(1).default(optimizerDefaults.sgd.momentum),
  nesterov: z.boolean().default(optimizerDefaults.sgd.nesterov),
});
const Rmsprop = z.strictObject({
  name: z.literal('rmsprop'),
  ...clip,
  learningRate: z.number().positive().default(optimizerDefaults.rmsprop.learningRate),
  rho: z.number().min(0).lt(1).default(optimizerDefaults.rmsprop.rho),
  momentum: z.number().min(0).lt(1).default(optimizerDefaults.rmsprop.momentum),
  epsilon: z.number().positive().default(optimizerDefaults.rmsprop.epsilon),
  /** Keras's centered; absent: false, as amsgrad. */
  centered: z.boolean().optional(),
});
const Adamw = adamLike('adamw').extend({ weightDecay: z.number().nonnegative().default(optimizerDefaults.adamw.weightDecay), ...amsgrad });
const Adagrad = z.strictObject({
  name: z.literal('adagrad'),
  ...clip,
  learningRate: z.number().positive().default(optimizerDefaults.adagrad.learningRate),
  initialAccumulatorValue: z.number().nonnegative().default(optimizerDefaults.adagrad.initialAccumulatorValue),
  epsilon: z.number().positive().default(optimizerDefaults.adagrad.epsilon),
});
const Adadelta = z.strictObject({
  name: z.literal('adadelta'),
  ...clip,
  learningRate: z.number().positive().default(optimizerDefaults.adadelta.learningRate),
  rho: z.number().min(0).lt(1).default(optimizerDefaults.adadelta.rho),
  epsilon: z.number().positive().default(optimizerDefaults.adadelta.epsilon),
});
/** An optimizer's settings in full (also how a job message carries them to nodes that step themselves). */
export const OptimizerObject = z.discriminatedUnion('name', [Adam, Sgd, Rmsprop, Adamw, Adagrad, adamLike('adamax'), adamLike('nadam'), Adadelta]).refine((o) => [o.clipnorm, o.clipvalue, o.globalClipnorm].filter((v) => v !== undefined).length <= 1, {
  message: 'set one of clipnorm, clipvalue and globalClipnorm, as Keras allows one',
});
/** `optimizer: adam` or `optimizer: { name: adam, learningRate: 0.001 }`. */
const Optimizer = z
  .union([z.enum(['adam', 'sgd', 'rmsprop', 'adamw', 'adagrad', 'adamax', 'nadam', 'adadelta']), OptimizerObject])
  .transform((v): OptimizerConfig => (typeof v === 'string' ? OptimizerObject.parse({ name: v }) : v));

/** Losses of classifiers: their jobs report accuracy unless `metrics` says otherwise. */
const CLASSIFICATION_LOSSES: ReadonlySet<string> = new Set(['binaryCrossentropy', 'categoricalCrossentropy']);

/** `loss: huber` or Keras's arguments: `loss: { name: binaryCrossentropy, fromLogits: true, labelSmoothing: 0.1 }`. */
const LossObject = z
  .strictObject({
    name: z.enum(LOSSES),
    fromLogits: z.boolean().optional(),
    labelSmoothing: z.number().min(0).max(1).optional(),
    delta: z.number().positive().optional(),
  })
  .superRefine((l, ctx) => {
    const crossEntropy = CLASSIFICATION_LOSSES.has(l.name);
    for (const key of ['fromLogits', 'labelSmoothing'] as const) {
      if (l[key] !== undefined && !crossEntropy) ctx.addIssue({ code: 'custom', path: [key], message: `${key} is an argument of binaryCrossentropy and categoricalCrossentropy, not ${l.name}` });
    }
    if (l.delta !== undefined && l.name !== 'huber') ctx.addIssue({ code: 'custom', path: ['delta'], message: `delta is huber's argument, not ${l.name}'s` });
  });
export type LossConfig = LossName | z.infer<typeof LossObject>;

/** The loss's name, whichever form the config gives it in. */
export function lossName(loss: LossConfig): LossName {
  return typeof loss === 'string' ? loss : loss.name;
}

/** The loss's arguments that differ from Keras's defaults, for the model spec (undefined: none). */
export function lossOptions(loss: LossConfig): LossOptions | undefined {
  if (typeof loss === 'string') return undefined;
  const options = {
    ...(loss.fromLogits ? { fromLogits: true } : {}),
    ...(loss.labelSmoothing ? { labelSmoothing: loss.labelSmoothing } : {}),
    ...(loss.delta !== undefined && loss.delta !== 1 ? { delta: loss.delta } : {}),
  };
  return Object.keys(options).length > 0 ? options : undefined;
}

/** A metric: its name, or an object with its name and Keras's arguments (METRIC_ARGUMENTS says which it takes). */
const Metric = z.union(
  [
    z.enum(METRICS),
    z.strictObject({
      name: z.enum(METRICS),
      k: z.int().positive().optional(),
      numThresholds: z.int().min(3).max(1000).optional(),
      threshold: z.number().min(0).max(1).optional(),
    }),
  ],
  { error: () => `expected a metric, one of ${METRICS.map((m) => `"${m}"`).join('|')}, or { name: <a metric>, k | numThresholds | threshold }` },
);

const Compile = z
  .strictObject({
    optimizer: Optimizer.default({ name: 'adam', ...optimizerDefaults.adam }),
    loss: z.union([z.enum(LOSSES), LossObject], {
      error: () => `expected a loss, one of ${LOSSES.map((l) => `"${l}"`).join('|')}, or { name: <a loss>, fromLogits, labelSmoothing, delta }`,
    }),
    metrics: z.array(Metric).optional(),
    /** Keras's weighted_metrics: weighted by data.sampleWeight and, in training, fit.classWeight. */
    weightedMetrics: z.array(Metric).default([]),
    learningRateSchedule: Schedule.optional(),
    /** Goyal et al. 2017: every rate times batchSize / referenceBatchSize, reached linearly over warmupSteps. */
    learningRateScaling: z.strictObject({ referenceBatchSize: z.int().positive(), warmupSteps: z.int().nonnegative().default(0) }).optional(),
  })
  .superRefine((c, ctx) => {
    for (const key of ['metrics', 'weightedMetrics'] as const) {
      const seen = new Set<string>();
      for (const [i, metric] of (c[key] ?? []).entries()) {
        const name = metricName(metric);
        if (seen.has(name)) ctx.addIssue({ code: 'custom', path: [key, i], message: `${name} is listed twice` });
        seen.add(name);
        for (const arg of typeof metric === 'string' ? [] : (Object.keys(metric) as (keyof MetricObject)[])) {
          if (arg !== 'name' && !METRIC_ARGUMENTS[name].includes(arg)) {
            const takes = METRIC_ARGUMENTS[name];
            ctx.addIssue({ code: 'custom', path: [key, i, arg], message: `${name} takes ${takes.length > 0 ? takes.join(', ') : 'no arguments'}, not ${arg}` });
          }
        }
        if (METRIC_KINDS[name].thresholded && !CLASSIFICATION_LOSSES.has(lossName(c.loss))) {
          ctx.addIssue({ code: 'custom', path: [key, i], message: `${name} counts decisions against labels of 0 and 1, so it needs a classifier's loss (binaryCrossentropy or categoricalCrossentropy), not ${lossName(c.loss)}` });
        }
      }
    }
  })
  // accuracy for a classifier; a regression reports its loss only, as Keras does without metrics
  .transform((c) => ({ ...c, metrics: c.metrics ?? (CLASSIFICATION_LOSSES.has(lossName(c.loss)) ? ['accuracy' as const] : []) }));

const EarlyStopping = z.strictObject({
  monitor: z.string().default('val_loss'),
  patience: z.int().nonnegative().default(0),
  minDelta: z.number().nonnegative().default(0),
  mode: z.enum(['auto', 'min', 'max']).default('auto'),
  restoreBestWeights: z.boolean().default(false),
  /** Keras's baseline: the wait restarts only on a value better than both the best and this. */
  baseline: z.number().optional(),
  /** Keras's start_from_epoch: epochs (0-based index below it) not watched at all. */
  startFromEpoch: z.int().nonnegative().default(0),
});

const ReduceLrOnPlateau = z.strictObject({
  monitor: z.string().default('val_loss'),
  factor: z.number().positive().lt(1).default(0.1),
  patience: z.int().nonnegative().default(10),
  mode: z.enum(['auto', 'min', 'max']).default('auto'),
  minDelta: z.number().nonnegative().default(0.0001),
  cooldown: z.int().nonnegative().default(0),
  minLr: z.number().nonnegative().default(0),
});
export type ReduceLrOnPlateauConfig = z.infer<typeof ReduceLrOnPlateau>;

/** Keras's ModelCheckpoint: the model saved at epochs' ends, by default only when `monitor` improved. */
const ModelCheckpoint = z.strictObject({
  monitor: z.string().default('val_loss'),
  mode: z.enum(['auto', 'min', 'max']).default('auto'),
  saveBestOnly: z.boolean().default(true),
  /** Keras's initial_value_threshold: the first save needs a value better than this. */
  initialValueThreshold: z.number().optional(),
  /** Folder inside the run directory; `{epoch}` or `{epoch:03d}` gives each save its own. */
  dir: z
    .string()
    .min(1)
    .regex(/^[A-Za-z0-9_{}:.-]+(\/[A-Za-z0-9_{}:.-]+)*$/, 'a folder inside the run directory: letters, digits, _ . - / and {epoch}')
    .refine((d) => !d.split('/').some((part) => part === '..' || part === '.'), 'a folder inside the run directory, without . or ..')
    .refine((d) => !['model', 'checkpoints'].includes(d.split('/')[0]!), 'model and checkpoints are the run\'s own folders')
    .default('best-model'),
});
export type ModelCheckpointConfig = z.infer<typeof ModelCheckpoint>;

const Fit = z.strictObject({
  epochs: z.int().positive().default(1),
  batchSize: z.int().positive().default(32),
  validationSplit: z.number().min(0).lt(1).default(0),
  shuffle: z.boolean().default(true),
  earlyStopping: EarlyStopping.optional(),
  reduceLrOnPlateau: ReduceLrOnPlateau.optional(),
  modelCheckpoint: ModelCheckpoint.optional(),
  /** Keras's class_weight: class index -> weight of its rows' loss in training (classes left out: 1). */
  classWeight: z.record(z.string().regex(/^\d+$/, 'a class index (0, 1, ...)'), z.number().nonnegative()).optional(),
});

const Cluster = z.strictObject({
  /**
   * Local lanes on the coordinator's machine (Piscina threads, or its own thread for one lane).
   * auto: one per core for a model big enough to gain from threads, else one lane
   * (coordinator/participants/thread-count.ts). 0: worker nodes only.
   */
  threads: z.union([z.int().nonnegative(), z.literal('auto')]).default('auto'),
  backend: z.enum(BACKENDS).default('auto'),
  /**
   * Compute in the coordinator's own thread instead of a Piscina thread (no round trip per step,
   * like model.fit; also the one local lane where backend tensorflow runs). Needs threads: 1 and
   * no listen. auto: yes when threads is 1 and listen is unset.
   */
  inProcess: z.union([z.boolean(), z.literal('auto')]).default('auto'),
  /** HOST:PORT where worker nodes connect (ws://, or wss:// with tls); unset: threads only. */
  listen: z.string().min(1).optional(),
  /** File holding the shared token (or set DPTRAIN_TOKEN). Required with listen. */
  tokenFile: z.string().min(1).optional(),
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  /** Worker nodes (threads not counted) needed before training starts or goes on. */
  minWorkers: z.int().nonnegative().default(0),
  /**
   * Worker nodes to wait for before the first step (default: minWorkers); after that, minWorkers
   * are enough to go on (Horovod's -np and --min-np). At least minWorkers.
   */
  startWorkers: z.int().nonnegative().optional(),
  /** Seconds to wait for startWorkers / minWorkers before giving up. */
  waitTimeout: z.number().positive().default(300),
  /**
   * Split each batch by measured speed (proportional), in equal parts (deterministic), or
   * auto: equal while only this machine's threads train, proportional once worker nodes take part.
   */
  balance: z.enum(['auto', 'proportional', 'equal']).default('auto'),
  /** Seconds a node may take for one step before it is dropped: the ceiling of stepDeadline. */
  stepTimeout: z.number().positive().default(120),
  /**
   * How the participants' gradients are combined: mean (weighted by samples; exactly one
   * process's gradient), or for pools that are not all trusted trimmedMean / median (coordinate-
   * wise, one vote per participant, after clipping each gradient's norm to clipNorm x the median
   * norm; not equal to one process). coordinator/reduce/robust.ts.
   */
  aggregation: z.enum(['mean', 'trimmedMean', 'median']).default('mean'),
  /**
   * Where gradients are reduced: coordinator (every node sends its gradient to the coordinator,
   * which sends weights back: n x S bytes a step on its link), or peers (worker nodes all-reduce
   * among themselves and each steps the optimizer; the coordinator's link carries about S; nodes
   * need a peer endpoint, `worker start --peer-listen`). coordinator/fit/peer-step.ts.
   */
  reduction: z.enum(['coordinator', 'peers', 'auto']).default('auto'),
  trimFraction: z.number().min(0).lt(0.5).default(0.2),
  clipNorm: z.number().nonnegative().default(1),
  /**
   * trimmedMean / median: votes a step needs; no participant is given more than 1/minVotes of a
   * batch, so a fast participant cannot take it and leave the others no vote.
   */
  minVotes: z.int().min(1).default(3),
  /** Who computes validation and test figures: auto (the coordinator's lanes when it has any, else the nodes), local, all. */
  evaluateOn: z.enum(['auto', 'local', 'all']).default('auto'),
  /**
   * A node's deadline for its part: `factor` x what its measured speed predicts (unmeasured: the
   * slowest measured participant's, or the slowest local thread's warm-up), at least
   * `floorSeconds`, at most stepTimeout (factor 0, or before any participant computed a part:
   * stepTimeout).
   */
  stepDeadline: z.strictObject({ factor: z.number().nonnegative().default(20), floorSeconds: z.number().positive().default(5) }).prefault({}),
  /**
   * Drop a node whose part takes more than `factor` x the others' median (and more than
   * `floorSeconds`) `steps` steps in a row (factor 0: never).
   */
  straggler: z.strictObject({ factor: z.number().nonnegative().default(10), steps: z.int().positive().default(3), floorSeconds: z.number().nonnegative().default(1) }).prefault({}),
  heartbeatInterval: z.number().positive().default(2),
  /** Seconds of silence after which a node (or, on the node, the coordinator) is given up. */
  heartbeatTimeout: z.number().positive().default(20),
  /** Largest WebSocket frame accepted, in bytes. */
  maxMessageBytes: z.int().min(65536).default(256 * 2 ** 20),
  /** Largest shard chunk sent to a node, in bytes. */
  chunkBytes: z.int().min(1024).default(4 * 2 ** 20),
  /**
   * How worker nodes send gradients: float32 (exact), or float16 with a power-of-two scale per
   * message (half the bytes, values within 2^-11 relative). Threads always share float32.
   */
  gradientDtype: z.enum(GRADIENT_DTYPES).default('float32'),
  /**
   * A worker node sends the end of its gradient as soon as the backward pass has finished this
   * many bytes of it, and the rest at the end (DDP's buckets): the sending overlaps the rest of
   * the computation. 0: one message per gradient.
   */
  gradientBucketBytes: z.int().nonnegative().default(256 * 1024),
  /**
   * Gradient accumulation: every participant computes its part of a batch in micro-batches of at
   * most this many rows (one forward and backward pass each) and sums them, so a batch may
   * exceed what a device holds. Unset: a part in one pass.
   */
  microBatchSize: z.int().positive().optional(),
}).check((ctx) => {
  const { startWorkers, minWorkers } = ctx.value;
  if (startWorkers !== undefined && startWorkers < minWorkers) {
    ctx.issues.push({
      code: 'custom',
      path: ['startWorkers'],
      input: startWorkers,
      message: `${startWorkers} is below cluster.minWorkers (${minWorkers}); every step needs minWorkers, so the first one cannot start with fewer`,
    });
  }
});

const Metrics = z.strictObject({
  /** HOST:PORT for /metrics, /healthz, /readyz; false: no metrics server. */
  listen: z.union([z.string().min(1), z.literal(false)]).default('127.0.0.1:9464'),
  /** Seconds to keep serving /metrics after the job ends (so the last values get scraped). */
  linger: z.number().nonnegative().default(0),
});

const Checkpoint = z.strictObject({
  /** Also checkpoint every N optimizer steps (0: only at epoch ends). */
  everySteps: z.int().nonnegative().default(0),
  /** Checkpoint at the end of every epoch. */
  epochEnd: z.boolean().default(true),
  /** Checkpoints kept in <run dir>/checkpoints (older ones are deleted). */
  keep: z.int().min(1).default(3),
});

const Output = z.strictObject({
  /** Run directory; default runs/<time>. */
  dir: z.string().min(1).optional(),
  /** Replace a run already in `dir` (its checkpoints, summary and model are removed first); default: refuse. */
  overwrite: z.boolean().default(false),
});

export const JobConfigSchema = z.strictObject({
  seed: z.int().default(42),
  data: Data,
  model: z
    .strictObject({
      layers: z.array(Layer).min(1).optional(),
      /** A tfjs-layers model's spec (train() makes it from a LayersModel passed as `model`). */
      keras: KerasModel.optional(),
    })
    .refine((m) => (m.layers === undefined) !== (m.keras === undefined), { message: 'give model.layers (a stack of layers), or pass a tfjs-layers model as train()\'s model; exactly one' }),
  compile: Compile,
  fit: Fit.prefault({}),
  cluster: Cluster.prefault({}),
  metrics: Metrics.prefault({}),
  checkpoint: Checkpoint.prefault({}),
  output: Output.prefault({}),
});

export type JobConfig = z.output<typeof JobConfigSchema>;
export type JobConfigInput = z.input<typeof JobConfigSchema>;
export type EarlyStoppingConfig = z.output<typeof EarlyStopping>;
