/**
 * dptrain as a library: the job `dptrain start` runs, called from TypeScript,
 * and the saved model it writes, used for predictions.
 *
 *   import { train, loadSavedModel, predictCsv } from 'dptrain';
 *   const { summary, runDir } = await train({
 *     data: { path: 'churn.csv', drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
 *     model: { layers: [{ units: 64, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
 *     compile: { optimizer: 'adam', loss: 'binaryCrossentropy' },
 *     fit: { epochs: 10, validationSplit: 0.2 },
 *   });
 *   const model = await loadSavedModel(`${runDir}/model`);
 *   const { outputs } = await predictCsv(model, 'new-customers.csv');
 *
 * The config is the job config of the CLI (docs/configuration.md), checked the same way: an
 * unknown key or a wrong value throws a ConfigError naming it. Data in memory goes in as
 * `rows` (objects, one per row) instead of data.path. `callbacks` (Keras's) see every batch and
 * epoch and may stop training. `model` may be a tfjs-layers model you built (Sequential or
 * functional, e.g. `tf.model({ inputs, outputs })`): its serialisation travels to threads and
 * nodes, and its current weights are the run's initial weights.
 */
import { runJob, type JobOptions, type JobResult } from './coordinator/job.js';
import { loadConfig, validateConfig, type Overrides } from './shared/config/load.js';
import type { JobConfig, JobConfigInput } from './shared/config/schema.js';
import type { LayersModelLike } from './shared/model/keras-model.js';

/** A job config whose `model` may also be a tfjs-layers LayersModel. */
export type TrainConfig = Omit<JobConfigInput, 'model'> & { model: JobConfigInput['model'] | LayersModelLike };

export interface TrainOptions extends Omit<JobOptions, 'handleSignals' | 'initialWeights'> {
  /** Dotted config paths to values, applied before validation (what the CLI's flags do): `{ 'fit.epochs': 3 }`. */
  readonly overrides?: Overrides;
  /**
   * Stop on SIGINT/SIGTERM after the current step, with a checkpoint, as the CLI does. Default
   * false: a library leaves the host process's signals alone (use `stopRequested` instead).
   */
  readonly handleSignals?: boolean;
}

/**
 * Trains a job: `config` is a job config object, or the path of a YAML or JSON file (whose
 * relative paths are read from its folder). Resolves when the run directory is complete.
 */
export async function train(config: TrainConfig | string, options: TrainOptions = {}): Promise<JobResult> {
  const { overrides = {}, handleSignals = false, ...jobOptions } = options;
  let initialWeights: Float32Array | undefined;
  let input: JobConfigInput | string;
  if (typeof config !== 'string' && isLayersModel(config.model)) {
    const { kerasSpecOf } = await import('./shared/model/keras-model.js');
    const { keras, weights } = await kerasSpecOf(config.model);
    // the config's own (mutable) form of the spec
    input = { ...config, model: { keras: { ...keras, inputShape: [...keras.inputShape], weights: keras.weights.map((w) => ({ name: w.name, shape: [...w.shape] })) } } };
    initialWeights = weights;
  } else input = config as JobConfigInput | string;
  const validated: JobConfig = typeof input === 'string' ? loadConfig(input, overrides) : validateConfig(input, 'train() config', overrides);
  return runJob(validated, { ...jobOptions, handleSignals, ...(initialWeights ? { initialWeights } : {}) });
}

/** A tfjs-layers model (duck-typed, so that another copy of tfjs-layers works too). */
function isLayersModel(value: unknown): value is LayersModelLike {
  const m = value as Partial<LayersModelLike> | null;
  return typeof m === 'object' && m !== null && typeof m.getConfig === 'function' && typeof m.getClassName === 'function' && Array.isArray(m.layers);
}

export { loadConfig, validateConfig };
export { loadSavedModel, predictCsv, evaluateCsv } from './coordinator/saved-model.js';
export { viewRun, type RunView, type ViewOptions } from './coordinator/live/view.js';
export { LearningRateScheduler } from './coordinator/callbacks/learning-rate-scheduler.js';
export {
  BackendError,
  CheckpointError,
  ClusterError,
  ConfigError,
  DataError,
  DptrainError,
  ModelError,
  PacketError,
  ProtocolError,
  ReduceError,
  StorageError,
  UsageError,
  WaitCancelledError,
  WorkerError,
  type ErrorCode,
  type ProtocolFault,
} from './shared/errors.js';
export type { JobConfig, JobConfigInput, JobResult, Overrides };
export type { CellValue } from './shared/data/csv.js';
export type { BatchEndLog, Callback, FitLoopView, StopKind, TrainEndLog } from './coordinator/callbacks/callback.js';
export type { EpochLog } from './coordinator/fit/logs.js';
export type { Summary } from './coordinator/job.js';
export type { FitResult, EvaluateResult } from './coordinator/fit/trainer.js';
export type { SavedModel, PredictResult, EvaluateCsvResult } from './coordinator/saved-model.js';
