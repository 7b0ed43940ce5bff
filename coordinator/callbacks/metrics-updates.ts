/** The Prometheus metrics of training (metrics.ts) as a callback: epoch, step phases, epoch logs. */
import type { EpochLog } from '../fit/logs.js';
import type { TrainingMetrics } from '../metrics.js';
import type { BatchEndLog, Callback } from './callback.js';

export class MetricsUpdates implements Callback {
  constructor(private readonly metrics: TrainingMetrics) {}

  onEpochBegin(epoch: number): void {
    this.metrics.epoch(epoch + 1);
  }

  onBatchEnd({ phases }: BatchEndLog): void {
    this.metrics.step(phases);
  }

  onEpochEnd(log: EpochLog): void {
    this.metrics.epochEnd(log.values, log.samplesPerSecond);
  }
}
