/**
 * When checkpoints are written: every `checkpoint.everySteps` steps within an epoch, at each
 * epoch end (`checkpoint.epochEnd`), and when training is interrupted (a signal, or a stop while
 * waiting for worker nodes) after a step this process took. A failed write (StorageError) is
 * reported and training goes on: the state is in memory and the last good checkpoint stays.
 */
import { StorageError } from '../../shared/errors.js';
import { writeCheckpoint } from '../checkpoint.js';
import type { BatchEndLog, Callback, FitLoopView, TrainEndLog } from './callback.js';

export interface CheckpointerOptions {
  readonly dir: string;
  readonly keep: number;
  readonly everySteps: number;
  readonly epochEnd: boolean;
  readonly log: (line: string) => void;
  /** The checkpoint this run resumed from, if it did (the last good one until a new one is written). */
  readonly resumedFrom?: string | undefined;
}

export class Checkpointer implements Callback {
  private loop?: FitLoopView;
  /** The newest good checkpoint. */
  last: string | undefined;
  /** The newest write that failed, while no later one succeeded. */
  lastFailed: { step: number; error: string } | undefined;
  /** Step of the newest write attempted (a second one at the same step would be the same state). */
  private attemptedStep = -1;

  constructor(private readonly options: CheckpointerOptions) {
    this.last = options.resumedFrom;
  }

  setLoop(loop: FitLoopView): void {
    this.loop = loop;
  }

  async onBatchEnd({ step, batch, batches }: BatchEndLog): Promise<void> {
    const { everySteps } = this.options;
    if (everySteps > 0 && step % everySteps === 0 && batch < batches) await this.write();
  }

  async onEpochEnd(): Promise<void> {
    if (this.options.epochEnd) await this.write();
  }

  async onTrainEnd({ interrupted }: TrainEndLog): Promise<void> {
    const loop = this.loop!;
    if (interrupted && loop.step > loop.startStep && this.attemptedStep !== loop.step) await this.write();
  }

  /** The state is taken at once; its file is written, fsynced and read back with the event loop free (heartbeats go on). */
  private async write(): Promise<void> {
    const state = this.loop!.snapshot();
    this.attemptedStep = state.step;
    try {
      this.last = await writeCheckpoint(this.options.dir, state, this.options.keep);
      this.lastFailed = undefined;
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      this.lastFailed = { step: state.step, error: err.message };
      this.options.log(`warning: the checkpoint of step ${state.step} failed: ${err.message}; ${this.last ? `the last good one is ${this.last}` : 'there is no good one yet'}`);
    }
  }
}
