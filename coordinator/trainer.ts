/**
 * The synchronous data-parallel training loop. The coordinator owns the flat weights and the
 * optimizer; each step it splits the global batch over the participants (split-plan), collects
 * their mean gradients, averages them by sample count (reduce), applies one optimizer step
 * (optimizers) and publishes the new weights. Epochs, validation, early stopping and history
 * follow Keras' `fit`.
 */
import { performance } from 'node:perf_hooks';
import type { JobConfig } from '../shared/config/schema.js';
import type { Dataset, RowRange } from '../shared/data/dataset.js';
import { ConfigError, WorkerError } from '../shared/errors.js';
import { createOptimizer, type Optimizer } from '../shared/math/optimizers.js';
import { weightedAverage } from '../shared/math/reduce.js';
import { Rng } from '../shared/math/rng.js';
import { epochBatches, epochOrder, planBatch, splitCounts, stepsPerEpoch } from '../shared/math/split-plan.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { METRIC_HIGHER_IS_BETTER, type MetricName, type ModelSpec } from '../shared/model/spec.js';
import { EarlyStopping } from './callbacks/early-stopping.js';
import type { ParticipantGroup } from './participants/participant.js';

/** Seeded streams of a run, derived from the config seed (exported so references can match). */
export const runRngs = {
  weights: (seed: number): Rng => new Rng(seed),
  shuffle: (seed: number): Rng => new Rng(seed + 1),
};

/** Every thread needs at least one sample of each full batch. */
export function checkBatchSize(batchSize: number, threads: number): void {
  if (batchSize < threads) {
    throw new ConfigError(
      `fit.batchSize (${batchSize}) is smaller than cluster.threads (${threads}): every thread needs at least one sample per step; lower cluster.threads or raise the batch size`,
    );
  }
}

/** Builds the ModelSpec from the config and the data's shape. */
export function modelSpec(config: JobConfig, dataset: Pick<Dataset, 'features' | 'outputs'>): ModelSpec {
  const layers = config.model.layers.map(({ units, activation, useBias, alpha }) => ({ units, activation, useBias, ...(alpha === undefined ? {} : { alpha }) }));
  const last = layers[layers.length - 1]!;
  if (last.units !== dataset.outputs) {
    throw new ConfigError(`model.layers[${layers.length - 1}].units is ${last.units}, but the label gives ${dataset.outputs} output(s)`);
  }
  return { inputDim: dataset.features, layers, loss: config.compile.loss, metrics: config.compile.metrics };
}

export interface EpochLog {
  readonly epoch: number;
  readonly steps: number;
  readonly seconds: number;
  readonly samples: number;
  readonly samplesPerSecond: number;
  /** loss, metrics, val_loss, val_metrics. */
  readonly values: Readonly<Record<string, number>>;
}

/** Seconds spent in each phase of the steps, summed. */
export interface PhaseTimes {
  compute: number;
  reduce: number;
  apply: number;
  broadcast: number;
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
  readonly trainSeconds: number;
  readonly phases: PhaseTimes;
  /** tf.memory().numTensors reported by participants after each step, in step order. */
  readonly tensorCounts: number[];
}

export interface TrainerEvents {
  onEpochStart?(epoch: number, epochs: number): void;
  onEpochEnd?(log: EpochLog, epochs: number): void;
}

export interface EvaluateResult {
  readonly loss: number;
  readonly [metric: string]: number;
}

export class Trainer {
  readonly spec: ModelSpec;
  readonly weights: Float32Array;
  readonly optimizer: Optimizer;
  /** Reused every step for the averaged gradient (no allocation on the hot path). */
  private readonly meanGradient: Float32Array;
  private version = 0;

  constructor(
    readonly config: JobConfig,
    readonly dataset: Dataset,
    readonly group: ParticipantGroup,
    spec?: ModelSpec,
  ) {
    this.spec = spec ?? modelSpec(config, dataset);
    const layout = weightLayout(this.spec);
    this.weights = initialWeights(layout, runRngs.weights(config.seed));
    this.optimizer = createOptimizer(config.compile.optimizer, layout.size);
    this.meanGradient = new Float32Array(layout.size);
    this.checkConfig();
    group.publish(this.weights, this.version);
  }

  private checkConfig(): void {
    const { fit } = this.config;
    checkBatchSize(fit.batchSize, this.group.participants.length);
    const es = fit.earlyStopping;
    if (es) {
      const names = this.logNames();
      if (!names.includes(es.monitor)) {
        throw new ConfigError(`fit.earlyStopping.monitor: "${es.monitor}" is not logged; available: ${names.join(', ')}`);
      }
    }
  }

  private logNames(): string[] {
    const base = ['loss', ...this.spec.metrics];
    return this.dataset.val.count > 0 ? [...base, ...base.map((n) => `val_${n}`)] : base;
  }

  private publish(): void {
    this.version++;
    this.group.publish(this.weights, this.version);
  }

  /** Runs one synchronous step on the global batch `rows`; returns the sums for the epoch logs. */
  async step(step: number, rows: Int32Array, phases: PhaseTimes, tensorCounts: number[]): Promise<{ lossSum: number; metricSums: number[] }> {
    const participants = this.group.participants;
    const t0 = performance.now();
    const parts = planBatch(rows, participants.map(() => 1));
    const results = await Promise.all(parts.map((p) => participants[p.participant]!.gradient(step, this.version, p.rows)));
    const t1 = performance.now();
    results.forEach((r, i) => {
      const part = parts[i]!;
      if (r.count !== part.rows.length) {
        throw new WorkerError(`${participants[part.participant]!.id} computed ${r.count} samples, was given ${part.rows.length}`);
      }
      tensorCounts.push(r.numTensors);
    });
    const mean = weightedAverage(results, this.meanGradient);
    const t2 = performance.now();
    this.optimizer.apply(this.weights, mean);
    const t3 = performance.now();
    this.publish();
    const t4 = performance.now();
    phases.compute += (t1 - t0) / 1000;
    phases.reduce += (t2 - t1) / 1000;
    phases.apply += (t3 - t2) / 1000;
    phases.broadcast += (t4 - t3) / 1000;
    const metricSums = this.spec.metrics.map((_, k) => results.reduce((a, r) => a + r.metricSums[k]!, 0));
    return { lossSum: results.reduce((a, r) => a + r.lossSum, 0), metricSums };
  }

  /** Loss and metrics over a range of the data set with the current weights, spread over the participants. */
  async evaluate(range: RowRange): Promise<EvaluateResult> {
    const participants = this.group.participants;
    const counts = splitCounts(range.count, participants.map(() => 1));
    let start = range.start;
    const jobs = counts.map((count, i) => {
      const job = count > 0 ? participants[i]!.evaluate(this.version, { start, count }) : undefined;
      start += count;
      return job;
    });
    const answers = (await Promise.all(jobs)).filter((a) => a !== undefined);
    const total = answers.reduce((a, r) => a + r.count, 0);
    const result: Record<string, number> = { loss: answers.reduce((a, r) => a + r.lossSum, 0) / total };
    this.spec.metrics.forEach((name, k) => {
      result[name] = answers.reduce((a, r) => a + r.metricSums[k]!, 0) / total;
    });
    return result as EvaluateResult;
  }

  /** Sets the weights (e.g. restoring the best epoch's) and publishes them. */
  setWeights(weights: Float32Array): void {
    this.weights.set(weights);
    this.publish();
  }

  async fit(events: TrainerEvents = {}): Promise<FitResult> {
    const { fit } = this.config;
    const train = this.dataset.train;
    const rng = runRngs.shuffle(this.config.seed);
    const earlyStopping = fit.earlyStopping
      ? new EarlyStopping(fit.earlyStopping, METRIC_HIGHER_IS_BETTER[fit.earlyStopping.monitor.replace(/^val_/, '') as MetricName] ?? false)
      : undefined;
    const history: EpochLog[] = [];
    const phases: PhaseTimes = { compute: 0, reduce: 0, apply: 0, broadcast: 0 };
    const tensorCounts: number[] = [];
    let step = 0;
    let samples = 0;
    let trainSeconds = 0;
    let stoppedEarly = false;

    for (let epoch = 0; epoch < fit.epochs; epoch++) {
      events.onEpochStart?.(epoch, fit.epochs);
      const started = performance.now();
      const order = epochOrder(train.count, fit.shuffle, rng);
      let lossSum = 0;
      const metricSums = this.spec.metrics.map(() => 0);
      for (const batch of epochBatches(order, fit.batchSize)) {
        const sums = await this.step(step++, batch, phases, tensorCounts);
        lossSum += sums.lossSum;
        sums.metricSums.forEach((m, k) => (metricSums[k]! += m));
      }
      const stepSeconds = (performance.now() - started) / 1000;
      trainSeconds += stepSeconds;
      samples += train.count;
      const values: Record<string, number> = { loss: lossSum / train.count };
      this.spec.metrics.forEach((name, k) => (values[name] = metricSums[k]! / train.count));
      if (this.dataset.val.count > 0) {
        const val = await this.evaluate(this.dataset.val);
        for (const [name, v] of Object.entries(val)) values[`val_${name}`] = v;
      }
      const seconds = (performance.now() - started) / 1000;
      const log: EpochLog = {
        epoch: epoch + 1,
        steps: stepsPerEpoch(train.count, fit.batchSize),
        seconds,
        samples: train.count,
        samplesPerSecond: train.count / stepSeconds,
        values,
      };
      history.push(log);
      events.onEpochEnd?.(log, fit.epochs);
      if (earlyStopping?.onEpochEnd(epoch, values, this.weights)) {
        stoppedEarly = true;
        break;
      }
    }

    const restore = earlyStopping?.weightsToRestore();
    if (restore) this.setWeights(restore);
    return {
      weights: this.weights,
      history,
      steps: step,
      samples,
      bestEpoch: earlyStopping && earlyStopping.bestEpoch >= 0 ? earlyStopping.bestEpoch + 1 : bestByLoss(history),
      stoppedEarly,
      restoredBestWeights: restore !== undefined,
      trainSeconds,
      phases,
      tensorCounts,
    };
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
