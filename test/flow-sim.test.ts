/**
 * The flow simulation (bench/flow-sim.ts) with exact numbers, and both reductions' task graphs
 * (bench/scale-sim.ts) against their closed forms where compute is free: the star's 2n·S/B per
 * step and the ring's 2(n-1)/n·S/B.
 */
import { describe, expect, it } from 'vitest';
import { simulate, type Task } from '../bench/flow-sim.js';
import { peerSteps, starSteps, stepMs } from '../bench/scale-sim.js';

const net = { hosts: 4, bytesPerMs: 10, latencyMs: 1 };

describe('the flow simulation', () => {
  it('a transfer takes bytes / rate, then the latency', () => {
    expect(Array.from(simulate([{ kind: 'flow', src: 0, dst: 1, bytes: 1000, deps: [] }], net))).toEqual([101]);
  });

  it('transfers share a link equally, and one that ends frees its share', () => {
    const tasks: Task[] = [
      { kind: 'flow', src: 0, dst: 1, bytes: 1000, deps: [] },
      { kind: 'flow', src: 0, dst: 2, bytes: 2000, deps: [] },
    ];
    // both at 5 bytes/ms until 200; then the second alone at 10 for its last 1000
    expect(Array.from(simulate(tasks, net))).toEqual([201, 301]);
  });

  it('max-min fairness: three into one downlink get a third each', () => {
    const tasks: Task[] = [
      { kind: 'flow', src: 0, dst: 1, bytes: 1000, deps: [] },
      { kind: 'flow', src: 0, dst: 1, bytes: 1000, deps: [] },
      { kind: 'flow', src: 2, dst: 1, bytes: 1000, deps: [] },
    ];
    for (const t of simulate(tasks, net)) expect(t).toBeCloseTo(301, 9);
  });

  it('a bottleneck elsewhere leaves the rest to the others: 2->1 limited by 1, 2->3 takes what 2 has left', () => {
    const tasks: Task[] = [
      { kind: 'flow', src: 0, dst: 1, bytes: 1000, deps: [] },
      { kind: 'flow', src: 3, dst: 1, bytes: 1000, deps: [] },
      { kind: 'flow', src: 2, dst: 1, bytes: 1000, deps: [] },
      { kind: 'flow', src: 2, dst: 3, bytes: 1000, deps: [] },
    ];
    const f = simulate(tasks, net);
    // downlink 1: three flows at 10/3; uplink 2: 10/3 to 1 and the remaining 20/3 to 3
    expect(f[0]).toBeCloseTo(301, 9);
    expect(f[3]).toBeCloseTo(151, 9);
  });

  it('tasks wait for their dependencies; a computation takes its time on its host', () => {
    const tasks: Task[] = [
      { kind: 'compute', host: 1, ms: 50, deps: [] },
      { kind: 'flow', src: 1, dst: 0, bytes: 100, deps: [0] },
      { kind: 'compute', host: 0, ms: 5, deps: [1] },
    ];
    expect(Array.from(simulate(tasks, net))).toEqual([50, 61, 66]);
  });

  it('refuses a dependency on a later task and a host that is not there', () => {
    expect(() => simulate([{ kind: 'compute', host: 0, ms: 1, deps: [1] }, { kind: 'compute', host: 0, ms: 1, deps: [] }], net)).toThrow(/earlier/);
    expect(() => simulate([{ kind: 'flow', src: 0, dst: 9, bytes: 1, deps: [] }], net)).toThrow(/no host/);
  });
});

describe('the reductions as task graphs', () => {
  const free = { computeMs: 0, reduceMs: 0, applyMs: 0, bytes: 8000, buckets: 1 };
  for (const n of [2, 3, 8]) {
    it(`${n} nodes, free compute: the star takes 2n·S/B a step, the ring 2(n-1)/n·S/B (plus latencies)`, () => {
      const hosts = n + 1;
      const star = stepMs(starSteps(n, free, 4), { hosts, bytesPerMs: 10, latencyMs: 0.5 });
      expect(star).toBeCloseTo((2 * n * 8000) / 10 + 2 * 0.5, 6);
      const ring = stepMs(peerSteps(n, free, 4), { hosts, bytesPerMs: 10, latencyMs: 0.5 });
      expect(ring).toBeCloseTo(((2 * (n - 1)) / n) * (8000 / 10) + 2 * (n - 1) * 0.5, 6);
    });
  }

  it('buckets overlap the backward pass with sending: the star waits only for the last bucket', () => {
    const costs = { computeMs: 400, reduceMs: 0, applyMs: 0, bytes: 4000, buckets: 4 };
    // one node: weights 400 ms, compute 4 x 100 with each 100 ms bucket (1000 bytes) sent meanwhile, the last after
    expect(stepMs(starSteps(1, costs, 4), { hosts: 2, bytesPerMs: 10, latencyMs: 0 })).toBeCloseTo(400 + 400 + 100, 6);
  });
});
