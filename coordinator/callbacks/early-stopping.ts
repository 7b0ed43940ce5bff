/**
 * EarlyStopping with Keras semantics: watch `monitor` each epoch from `startFromEpoch` on; an
 * improvement is a change beyond `minDelta` in the right direction (restarting the wait only if it
 * also beats `baseline`); stop once `patience` epochs pass without one (never after the first
 * epoch); with restoreBestWeights, the weights of the best epoch come back when training is
 * stopped early (as in Keras: not when it runs out of epochs).
 *
 * `EarlyStopping` is the rule; `EarlyStoppingCallback` applies it in the fit loop and is the
 * piece of training state a checkpoint keeps of it.
 */
import type { EarlyStoppingConfig } from '../../shared/config/schema.js';
import { higherIsBetter } from '../../shared/model/metric-sums.js';
import type { EpochLog } from '../fit/logs.js';
import type { Stateful } from '../fit/state.js';
import type { Callback, FitLoopView, TrainEndLog } from './callback.js';

export type EpochLogs = Readonly<Record<string, number>>;

/** What a checkpoint keeps of an EarlyStopping. */
export interface EarlyStoppingState {
  readonly wait: number;
  readonly best: number;
  readonly bestEpoch: number;
  readonly stoppedEpoch: number;
  readonly bestWeights?: Float32Array | undefined;
}

export class EarlyStopping {
  private readonly higherIsBetter: boolean;
  private wait = 0;
  best: number;
  /** 0-based epoch of the best value, or -1 before the first epoch. */
  bestEpoch = -1;
  bestWeights: Float32Array | undefined;
  /** 0-based epoch at which training stopped, or -1. */
  stoppedEpoch = -1;

  constructor(
    readonly config: EarlyStoppingConfig,
    /** Direction for mode 'auto', from the metric registry. */
    autoHigherIsBetter: boolean,
  ) {
    this.higherIsBetter = config.mode === 'max' || (config.mode === 'auto' && autoHigherIsBetter);
    this.best = this.higherIsBetter ? -Infinity : Infinity;
  }

  private isImprovement(current: number, over = this.best): boolean {
    return this.higherIsBetter ? current - this.config.minDelta > over : current + this.config.minDelta < over;
  }

  /** Call after each epoch with its logs and the weights at its end. Returns true to stop. */
  onEpochEnd(epoch: number, logs: EpochLogs, weights: Float32Array): boolean {
    const current = logs[this.config.monitor];
    if (current === undefined || Number.isNaN(current) || epoch < (this.config.startFromEpoch ?? 0)) return false;
    if (this.config.restoreBestWeights && this.bestWeights === undefined) this.bestWeights = weights.slice();
    this.wait++;
    if (this.isImprovement(current)) {
      this.best = current;
      this.bestEpoch = epoch;
      if (this.config.restoreBestWeights) this.bestWeights = weights.slice();
      // the wait restarts only on a value better than the baseline too
      if (this.config.baseline === undefined || this.isImprovement(current, this.config.baseline)) this.wait = 0;
      return false;
    }
    if (this.wait >= this.config.patience && epoch > 0) {
      this.stoppedEpoch = epoch;
      return true;
    }
    return false;
  }

  state(): EarlyStoppingState {
    return { wait: this.wait, best: this.best, bestEpoch: this.bestEpoch, stoppedEpoch: this.stoppedEpoch, bestWeights: this.bestWeights?.slice() };
  }

  restore(state: EarlyStoppingState): this {
    this.wait = state.wait;
    this.best = state.best;
    this.bestEpoch = state.bestEpoch;
    this.stoppedEpoch = state.stoppedEpoch;
    this.bestWeights = state.bestWeights?.slice();
    return this;
  }

  /** The weights to keep when training stopped early with restoreBestWeights, else undefined. */
  weightsToRestore(): Float32Array | undefined {
    return this.stoppedEpoch >= 0 && this.config.restoreBestWeights ? this.bestWeights : undefined;
  }
}

/** EarlyStopping in the fit loop: stops it ('finished') and, at the end, restores the best weights. */
export class EarlyStoppingCallback implements Callback, Stateful<EarlyStoppingState> {
  readonly rule: EarlyStopping;
  private loop?: FitLoopView;
  /** The best epoch's weights were put back at the end of training. */
  restored = false;

  constructor(config: EarlyStoppingConfig) {
    this.rule = new EarlyStopping(config, higherIsBetter(config.monitor));
  }

  setLoop(loop: FitLoopView): void {
    this.loop = loop;
  }

  onEpochEnd(log: EpochLog): void {
    if (this.rule.onEpochEnd(log.epoch - 1, log.values, this.loop!.weights)) this.loop!.stop('finished');
  }

  onTrainEnd({ interrupted }: TrainEndLog): void {
    const best = interrupted ? undefined : this.rule.weightsToRestore();
    if (!best) return;
    this.loop!.restoreWeights(best);
    this.restored = true;
  }

  /** 1-based epoch with the best monitored value, or 0 before any. */
  get bestEpoch(): number {
    return this.rule.bestEpoch + 1;
  }

  save(): EarlyStoppingState {
    return this.rule.state();
  }

  restore(state: EarlyStoppingState): void {
    this.rule.restore(state);
  }
}
