/**
 * What a valid job is, beyond its schema (shared/config/schema.ts, which checks every field on
 * its own): `checkRunnable`, the settings that only together cannot run (lanes, worker nodes),
 * checked before anything is written; `checkAgainstData`, what needs the data's shape (the last
 * layer's units, the batch against the threads, the monitors of early stopping, ReduceLROnPlateau and ModelCheckpoint).
 */
import type { JobConfig } from '../shared/config/schema.js';
import type { Dataset } from '../shared/data/dataset.js';
import { featureRows } from '../shared/data/feature-rows.js';
import { BackendError, ConfigError } from '../shared/errors.js';
import { layerShapes } from '../shared/model/layers.js';
import { isDense, virtualBatchSize, type ModelSpec } from '../shared/model/spec.js';
import { metricKeys } from '../shared/model/metric-sums.js';
import { threadsWithoutModel, withThreads, type RunConfig } from './participants/thread-count.js';

/**
 * Whether the job's one local lane runs in the coordinator's own thread (cluster.inProcess):
 * auto means yes for one lane and no worker nodes. Not with nodes: the coordinator's thread must
 * stay free for their messages and heartbeats while a step computes.
 */
export function computesInProcess(config: RunConfig): boolean {
  const { inProcess, threads, listen } = config.cluster;
  if (inProcess === 'auto') return threads === 1 && !listen;
  if (inProcess && (threads !== 1 || listen)) {
    throw new ConfigError(
      `cluster.inProcess is true but ${threads !== 1 ? `cluster.threads is ${threads}` : 'cluster.listen is set'}: the coordinator computes in its own thread only as the one lane (threads: 1) of a job without worker nodes`,
    );
  }
  return inProcess;
}

/** Refuses lane and worker-node settings that cannot run together, before anything is written. */
export function checkRunnable(config: JobConfig): void {
  checkLocalLanes(config);
  checkWorkerNodes(config);
  checkReduction(config);
}

/** cluster.reduction: peers needs worker nodes, the plain mean and (for now) no TLS. */
function checkReduction({ cluster: c }: JobConfig): void {
  if (c.reduction !== 'peers') return;
  if (!c.listen) throw new ConfigError('cluster.reduction is peers but cluster.listen is unset: only worker nodes reduce among themselves; set cluster.listen or use reduction: coordinator');
  if (c.aggregation !== 'mean') {
    throw new ConfigError(`cluster.reduction peers reduces by the plain mean, but cluster.aggregation is ${c.aggregation}: robust aggregation needs every gradient in one place; use reduction: coordinator with it`);
  }
}

/**
 * Refuses impossible lane settings. Where threads: auto still depends on the model, no setting
 * checked here can be impossible, so 1 stands in for it.
 */
function checkLocalLanes(config: JobConfig): void {
  const inProcess = computesInProcess(withThreads(config, threadsWithoutModel(config) ?? 1));
  if (config.cluster.backend === 'tensorflow' && !inProcess) {
    throw new BackendError(
      'cluster.backend "tensorflow" cannot run in coordinator threads (tfjs-node is not safe in worker_threads); use it in the coordinator\'s own thread (cluster.threads: 1 without worker nodes), or wasm or cpu here and `worker start --backend tensorflow` on GPU nodes',
    );
  }
}

/** Refuses settings that need worker nodes without a place for them to connect. */
function checkWorkerNodes({ cluster: c }: JobConfig): void {
  if (c.listen) return;
  if (c.threads === 0) throw new ConfigError('cluster.threads is 0 and cluster.listen is unset: nobody would train; use threads, worker nodes, or both');
  const [key, count] = c.minWorkers > 0 ? ['minWorkers', c.minWorkers] : ['startWorkers', c.startWorkers ?? 0];
  if (count > 0) {
    throw new ConfigError(`cluster.${key} is ${count} but cluster.listen is unset: no worker node can connect; set cluster.listen (--listen HOST:PORT) or drop ${key}`);
  }
  if (c.aggregation !== 'mean' && typeof c.threads === 'number' && c.threads < c.minVotes) {
    throw new ConfigError(`cluster.aggregation ${c.aggregation} waits for cluster.minVotes (${c.minVotes}) participants a step, and ${c.threads} thread(s) without worker nodes never make them; lower cluster.minVotes, add threads, or set cluster.listen for nodes`);
  }
}

/** Every feature of every row an integer in [0, inputDim): an embedding's token ids. */
function checkTokenIds(dataset: Pick<Dataset, 'x' | 'features' | 'onDisk' | 'test'>, inputDim: number): void {
  const { features } = dataset;
  const rows = featureRows(dataset);
  const total = dataset.test.start + dataset.test.count;
  const chunk = Math.max(1, Math.floor((1 << 22) / features));
  for (let first = 0; first < total; first += chunk) {
    const x = rows.range(first, Math.min(chunk, total - first));
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (!Number.isInteger(v) || v < 0 || v >= inputDim) {
        throw new ConfigError(
          `model.layers[0] (embedding) needs integer features in [0, ${inputDim}): row ${first + Math.floor(i / features)} (of the prepared data) has ${v} as feature ${i % features}; raise inputDim, or check data.standardize (false for token ids) and the columns`,
        );
      }
    }
  }
}

/**
 * Refuses a model that does not fit the data, a batch too small for the threads (`threads`: the
 * count chosen; a number in the config is taken as it), and an early-stopping monitor that is
 * never logged.
 */
export function checkAgainstData(config: JobConfig, spec: ModelSpec, dataset: Pick<Dataset, 'outputs' | 'val' | 'test' | 'x' | 'features' | 'onDisk'>, threads?: number): void {
  if (spec.keras) return checkKerasModel(config, spec, dataset, threads);
  const last = spec.layers.length - 1;
  const output = spec.layers[last]!;
  if (!isDense(output)) throw new ConfigError(`model.layers[${last}] is ${output.type}: a model ends with a dense layer whose units are the label's outputs (${dataset.outputs})`);
  if (output.units !== dataset.outputs) {
    throw new ConfigError(`model.layers[${last}].units is ${output.units}, but the label gives ${dataset.outputs} output(s)`);
  }
  if (spec.lossOptions?.fromLogits && output.activation !== 'linear') {
    throw new ConfigError(`compile.loss.fromLogits: the outputs are to be logits, but model.layers[${last}] applies ${output.activation}; give it activation: linear (the loss applies ${spec.loss === 'binaryCrossentropy' ? 'sigmoid' : 'softmax'} itself), or leave out fromLogits`);
  }
  try {
    layerShapes(spec);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  spec.layers.forEach((layer, i) => {
    if (!isDense(layer) && layer.type === 'embedding') {
      if (i !== 0) throw new ConfigError(`model.layers[${i}] (embedding) reads the integer features, so it must be the first layer`);
      checkTokenIds(dataset, layer.inputDim);
    }
    if (!isDense(layer) && (layer.type === 'dropout' || layer.type === 'batchNormalization') && i === 0) {
      throw new ConfigError(`model.layers[0] (${layer.type}) cannot be the first layer: put it after the layer whose outputs it ${layer.type === 'dropout' ? 'drops' : 'normalises'}${layer.type === 'dropout' ? '' : ' (or standardise the data: data.standardize: true)'}`);
    }
    if (!isDense(layer) && layer.type === 'batchNormalization' && layer.virtualBatchSize > config.fit.batchSize) {
      throw new ConfigError(`model.layers[${i}].virtualBatchSize (${layer.virtualBatchSize}) is larger than fit.batchSize (${config.fit.batchSize}): a virtual batch is part of one step's batch`);
    }
    const micro = config.cluster.microBatchSize;
    if (!isDense(layer) && layer.type === 'batchNormalization' && micro !== undefined && layer.virtualBatchSize > micro) {
      throw new ConfigError(`cluster.microBatchSize (${micro}) is smaller than model.layers[${i}].virtualBatchSize (${layer.virtualBatchSize}): a virtual batch is computed in one pass`);
    }
  });
  try {
    virtualBatchSize(spec);
  } catch (err) {
    throw new ConfigError(`model.layers: ${(err as Error).message}`);
  }
  checkBatchAndMonitor(config, spec, dataset, threads);
}

/** A tfjs-layers model of the user's: its input takes the data's samples, its output the label's. */
function checkKerasModel(config: JobConfig, spec: ModelSpec, dataset: Pick<Dataset, 'outputs' | 'val' | 'features'>, threads: number | undefined): void {
  const keras = spec.keras!;
  const size = keras.inputShape.reduce((a, n) => a * n, 1);
  if (size !== dataset.features) throw new ConfigError(`model: its input [${keras.inputShape.join(', ')}] takes ${size} values per sample, the data has ${dataset.features}`);
  if (keras.outputs !== dataset.outputs) throw new ConfigError(`model: it has ${keras.outputs} output(s), but the label gives ${dataset.outputs}`);
  checkBatchAndMonitor(config, spec, dataset, threads);
}

function checkBatchAndMonitor(config: JobConfig, spec: ModelSpec, dataset: Pick<Dataset, 'val'>, threads: number | undefined): void {
  const lanes = threads ?? (typeof config.cluster.threads === 'number' ? config.cluster.threads : 0);
  if (config.fit.batchSize < lanes) {
    throw new ConfigError(
      `fit.batchSize (${config.fit.batchSize}) is smaller than cluster.threads (${lanes}): every thread needs at least one sample per step; lower cluster.threads or raise the batch size`,
    );
  }
  const base = ['loss', ...metricKeys(spec.metrics, spec.weightedMetrics)];
  const names = dataset.val.count > 0 ? [...base, ...base.map((n) => `val_${n}`)] : base;
  for (const key of ['earlyStopping', 'reduceLrOnPlateau', 'modelCheckpoint'] as const) {
    const monitor = config.fit[key]?.monitor;
    if (monitor !== undefined && !names.includes(monitor)) throw new ConfigError(`fit.${key}.monitor: "${monitor}" is not logged; available: ${names.join(', ')}`);
  }
}
