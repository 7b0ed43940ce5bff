/**
 * The step module (coordinator/fit/step.ts) and its handling of bad gradients from participants (threads or the coordinator's own
 * lane; nodes' frames are also checked on arrival, see remote.test.ts): a non-finite gradient is
 * found through the mean, its participant is excluded for the step and its rows are recomputed by
 * the others; the same rows non-finite from two participants stop the run as divergence.
 * Participants here are fakes with known gradients, so the resulting weights are exact.
 */
import { describe, expect, it } from 'vitest';
import { ParticipantFault, type Participant, type ParticipantGroup } from '../coordinator/participants/participant.js';
import { modelSpec, runRngs } from '../coordinator/fit/trainer.js';
import { ModelWeights, OptimizerSlot } from '../coordinator/fit/state.js';
import { StepRunner, type StepSums } from '../coordinator/fit/step.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { validateConfig } from '../shared/config/load.js';
import type { Dataset } from '../shared/data/dataset.js';
import { splitCounts } from '../shared/plan/split-plan.js';
import type { GradientResult } from '../shared/protocol/gradient-packet.js';

type Behaviour = 'ok' | 'nan-gradient' | 'nan-loss';

/** A participant whose mean gradient over rows is [mean(r), -mean(r), 2, 1]; `plan` says what its k-th call returns. */
function fake(id: string, plan: (call: number) => Behaviour, calls: Int32Array[][]): Participant {
  const mine: Int32Array[] = [];
  calls.push(mine);
  return {
    id,
    kind: 'thread',
    holds: undefined,
    async gradient(_step, _version, rows): Promise<GradientResult> {
      const behaviour = plan(mine.length);
      mine.push(rows.slice());
      const mean = rows.reduce((a, r) => a + r, 0) / rows.length;
      const gradient = Float32Array.from([mean, -mean, 2, 1]);
      if (behaviour === 'nan-gradient') gradient[2] = Number.NaN;
      return { count: rows.length, lossSum: behaviour === 'nan-loss' ? Number.POSITIVE_INFINITY : rows.length, metricSums: [0], gradient, numTensors: -1 };
    },
    evaluate: () => Promise.reject(new Error('not used')),
  };
}

class FakeGroup implements ParticipantGroup {
  readonly failures: { id: string; reason: string; message: string }[] = [];
  readonly successes: { id: string; count: number }[] = [];
  readonly stats = new Map();
  constructor(private readonly members: Participant[]) {}
  ready = async (): Promise<readonly Participant[]> => this.members;
  readonly published: number[] = [];
  publish(_weights: Float32Array, version: number): void {
    this.published.push(version);
  }
  split(total: number, participants: readonly Participant[]): number[] {
    return splitCounts(total, participants.map(() => 1));
  }
  succeeded(p: Participant, _step: number, count: number): void {
    this.successes.push({ id: p.id, count });
  }
  failed(p: Participant, _step: number, fault: ParticipantFault): void {
    this.failures.push({ id: p.id, reason: fault.reason, message: fault.message });
  }
  close = async (): Promise<void> => {};
}

const dataset: Dataset = {
  x: new Float32Array(new SharedArrayBuffer(16 * 3 * 4)),
  y: new Float32Array(new SharedArrayBuffer(16 * 4)),
  features: 3,
  outputs: 1,
  train: { start: 0, count: 16 },
  val: { start: 16, count: 0 },
  test: { start: 16, count: 0 },
};

/** A StepRunner over `group` for a 3-feature logistic model, SGD with learning rate 1. */
function trainer(group: ParticipantGroup): { weights: Float32Array; step: (step: number, rows: Int32Array) => Promise<StepSums> } {
  const config = validateConfig(
    {
      data: { label: { column: 'y', positive: '1' } },
      model: { layers: [{ units: 1, activation: 'sigmoid' }] },
      compile: { optimizer: { name: 'sgd', learningRate: 1 }, loss: 'binaryCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 1, batchSize: 8 },
      cluster: { threads: 2, backend: 'cpu' },
    },
    'test config',
  );
  const spec = modelSpec(config, dataset);
  const layout = weightLayout(spec);
  const weights = new ModelWeights(initialWeights(layout, runRngs.weights(config.seed)), group);
  const runner = new StepRunner(spec, config.cluster, group, weights, new OptimizerSlot(config.compile.optimizer, layout.size));
  return { weights: weights.values, step: (step, rows) => runner.run(step, rows) };
}

const rows = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);

describe('step', () => {
  it('publishes the new weights once per step under the next version, and reports its phases', async () => {
    const group = new FakeGroup([fake('a', () => 'ok', []), fake('b', () => 'ok', [])]);
    const t = trainer(group);
    expect(group.published).toEqual([0]);
    const first = await t.step(0, rows);
    await t.step(1, rows);
    expect(group.published).toEqual([0, 1, 2]);
    expect(first.tensorCounts).toEqual([]); // the fakes report none (-1)
    for (const phase of ['compute', 'reduce', 'apply', 'broadcast'] as const) expect(first.phases[phase]).toBeGreaterThanOrEqual(0);
    expect(first.metricSums).toEqual([0]);
  });
});

describe('step: bad gradients', () => {
  it('all finite: one reduce, each participant succeeds once, SGD moves by the batch mean', async () => {
    const calls: Int32Array[][] = [];
    const group = new FakeGroup([fake('a', () => 'ok', calls), fake('b', () => 'ok', calls)]);
    const t = trainer(group);
    const before = t.weights.slice();
    const sums = await t.step(0, rows);
    expect(sums.lossSum).toBe(8);
    expect(group.failures).toEqual([]);
    expect(group.successes).toEqual([{ id: 'a', count: 4 }, { id: 'b', count: 4 }]);
    // mean over rows 0..7 of [r, -r, 2, 1] = [3.5, -3.5, 2, 1]; SGD with learning rate 1.
    expect(Array.from(t.weights)).toEqual([3.5, -3.5, 2, 1].map((g, i) => Math.fround(before[i]! - g)));
  });

  it('a non-finite gradient: its rows are recomputed by the other participant, the result is the same', async () => {
    const calls: Int32Array[][] = [];
    const group = new FakeGroup([fake('a', (k) => (k === 0 ? 'nan-gradient' : 'ok'), calls), fake('b', () => 'ok', calls)]);
    const t = trainer(group);
    const before = t.weights.slice();
    await t.step(0, rows);
    expect(group.failures).toEqual([{ id: 'a', reason: 'non_finite', message: 'a: returned a non-finite gradient (value 2 is NaN, loss sum 4)' }]);
    // a computed rows 0-3 once (NaN); b computed 4-7, then a's rows 0-3.
    expect(calls[0]!.map((r) => Array.from(r))).toEqual([[0, 1, 2, 3]]);
    expect(calls[1]!.map((r) => Array.from(r))).toEqual([[4, 5, 6, 7], [0, 1, 2, 3]]);
    expect(group.successes).toEqual([{ id: 'b', count: 4 }, { id: 'b', count: 4 }]);
    expect(Array.from(t.weights)).toEqual([3.5, -3.5, 2, 1].map((g, i) => Math.fround(before[i]! - g)));
  });

  it('a non-finite loss is refused before the reduce', async () => {
    const calls: Int32Array[][] = [];
    const group = new FakeGroup([fake('a', () => 'ok', calls), fake('b', (k) => (k === 0 ? 'nan-loss' : 'ok'), calls)]);
    const t = trainer(group);
    await t.step(0, rows);
    expect(group.failures).toEqual([{ id: 'b', reason: 'non_finite', message: 'b: returned a non-finite loss sum (Infinity)' }]);
    expect(calls[0]!.map((r) => Array.from(r))).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
  });

  it('the same rows non-finite from two participants: training diverged', async () => {
    const calls: Int32Array[][] = [];
    const group = new FakeGroup([fake('a', () => 'ok', calls), fake('b', () => 'nan-gradient', calls), fake('c', (k) => (k === 0 ? 'ok' : 'nan-gradient'), calls)]);
    const t = trainer(group);
    const before = t.weights.slice();
    await expect(t.step(0, rows)).rejects.toThrow(/step 0: the gradient is not finite on the same rows from two participants: training diverged/);
    expect(Array.from(t.weights)).toEqual(Array.from(before));
  });

  it('a lone participant with a non-finite gradient: nobody is left to check it', async () => {
    const group = new FakeGroup([fake('a', () => 'nan-gradient', [])]);
    const t = trainer(group);
    await expect(t.step(0, rows)).rejects.toThrow(/no other participant is left to check it: training diverged/);
  });
});
