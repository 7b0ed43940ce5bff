/**
 * ReduceLROnPlateau (fit.reduceLrOnPlateau) with Keras's semantics: the rate sequence of a worked
 * example (patience, cooldown, minLr); the rate it sets is kept in checkpoints with its counters;
 * through train() it gives the bits of the same run with the equivalent piecewise schedule; it
 * refuses to share the rate with a schedule.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReduceLrOnPlateau } from '../coordinator/callbacks/reduce-lr-on-plateau.js';
import { decodeCheckpoint, encodeCheckpoint, type TrainingState } from '../coordinator/checkpoint.js';
import { OptimizerSlot } from '../coordinator/fit/state.js';
import type { FitLoopView } from '../coordinator/callbacks/callback.js';
import { ConfigError, train, type Callback, type JobConfigInput } from '../index.js';
import { readRunWeights } from './cluster-helpers.js';
import { demoJob } from './helpers.js';

function fakeLoop(rate: number): FitLoopView & { rates: number[] } {
  const loop = {
    rates: [] as number[],
    learningRate: rate,
    setLearningRate(r: number) {
      loop.learningRate = r;
    },
  };
  return loop as unknown as FitLoopView & { rates: number[] };
}

const config = { monitor: 'val_loss', factor: 0.5, patience: 2, mode: 'auto' as const, minDelta: 0, cooldown: 1, minLr: 0 };
const epoch = (n: number, valLoss: number) => ({ epoch: n, steps: 1, seconds: 1, samples: 1, samplesPerSecond: 1, values: { loss: 1, val_loss: valLoss } });

describe('ReduceLROnPlateau', () => {
  it("Keras's sequence: patience 2, factor 0.5, cooldown 1", () => {
    const loop = fakeLoop(1);
    const cb = new ReduceLrOnPlateau(config);
    cb.setLoop(loop);
    const rates = [1, 0.9, 0.95, 0.95, 0.95, 0.95].map((v, i) => {
      cb.onEpochEnd(epoch(i + 1, v));
      return loop.learningRate;
    });
    expect(rates).toEqual([1, 1, 1, 0.5, 0.5, 0.25]);
    // not below minLr
    const floor = fakeLoop(1);
    const low = new ReduceLrOnPlateau({ ...config, minLr: 0.3, cooldown: 0, patience: 1 });
    low.setLoop(floor);
    [1, 2, 3, 4].forEach((v, i) => low.onEpochEnd(epoch(i + 1, v)));
    expect(floor.learningRate).toBe(0.3);
  });

  it('its counters and the rate it set survive a checkpoint', () => {
    const cb = new ReduceLrOnPlateau(config);
    cb.setLoop(fakeLoop(1));
    [1, 0.9, 0.95].forEach((v, i) => cb.onEpochEnd(epoch(i + 1, v)));
    const again = new ReduceLrOnPlateau(config);
    again.restore(cb.save());
    expect(again.save()).toEqual({ wait: 1, cooldown: 0, best: 0.9 });
    const slot = new OptimizerSlot({ name: 'sgd', learningRate: 0.1, momentum: 0, nesterov: false }, 4);
    slot.setLearningRate(0.025);
    const state = { epoch: 1, batch: 0, step: 3, samples: 3, trainSeconds: 1, phases: { compute: 0, reduce: 0, apply: 0, broadcast: 0 }, history: [], epochProgress: { lossSum: 0, metricSums: [], seconds: 0 }, shuffle: 1, finished: false, stoppedEarly: false, optimizer: slot.save(), reduceLrOnPlateau: cb.save(), weights: new Float32Array(4), fingerprint: 'f' } satisfies TrainingState;
    const decoded = decodeCheckpoint(encodeCheckpoint(state), 'c.ckpt');
    expect(decoded.reduceLrOnPlateau).toEqual({ wait: 1, cooldown: 0, best: 0.9 });
    const restored = new OptimizerSlot({ name: 'sgd', learningRate: 0.1, momentum: 0, nesterov: false }, 4);
    restored.restore(decoded.optimizer);
    expect(restored.learningRate).toBe(0.025);
  });

  it('through train(): the bits of the equivalent piecewise schedule; never with a schedule', async () => {
    const job = (out: string): JobConfigInput => demoJob(out, 8, {
      compile: { optimizer: { name: 'adam', learningRate: 0.02 }, loss: 'binaryCrossentropy' },
      fit: { epochs: 3, batchSize: 128 },
      cluster: { threads: 2, backend: 'cpu', balance: 'equal' },
    });
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-plateau-'));
    const lines: string[] = [];
    // mode max on the falling training loss: no epoch after the first improves, so the rate halves after epochs 2 and 3
    const plateau = await train({ ...job(join(dir, 'plateau')), fit: { epochs: 3, batchSize: 128, reduceLrOnPlateau: { monitor: 'loss', mode: 'max', patience: 1, factor: 0.5 } } }, { demo: true, log: (l) => lines.push(l) });
    expect(lines.filter((l) => /ReduceLROnPlateau reducing learning rate to 0\.01000/.test(l))).toHaveLength(1);
    const perEpoch = plateau.summary.steps / 3;
    await train({ ...job(join(dir, 'piecewise')), compile: { optimizer: { name: 'adam', learningRate: 0.02 }, loss: 'binaryCrossentropy', learningRateSchedule: { name: 'piecewiseConstantDecay', boundaries: [2 * perEpoch - 1], values: [0.02, 0.01] } } }, { demo: true, log: () => {} });
    expect(readRunWeights(join(dir, 'plateau'))).toEqual(readRunWeights(join(dir, 'piecewise')));
    // a LearningRateScheduler as a callback (docs/typescript.md) gives the same piecewise rates
    const scheduler: Callback & { loop?: FitLoopView } = {
      setLoop(loop) {
        this.loop = loop;
      },
      onEpochBegin(epoch) {
        this.loop!.setLearningRate(epoch < 2 ? 0.02 : 0.01);
      },
    };
    await train(job(join(dir, 'scheduler')), { demo: true, callbacks: [scheduler], log: () => {} });
    expect(readRunWeights(join(dir, 'scheduler'))).toEqual(readRunWeights(join(dir, 'piecewise')));
    await expect(
      train({ ...job(join(dir, 'both')), compile: { loss: 'binaryCrossentropy', learningRateSchedule: { name: 'cosineDecay', decaySteps: 10 } }, fit: { epochs: 1, reduceLrOnPlateau: {} } }, { demo: true, log: () => {} }),
    ).rejects.toThrow(ConfigError);
  }, 120_000);
});
