import { describe, expect, it } from 'vitest';
import { Cluster, type Balance } from '../coordinator/participants/cluster.js';
import type { Participant, ParticipantKind } from '../coordinator/participants/participant.js';
import { SpeedModel, balancedCounts } from '../shared/plan/balance.js';

describe('SpeedModel', () => {
  it('recovers latency and per-sample time from parts of different sizes', () => {
    const m = new SpeedModel();
    for (const n of [4, 16, 8, 32, 12]) m.observe(n, 0.002 + n * 0.0005);
    const fit = m.model()!;
    expect(fit.latency).toBeCloseTo(0.002, 9);
    expect(fit.perSample).toBeCloseTo(0.0005, 9);
  });

  it('attributes all time to compute when sizes never vary', () => {
    const m = new SpeedModel(1);
    m.observe(10, 0.02);
    m.observe(10, 0.04);
    expect(m.model()!.latency).toBe(0);
    expect(m.model()!.perSample).toBeCloseTo(0.003, 12);
  });

  it('forgets old observations (follows a participant that slows down)', () => {
    const m = new SpeedModel(0.5);
    for (let i = 0; i < 20; i++) m.observe(10 + (i % 3), (10 + (i % 3)) * 0.001);
    for (let i = 0; i < 20; i++) m.observe(10 + (i % 3), (10 + (i % 3)) * 0.004);
    expect(m.model()!.perSample).toBeCloseTo(0.004, 4);
  });
});

describe('balancedCounts', () => {
  it('gives a participant 4x faster per sample 4x the samples when there is no latency', () => {
    expect(balancedCounts(100, [{ latency: 0, perSample: 0.001 }, { latency: 0, perSample: 0.004 }])).toEqual([80, 20]);
  });

  it('evens out finishing times with latency: the high-latency participant gets less', () => {
    // both at 1 ms/sample; B has 10 ms latency: A takes 37, B 27 -> both finish at 37 ms
    expect(balancedCounts(64, [{ latency: 0, perSample: 0.001 }, { latency: 0.01, perSample: 0.001 }])).toEqual([37, 27]);
  });

  it('leaves out a participant whose latency alone is longer than the others need', () => {
    expect(balancedCounts(10, [{ latency: 0, perSample: 0.001 }, { latency: 1, perSample: 0.0001 }])).toEqual([10, 0]);
  });

  it('always adds up to the total', () => {
    const models = [{ latency: 0.003, perSample: 0.0002 }, { latency: 0.001, perSample: 0.0011 }, { latency: 0, perSample: 0.0007 }];
    for (const total of [0, 1, 2, 31, 32, 1024]) expect(balancedCounts(total, models).reduce((a, b) => a + b, 0)).toBe(total);
  });
});

describe('Cluster.split by cluster.balance', () => {
  const fake = (id: string, kind: ParticipantKind): Participant => ({
    id,
    kind,
    holds: undefined,
    gradient: () => Promise.reject(new Error('not used')),
    evaluate: () => Promise.reject(new Error('not used')),
  });
  const threadA = fake('thread-0', 'thread');
  const threadB = fake('thread-1', 'thread');
  const node = fake('node-1', 'node');
  /** A cluster that has measured thread-0 at 1 ms/sample and the others at 3 ms/sample. */
  function measured(balance: Balance): Cluster {
    // the three as the cluster's own lanes: it keeps speeds only of participants it tracks
    const lanes = { participants: [threadA, threadB, node], backend: 'cpu', publish: () => {}, close: async () => {} };
    const cluster = new Cluster(lanes, { minWorkers: 0, waitTimeoutMs: 1000, balance, log: () => {}, trainRows: 1000 });
    for (const p of [threadA, threadB, node]) {
      const perSample = p === threadA ? 0.001 : 0.003;
      for (const n of [0, 8, 16, 32, 24]) cluster.succeeded(p, 0, n, n * perSample); // the first is warm-up, not measured
    }
    return cluster;
  }

  it('auto: equal parts while only threads train, proportional once a worker node takes part', () => {
    const cluster = measured('auto');
    expect(cluster.split(64, [threadA, threadB])).toEqual([32, 32]);
    expect(cluster.split(63, [threadA, threadB])).toEqual([32, 31]);
    expect(cluster.split(100, [threadA, threadB, node])).toEqual([60, 20, 20]);
  });

  it('proportional splits threads by speed too; equal never looks at speed', () => {
    expect(measured('proportional').split(64, [threadA, threadB])).toEqual([48, 16]);
    expect(measured('equal').split(99, [threadA, threadB, node])).toEqual([33, 33, 33]);
  });
});
