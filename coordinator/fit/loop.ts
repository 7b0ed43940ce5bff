/**
 * Keras's `fit` loop over the steps: epochs of shuffled batches (plan/split-plan), one
 * StepRunner step per batch, validation at each epoch end, history. It tells the world only
 * through its CallbackList and stops only through `stopTraining`. Where it stands (epoch, batch,
 * the epoch's running sums) plus what each state piece saves is a checkpoint's TrainingState.
 */
import { performance } from 'node:perf_hooks';
import type { JobConfig } from '../../shared/config/schema.js';
import type { Dataset } from '../../shared/data/dataset.js';
import { WaitCancelledError } from '../../shared/errors.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import type { CallbackList, FitLoopView, StopKind } from '../callbacks/callback.js';
import type { EarlyStoppingCallback } from '../callbacks/early-stopping.js';
import type { ModelCheckpoint } from '../callbacks/model-checkpoint.js';
import type { ReduceLrOnPlateau } from '../callbacks/reduce-lr-on-plateau.js';
import type { TrainingState } from '../checkpoint.js';
import { epochBatches, epochOrder, stepsPerEpoch } from '../../shared/plan/split-plan.js';
import type { EvaluateResult } from './evaluate.js';
import { addPhases, type EpochLog, type PhaseTimes } from './logs.js';
import type { History, ModelWeights, OptimizerSlot, ShuffleStream } from './state.js';
import type { StepRunner } from './step.js';
import type { ParticipantGroup } from '../participants/participant.js';
import { addSums, metricLayoutOf } from '../../shared/model/metric-sums.js';

/** The pieces of training state a checkpoint is made of. */
export interface StatePieces {
  readonly weights: ModelWeights;
  readonly optimizer: OptimizerSlot;
  readonly shuffle: ShuffleStream;
  readonly history: History<EpochLog>;
  readonly earlyStopping?: EarlyStoppingCallback | undefined;
  readonly reduceLrOnPlateau?: ReduceLrOnPlateau | undefined;
  readonly modelCheckpoint?: ModelCheckpoint | undefined;
}

/** Where in the run the loop stands: the next batch to take and the sums of its epoch so far. */
interface Position {
  epoch: number;
  batch: number;
  /** Shuffle position at the start of `epoch`, before its order was drawn. */
  shuffle: number;
  lossSum: number;
  metricSums: number[];
  /** Seconds of the epoch spent before this process (a resumed checkpoint's). */
  carried: number;
  /** performance.now() at which the epoch would have started had it run here whole (while one runs). */
  started: number | undefined;
}

export interface LoopOutcome {
  readonly steps: number;
  readonly samples: number;
  readonly trainSeconds: number;
  readonly phases: PhaseTimes;
  readonly tensorCounts: number[];
  readonly stoppedEarly: boolean;
  readonly interrupted: boolean;
}

export class FitLoop implements FitLoopView {
  readonly epochs: number;
  readonly startStep: number;
  step: number;
  stopTraining: StopKind | false;
  /** Samples and seconds of the completed epochs. */
  private samples: number;
  private trainSeconds: number;
  private readonly phases: PhaseTimes;
  private readonly tensorCounts: number[] = [];
  /** The run this loop resumed had already finished. */
  private readonly resumedFinished: boolean;
  private readonly position: Position;

  constructor(
    private readonly fit: JobConfig['fit'],
    private readonly dataset: Dataset,
    private readonly spec: ModelSpec,
    private readonly runner: Pick<StepRunner, 'run'> & Pick<ParticipantGroup, 'prefetch'>,
    private readonly evaluate: (range: Dataset['val']) => Promise<EvaluateResult>,
    private readonly pieces: StatePieces,
    private readonly fingerprint: string,
    private readonly callbacks: CallbackList,
    resume?: TrainingState,
  ) {
    this.epochs = fit.epochs;
    this.step = this.startStep = resume?.step ?? 0;
    this.samples = resume?.samples ?? 0;
    this.trainSeconds = resume?.trainSeconds ?? 0;
    this.phases = resume ? { ...resume.phases } : { compute: 0, reduce: 0, apply: 0, broadcast: 0 };
    this.stopTraining = resume?.stoppedEarly ? 'finished' : false;
    this.resumedFinished = resume?.finished ?? false;
    const progress = resume?.epochProgress;
    this.position = {
      epoch: resume?.epoch ?? 0,
      batch: resume?.batch ?? 0,
      shuffle: resume?.shuffle ?? pieces.shuffle.save(),
      lossSum: progress?.lossSum ?? 0,
      metricSums: progress ? [...progress.metricSums] : new Array<number>(metricLayoutOf(spec).width).fill(0),
      carried: progress?.seconds ?? 0,
      started: undefined,
    };
    if (resume) {
      pieces.weights.restore(resume.weights);
      pieces.optimizer.restore(resume.optimizer);
      if (resume.earlyStopping) pieces.earlyStopping?.restore(resume.earlyStopping);
      if (resume.reduceLrOnPlateau) pieces.reduceLrOnPlateau?.restore(resume.reduceLrOnPlateau);
      if (resume.modelCheckpoint) pieces.modelCheckpoint?.restore(resume.modelCheckpoint);
      pieces.shuffle.restore(resume.shuffle);
      pieces.history.restore(resume.history);
    }
    callbacks.setLoop(this);
  }

  get weights(): Float32Array {
    return this.pieces.weights.values;
  }

  restoreWeights(weights: Float32Array): void {
    this.pieces.weights.restore(weights);
  }

  get learningRate(): number {
    return this.pieces.optimizer.learningRate;
  }

  setLearningRate(rate: number): void {
    this.pieces.optimizer.setLearningRate(rate);
  }

  stop(kind: StopKind): void {
    if (this.stopTraining !== 'finished') this.stopTraining = kind;
  }

  private get finished(): boolean {
    return this.resumedFinished || this.stopTraining === 'finished' || this.position.epoch >= this.epochs;
  }

  snapshot(): TrainingState {
    const p = this.position;
    const { weights, optimizer, history, earlyStopping, reduceLrOnPlateau, modelCheckpoint } = this.pieces;
    return {
      epoch: p.epoch,
      batch: p.batch,
      step: this.step,
      samples: this.samples,
      trainSeconds: this.trainSeconds,
      phases: { ...this.phases },
      history: history.save(),
      epochProgress: { lossSum: p.lossSum, metricSums: [...p.metricSums], seconds: p.started === undefined ? p.carried : (performance.now() - p.started) / 1000 },
      shuffle: p.shuffle,
      finished: this.finished,
      stoppedEarly: this.stopTraining === 'finished',
      earlyStopping: earlyStopping?.save(),
      ...(reduceLrOnPlateau ? { reduceLrOnPlateau: reduceLrOnPlateau.save() } : {}),
      ...(modelCheckpoint ? { modelCheckpoint: modelCheckpoint.save() } : {}),
      optimizer: optimizer.save(),
      weights: weights.save(),
      fingerprint: this.fingerprint,
    };
  }

  async run(): Promise<LoopOutcome> {
    await this.callbacks.onTrainBegin();
    /** Samples and seconds of an epoch left unfinished (interrupted), for the outcome only. */
    let partial = { samples: 0, seconds: 0 };
    while (!this.finished && this.stopTraining !== 'interrupted') {
      partial = await this.runEpoch();
    }
    const interrupted = this.stopTraining === 'interrupted' && !this.finished;
    await this.callbacks.onTrainEnd({ interrupted });
    return {
      steps: this.step,
      samples: this.samples + partial.samples,
      trainSeconds: this.trainSeconds + partial.seconds,
      phases: this.phases,
      tensorCounts: this.tensorCounts,
      stoppedEarly: this.stopTraining === 'finished',
      interrupted,
    };
  }

  /** One epoch from `position` on; what it leaves unfinished if it is interrupted. */
  private async runEpoch(): Promise<{ samples: number; seconds: number }> {
    const { fit, dataset, spec, position: p } = this;
    const train = dataset.train;
    const epoch = p.epoch;
    const skip = p.batch;
    await this.callbacks.onEpochBegin(epoch);
    const localStart = performance.now();
    const started = localStart - p.carried * 1000;
    p.started = started;
    const order = epochOrder(train.count, fit.shuffle, this.pieces.shuffle.rng);
    const batches = epochBatches(order, fit.batchSize);
    /** Samples of this epoch's steps so far (for the running means). */
    let seen = batches.slice(0, skip).reduce((n, batch) => n + batch.length, 0);
    const seenBefore = seen;
    /** Milliseconds of this epoch spent waiting for worker nodes: not training time. */
    let waitedMs = 0;
    const unfinished = (): { samples: number; seconds: number } => ({ samples: seen, seconds: (performance.now() - started - waitedMs) / 1000 });
    /** Batches of the epoch taken: all of them unless a callback finished training in it. */
    let batchesDone = batches.length;
    for (let b = skip; b < batches.length; b++) {
      let sums;
      this.runner.prefetch?.(this.step, batches, b);
      try {
        sums = await this.runner.run(this.step, batches[b]!);
      } catch (err) {
        if (!(err instanceof WaitCancelledError)) throw err;
        // Stopped while waiting for worker nodes: this step was not taken.
        this.stop('interrupted');
        return unfinished();
      }
      this.step++;
      waitedMs += sums.waited * 1000;
      p.started = started + waitedMs;
      p.batch = b + 1;
      p.lossSum += sums.lossSum;
      addSums(p.metricSums, sums.metricSums);
      seen += batches[b]!.length;
      addPhases(this.phases, sums.phases);
      this.tensorCounts.push(...sums.tensorCounts);
      const logs: Record<string, number> = { loss: p.lossSum / seen };
      Object.assign(logs, metricLayoutOf(spec).values(p.metricSums, seen));
      await this.callbacks.onBatchEnd({ batch: b + 1, batches: batches.length, step: this.step, logs, phases: sums.phases });
      // A stop at the last batch takes effect at the epoch's end, after its validation.
      if (this.stopTraining === 'interrupted' && b + 1 < batches.length) return unfinished();
      // 'finished' (Keras's stop_training): the epoch ends here, with its validation
      if (this.stopTraining === 'finished') {
        batchesDone = b + 1;
        break;
      }
    }
    const stepEnd = performance.now() - waitedMs;
    this.trainSeconds += (stepEnd - started) / 1000;
    this.samples += seen;
    const values: Record<string, number> = { loss: p.lossSum / seen };
    Object.assign(values, metricLayoutOf(spec).values(p.metricSums, seen));
    if (dataset.val.count > 0) {
      const val = await this.evaluate(dataset.val);
      for (const [name, v] of Object.entries(val)) values[`val_${name}`] = v;
    }
    const log: EpochLog = {
      epoch: epoch + 1,
      steps: batchesDone === batches.length ? stepsPerEpoch(train.count, fit.batchSize) : batchesDone,
      seconds: (performance.now() - waitedMs - started) / 1000,
      samples: seen,
      // the samples this process computed in the epoch, as the Prometheus counter counts them
      samplesPerSecond: (seen - seenBefore) / ((stepEnd - localStart) / 1000),
      values,
    };
    this.pieces.history.push(log);
    Object.assign(p, { epoch: epoch + 1, batch: 0, shuffle: this.pieces.shuffle.save(), lossSum: 0, metricSums: new Array<number>(metricLayoutOf(spec).width).fill(0), carried: 0, started: undefined });
    await this.callbacks.onEpochEnd(log);
    return { samples: 0, seconds: 0 };
  }
}
