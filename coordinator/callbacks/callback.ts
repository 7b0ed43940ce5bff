/**
 * The fit loop's one way of telling anyone anything, as tfjs-layers' `CallbackList` and Keras's
 * callbacks: early stopping, checkpoints, metrics, progress lines and stop-on-signal are each a
 * `Callback`; the loop calls the list at the start and end of training, of each epoch and of each
 * batch. A callback ends training through the loop's one `stopTraining` flag.
 */
import type { TrainingState } from '../checkpoint.js';
import type { EpochLog, PhaseTimes } from '../fit/logs.js';

/**
 * Why training stops early: 'finished' (the run is complete, e.g. early stopping) or
 * 'interrupted' (stopped on request; a checkpoint lets it resume).
 */
export type StopKind = 'finished' | 'interrupted';

/** What a callback sees of the running loop (Keras's `this.model`). */
export interface FitLoopView {
  readonly epochs: number;
  /** Optimizer steps applied so far. */
  readonly step: number;
  /** Steps applied before this process started (those of the checkpoint it resumed). */
  readonly startStep: number;
  readonly stopTraining: StopKind | false;
  /**
   * Ends training after the current batch, as Keras's `stop_training`: 'finished' (the epoch ends
   * there, with its validation and onEpochEnd, and the run is complete) or 'interrupted' (no
   * epoch end; a checkpoint resumes mid-epoch). 'finished' wins.
   */
  stop(kind: StopKind): void;
  /** The learning rate the next step takes (a schedule's, or the last one set). */
  readonly learningRate: number;
  /** Sets the learning rate from the next step on (refused where compile.learningRateSchedule sets it). */
  setLearningRate(rate: number): void;
  /** The current weights, and `restoreWeights` to put others in their place. */
  readonly weights: Float32Array;
  restoreWeights(weights: Float32Array): void;
  /** The whole training state where the loop stands now (a checkpoint of it resumes here). */
  snapshot(): TrainingState;
}

export interface BatchEndLog {
  /** 1-based batch of the epoch just done, of `batches`. */
  readonly batch: number;
  readonly batches: number;
  /** Steps applied so far, counting this one. */
  readonly step: number;
  /** The epoch's running means so far (loss and metrics). */
  readonly logs: Readonly<Record<string, number>>;
  /** This step's time in each phase, seconds. */
  readonly phases: Readonly<PhaseTimes>;
}

export interface TrainEndLog {
  readonly interrupted: boolean;
}

/**
 * Each method may return a promise: the loop awaits it before going on (as tfjs-layers'
 * CallbackList does), so a callback can write a file or call a service, and its rejection ends
 * training with that error.
 */
export interface Callback {
  /** Called once, before training, with the loop the callback acts on. */
  setLoop?(loop: FitLoopView): void;
  onTrainBegin?(): void | Promise<void>;
  /** `epoch` is 0-based. */
  onEpochBegin?(epoch: number): void | Promise<void>;
  onBatchEnd?(log: BatchEndLog): void | Promise<void>;
  onEpochEnd?(log: EpochLog): void | Promise<void>;
  onTrainEnd?(log: TrainEndLog): void | Promise<void>;
}

/** The callbacks of one fit, called in order, each awaited before the next. */
export class CallbackList {
  constructor(private readonly callbacks: readonly Callback[]) {}

  setLoop(loop: FitLoopView): void {
    for (const c of this.callbacks) c.setLoop?.(loop);
  }

  async onTrainBegin(): Promise<void> {
    for (const c of this.callbacks) await c.onTrainBegin?.();
  }

  async onEpochBegin(epoch: number): Promise<void> {
    for (const c of this.callbacks) await c.onEpochBegin?.(epoch);
  }

  async onBatchEnd(log: BatchEndLog): Promise<void> {
    for (const c of this.callbacks) await c.onBatchEnd?.(log);
  }

  async onEpochEnd(log: EpochLog): Promise<void> {
    for (const c of this.callbacks) await c.onEpochEnd?.(log);
  }

  async onTrainEnd(log: TrainEndLog): Promise<void> {
    for (const c of this.callbacks) await c.onTrainEnd?.(log);
  }
}
