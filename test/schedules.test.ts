/**
 * Keras's learning-rate schedules (coordinator/optimize/schedules.ts) at chosen steps, worked by
 * hand from Keras's formulas, and through train(): a piecewise schedule whose rate drops to zero
 * after step 2 gives the bits of the same run stopped after 3 steps.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scalingFactor, scheduledRate } from '../coordinator/optimize/schedules.js';
import { LearningRateScheduler, train, type Callback, type FitLoopView, type JobConfigInput } from '../index.js';
import { validateConfig } from '../shared/config/load.js';
import { readRunWeights } from './cluster-helpers.js';
import { demoJob } from './helpers.js';

describe('learning-rate schedules', () => {
  it('exponentialDecay: initial x rate^(step / decaySteps), floored with staircase', () => {
    const s = { name: 'exponentialDecay', decaySteps: 10, decayRate: 0.5, staircase: false } as const;
    expect(scheduledRate(0.1, s, 0)).toBe(0.1);
    expect(scheduledRate(0.1, s, 10)).toBeCloseTo(0.05, 15);
    expect(scheduledRate(0.1, s, 5)).toBeCloseTo(0.1 * Math.SQRT1_2, 15);
    expect(scheduledRate(0.1, { ...s, staircase: true }, 15)).toBeCloseTo(0.05, 15);
  });

  it('piecewiseConstantDecay: values[0] up to boundaries[0], then each next value', () => {
    const s = { name: 'piecewiseConstantDecay', boundaries: [10, 20], values: [1, 0.5, 0.1] } as const;
    expect([0, 10, 11, 20, 21, 1000].map((k) => scheduledRate(9, s, k))).toEqual([1, 1, 0.5, 0.5, 0.1, 0.1]);
  });

  it('polynomialDecay: to endLearningRate over decaySteps, held there or cycled', () => {
    const s = { name: 'polynomialDecay', decaySteps: 10, endLearningRate: 0.01, power: 1, cycle: false } as const;
    expect(scheduledRate(0.1, s, 5)).toBeCloseTo(0.055, 15);
    expect(scheduledRate(0.1, s, 20)).toBeCloseTo(0.01, 15);
    // cycled: step 15 decays over 20 steps
    expect(scheduledRate(0.1, { ...s, cycle: true }, 15)).toBeCloseTo(0.09 * 0.25 + 0.01, 15);
    expect(scheduledRate(0.1, { ...s, power: 2 }, 5)).toBeCloseTo(0.09 * 0.25 + 0.01, 15);
  });

  it('cosineDecay: half a cosine to alpha x initial; with a warmup, linear to warmupTarget first', () => {
    const s = { name: 'cosineDecay', decaySteps: 10, alpha: 0, warmupSteps: 0 } as const;
    expect(scheduledRate(0.1, s, 5)).toBeCloseTo(0.05, 15);
    expect(scheduledRate(0.1, s, 10)).toBeCloseTo(0, 15);
    expect(scheduledRate(0.1, { ...s, alpha: 0.1 }, 10)).toBeCloseTo(0.01, 15);
    const warm = { ...s, warmupTarget: 0.1, warmupSteps: 4 };
    expect([0, 2, 4, 9, 100].map((k) => scheduledRate(0, warm, k))).toEqual([0, 0.05, 0.1, expect.closeTo(0.05, 15), expect.closeTo(0, 15)]);
  });

  it('the linear scaling rule: batch / reference, reached linearly from 1 over the warmup', () => {
    expect(scalingFactor(1024, undefined, 5)).toBe(1);
    expect(scalingFactor(1024, { referenceBatchSize: 128, warmupSteps: 0 }, 0)).toBe(8);
    expect([0, 5, 10, 11].map((k) => scalingFactor(1024, { referenceBatchSize: 128, warmupSteps: 10 }, k))).toEqual([1, 4.5, 8, 8]);
  });

  it('a piecewise schedule needs one more value than boundaries, and increasing boundaries', () => {
    const base = { data: { label: { column: 'Churn', positive: 'Yes' } }, model: { layers: [{ units: 1, activation: 'sigmoid' }] } };
    const withSchedule = (learningRateSchedule: unknown) => () => validateConfig({ ...base, compile: { loss: 'binaryCrossentropy', learningRateSchedule } } as never, 'job.yaml');
    expect(withSchedule({ name: 'piecewiseConstantDecay', boundaries: [10], values: [1] })).toThrow(/one more entry than boundaries/);
    expect(withSchedule({ name: 'piecewiseConstantDecay', boundaries: [10, 5], values: [1, 2, 3] })).toThrow(/must increase/);
    expect(withSchedule({ name: 'cosineDecay', decaySteps: 100, warmupTarget: 0.01, warmupSteps: 10 })().compile.learningRateSchedule).toEqual({ name: 'cosineDecay', decaySteps: 100, alpha: 0, warmupTarget: 0.01, warmupSteps: 10 });
  });

  it('through train(): scaling by batch 64 / reference 32 gives the bits of twice the rate, and says so', async () => {
    const job = (out: string, learningRate: number): JobConfigInput => demoJob(out, 5, {
      compile: { optimizer: { name: 'sgd', learningRate }, loss: 'binaryCrossentropy' },
      fit: { epochs: 1, batchSize: 64 },
      cluster: { threads: 1, backend: 'cpu' },
    });
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-scaling-'));
    const lines: string[] = [];
    await train({ ...job(join(dir, 'scaled'), 0.25), compile: { optimizer: { name: 'sgd', learningRate: 0.25 }, loss: 'binaryCrossentropy', learningRateScaling: { referenceBatchSize: 32 } } }, { demo: true, log: (l) => lines.push(l) });
    await train(job(join(dir, 'doubled'), 0.5), { demo: true, log: () => {} });
    expect(readRunWeights(join(dir, 'scaled'))).toEqual(readRunWeights(join(dir, 'doubled')));
    expect(lines).toContain('learning rate scaled x2.000 (batch 64 / reference 32, the linear scaling rule): 0.25 -> 0.5000');
  });

  it('through train(): a rate that drops to 0 after step 2 leaves the weights of 3 steps', async () => {
    const config = (out: string): JobConfigInput => demoJob(out, 5, {
      compile: { optimizer: { name: 'sgd', learningRate: 0.5 }, loss: 'binaryCrossentropy' },
      fit: { epochs: 1, batchSize: 64 },
      cluster: { threads: 2, backend: 'cpu', balance: 'equal' },
    });
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-schedule-'));
    const scheduled = await train({ ...config(join(dir, 'scheduled')), compile: { optimizer: { name: 'sgd', learningRate: 0.5 }, loss: 'binaryCrossentropy', learningRateSchedule: { name: 'piecewiseConstantDecay', boundaries: [2], values: [0.5, 0] } } }, { demo: true, log: () => {} });
    expect(scheduled.summary.steps).toBeGreaterThan(10);
    const stopAtThree: Callback & { loop?: FitLoopView } = {
      setLoop(loop) {
        this.loop = loop;
      },
      onBatchEnd(log) {
        if (log.step === 3) this.loop!.stop('finished');
      },
    };
    const three = await train(config(join(dir, 'three')), { demo: true, callbacks: [stopAtThree], log: () => {} });
    expect(three.summary.steps).toBe(3);
    expect(readRunWeights(join(dir, 'scheduled'))).toEqual(readRunWeights(join(dir, 'three')));
  });
});

describe('resuming in the middle of a schedule, and LearningRateScheduler', () => {
  const job = (out: string): JobConfigInput =>
    demoJob(out, 8, {
      compile: {
        optimizer: { name: 'adam', learningRate: 0.01, clipnorm: 1 },
        loss: 'binaryCrossentropy',
        learningRateSchedule: { name: 'cosineDecay', decaySteps: 60, warmupSteps: 15, warmupTarget: 0.02 },
      },
      fit: { epochs: 3, batchSize: 64 },
      cluster: { threads: 2, backend: 'cpu', balance: 'equal', microBatchSize: 24 },
    });
  const stopAt = (step: number): Callback & { loop?: FitLoopView } => ({
    setLoop(loop) {
      this.loop = loop;
    },
    onBatchEnd(log) {
      if (log.step === step) this.loop!.stop('interrupted');
    },
  });

  it('a run stopped in the warmup\'s middle and resumed ends with the unbroken run\'s bits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-schedule-resume-'));
    const unbroken = await train(job(join(dir, 'unbroken')), { demo: true, log: () => {} });
    const stopped = await train(job(join(dir, 'broken')), { demo: true, callbacks: [stopAt(9)], log: () => {} });
    expect(stopped.fit.interrupted).toBe(true);
    expect(stopped.summary.steps).toBe(9);
    const resumed = await train(job(join(dir, 'broken')), { demo: true, resume: true, log: () => {} });
    expect(resumed.summary.steps).toBe(unbroken.summary.steps);
    expect(readRunWeights(join(dir, 'broken'))).toEqual(readRunWeights(join(dir, 'unbroken')));
  }, 120_000);

  it("LearningRateScheduler sets each epoch's rate from (epoch, rate), as Keras's; a resume keeps the rate it set", async () => {
    const config = (out: string, learningRate: number, epochs: number): JobConfigInput =>
      demoJob(out, 6, { compile: { optimizer: { name: 'sgd', learningRate }, loss: 'binaryCrossentropy' }, fit: { epochs, batchSize: 64 }, cluster: { threads: 1, backend: 'cpu' } });
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-lr-scheduler-'));
    const seen: number[] = [];
    const lines: string[] = [];
    const halve = new LearningRateScheduler((epoch, rate) => (seen.push(rate), epoch === 0 ? rate : rate / 2), (l) => lines.push(l));
    await train(config(join(dir, 'scheduled'), 0.4, 1), { demo: true, callbacks: [halve], log: () => {} });
    expect(seen).toEqual([0.4]);
    // epoch 0 at 0.4 equals a plain run at 0.4; the rates after are 0.2, 0.1
    const two = new LearningRateScheduler((epoch) => [0.4, 0.2][epoch]!, (l) => lines.push(l));
    await train(config(join(dir, 'two'), 0.4, 2), { demo: true, callbacks: [two], log: () => {} });
    expect(lines).toEqual(['Epoch 2: LearningRateScheduler setting the learning rate to 0.2']);
    const bad = new LearningRateScheduler(() => -1);
    await expect(train(config(join(dir, 'bad'), 0.4, 1), { demo: true, callbacks: [bad], log: () => {} })).rejects.toThrow(/LearningRateScheduler: the schedule gave -1 for epoch 0/);
    const withSchedule = { ...config(join(dir, 'both'), 0.4, 1), compile: { optimizer: { name: 'sgd' as const, learningRate: 0.4 }, loss: 'binaryCrossentropy' as const, learningRateSchedule: { name: 'exponentialDecay' as const, decaySteps: 10, decayRate: 0.9 } } };
    await expect(train(withSchedule, { demo: true, callbacks: [new LearningRateScheduler((_e, r) => r / 2)], log: () => {} })).rejects.toThrow(/follows compile\.learningRateSchedule/);
  }, 120_000);
});
