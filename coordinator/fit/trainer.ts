/**
 * The synchronous data-parallel trainer, Keras's `fit` / `evaluate` over the participants. The
 * coordinator owns the flat weights and the optimizer; each step (step.ts) splits the global
 * batch over the participants, averages their gradients by sample count and applies one optimizer
 * step; the fit loop (loop.ts) runs epochs, validation and history and talks to one CallbackList
 * (early stopping from the config first, then the caller's). Resuming restores each piece of
 * training state (state.ts) from a checkpoint.
 */
import { createHash, type Hash } from 'node:crypto';
import { lossName, lossOptions, type JobConfig, type LayerConfig } from '../../shared/config/schema.js';
import type { Dataset, RowRange } from '../../shared/data/dataset.js';
import { featureRows } from '../../shared/data/feature-rows.js';
import { AUGMENT_TYPES, type AugmentLayerSpec, type AugmentSpec } from '../../shared/model/augment.js';
import { CheckpointError, ConfigError } from '../../shared/errors.js';
import { Rng } from '../../shared/math/rng.js';
import { initialWeights, weightLayout } from '../../shared/model/layout.js';
import { stepsPerEpoch } from '../../shared/plan/split-plan.js';
import type { LayerSpec, LossName, ModelSpec } from '../../shared/model/spec.js';
import { CallbackList, type Callback } from '../callbacks/callback.js';
import { EarlyStoppingCallback } from '../callbacks/early-stopping.js';
import { ModelCheckpoint, type SaveModel } from '../callbacks/model-checkpoint.js';
import { ReduceLrOnPlateau } from '../callbacks/reduce-lr-on-plateau.js';
import { scalingFactor } from '../optimize/schedules.js';
import { checkCheckpointFits, type ResumeTarget, type TrainingState } from '../checkpoint.js';
import type { ParticipantGroup } from '../participants/participant.js';
import { evaluateRows, type EvaluateResult } from './evaluate.js';
import { FitLoop } from './loop.js';
import { addPhases, type EpochLog, type PhaseTimes } from './logs.js';
import { History, ModelWeights, OptimizerSlot, ShuffleStream } from './state.js';
import { StepRunner, type StepSums } from './step.js';
import { PeerStep } from './peer-step.js';
import { reductionPolicy } from './reduction-policy.js';
import { metricLayoutOf } from '../../shared/model/metric-sums.js';
import { chunkRows, rowChunks } from '../../shared/data/row-chunks.js';

export type { EpochLog, PhaseTimes } from './logs.js';
export type { EvaluateResult } from './evaluate.js';
export type { StepSums } from './step.js';

/** Seeded streams of a run, derived from the config seed (exported so references can match). */
export const runRngs = {
  weights: (seed: number): Rng => new Rng(seed),
  shuffle: (seed: number): Rng => new Rng(seed + 1),
};

/** The ModelSpec of the config's model for the data's shape (validate.ts checks that they fit). */
export function modelSpec(config: JobConfig, dataset: Pick<Dataset, 'features' | 'outputs' | 'sampleShape'>): ModelSpec {
  return {
    inputDim: dataset.features,
    ...(dataset.sampleShape ? { inputShape: [...dataset.sampleShape] } : {}),
    ...modelLayers(config, dataset.sampleShape ?? [dataset.features]),
    ...(config.model.keras ? { keras: { ...config.model.keras, seed: config.seed } } : {}),
    loss: lossName(config.compile.loss),
    ...(lossOptions(config.compile.loss) ? { lossOptions: lossOptions(config.compile.loss)! } : {}),
    metrics: config.compile.metrics,
    ...(config.compile.weightedMetrics.length > 0 ? { weightedMetrics: config.compile.weightedMetrics } : {}),
    ...(config.cluster.microBatchSize ? { microBatchSize: config.cluster.microBatchSize } : {}),
    ...(config.fit.classWeight ? { classWeights: classWeights(config.fit.classWeight, lossName(config.compile.loss), dataset.outputs) } : {}),
  };
}

/** fit.classWeight as one weight per class index (classes it leaves out: 1), checked against the model's classes. */
function classWeights(given: Readonly<Record<string, number>>, loss: LossName, outputs: number): number[] {
  if (loss !== 'binaryCrossentropy' && loss !== 'categoricalCrossentropy') {
    throw new ConfigError(`fit.classWeight: class weights weigh a classifier's loss; this job's loss is ${loss}`);
  }
  const classes = outputs === 1 ? 2 : outputs;
  const weights = new Array<number>(classes).fill(1);
  for (const [key, weight] of Object.entries(given)) {
    const k = Number(key);
    if (!(k < classes)) throw new ConfigError(`fit.classWeight.${key}: there is no class ${key}; the classes are 0 to ${classes - 1}${outputs === 1 ? ' (0: negative, 1: positive)' : ' (in the label\'s sorted order)'}`);
    weights[k] = weight;
  }
  return weights;
}

type AugmentConfig = Extract<LayerConfig, { type: (typeof AUGMENT_TYPES)[number] }>;
const isAugmentation = (layer: LayerConfig): layer is AugmentConfig => (AUGMENT_TYPES as readonly string[]).includes(layer.type);

/**
 * model.layers as the spec's stack and its augmentation: the random preprocessing layers come
 * out of the stack; they must precede every layer but reshape (which does not move a value), and
 * see images [height, width, channels]. Seeds default from the job's seed and the position.
 */
function modelLayers(config: JobConfig, sampleShape: readonly number[]): { layers: LayerSpec[]; augment?: AugmentSpec } {
  const all = config.model.layers ?? [];
  const layers: LayerSpec[] = [];
  const augment: AugmentLayerSpec[] = [];
  let shape = sampleShape;
  let first: number | undefined; // the first layer that is neither a reshape nor augmentation
  all.forEach((layer, i) => {
    if (!isAugmentation(layer)) {
      if (layer.type === 'reshape' && first === undefined) shape = layer.targetShape;
      else first ??= i;
      layers.push(layerSpec(layer, i, config));
      return;
    }
    if (first !== undefined) throw new ConfigError(`model.layers[${i}] (${layer.type}): augmentation comes before the model's layers (after a reshape at most); move it before model.layers[${first}] (${all[first]!.type})`);
    if (shape.length !== 3) throw new ConfigError(`model.layers[${i}] (${layer.type}): augments images [height, width, channels], and the samples are [${shape.join(', ')}] here; add a reshape layer before it (targetShape [h, w, c])`);
    augment.push(augmentSpec(layer, (Math.imul(config.seed, 0x9e3779b1) + i) | 0));
  });
  return augment.length > 0 ? { layers, augment: { shape: [shape[0]!, shape[1]!, shape[2]!], layers: augment } } : { layers };
}

const range = (f: number | readonly [number, number]): [number, number] => (typeof f === 'number' ? [-f, f] : [f[0], f[1]]);

function augmentSpec(layer: AugmentConfig, defaultSeed: number): AugmentLayerSpec {
  const seed = layer.seed ?? defaultSeed;
  switch (layer.type) {
    case 'randomFlip':
      return { type: 'randomFlip', mode: layer.mode, seed };
    case 'randomTranslation':
      return { type: 'randomTranslation', height: range(layer.heightFactor), width: range(layer.widthFactor), fillMode: layer.fillMode, fillValue: layer.fillValue, seed };
    case 'randomRotation':
      return { type: 'randomRotation', factor: range(layer.factor), fillMode: layer.fillMode, fillValue: layer.fillValue, seed };
    case 'randomZoom':
      return { type: 'randomZoom', height: range(layer.heightFactor), ...(layer.widthFactor !== undefined ? { width: range(layer.widthFactor) } : {}), fillMode: layer.fillMode, fillValue: layer.fillValue, seed };
    case 'randomContrast':
      // Keras: a single factor is both the lower and the upper bound of [1 - lower, 1 + upper]
      return { type: 'randomContrast', factor: typeof layer.factor === 'number' ? [layer.factor, layer.factor] : [layer.factor[0], layer.factor[1]], valueRange: [layer.valueRange[0], layer.valueRange[1]], seed };
  }
}

const pair = (v: number | readonly [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

/** A config layer as the spec holds it: sizes as pairs; a dense layer without `type` (as specs always had it). */
function layerSpec(layer: Exclude<LayerConfig, AugmentConfig>, index: number, config: Pick<JobConfig, 'seed' | 'fit'>): LayerSpec {
  const alpha = 'alpha' in layer && layer.alpha !== undefined ? { alpha: layer.alpha } : {};
  switch (layer.type) {
    case 'dense':
      return { units: layer.units, activation: layer.activation, useBias: layer.useBias, ...alpha };
    case 'conv2d':
      return { type: 'conv2d', filters: layer.filters, kernelSize: pair(layer.kernelSize), strides: pair(layer.strides), padding: layer.padding, activation: layer.activation, useBias: layer.useBias, ...alpha };
    case 'maxPooling2d':
    case 'averagePooling2d':
      return { type: layer.type, poolSize: pair(layer.poolSize), strides: pair(layer.strides ?? layer.poolSize), padding: layer.padding };
    case 'flatten':
      return { type: 'flatten' };
    case 'reshape':
      return { type: 'reshape', targetShape: [...layer.targetShape] };
    case 'embedding':
      return { type: 'embedding', inputDim: layer.inputDim, outputDim: layer.outputDim };
    case 'activation':
      return { type: 'activation', activation: layer.activation, ...alpha };
    case 'globalAveragePooling2d':
      return { type: 'globalAveragePooling2d' };
    case 'dropout':
      return { type: 'dropout', rate: layer.rate, seed: layer.seed ?? (Math.imul(config.seed, 0x9e3779b1) + index) | 0 };
    case 'batchNormalization':
      return { type: 'batchNormalization', momentum: layer.momentum, epsilon: layer.epsilon, virtualBatchSize: layer.virtualBatchSize ?? Math.min(32, config.fit.batchSize) };
  }
}

export interface FitResult {
  readonly weights: Float32Array;
  readonly history: EpochLog[];
  readonly steps: number;
  readonly samples: number;
  /** 1-based epoch with the best monitored value (early stopping), else the best val_loss / loss. */
  readonly bestEpoch: number;
  readonly stoppedEarly: boolean;
  readonly restoredBestWeights: boolean;
  /** fit.modelCheckpoint's last save (1-based epoch) and its monitored value, if it saved. */
  readonly modelCheckpoint?: { readonly epoch: number; readonly value: number };
  readonly trainSeconds: number;
  readonly phases: PhaseTimes;
  /** tf.memory().numTensors reported by participants after each step, in step order. */
  readonly tensorCounts: number[];
  /** Stopped on request (a callback's stopTraining 'interrupted') before the last epoch. */
  readonly interrupted: boolean;
}

export interface FitOptions {
  /** Continue from this checkpoint instead of starting fresh. */
  readonly resume?: TrainingState;
  /** Called in order, after early stopping (from the config). */
  readonly callbacks?: readonly Callback[];
  /** Writes a model into a folder of the run (fit.modelCheckpoint); without it that key is refused. */
  readonly saveModel?: SaveModel;
}

/** What a checkpoint must agree with to be resumed by a run of `config` on `dataset` with `spec`. */
export function resumeTarget(config: JobConfig, dataset: Dataset, spec: ModelSpec): ResumeTarget {
  return {
    parameters: weightLayout(spec).size,
    optimizer: config.compile.optimizer.name,
    metrics: metricLayoutOf(spec).width,
    batches: stepsPerEpoch(dataset.train.count, config.fit.batchSize),
    epochs: config.fit.epochs,
  };
}

export class Trainer {
  readonly spec: ModelSpec;
  private readonly model: ModelWeights;
  private readonly optimizer: OptimizerSlot;
  private readonly steps: StepRunner;
  /** Steps reduced among the worker nodes (cluster.reduction: peers); a step it cannot take goes to `steps`. */
  private readonly peers: PeerStep | undefined;

  constructor(
    readonly config: JobConfig,
    readonly dataset: Dataset,
    readonly group: ParticipantGroup,
    spec?: ModelSpec,
    /** Warnings and notices during training (robust aggregation's clipping, a reduced learning rate). */
    private readonly log?: (line: string) => void,
    /** Initial weights (default: Keras's initialisers from the seed). */
    initial?: Float32Array,
  ) {
    this.spec = spec ?? modelSpec(config, dataset);
    const layout = weightLayout(this.spec);
    if (initial && initial.length !== layout.size) throw new RangeError(`initial weights have ${initial.length} values, the model has ${layout.size}`);
    this.model = new ModelWeights(initial ? initial.slice() : initialWeights(layout, runRngs.weights(config.seed)), group);
    this.optimizer = new OptimizerSlot(
      config.compile.optimizer,
      layout.size,
      layout.entries.filter((e) => e.trainable),
      config.compile.learningRateSchedule,
      (iteration) => scalingFactor(config.fit.batchSize, config.compile.learningRateScaling, iteration),
    );
    this.steps = new StepRunner(this.spec, config.cluster, group, this.model, this.optimizer, log);
    const policy = reductionPolicy(config.cluster);
    this.peers = policy ? new PeerStep(this.spec, group, this.model, this.optimizer, log, config.cluster.tls !== undefined, policy) : undefined;
  }

  /** Before step `step` (batches[index]): the local read-ahead starts on the coming batches, and nodes that read their own rows are told the next step's. */
  private prefetch(step: number, batches: readonly Int32Array[], index: number): void {
    this.group.prefetch?.(step, batches, index);
    const next = batches[index + 1];
    if (next) this.steps.hint(step + 1, next);
  }

  /** Step `step` among the worker nodes where it can run there, else through the coordinator. */
  private async takeStep(step: number, rows: Int32Array): Promise<StepSums> {
    const peers = this.peers;
    if (!peers) return this.steps.run(step, rows);
    const sums = (await peers.run(step, rows)) ?? (await this.steps.run(step, rows));
    // a step that did not go among peers had them wait for the nodes first: not training time either
    return { ...sums, waited: sums.waited + peers.waitedBeforeStar };
  }

  /** Steps reduced among worker nodes so far. */
  get peerSteps(): number {
    return this.peers?.steps ?? 0;
  }

  get weights(): Float32Array {
    return this.model.values;
  }

  /** One step on the global batch `rows` (step.ts), its phase times and tensor counts added to the given ones. */
  async step(step: number, rows: Int32Array, phases: PhaseTimes, tensorCounts: number[]): Promise<StepSums> {
    const sums = await this.takeStep(step, rows);
    addPhases(phases, sums.phases);
    tensorCounts.push(...sums.tensorCounts);
    return sums;
  }

  /** Loss and metrics over a range of the data set with the current weights, spread over the participants. */
  evaluate(range: RowRange): Promise<EvaluateResult> {
    return evaluateRows(this.spec, this.config.cluster.evaluateOn, this.group, this.model.version, range);
  }

  /** Sets the weights (e.g. restoring the best epoch's) and publishes them. */
  setWeights(weights: Float32Array): void {
    this.model.restore(weights);
  }

  /**
   * Hash of what a checkpoint must match to be resumed here: the training rows and labels, the
   * model, the optimizer and the batch settings. A checkpoint of other data is refused.
   */
  fingerprint(): string {
    const { y, outputs, train } = this.dataset;
    const hash = createHash('sha256');
    if (this.dataset.identity) hash.update(this.dataset.identity);
    else hashFeatures(hash, this.dataset);
    hash.update(new Uint8Array(y.buffer, y.byteOffset + train.start * outputs * 4, train.count * outputs * 4));
    const w = this.dataset.sampleWeights;
    if (w) hash.update(new Uint8Array(w.buffer, w.byteOffset + train.start * 4, train.count * 4));
    const { fit, compile, seed } = this.config;
    // the micro-batch size changes only rounding: a run may resume with another
    const spec = { ...this.spec, microBatchSize: undefined };
    hash.update(JSON.stringify({ spec, optimizer: compile.optimizer, batchSize: fit.batchSize, shuffle: fit.shuffle, seed, val: this.dataset.val.count }));
    return hash.digest('hex');
  }

  async fit(options: FitOptions = {}): Promise<FitResult> {
    const fingerprint = this.fingerprint();
    const { resume } = options;
    if (resume && resume.fingerprint !== fingerprint) {
      throw new CheckpointError('the checkpoint belongs to other training data, model or settings (fingerprint differs); resume with the same config and data (a data file given with --data on resume must hold the same training rows)');
    }
    if (resume) checkCheckpointFits(resume, resumeTarget(this.config, this.dataset, this.spec), 'the checkpoint');
    const earlyStopping = this.config.fit.earlyStopping ? new EarlyStoppingCallback(this.config.fit.earlyStopping) : undefined;
    const scaling = this.config.compile.learningRateScaling;
    if (scaling) {
      const k = this.config.fit.batchSize / scaling.referenceBatchSize;
      this.log?.(`learning rate scaled x${k.toPrecision(4)} (batch ${this.config.fit.batchSize} / reference ${scaling.referenceBatchSize}, the linear scaling rule)${scaling.warmupSteps > 0 ? `, reached linearly over ${scaling.warmupSteps} steps` : ''}: ${this.config.compile.optimizer.learningRate} -> ${(this.config.compile.optimizer.learningRate * k).toPrecision(4)}`);
    }
    const plateau = this.config.fit.reduceLrOnPlateau;
    if (plateau && this.config.compile.learningRateSchedule) throw new ConfigError('fit.reduceLrOnPlateau: the learning rate follows compile.learningRateSchedule; use one of the two');
    const reduceLrOnPlateau = plateau ? new ReduceLrOnPlateau(plateau, this.log) : undefined;
    const checkpointConfig = this.config.fit.modelCheckpoint;
    if (checkpointConfig && !options.saveModel) throw new ConfigError('fit.modelCheckpoint: this fit has no run directory to save models in');
    const modelCheckpoint = checkpointConfig ? new ModelCheckpoint(checkpointConfig, options.saveModel!, this.log) : undefined;
    const history = new History<EpochLog>();
    const pieces = { weights: this.model, optimizer: this.optimizer, shuffle: new ShuffleStream(runRngs.shuffle(this.config.seed)), history, earlyStopping, reduceLrOnPlateau, modelCheckpoint };
    // as Keras orders them: the rate is reduced at an epoch's end before early stopping looks; the
    // model is saved before the rolling checkpoint (given among options.callbacks) records that
    const callbacks = new CallbackList([...(reduceLrOnPlateau ? [reduceLrOnPlateau] : []), ...(earlyStopping ? [earlyStopping] : []), ...(modelCheckpoint ? [modelCheckpoint] : []), ...(options.callbacks ?? [])]);
    const loop = new FitLoop(this.config.fit, this.dataset, this.spec, { run: (step, rows) => this.takeStep(step, rows), prefetch: (step, batches, index) => this.prefetch(step, batches, index) }, (range) => this.evaluate(range), pieces, fingerprint, callbacks, resume);
    const outcome = await loop.run();
    return {
      weights: this.weights,
      history: history.epochs,
      steps: outcome.steps,
      samples: outcome.samples,
      bestEpoch: earlyStopping && earlyStopping.bestEpoch > 0 ? earlyStopping.bestEpoch : bestByLoss(history.epochs),
      stoppedEarly: outcome.stoppedEarly,
      restoredBestWeights: earlyStopping?.restored ?? false,
      ...(modelCheckpoint && modelCheckpoint.epoch > 0 ? { modelCheckpoint: { epoch: modelCheckpoint.epoch, value: history.epochs[modelCheckpoint.epoch - 1]?.values[modelCheckpoint.config.monitor] ?? NaN } } : {}),
      trainSeconds: outcome.trainSeconds,
      phases: outcome.phases,
      tensorCounts: outcome.tensorCounts,
      interrupted: outcome.interrupted,
    };
  }
}

/** The training features as float32, in chunks (a data set on disk is never in memory whole). */
function hashFeatures(hash: Hash, dataset: Dataset): void {
  const { train } = dataset;
  const x = featureRows(dataset);
  const buffer = new Float32Array(Math.min(chunkRows(x.features), train.count) * x.features);
  for (const { first, count } of rowChunks(train.count, x.features)) {
    const rows = x.range(train.start + first, count, buffer.subarray(0, count * x.features));
    hash.update(new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
  }
}

function bestByLoss(history: readonly EpochLog[]): number {
  const key = history[0]?.values['val_loss'] !== undefined ? 'val_loss' : 'loss';
  let best = 0;
  history.forEach((log, i) => {
    if (log.values[key]! < history[best]!.values[key]!) best = i;
  });
  return history.length > 0 ? best + 1 : 0;
}
