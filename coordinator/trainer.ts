/**
 * The synchronous data-parallel training loop. The coordinator owns the flat weights and the
 * optimizer; each step it splits the global batch over the participants (split-plan), collects
 * their mean gradients, averages them by sample count (reduce), applies one optimizer step
 * (optimizers) and publishes the new weights. Epochs, validation, early stopping and history
 * follow Keras' `fit`.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { JobConfig } from '../shared/config/schema.js';
import type { Dataset, RowRange } from '../shared/data/dataset.js';
import { CheckpointError, ClusterError, ConfigError, WaitCancelledError, WorkerError } from '../shared/errors.js';
import { createOptimizer, type Optimizer } from '../shared/math/optimizers.js';
import { GradientReducer, firstNonFinite } from '../shared/math/reduce.js';
import { Rng } from '../shared/math/rng.js';
import { assignRows, epochBatches, epochOrder, stepsPerEpoch } from '../shared/math/split-plan.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { METRIC_HIGHER_IS_BETTER, type MetricName, type ModelSpec } from '../shared/model/spec.js';
import { sumsProblem } from '../shared/model/sums.js';
import { clipScales, robustAggregate } from '../shared/math/robust.js';
import { EarlyStopping } from './callbacks/early-stopping.js';
import type { TrainingMetrics } from './metrics.js';
import type { GradientResult } from '../shared/protocol/gradient-packet.js';
import type { TrainingState } from './checkpoint.js';
import type { EvaluateAnswer } from '../shared/protocol/thread-tasks.js';
import { ParticipantFault, faultOf, type Participant, type ParticipantGroup } from './participants/participant.js';

/** Attempts per step (each one recomputes only the parts that failed) before the run stops. */
const MAX_ATTEMPTS = 8;

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
  /** Stopped on request (stopRequested) before the last epoch; a checkpoint was written. */
  readonly interrupted: boolean;
}

export interface TrainerEvents {
  onEpochStart?(epoch: number, epochs: number): void;
  onEpochEnd?(log: EpochLog, epochs: number): void;
  /** After each step: `batch` of `batches` done in this epoch, with the epoch's running means so far. */
  onBatchEnd?(batch: number, batches: number, running: Readonly<Record<string, number>>): void;
  /** A checkpoint is due (every `checkpoint.everySteps` steps, at epoch ends, and when stopping on request). */
  onCheckpoint?(state: TrainingState): void;
  /** Polled after every step: true finishes the current step, checkpoints and returns (interrupted). */
  stopRequested?(): boolean;
}

export interface FitOptions extends TrainerEvents {
  /** Continue from this checkpoint instead of starting fresh. */
  readonly resume?: TrainingState;
}

export interface EvaluateResult {
  readonly loss: number;
  readonly [metric: string]: number;
}

/** What one step gives back: sums for the epoch logs, and its slowest participant's own time. */
export interface StepSums {
  readonly lossSum: number;
  readonly metricSums: number[];
  /** Slowest participant's time on its own part, seconds (0 if none reported); for benchmarks. */
  readonly slowestCompute: number;
}

export class Trainer {
  readonly spec: ModelSpec;
  readonly weights: Float32Array;
  private optimizer: Optimizer;
  /** Reused every step for the averaged gradient (no allocation on the hot path). */
  private readonly meanGradient: Float32Array;
  private readonly reducer: GradientReducer;
  /** Steps at which each participant's gradient had to be clipped hard (robust aggregation). */
  private readonly clipped = new Map<string, number>();
  private version = 0;

  constructor(
    readonly config: JobConfig,
    readonly dataset: Dataset,
    readonly group: ParticipantGroup,
    spec?: ModelSpec,
    private readonly metrics?: TrainingMetrics,
    /** Warnings during training (robust aggregation's clipping). */
    private readonly log?: (line: string) => void,
  ) {
    this.spec = spec ?? modelSpec(config, dataset);
    const layout = weightLayout(this.spec);
    this.weights = initialWeights(layout, runRngs.weights(config.seed));
    this.optimizer = createOptimizer(config.compile.optimizer, layout.size);
    this.meanGradient = new Float32Array(layout.size);
    this.reducer = new GradientReducer(layout.size);
    this.checkConfig();
    group.publish(this.weights, this.version);
  }

  private checkConfig(): void {
    const { fit } = this.config;
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

  /**
   * Runs one synchronous step on the global batch `rows` and returns the sums for the epoch
   * logs. The batch is split over the participants (equally or by speed, nodes first getting
   * rows they hold); the part of any participant that fails is recomputed by the others, so the
   * averaged gradient is always the mean over the whole batch, and the optimizer steps once.
   *
   * Gradients are checked for NaN and infinity through their mean: the weighted average is
   * non-finite at an index exactly when some part is (reduce.ts), so one pass over the mean
   * replaces a pass over every part; only when it fails are the parts searched for the culprits,
   * which are then treated like any failed part.
   */
  async step(step: number, rows: Int32Array, phases: PhaseTimes, tensorCounts: number[]): Promise<StepSums> {
    const t0 = performance.now();
    let accepted: { participant: Participant; rows: Int32Array; result: GradientResult; seconds: number }[] = [];
    const nonFiniteRows = new Set<number>();
    const excluded = new Set<Participant>();
    let failed: Int32Array[] = [];
    /** A part that failed: its participant is told, its rows go back to be recomputed. */
    const reject = (participant: Participant, partRows: Int32Array, fault: ParticipantFault): void => {
      if (fault.reason === 'non_finite') {
        if (partRows.some((r) => nonFiniteRows.has(r))) {
          throw new WorkerError(
            `step ${step}: the gradient is not finite on the same rows from two participants: training diverged (try a lower learning rate or data.standardize: true)`,
          );
        }
        partRows.forEach((r) => nonFiniteRows.add(r));
        excluded.add(participant);
      }
      this.group.failed(participant, step, fault);
      failed.push(partRows);
    };
    let pending = rows;
    let mean: Float32Array;
    let reduceMs = 0;
    for (let attempt = 0; ; attempt++) {
      if (attempt >= MAX_ATTEMPTS) throw new ClusterError(`step ${step}: ${pending.length} rows still not computed after ${MAX_ATTEMPTS} attempts`);
      const participants = (await this.group.ready()).filter((p) => !excluded.has(p));
      if (participants.length === 0) {
        if (nonFiniteRows.size > 0) throw new WorkerError(`step ${step}: the gradient is not finite and no other participant is left to check it: training diverged (try a lower learning rate or data.standardize: true)`);
        throw new ClusterError(`step ${step}: no participant left to compute ${pending.length} rows`);
      }
      const counts = this.group.split(pending.length, participants);
      const parts = assignRows(pending, counts, participants.map((p) => p.holds));
      const settled = await Promise.allSettled(
        parts.map(async (part) => {
          const started = performance.now();
          const result = await participants[part.participant]!.gradient(step, this.version, part.rows);
          return { result, seconds: (performance.now() - started) / 1000 };
        }),
      );
      failed = [];
      settled.forEach((outcome, i) => {
        const part = parts[i]!;
        const participant = participants[part.participant]!;
        if (outcome.status === 'rejected') {
          const err = outcome.reason as Error;
          reject(participant, part.rows, faultOf(participant.id, err));
          return;
        }
        const { result, seconds } = outcome.value;
        const problem = Number.isFinite(result.lossSum) ? sumsProblem(this.spec, result.count, result.lossSum, result.metricSums) : undefined;
        if (result.count !== part.rows.length) {
          reject(participant, part.rows, new ParticipantFault(participant.id, 'shape', `computed ${result.count} samples, was given ${part.rows.length}`));
        } else if (!Number.isFinite(result.lossSum)) {
          reject(participant, part.rows, new ParticipantFault(participant.id, 'non_finite', `returned a non-finite loss sum (${result.lossSum})`));
        } else if (problem !== undefined) {
          reject(participant, part.rows, new ParticipantFault(participant.id, 'out_of_range', `returned sums that cannot be: ${problem}`));
        } else {
          accepted.push({ participant, rows: part.rows, result, seconds });
        }
      });
      if (failed.length === 0) {
        const started = performance.now();
        const finite = this.combine(step, accepted);
        reduceMs += performance.now() - started;
        if (finite) {
          mean = this.meanGradient;
          break;
        }
        // Rare: find the parts that are not finite; the others stay accepted.
        const checked = accepted.map((a) => ({ ...a, bad: firstNonFinite(a.result.gradient) }));
        accepted = checked.filter((a) => a.bad < 0);
        for (const { participant, rows: partRows, result, bad } of checked.filter((a) => a.bad >= 0)) {
          reject(participant, partRows, new ParticipantFault(participant.id, 'non_finite', `returned a non-finite gradient (value ${bad} is ${result.gradient[bad]}, loss sum ${result.lossSum})`));
        }
      }
      pending = concatRows(failed);
    }
    for (const { participant, result, seconds } of accepted) {
      if (result.numTensors >= 0) tensorCounts.push(result.numTensors);
      this.group.succeeded(participant, step, result.count, seconds);
    }
    const results = accepted.map((a) => a.result);
    const t2 = performance.now();
    const t1 = t2 - reduceMs;
    this.optimizer.apply(this.weights, mean);
    const t3 = performance.now();
    this.publish();
    const t4 = performance.now();
    const stepPhases = { compute: (t1 - t0) / 1000, reduce: (t2 - t1) / 1000, apply: (t3 - t2) / 1000, broadcast: (t4 - t3) / 1000 };
    phases.compute += stepPhases.compute;
    phases.reduce += stepPhases.reduce;
    phases.apply += stepPhases.apply;
    phases.broadcast += stepPhases.broadcast;
    this.metrics?.step(stepPhases);
    const metricSums = this.spec.metrics.map((_, k) => results.reduce((a, r) => a + r.metricSums[k]!, 0));
    const slowestCompute = results.reduce((a, r) => Math.max(a, (r.computeMs ?? -1) / 1000), 0);
    return { lossSum: results.reduce((a, r) => a + r.lossSum, 0), metricSums, slowestCompute };
  }

  /** Loss and metrics over a range of the data set with the current weights, spread over the participants. */
  async evaluate(range: RowRange): Promise<EvaluateResult> {
    const answers: EvaluateAnswer[] = [];
    let pending: RowRange[] = range.count > 0 ? [range] : [];
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt >= MAX_ATTEMPTS) throw new ClusterError(`evaluation: rows still not evaluated after ${MAX_ATTEMPTS} attempts`);
      const participants = this.evaluators(await this.group.ready());
      const jobs: { participant: Participant; range: RowRange }[] = [];
      for (const r of pending) {
        let start = r.start;
        this.group.split(r.count, participants).forEach((count, i) => {
          if (count > 0) jobs.push({ participant: participants[i]!, range: { start, count } });
          start += count;
        });
      }
      const settled = await Promise.allSettled(jobs.map((j) => j.participant.evaluate(this.version, j.range)));
      pending = [];
      settled.forEach((outcome, i) => {
        const job = jobs[i]!;
        const problem =
          outcome.status === 'fulfilled'
            ? outcome.value.count !== job.range.count
              ? `evaluated ${outcome.value.count} rows, was given ${job.range.count}`
              : sumsProblem(this.spec, outcome.value.count, outcome.value.lossSum, outcome.value.metricSums)
            : undefined;
        if (outcome.status === 'fulfilled' && problem === undefined) {
          answers.push(outcome.value);
          return;
        }
        const fault =
          outcome.status === 'fulfilled'
            ? new ParticipantFault(job.participant.id, 'out_of_range', `returned evaluation sums that cannot be: ${problem}`)
            : faultOf(job.participant.id, outcome.reason);
        this.group.failed(job.participant, -1, fault);
        pending.push(job.range);
      });
    }
    const total = answers.reduce((a, r) => a + r.count, 0);
    const result: Record<string, number> = { loss: answers.reduce((a, r) => a + r.lossSum, 0) / total };
    this.spec.metrics.forEach((name, k) => {
      result[name] = answers.reduce((a, r) => a + r.metricSums[k]!, 0) / total;
    });
    return result as EvaluateResult;
  }

  /**
   * The step's gradient from the accepted parts: the weighted mean (cluster.aggregation: mean,
   * the default), or a robust combination (shared/math/robust.ts), which also says when it had to
   * clip a participant's gradient hard. True when the result is finite.
   */
  private combine(step: number, accepted: readonly { participant: Participant; result: GradientResult }[]): boolean {
    const { aggregation, trimFraction, clipNorm } = this.config.cluster;
    const results = accepted.map((a) => a.result);
    if (aggregation === 'mean' || accepted.length < 2) return this.reducer.mean(results, this.meanGradient);
    clipScales(results, clipNorm).forEach((scale, i) => {
      if (scale >= 0.01) return;
      const id = accepted[i]!.participant.id;
      const seen = this.clipped.get(id) ?? 0;
      this.clipped.set(id, seen + 1);
      if (seen % 100 === 0) this.log?.(`warning: step ${step}: ${id}'s gradient norm is ${(1 / scale).toPrecision(3)}x the allowed ${clipNorm} x median norm; clipped (${seen + 1} time(s) so far)`);
    });
    return robustAggregate(results, this.meanGradient, { aggregation, trimFraction, clip: clipNorm });
  }

  /**
   * Who evaluates (validation and test): the coordinator's own lanes when it has them and
   * cluster.evaluateOn is auto or local, so a node cannot forge the figures in summary.json; every
   * participant with evaluateOn all (or when there are no local lanes).
   */
  private evaluators(participants: readonly Participant[]): readonly Participant[] {
    if (this.config.cluster.evaluateOn === 'all') return participants;
    const local = participants.filter((p) => p.kind === 'thread');
    if (local.length > 0) return local;
    if (this.config.cluster.evaluateOn === 'local') throw new ConfigError('cluster.evaluateOn is local, but the coordinator has no local lane (threads: 0)');
    return participants;
  }

  /** Sets the weights (e.g. restoring the best epoch's) and publishes them. */
  setWeights(weights: Float32Array): void {
    this.weights.set(weights);
    this.publish();
  }

  /**
   * Hash of what a checkpoint must match to be resumed here: the training rows and labels, the
   * model, the optimizer and the batch settings. A checkpoint of other data is refused.
   */
  fingerprint(): string {
    const { x, y, features, outputs, train } = this.dataset;
    const hash = createHash('sha256');
    hash.update(new Uint8Array(x.buffer, x.byteOffset + train.start * features * 4, train.count * features * 4));
    hash.update(new Uint8Array(y.buffer, y.byteOffset + train.start * outputs * 4, train.count * outputs * 4));
    const { fit, compile, seed } = this.config;
    hash.update(JSON.stringify({ spec: this.spec, optimizer: compile.optimizer, batchSize: fit.batchSize, shuffle: fit.shuffle, seed, val: this.dataset.val.count }));
    return hash.digest('hex');
  }

  async fit(options: FitOptions = {}): Promise<FitResult> {
    const { fit } = this.config;
    const train = this.dataset.train;
    const fingerprint = this.fingerprint();
    const rng = runRngs.shuffle(this.config.seed);
    const earlyStopping = fit.earlyStopping
      ? new EarlyStopping(fit.earlyStopping, METRIC_HIGHER_IS_BETTER[fit.earlyStopping.monitor.replace(/^val_/, '') as MetricName] ?? false)
      : undefined;
    const resume = options.resume;
    if (resume && resume.fingerprint !== fingerprint) {
      throw new CheckpointError('the checkpoint belongs to other training data, model or settings (fingerprint differs); resume with the same config and data file');
    }
    const history: EpochLog[] = resume ? [...resume.history] : [];
    const phases: PhaseTimes = resume ? { ...resume.phases } : { compute: 0, reduce: 0, apply: 0, broadcast: 0 };
    const tensorCounts: number[] = [];
    let step = resume?.step ?? 0;
    let samples = resume?.samples ?? 0;
    let trainSeconds = resume?.trainSeconds ?? 0;
    let stoppedEarly = resume?.stoppedEarly ?? false;
    let finished = resume?.finished ?? false;
    let interrupted = false;
    if (resume) {
      this.weights.set(resume.weights);
      this.optimizer = createOptimizer(this.config.compile.optimizer, this.weights.length, resume.optimizer);
      if (resume.earlyStopping) earlyStopping?.restore(resume.earlyStopping);
      rng.restore(resume.shuffle);
      this.publish();
    }

    const snapshot = (epoch: number, batch: number, shuffle: number, progress: TrainingState['epochProgress']): TrainingState => ({
      epoch,
      batch,
      step,
      samples,
      trainSeconds,
      phases: { ...phases },
      history: [...history],
      epochProgress: { ...progress, metricSums: [...progress.metricSums] },
      shuffle,
      finished,
      stoppedEarly,
      earlyStopping: earlyStopping?.state(),
      optimizer: this.optimizer.state(),
      weights: this.weights.slice(),
      fingerprint,
    });

    for (let epoch = resume?.epoch ?? 0; epoch < fit.epochs && !finished; epoch++) {
      const resuming = resume !== undefined && epoch === resume.epoch;
      const skip = resuming ? resume.batch : 0;
      options.onEpochStart?.(epoch, fit.epochs);
      this.metrics?.epoch(epoch + 1);
      const localStart = performance.now();
      const started = localStart - (resuming ? resume.epochProgress.seconds * 1000 : 0);
      const samplesBefore = this.metrics?.samplesTotal ?? samples;
      const shuffleAtStart = rng.position;
      const order = epochOrder(train.count, fit.shuffle, rng);
      let lossSum = resuming ? resume.epochProgress.lossSum : 0;
      const metricSums = resuming ? [...resume.epochProgress.metricSums] : this.spec.metrics.map(() => 0);
      const batches = epochBatches(order, fit.batchSize);
      /** Samples of this epoch's steps so far (for the running means). */
      let seen = batches.slice(0, skip).reduce((n, batch) => n + batch.length, 0);
      for (let b = skip; b < batches.length; b++) {
        let sums: StepSums;
        try {
          sums = await this.step(step, batches[b]!, phases, tensorCounts);
        } catch (err) {
          if (!(err instanceof WaitCancelledError)) throw err;
          // Stopped while waiting for worker nodes: this step was not taken. A checkpoint only
          // if a step was taken since the start (or the resumed checkpoint).
          if (step > (resume?.step ?? 0)) options.onCheckpoint?.(snapshot(epoch, b, shuffleAtStart, { lossSum, metricSums, seconds: (performance.now() - started) / 1000 }));
          samples += batches.slice(skip, b).reduce((n, batch) => n + batch.length, 0);
          trainSeconds += (performance.now() - started) / 1000;
          interrupted = true;
          break;
        }
        step++;
        lossSum += sums.lossSum;
        sums.metricSums.forEach((m, k) => (metricSums[k]! += m));
        seen += batches[b]!.length;
        if (options.onBatchEnd) {
          const running: Record<string, number> = { loss: lossSum / seen };
          this.spec.metrics.forEach((name, k) => (running[name] = metricSums[k]! / seen));
          options.onBatchEnd(b + 1, batches.length, running);
        }
        const stop = b + 1 < batches.length && options.stopRequested?.() === true;
        const due = this.config.checkpoint.everySteps > 0 && step % this.config.checkpoint.everySteps === 0;
        if ((stop || due) && b + 1 < batches.length) {
          options.onCheckpoint?.(snapshot(epoch, b + 1, shuffleAtStart, { lossSum, metricSums, seconds: (performance.now() - started) / 1000 }));
        }
        if (stop) {
          // The result counts this unfinished epoch's steps too; its checkpoint above does not,
          // since resuming finishes the epoch and counts it whole.
          samples += batches.slice(0, b + 1).reduce((n, batch) => n + batch.length, 0);
          trainSeconds += (performance.now() - started) / 1000;
          interrupted = true;
          break;
        }
      }
      if (interrupted) break;
      const stepEnd = performance.now();
      const stepSeconds = (stepEnd - started) / 1000;
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
        // from the samples counter Prometheus exports, so console and dashboard agree
        samplesPerSecond: ((this.metrics?.samplesTotal ?? samples) - samplesBefore) / ((stepEnd - localStart) / 1000),
        values,
      };
      history.push(log);
      this.metrics?.epochEnd(values, log.samplesPerSecond);
      options.onEpochEnd?.(log, fit.epochs);
      if (earlyStopping?.onEpochEnd(epoch, values, this.weights)) stoppedEarly = true;
      finished = stoppedEarly || epoch + 1 === fit.epochs;
      const stop = !finished && options.stopRequested?.() === true;
      if (this.config.checkpoint.epochEnd || stop) options.onCheckpoint?.(snapshot(epoch + 1, 0, rng.position, { lossSum: 0, metricSums: this.spec.metrics.map(() => 0), seconds: 0 }));
      if (stop) {
        interrupted = true;
        break;
      }
    }

    const restore = interrupted ? undefined : earlyStopping?.weightsToRestore();
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
      interrupted,
    };
  }
}

function concatRows(parts: readonly Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function bestByLoss(history: readonly EpochLog[]): number {
  const key = history[0]?.values['val_loss'] !== undefined ? 'val_loss' : 'loss';
  let best = 0;
  history.forEach((log, i) => {
    if (log.values[key]! < history[best]!.values[key]!) best = i;
  });
  return history.length > 0 ? best + 1 : 0;
}
