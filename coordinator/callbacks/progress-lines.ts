/** Keras's console output as a callback: a progress bar within each epoch (terminals only) and one line per epoch. */
import { epochLine, type ProgressBar } from '../progress.js';
import type { EpochLog } from '../fit/logs.js';
import type { BatchEndLog, Callback, FitLoopView } from './callback.js';

export class ProgressLines implements Callback {
  private epochs = 0;

  constructor(
    private readonly log: (line: string) => void,
    private readonly bar?: ProgressBar,
  ) {}

  setLoop(loop: FitLoopView): void {
    this.epochs = loop.epochs;
  }

  onEpochBegin(): void {
    this.bar?.epochStarted();
  }

  onBatchEnd({ batch, batches, logs }: BatchEndLog): void {
    this.bar?.batchEnded(batch, batches, logs);
  }

  onEpochEnd(log: EpochLog): void {
    this.log(epochLine(log, this.epochs));
  }
}
