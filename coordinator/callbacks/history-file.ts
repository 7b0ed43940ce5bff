/**
 * Keras's CSVLogger: history.json and history.csv rewritten at every epoch's end (each write
 * atomic, run-dir.ts), so a run that crashes or is killed keeps the history of the epochs it
 * finished. A resumed run starts from the checkpoint's history.
 */
import type { EpochLog } from '../fit/logs.js';
import type { Callback } from './callback.js';

export class HistoryFile implements Callback {
  private readonly epochs: EpochLog[];

  constructor(
    private readonly write: (history: readonly EpochLog[]) => void,
    /** The epochs before this process (a resumed run's checkpoint). */
    before: readonly EpochLog[] = [],
  ) {
    this.epochs = [...before];
  }

  onEpochEnd(log: EpochLog): void {
    this.epochs.push(log);
    this.write(this.epochs);
  }
}
