/**
 * The step module (coordinator/fit/step.ts) and its handling of bad gradients from participants (threads or the coordinator's own
 * lane; nodes' frames are also checked on arrival, see remote.test.ts): a non-finite gradient is
 * found through the mean, its participant is excluded for the step and its rows are recomputed by
 * the others; the same rows non-finite from two participants stop the run as divergence. A part
 * whose participant rejects, throws or times out is recomputed the same way, up to MAX_ATTEMPTS
 * attempts; then, or when no participant is left, the step fails with E_CLUSTER.
 * Participants here are fakes with known gradients, so the resulting weights are exact.
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { ParticipantFault, type Participant, type ParticipantGroup } from '../coordinator/participants/participant.js';
import { OptimizerSlot } from '../coordinator/fit/state.js';
import { MAX_ATTEMPTS, type StepSums } from '../coordinator/fit/step.js';
import { ClusterError } from '../shared/errors.js';
import { splitCounts } from '../shared/plan/split-plan.js';
import type { GradientResult } from '../shared/protocol/gradient-packet.js';
import { STEP_DATASET as dataset, logisticStepRunner } from './logistic-step.js';

/**
 * What a fake participant's call does: answer (right, or with a non-finite gradient or loss), or
 * fail: `reject` as a dropped node does (a ParticipantFault), `throw` synchronously (a bug in a
 * participant), `crash` (a rejected promise with a plain Error, as a dead thread), `timeout`
 * (a ParticipantFault 'timeout' after 20 ms, as a node that missed its deadline).
 */
type Behaviour = 'ok' | 'nan-gradient' | 'nan-loss' | 'reject' | 'throw' | 'crash' | 'timeout';

/** Spins for `ms` milliseconds: a delay that is at least `ms` on performance.now()'s clock. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/**
 * A participant whose mean gradient over rows is [mean(r), -mean(r), 2, 1]; `plan` says what its
 * k-th call does; `delayMs` of compute (busy) before each answer.
 */
function fake(id: string, plan: (call: number) => Behaviour, calls: Int32Array[][], delayMs = 0): Participant {
  const mine: Int32Array[] = [];
  calls.push(mine);
  return {
    id,
    kind: 'thread',
    holds: undefined,
    gradient(_step, _version, rows): Promise<GradientResult> {
      const behaviour = plan(mine.length);
      mine.push(rows.slice());
      busy(delayMs);
      if (behaviour === 'throw') throw new TypeError('cannot read properties of undefined');
      if (behaviour === 'crash') return Promise.reject(new Error('worker thread exited with code 1'));
      if (behaviour === 'reject') return Promise.reject(new ParticipantFault(id, 'disconnected', 'connection closed (1006)'));
      if (behaviour === 'timeout') {
        return new Promise((_, reject) => setTimeout(() => reject(new ParticipantFault(id, 'timeout', 'no answer to step 0 within 20 ms')), 20));
      }
      const mean = rows.reduce((a, r) => a + r, 0) / rows.length;
      const gradient = Float32Array.from([mean, -mean, 2, 1]);
      if (behaviour === 'nan-gradient') gradient[2] = Number.NaN;
      return Promise.resolve({ count: rows.length, lossSum: behaviour === 'nan-loss' ? Number.POSITIVE_INFINITY : rows.length, metricSums: [0], gradient, numTensors: -1 });
    },
    evaluate: () => Promise.reject(new Error('not used')),
  };
}

class FakeGroup implements ParticipantGroup {
  readonly failures: { id: string; reason: string; message: string }[] = [];
  readonly successes: { id: string; count: number }[] = [];
  readonly stats = new Map();
  /**
   * `dropFailed`: a participant that fails leaves the group (as a node does; threads stay);
   * `publishMs`: each publish after the first takes that long (busy).
   */
  constructor(
    private readonly members: Participant[],
    private readonly options: { dropFailed?: boolean; publishMs?: number } = {},
  ) {}
  ready = async (): Promise<readonly Participant[]> => [...this.members];
  readonly published: number[] = [];
  publish(_weights: Float32Array, version: number): void {
    if (version > 0) busy(this.options.publishMs ?? 0);
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
    if (this.options.dropFailed && this.members.includes(p)) this.members.splice(this.members.indexOf(p), 1);
  }
  close = async (): Promise<void> => {};
}

/** An optimizer step that takes at least `ms` milliseconds (busy), then is SGD's. */
class SlowOptimizer extends OptimizerSlot {
  constructor(
    config: ConstructorParameters<typeof OptimizerSlot>[0],
    size: number,
    private readonly ms: number,
  ) {
    super(config, size);
  }
  override apply(weights: Float32Array, gradient: Float32Array): void {
    busy(this.ms);
    super.apply(weights, gradient);
  }
}

/** A StepRunner over `group` for a 3-feature logistic model, SGD with learning rate 1 (whose apply takes `applyMs`). */
function trainer(group: ParticipantGroup, applyMs = 0): { weights: Float32Array; step: (step: number, rows: Int32Array) => Promise<StepSums> } {
  const { weights, runner } = logisticStepRunner(group, dataset, (config, size) => new SlowOptimizer(config, size, applyMs));
  return { weights, step: (step, rows) => runner.run(step, rows) };
}

const rows = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);

/** The weights after step 0 on `rows` computed by one participant that never fails: what any recomputation must reproduce. */
async function oneParticipantWeights(): Promise<number[]> {
  const t = trainer(new FakeGroup([fake('solo', () => 'ok', [])]));
  await t.step(0, rows);
  return Array.from(t.weights);
}

/** The step's rejection, for checks of its class, code and message. */
async function stepError(step: Promise<unknown>): Promise<unknown> {
  return step.then(
    () => expect.fail('the step succeeded'),
    (err: unknown) => err,
  );
}

describe('step', () => {
  it('publishes the new weights once per step under the next version', async () => {
    const group = new FakeGroup([fake('a', () => 'ok', []), fake('b', () => 'ok', [])]);
    const t = trainer(group);
    expect(group.published).toEqual([0]);
    const first = await t.step(0, rows);
    await t.step(1, rows);
    expect(group.published).toEqual([0, 1, 2]);
    expect(first.tensorCounts).toEqual([]); // the fakes report none (-1)
    expect(first.metricSums).toEqual([0]);
  });

  it('times each phase where it happens: compute, reduce, apply and broadcast add up to no more than the step', async () => {
    // known, distinct delays: a participant computes 200 ms, the optimizer applies 100 ms, the
    // publish broadcasts 50 ms; the reduce of 4 values has none. Distinct lower bounds catch any
    // phase timed in another's place; the sum catches a phase counted twice.
    const group = new FakeGroup([fake('a', () => 'ok', [], 200), fake('b', () => 'ok', [])], { publishMs: 50 });
    const t = trainer(group, 100);
    const started = performance.now();
    const { phases } = await t.step(0, rows);
    const wall = (performance.now() - started) / 1000;
    expect(phases.compute).toBeGreaterThanOrEqual(0.2);
    expect(phases.apply).toBeGreaterThanOrEqual(0.1);
    expect(phases.broadcast).toBeGreaterThanOrEqual(0.05);
    expect(phases.reduce).toBeGreaterThanOrEqual(0);
    expect(phases.reduce).toBeLessThan(0.05);
    expect(phases.compute + phases.reduce + phases.apply + phases.broadcast).toBeLessThanOrEqual(wall + 1e-9);
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

describe('step: failing participants', () => {
  it.each([
    ['reject', 'disconnected', 'a: connection closed (1006)'],
    ['throw', 'crashed', 'a: cannot read properties of undefined'],
    ['crash', 'crashed', 'a: worker thread exited with code 1'],
    ['timeout', 'timeout', 'a: no answer to step 0 within 20 ms'],
  ] as const)('a part whose participant fails (%s) is recomputed by the others: the weights are those of one participant', async (behaviour, reason, message) => {
    const calls: Int32Array[][] = [];
    const group = new FakeGroup([fake('a', (k) => (k === 0 ? behaviour : 'ok'), calls), fake('b', () => 'ok', calls), fake('c', () => 'ok', calls)]);
    const t = trainer(group);
    const sums = await t.step(0, rows);
    expect(group.failures).toEqual([{ id: 'a', reason, message }]);
    // a's rows 0-2 (of 3/3/2) went back to be split over all three again; a now computes its share
    expect(calls[0]!.map((r) => Array.from(r))).toEqual([[0, 1, 2], [0]]);
    expect(calls[1]!.map((r) => Array.from(r))).toEqual([[3, 4, 5], [1]]);
    expect(calls[2]!.map((r) => Array.from(r))).toEqual([[6, 7], [2]]);
    // every row counted once: the loss sum and the gradient are over the whole batch
    expect(sums.lossSum).toBe(8);
    expect(group.successes.reduce((n, s) => n + s.count, 0)).toBe(8);
    expect(Array.from(t.weights)).toEqual(await oneParticipantWeights());
  });

  it(`parts that fail on ${MAX_ATTEMPTS - 1} attempts and succeed on the last allowed one give the one-participant weights`, async () => {
    const calls: Int32Array[][] = [];
    const failFirst = (k: number): Behaviour => (k < MAX_ATTEMPTS - 1 ? 'reject' : 'ok');
    const group = new FakeGroup([fake('a', failFirst, calls), fake('b', failFirst, calls)]);
    const t = trainer(group);
    await t.step(0, rows);
    expect(calls.map((c) => c.length)).toEqual([MAX_ATTEMPTS, MAX_ATTEMPTS]);
    expect(group.failures).toHaveLength(2 * (MAX_ATTEMPTS - 1));
    expect(Array.from(t.weights)).toEqual(await oneParticipantWeights());
  });

  it(`rows still not computed after ${MAX_ATTEMPTS} attempts stop the run (E_CLUSTER); the weights do not move`, async () => {
    const calls: Int32Array[][] = [];
    const group = new FakeGroup([fake('a', () => 'reject', calls), fake('b', () => 'timeout', calls)]);
    const t = trainer(group);
    const before = Array.from(t.weights);
    const err = await stepError(t.step(3, rows));
    expect(err).toBeInstanceOf(ClusterError);
    expect(err).toMatchObject({ code: 'E_CLUSTER', message: `step 3: 8 rows still not computed after ${MAX_ATTEMPTS} attempts` });
    expect(calls.map((c) => c.length)).toEqual([MAX_ATTEMPTS, MAX_ATTEMPTS]);
    expect(group.failures).toHaveLength(2 * MAX_ATTEMPTS);
    expect(Array.from(t.weights)).toEqual(before);
    expect(group.published).toEqual([0]);
  });

  it('no participant left (each failed one dropped): E_CLUSTER naming the rows still to compute', async () => {
    const calls: Int32Array[][] = [];
    // a computes rows 0-3, b fails on 4-7 and is dropped; a, alone, fails on 4-7 and is dropped
    const group = new FakeGroup([fake('a', (k) => (k === 0 ? 'ok' : 'crash'), calls), fake('b', () => 'reject', calls)], { dropFailed: true });
    const t = trainer(group);
    const before = Array.from(t.weights);
    const err = await stepError(t.step(2, rows));
    expect(err).toBeInstanceOf(ClusterError);
    expect(err).toMatchObject({ code: 'E_CLUSTER', message: 'step 2: no participant left to compute 4 rows' });
    expect(calls.map((c) => c.map((r) => Array.from(r)))).toEqual([[[0, 1, 2, 3], [4, 5, 6, 7]], [[4, 5, 6, 7]]]);
    expect(group.failures.map((f) => [f.id, f.reason])).toEqual([['b', 'disconnected'], ['a', 'crashed']]);
    expect(Array.from(t.weights)).toEqual(before);
    expect(group.published).toEqual([0]);
  });
});
