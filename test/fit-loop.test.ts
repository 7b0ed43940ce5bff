/**
 * The fit loop (coordinator/fit/loop.ts) and its one CallbackList: the order callbacks are called
 * in, `stopTraining` from a callback ('interrupted' mid-epoch, 'finished' at an epoch end), and
 * the pieces of training state (weights, Adam's slots, the shuffle stream, early stopping,
 * history) saving and restoring themselves: a run stopped at any step and resumed from the
 * loop's snapshot ends with the bits of the run that was never stopped. Participants are fakes
 * whose gradients depend on the published weights and the rows, so every piece matters.
 */
import { describe, expect, it } from 'vitest';
import type { Callback, FitLoopView } from '../coordinator/callbacks/callback.js';
import type { TrainingState } from '../coordinator/checkpoint.js';
import { Trainer, type FitResult } from '../coordinator/fit/trainer.js';
import type { Participant, ParticipantGroup } from '../coordinator/participants/participant.js';
import { splitCounts } from '../shared/plan/split-plan.js';
import { validateConfig } from '../shared/config/load.js';
import type { Dataset } from '../shared/data/dataset.js';

const ROWS = 24;
/** The mean weight at which the validation loss is least (reached after epoch 2). */
const VALIDATION_BEST = -0.1035;
const dataset: Dataset = {
  x: new Float32Array(new SharedArrayBuffer(ROWS * 2 * 4)),
  y: new Float32Array(new SharedArrayBuffer(ROWS * 4)),
  features: 2,
  outputs: 1,
  train: { start: 0, count: 20 },
  val: { start: 20, count: 4 },
  test: { start: 24, count: 0 },
};

/** Two participants whose gradient is w * (1 + mean row / 10) - 0.5 and whose validation loss is (mean w - VALIDATION_BEST)^2 + 1. */
class Group implements ParticipantGroup {
  readonly stats = new Map();
  private weights = new Float32Array(0);
  readonly members: Participant[] = ['a', 'b'].map((id) => ({
    id,
    kind: 'thread' as const,
    holds: undefined,
    gradient: async (_step: number, _version: number, rows: Int32Array) => {
      const scale = 1 + rows.reduce((s, r) => s + r, 0) / rows.length / 10;
      return { count: rows.length, lossSum: rows.length * scale, metricSums: [rows.length / 2], gradient: this.weights.map((w) => w * scale - 0.5), numTensors: -1 };
    },
    evaluate: async (_version: number, range: { count: number }) => {
      const mean = this.weights.reduce((s, w) => s + w, 0) / this.weights.length;
      return { count: range.count, lossSum: range.count * ((mean - VALIDATION_BEST) ** 2 + 1), metricSums: [range.count / 2], numTensors: -1 };
    },
  }));
  ready = async (): Promise<readonly Participant[]> => this.members;
  publish(weights: Float32Array): void {
    this.weights = weights.slice();
  }
  split(total: number, participants: readonly Participant[]): number[] {
    return splitCounts(total, participants.map(() => 1));
  }
  succeeded(): void {}
  failed(): void {}
  close = async (): Promise<void> => {};
}

function trainer(earlyStopping = false): Trainer {
  const config = validateConfig(
    {
      data: { label: { column: 'y', positive: '1' } },
      model: { layers: [{ units: 3, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
      compile: { optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 4, batchSize: 6, ...(earlyStopping ? { earlyStopping: { monitor: 'val_loss', patience: 1, restoreBestWeights: true } } : {}) },
      cluster: { threads: 2, backend: 'cpu' },
      seed: 5,
    },
    'test config',
  );
  return new Trainer(config, dataset, new Group());
}

/** Records every call, and stops or snapshots where told. */
class Recorder implements Callback {
  readonly calls: string[] = [];
  loop!: FitLoopView;
  snapshot: TrainingState | undefined;
  constructor(private readonly at: { stopAtStep?: number; finishAtEpoch?: number } = {}) {}
  setLoop(loop: FitLoopView): void {
    this.loop = loop;
  }
  onTrainBegin(): void {
    this.calls.push('trainBegin');
  }
  onEpochBegin(epoch: number): void {
    this.calls.push(`epochBegin ${epoch}`);
  }
  onBatchEnd(log: { batch: number; batches: number; step: number }): void {
    this.calls.push(`batchEnd ${log.batch}/${log.batches}`);
    if (log.step === this.at.stopAtStep) {
      this.loop.stop('interrupted');
      this.snapshot = this.loop.snapshot();
    }
  }
  onEpochEnd(log: { epoch: number }): void {
    this.calls.push(`epochEnd ${log.epoch}`);
    if (log.epoch === this.at.finishAtEpoch) this.loop.stop('finished');
    if (this.at.stopAtStep !== undefined && this.loop.step === this.at.stopAtStep) this.snapshot = this.loop.snapshot();
  }
  onTrainEnd(log: { interrupted: boolean }): void {
    this.calls.push(`trainEnd ${log.interrupted}`);
  }
}

const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const values = (fit: FitResult): Record<string, number>[] => fit.history.map((h) => h.values);

describe('fit loop', () => {
  it('calls the callbacks in order: train, epochs, batches (20 rows, batch 6: 4 batches), epoch ends, train end', async () => {
    const recorder = new Recorder();
    const fit = await trainer().fit({ callbacks: [recorder] });
    const epoch = (e: number): string[] => [`epochBegin ${e}`, 'batchEnd 1/4', 'batchEnd 2/4', 'batchEnd 3/4', 'batchEnd 4/4', `epochEnd ${e + 1}`];
    expect(recorder.calls).toEqual(['trainBegin', ...epoch(0), ...epoch(1), ...epoch(2), ...epoch(3), 'trainEnd false']);
    expect(fit.steps).toBe(16);
    expect(fit.interrupted).toBe(false);
  });

  it("stopTraining 'interrupted' mid-epoch ends the run after that batch; 'finished' at an epoch end completes it", async () => {
    const stopped = new Recorder({ stopAtStep: 6 });
    const interrupted = await trainer().fit({ callbacks: [stopped] });
    expect(interrupted).toMatchObject({ interrupted: true, stoppedEarly: false, steps: 6, samples: 20 + 12 });
    expect(interrupted.history).toHaveLength(1);
    expect(stopped.calls.at(-2)).toBe('batchEnd 2/4');
    expect(stopped.snapshot).toMatchObject({ epoch: 1, batch: 2, step: 6, samples: 20, finished: false });

    const finisher = new Recorder({ finishAtEpoch: 2 });
    const finished = await trainer().fit({ callbacks: [finisher] });
    expect(finished).toMatchObject({ interrupted: false, stoppedEarly: true, steps: 8 });
    expect(finisher.calls.at(-1)).toBe('trainEnd false');
  });

  it.each([3, 4, 9, 15])('stopped after step %i and resumed from the snapshot: the bits and history of the run never stopped', async (at) => {
    const whole = await trainer().fit();
    const first = new Recorder({ stopAtStep: at });
    await trainer().fit({ callbacks: [first] });
    const resumed = await trainer().fit({ resume: first.snapshot! });
    expect(bits(resumed.weights)).toEqual(bits(whole.weights));
    expect(values(resumed)).toEqual(values(whole));
    expect(resumed.steps).toBe(whole.steps);
  });

  it.each([4, 6, 9])('early stopping is a callback and a piece of state: stopped at epoch 3, best weights (epoch 2) restored, the same after a resume from step %i', async (at) => {
    const whole = await trainer(true).fit();
    expect(whole).toMatchObject({ stoppedEarly: true, restoredBestWeights: true, bestEpoch: 2, steps: 12 });
    const first = new Recorder({ stopAtStep: at });
    await trainer(true).fit({ callbacks: [first] });
    expect(first.snapshot!.earlyStopping).toBeDefined();
    const resumed = await trainer(true).fit({ resume: first.snapshot! });
    expect(resumed).toMatchObject({ stoppedEarly: true, restoredBestWeights: true, bestEpoch: whole.bestEpoch, steps: whole.steps });
    expect(bits(resumed.weights)).toEqual(bits(whole.weights));
  });
});
