/**
 * Stop on request: SIGINT/SIGTERM (the first asks to stop after the current step, with a
 * checkpoint; a second exits at once) or a caller's `stopRequested`. The callback polls after
 * every batch and epoch and sets the loop's stopTraining to 'interrupted'.
 */
import type { Callback, FitLoopView } from './callback.js';

export class StopOnRequest implements Callback {
  private loop?: FitLoopView;

  constructor(private readonly requested: () => boolean) {}

  setLoop(loop: FitLoopView): void {
    this.loop = loop;
  }

  onBatchEnd(): void {
    this.poll();
  }

  onEpochEnd(): void {
    this.poll();
  }

  private poll(): void {
    if (this.requested()) this.loop!.stop('interrupted');
  }
}

/**
 * Installs the SIGINT/SIGTERM handlers. `training`: whether a stop can still checkpoint (else the
 * process exits at once); `stopWaiting`: ends a wait for worker nodes, if the run is in one
 * (true), so that a stop asked for then takes effect at once instead of after the next step.
 */
export function stopOnSignals(log: (line: string) => void, training: () => boolean, stopWaiting: () => boolean): { requested: () => boolean; remove: () => void } {
  let requested = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (requested || !training()) {
      log(`${signal}: exiting now${training() ? ' (the last checkpoint stays usable)' : ''}`);
      process.exit(signal === 'SIGINT' ? 130 : 143); // 128 + signal number, as a shell reports it
    }
    requested = true;
    if (stopWaiting()) log(`${signal}: stopping now (the run was waiting for worker nodes)`);
    else log(`${signal}: stopping after this step and writing a checkpoint (send it again to exit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    requested: () => requested,
    remove: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
