/**
 * The flow simulation (bench/flow-sim.ts) with exact numbers, and both reductions' task graphs
 * (bench/scale-sim.ts) against their closed forms where compute is free: the star's 2n·S/B per
 * step and the ring's 2(n-1)/n·S/B.
 */
import { describe, expect, it } from 'vitest';
import { simulate, type Task } from '../bench/flow-sim.js';
import { builtPeerSteps, peerSteps, starSteps, stepMs } from '../bench/scale-sim.js';

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

  for (const n of [2, 3, 8]) {
    it(`${n} nodes, free compute: peers as built take (n-1)/n·S/B to scatter, then S/B to gather (n shards of S/n out of each owner, the coordinator's one of them), plus three latencies (the commit's too)`, () => {
      const built = stepMs(builtPeerSteps(n, free, 4), { hosts: n + 1, bytesPerMs: 10, latencyMs: 0.5 });
      expect(built).toBeCloseTo(((n - 1) / n) * (8000 / 10) + 8000 / 10 + 3 * 0.5, 6);
    });
  }

  it('peers as built: compute, the scatter, the gather, then every node steps the whole optimizer while the coordinator steps and commits', () => {
    const costs = { computeMs: 200, reduceMs: 20, applyMs: 30, bytes: 3000, buckets: 1 };
    const n = 3;
    // 200 compute; blocks: 2 shards of 1000 bytes out of each uplink (200 ms); folds 20 / 3; means:
    // 3 x 1000 out of each owner's uplink (300 ms); the coordinator's step (30) and the commit's
    // latency (1) beside each node's step (30); each flow's latency 1
    expect(stepMs(builtPeerSteps(n, costs, 4), { hosts: n + 1, bytesPerMs: 10, latencyMs: 1 })).toBeCloseTo(200 + (200 + 1) + 20 / 3 + (300 + 1) + 30 + 1, 6);
  });

  it('peers as built: an owner sends its mean only once its own block is out, so the blocks others wait for keep its whole uplink', () => {
    // 2 nodes, 2 chunks: node 1's block of shard 1 (the last half of the parameters) is final after
    // its first chunk and goes during its second; node 2's block of shard 0 goes after its second
    // chunk (200), alone on node 2's uplink though node 2's own shard is whole by then: 300
    const tasks = builtPeerSteps(2, { computeMs: 200, reduceMs: 0, applyMs: 0, bytes: 2000, buckets: 2 }, 1).tasks;
    const finish = simulate(tasks, { hosts: 3, bytesPerMs: 10, latencyMs: 0 });
    const flow = (src: number, dst: number): number => finish[tasks.findIndex((t) => t.kind === 'flow' && t.src === src && t.dst === dst)]!;
    expect(flow(1, 2)).toBeCloseTo(200, 6);
    expect(flow(2, 1)).toBeCloseTo(300, 6);
  });

  it('peers as built: a shard whose gradient is final goes while the backward pass computes the rest', () => {
    // the second shard (the last half of the parameters) is final after 2 of 4 chunks (200 ms):
    // node 0's block of it (100 ms) reaches node 1 while both still compute
    const tasks = builtPeerSteps(2, { computeMs: 400, reduceMs: 0, applyMs: 0, bytes: 2000, buckets: 4 }, 1).tasks;
    const finish = simulate(tasks, { hosts: 3, bytesPerMs: 10, latencyMs: 0 });
    const shard1From0 = tasks.findIndex((t) => t.kind === 'flow' && t.src === 1 && t.dst === 2);
    expect(finish[shard1From0]).toBeCloseTo(200 + 100, 6);
  });

  it('buckets overlap the backward pass with sending: the star waits only for the last bucket', () => {
    const costs = { computeMs: 400, reduceMs: 0, applyMs: 0, bytes: 4000, buckets: 4 };
    // one node: weights 400 ms, compute 4 x 100 with each 100 ms bucket (1000 bytes) sent meanwhile, the last after
    expect(stepMs(starSteps(1, costs, 4), { hosts: 2, bytesPerMs: 10, latencyMs: 0 })).toBeCloseTo(400 + 400 + 100, 6);
  });
});
