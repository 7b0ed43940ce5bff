/**
 * ReduceLROnPlateau with Keras's semantics: watch `monitor` at each epoch's end; an improvement is
 * a change beyond `minDelta` in the right direction (`mode` auto: higher is better for accuracies,
 * else lower); after `patience` epochs without one, multiply the learning rate by `factor` (not
 * below `minLr`) and wait `cooldown` epochs before counting again. The rate it sets stays the
 * optimizer's (a checkpoint keeps it), and its own counters are a piece of training state.
 */
import type { ReduceLrOnPlateauConfig } from '../../shared/config/schema.js';
import { higherIsBetter } from '../../shared/model/metric-sums.js';
import type { EpochLog } from '../fit/logs.js';
import type { Stateful } from '../fit/state.js';
import type { Callback, FitLoopView } from './callback.js';

/** What a checkpoint keeps of a ReduceLROnPlateau. */
export interface ReduceLrOnPlateauState {
  readonly wait: number;
  readonly cooldown: number;
  readonly best: number;
}

export class ReduceLrOnPlateau implements Callback, Stateful<ReduceLrOnPlateauState> {
  private readonly higherIsBetter: boolean;
  private loop?: FitLoopView;
  private wait = 0;
  private cooldown = 0;
  private best: number;

  constructor(
    readonly config: ReduceLrOnPlateauConfig,
    private readonly log: (line: string) => void = () => {},
  ) {
    const auto = higherIsBetter(config.monitor);
    this.higherIsBetter = config.mode === 'max' || (config.mode === 'auto' && auto);
    this.best = this.higherIsBetter ? -Infinity : Infinity;
  }

  setLoop(loop: FitLoopView): void {
    this.loop = loop;
  }

  private improved(current: number): boolean {
    return this.higherIsBetter ? current > this.best + this.config.minDelta : current < this.best - this.config.minDelta;
  }

  onEpochEnd(log: EpochLog): void {
    const current = log.values[this.config.monitor];
    if (current === undefined || Number.isNaN(current)) return;
    if (this.cooldown > 0) {
      this.cooldown--;
      this.wait = 0;
    }
    if (this.improved(current)) {
      this.best = current;
      this.wait = 0;
      return;
    }
    if (this.cooldown > 0) return;
    this.wait++;
    if (this.wait < this.config.patience) return;
    const loop = this.loop!;
    const old = loop.learningRate;
    if (old > this.config.minLr) {
      const rate = Math.max(old * this.config.factor, this.config.minLr);
      loop.setLearningRate(rate);
      this.log(`Epoch ${log.epoch}: ReduceLROnPlateau reducing learning rate to ${rate.toPrecision(4)} (${this.config.monitor} has not improved for ${this.wait} epoch(s))`);
      this.cooldown = this.config.cooldown;
      this.wait = 0;
    }
  }

  save(): ReduceLrOnPlateauState {
    return { wait: this.wait, cooldown: this.cooldown, best: this.best };
  }

  restore(state: ReduceLrOnPlateauState): void {
    this.wait = state.wait;
    this.cooldown = state.cooldown;
    this.best = state.best;
  }
}
