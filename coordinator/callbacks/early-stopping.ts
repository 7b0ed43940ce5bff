/**
 * EarlyStopping with Keras semantics: watch `monitor` each epoch; an improvement is a change
 * beyond `minDelta` in the right direction; stop once `patience` epochs pass without one (never
 * after the first epoch); with restoreBestWeights, the weights of the best epoch come back when
 * training is stopped early (as in Keras: not when it runs out of epochs).
 */
import type { EarlyStoppingConfig } from '../../shared/config/schema.js';

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

  private isImprovement(current: number): boolean {
    return this.higherIsBetter ? current - this.config.minDelta > this.best : current + this.config.minDelta < this.best;
  }

  /** Call after each epoch with its logs and the weights at its end. Returns true to stop. */
  onEpochEnd(epoch: number, logs: EpochLogs, weights: Float32Array): boolean {
    const current = logs[this.config.monitor];
    if (current === undefined || Number.isNaN(current)) return false;
    if (this.config.restoreBestWeights && this.bestWeights === undefined) this.bestWeights = weights.slice();
    this.wait++;
    if (this.isImprovement(current)) {
      this.best = current;
      this.bestEpoch = epoch;
      if (this.config.restoreBestWeights) this.bestWeights = weights.slice();
      this.wait = 0;
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
