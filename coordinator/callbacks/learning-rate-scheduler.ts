/**
 * Keras's LearningRateScheduler, for train()'s callbacks: at each epoch's start the rate becomes
 * `schedule(epoch, rate)` (epoch 0-based, rate the one in use). The rate it sets is the
 * optimizer's, so a checkpoint keeps it and a resumed run goes on from it. Not with
 * compile.learningRateSchedule, which sets the rate every step (the loop refuses the pair).
 */
import type { Callback, FitLoopView } from './callback.js';

export class LearningRateScheduler implements Callback {
  private loop?: FitLoopView;

  constructor(
    private readonly schedule: (epoch: number, rate: number) => number,
    private readonly log?: (line: string) => void,
  ) {}

  setLoop(loop: FitLoopView): void {
    this.loop = loop;
  }

  onEpochBegin(epoch: number): void {
    const loop = this.loop!;
    const rate = this.schedule(epoch, loop.learningRate);
    if (!Number.isFinite(rate) || !(rate > 0)) throw new RangeError(`LearningRateScheduler: the schedule gave ${rate} for epoch ${epoch}; a rate is a finite number > 0`);
    if (rate !== loop.learningRate) this.log?.(`Epoch ${epoch + 1}: LearningRateScheduler setting the learning rate to ${rate}`);
    loop.setLearningRate(rate);
  }
}
