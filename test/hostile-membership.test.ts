/**
 * Token holders that join and say nothing (issue #28, finding 4) cannot stall or end a run:
 * waves of silent joiners do not exhaust a step's attempts while a proven participant (a local
 * thread) is there; an unmeasured node gets a probe part with a deadline derived from the
 * measured participants, not stepTimeout; a node that is dropped again and again waits longer
 * and longer before it takes part again, and one dropped before computing anything cannot skip
 * the wait by taking a new name. Fakes only (participants, nodes, timers).
 */
import { describe, expect, it, vi } from 'vitest';
import { Cluster, REJOIN_BACKOFF, rejoinDelayMs, rejoinHost, rejoinKey } from '../coordinator/participants/cluster.js';
import type { NodeContext, RemoteNode } from '../coordinator/participants/remote-node.js';
import { ParticipantFault, type Participant, type ParticipantGroup, type ParticipantStats } from '../coordinator/participants/participant.js';
import { MAX_ATTEMPTS, StepRunner } from '../coordinator/fit/step.js';
import type { RowRange } from '../shared/data/dataset.js';
import { splitCounts } from '../shared/plan/split-plan.js';
import type { GradientResult } from '../shared/protocol/gradient-packet.js';
import { STEP_DATASET as dataset, logisticStepRunner } from './logistic-step.js';

/** An honest participant: the mean gradient over its rows is [mean(r), -mean(r), 2, 1]. */
function honest(id: string, kind: Participant['kind']): Participant {
  return {
    id,
    kind,
    holds: undefined,
    gradient(_step, _version, rows): Promise<GradientResult> {
      const mean = rows.reduce((a, r) => a + r, 0) / rows.length;
      return Promise.resolve({ count: rows.length, lossSum: rows.length, metricSums: [0], gradient: Float32Array.from([mean, -mean, 2, 1]), numTensors: -1 });
    },
    evaluate: () => Promise.reject(new Error('not used')),
  };
}

/** A node that says nothing: its part ends as its deadline (here 1 ms) passes. */
function silent(id: string): Participant {
  return {
    id,
    kind: 'node',
    holds: undefined,
    gradient: () => new Promise((_, reject) => setTimeout(() => reject(new ParticipantFault(id, 'timeout', 'no answer within 1 ms')), 1)),
    evaluate: () => Promise.reject(new Error('not used')),
  };
}

/** A group with one local thread to which a wave of `waveSize` silent nodes is admitted at every ready(); failed nodes are dropped. */
class WavesGroup implements ParticipantGroup {
  readonly stats = new Map<string, ParticipantStats>();
  members: Participant[] = [honest('thread-0', 'thread')];
  joined = 0;
  /** Parts given to silent nodes. */
  silentParts = 0;
  constructor(private readonly waveSize: number) {}
  ready = (): Promise<readonly Participant[]> => {
    for (let i = 0; i < this.waveSize; i++) this.members.push(silent(`node-${++this.joined}`));
    return Promise.resolve([...this.members]);
  };
  publish(): void {}
  split(total: number, participants: readonly Participant[]): number[] {
    const counts = splitCounts(total, participants.map(() => 1));
    this.silentParts += counts.filter((c, i) => c > 0 && participants[i]!.kind === 'node').length;
    return counts;
  }
  succeeded(): void {}
  failed(p: Participant): void {
    this.members = this.members.filter((m) => m !== p);
  }
  close = async (): Promise<void> => {};
}

function runner(group: ParticipantGroup): { weights: Float32Array; run: StepRunner } {
  const { weights, runner: run } = logisticStepRunner(group, dataset);
  return { weights, run };
}

describe('silent nodes joining in waves', () => {
  it('cannot end a step with E_CLUSTER while a local thread lives: the step completes over every row', async () => {
    const rows = Int32Array.from({ length: 64 }, (_, i) => i);
    // one participant alone: the weights every step must reproduce (the mean is exact)
    const solo = runner(new WavesGroup(0));
    await solo.run.run(0, rows);
    const group = new WavesGroup(3);
    const { weights, run } = runner(group);
    const sums = await run.run(0, rows);
    expect(sums.lossSum).toBe(64);
    expect(Array.from(weights)).toEqual(Array.from(solo.weights));
    // the first attempts are open to newcomers (their parts fail), later ones go to the thread only
    expect(group.joined).toBeGreaterThan(MAX_ATTEMPTS / 2);
    expect(group.silentParts).toBeGreaterThan(0);
    expect(group.silentParts).toBeLessThanOrEqual(2 * 3);
  });

  it('nodes that computed parts before and then fail every attempt cannot end the step either: its last attempts go to the thread', async () => {
    const group = new WavesGroup(0);
    const nodes = Array.from({ length: 8 }, (_, i) => silent(`node-${i + 1}`));
    group.members.push(...nodes);
    for (const node of nodes) group.stats.set(node.id, { id: node.id, kind: 'node', name: node.id, backend: 'wasm', samples: 64, steps: 4, failures: 0, firstStep: 0, lastStep: 3 });
    // failed nodes stay (as threads do), so every attempt has them fail again
    group.failed = () => {};
    const { run } = runner(group);
    expect((await run.run(4, Int32Array.from({ length: 64 }, (_, i) => i))).lossSum).toBe(64);
  });

  it('still stop a step whose proven participants fail MAX_ATTEMPTS times', async () => {
    const group = new WavesGroup(1);
    group.members = [silent('thread-0')].map((p) => ({ ...p, kind: 'thread' as const }));
    const { run } = runner(group);
    await expect(run.run(0, Int32Array.from([0, 1, 2, 3]))).rejects.toMatchObject({ code: 'E_CLUSTER' });
  });
});

/** A node as the cluster sees it (see cluster-membership.test.ts), with a name and an address. */
function fakeNode(id: string, name = 'worker', address = '10.0.0.7:40000'): RemoteNode {
  const node = {
    id,
    kind: 'node',
    name,
    backend: 'wasm',
    address,
    open: true,
    holds: undefined,
    ranges: [] as RowRange[],
    start: () => {},
    sendRows: (range: RowRange) => node.ranges.push(range),
    onClose: () => {},
    drop: () => (node.open = false),
    bye: () => (node.open = false),
  };
  return node as unknown as RemoteNode;
}

const thread = honest('thread-0', 'thread');
const lanes = { participants: [thread], backend: 'cpu', publish: () => {}, close: async () => {} };

describe('an unmeasured node', () => {
  it('gets a probe part and a deadline derived from the measured participants (seconds), not stepTimeout', () => {
    const deadline = { factor: 20, floorSeconds: 5, stepTimeoutSeconds: 120 };
    const cluster = new Cluster(lanes, { minWorkers: 0, waitTimeoutMs: 1000, balance: 'auto', log: () => {}, trainRows: 1000, deadline });
    // the thread is measured at 1 ms per sample (its first part is warm-up)
    for (const n of [64, 64, 32, 48]) cluster.succeeded(thread, 0, n, n * 0.001);
    const node = fakeNode('node-1');
    cluster.addNode(node);
    const context = cluster.nodeContext({} as Omit<NodeContext, 'weightsFrame' | 'deadlineMs'>);
    // 1/16 of an equal share of 64: 2 samples, the rest to the measured thread
    expect(cluster.split(64, [thread, node])).toEqual([62, 2]);
    // predicted 2 ms for 2 samples on the slowest measured participant: the floor, 5 s
    expect(context.deadlineMs!('node-1', 2)).toBe(5000);
    // a large part still gets no more than the measured participants would need (20 x 1000 ms)
    expect(context.deadlineMs!('node-1', 1000)).toBe(20_000);
    // a newcomer warms up too: the deadline allows for the slowest thread's warm-up (here 1 s)
    const slowStart = new Cluster(lanes, { minWorkers: 0, waitTimeoutMs: 1000, balance: 'auto', log: () => {}, trainRows: 1000, deadline });
    for (const [n, seconds] of [[64, 1], [64, 0.064], [32, 0.032]] as const) slowStart.succeeded(thread, 0, n, seconds);
    slowStart.addNode(fakeNode('node-2'));
    expect(slowStart.nodeContext({} as Omit<NodeContext, 'weightsFrame' | 'deadlineMs'>).deadlineMs!('node-2', 2)).toBe(20_000);
    // with nothing measured there is nothing to derive it from: stepTimeout
    const fresh = new Cluster(undefined, { minWorkers: 0, waitTimeoutMs: 1000, balance: 'auto', log: () => {}, trainRows: 1000, deadline });
    expect(fresh.nodeContext({} as Omit<NodeContext, 'weightsFrame' | 'deadlineMs'>).deadlineMs!('node-1', 2)).toBe(120_000);
  });
});

/** A cluster of one thread whose nodes can be dropped: its log, the participants of the next step, and a timeout fault. */
function droppingCluster(): { log: string[]; cluster: Cluster; ids: () => Promise<string[]>; fault: (id: string) => ParticipantFault } {
  const log: string[] = [];
  const cluster = new Cluster(lanes, { minWorkers: 0, waitTimeoutMs: 60_000, balance: 'equal', log: (l) => log.push(l), trainRows: 100 });
  return { log, cluster, ids: async () => (await cluster.ready()).map((p) => p.id), fault: (id) => new ParticipantFault(id, 'timeout', 'no answer') };
}

describe('a node dropped again and again', () => {
  it('waits longer each time before it takes part again (per name and host once it has computed parts; doubling, capped)', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    try {
      const { log, cluster, ids, fault } = droppingCluster();
      let n = 0;
      for (const waitMs of [0, 1000, 2000, 4000, 8000]) {
        // the same worker reconnects (a new port each time)
        const node = fakeNode(`node-${++n}`, 'worker', `10.0.0.7:${40000 + n}`);
        cluster.addNode(node);
        if (waitMs > 0) {
          expect(log.at(-1)).toMatch(new RegExp(`joined; it was dropped before and takes part in ${waitMs / 1000}\\.0 s at the earliest$`));
          expect(await ids()).toEqual(['thread-0']);
          vi.advanceTimersByTime(waitMs - 1);
          expect(await ids()).toEqual(['thread-0']);
          vi.advanceTimersByTime(1);
        }
        expect(await ids()).toEqual(['thread-0', node.id]);
        // it computes a part, then fails one
        cluster.succeeded(node, n, 10, 0.01);
        cluster.failed(node, n, fault(node.id));
      }
      // another worker (another name) on the same host is not held back
      const other = fakeNode('node-9', 'other-worker', '10.0.0.7:41000');
      cluster.addNode(other);
      expect(await ids()).toEqual(['thread-0', 'node-9']);
      await cluster.close();
    } finally {
      vi.useRealTimers();
    }
    // the policy: doubling from 1 s, at most 5 minutes; the port is not part of the identity
    expect([0, 1, 2, 3, 4].map((d) => rejoinDelayMs(d, REJOIN_BACKOFF))).toEqual([0, 1000, 2000, 4000, 8000]);
    expect(rejoinDelayMs(30, REJOIN_BACKOFF)).toBe(REJOIN_BACKOFF.maxMs);
    expect(rejoinKey({ name: 'worker', address: '10.0.0.7:40000' })).toBe('worker@10.0.0.7');
    expect(rejoinKey({ name: 'worker', address: '::ffff:10.0.0.7:40001' })).toBe('worker@::ffff:10.0.0.7');
  });

  it('that never computed a part holds back its address, under any new name; another address, and a name that has computed parts, are not held back by it', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    try {
      const { log, cluster, ids, fault } = droppingCluster();
      // an honest worker on the attacker's address has computed parts, and stays
      const honestOne = fakeNode('node-0', 'honest', '10.0.0.7:39000');
      cluster.addNode(honestOne);
      await ids();
      cluster.succeeded(honestOne, 0, 10, 0.01);
      // a silent node, dropped at its first part, comes back under a new name each time
      let n = 0;
      for (const waitMs of [0, 1000, 2000, 4000]) {
        const node = fakeNode(`node-${++n}`, `silent-${n}`, `10.0.0.7:${40000 + n}`);
        cluster.addNode(node);
        if (waitMs > 0) {
          expect(log.at(-1)).toMatch(new RegExp(`joined; a node from its address was dropped before computing a part and takes part in ${waitMs / 1000}\\.0 s at the earliest$`));
          expect(await ids()).toEqual(['thread-0', 'node-0']);
          vi.advanceTimersByTime(waitMs - 1);
          expect(await ids()).toEqual(['thread-0', 'node-0']);
          vi.advanceTimersByTime(1);
        }
        expect(await ids()).toEqual(['thread-0', 'node-0', node.id]);
        cluster.failed(node, n, fault(node.id));
      }
      // a new node from another address is not held back
      const elsewhere = fakeNode('node-10', 'silent-10', '10.0.0.8:40000');
      cluster.addNode(elsewhere);
      expect(await ids()).toEqual(['thread-0', 'node-0', 'node-10']);
      // the honest worker reconnects (after a drop of its own: 1 s for its name, not the address's 8 s)
      cluster.failed(honestOne, 5, fault('node-0'));
      const again = fakeNode('node-11', 'honest', '10.0.0.7:39001');
      cluster.addNode(again);
      expect(log.at(-1)).toMatch(/joined; it was dropped before and takes part in 1\.0 s at the earliest$/);
      vi.advanceTimersByTime(1000);
      expect(await ids()).toEqual(['thread-0', 'node-10', 'node-11']);
      await cluster.close();
    } finally {
      vi.useRealTimers();
    }
    // the host: without the port, an IPv4-mapped address as IPv4, an IPv6 /64 as one
    expect(rejoinHost({ address: '::ffff:10.0.0.7:40001' })).toBe('10.0.0.7');
    expect(rejoinHost({ address: '2001:db8:0:1::5:40000' })).toBe(rejoinHost({ address: '2001:db8:0:1::6:40001' }));
    expect(rejoinHost({ address: '2001:db8:0:1::5:40000' })).not.toBe(rejoinHost({ address: '2001:db8:0:2::5:40000' }));
  });

  it('that closes its connection during its part (before its deadline) waits as a dropped one does', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    try {
      const { log, cluster, ids } = droppingCluster();
      const node = fakeNode('node-1', 'leaver', '10.0.0.7:40001');
      let close: ((reason: string, message: string) => void) | undefined;
      (node as unknown as { onClose: (l: typeof close) => void }).onClose = (listener) => (close = listener);
      cluster.addNode(node);
      expect(await ids()).toEqual(['thread-0', 'node-1']);
      // the connection closes first (the node leaves the run), then its part fails
      close!('disconnected', 'connection closed (1006)');
      cluster.failed(node, 3, new ParticipantFault('node-1', 'disconnected', 'connection closed (1006)'));
      const again = fakeNode('node-2', 'leaver', '10.0.0.7:40002');
      cluster.addNode(again);
      expect(log.at(-1)).toMatch(/joined; it was dropped before and takes part in 1\.0 s at the earliest$/);
      expect(await ids()).toEqual(['thread-0']);
      vi.advanceTimersByTime(1000);
      expect(await ids()).toEqual(['thread-0', 'node-2']);
      await cluster.close();
    } finally {
      vi.useRealTimers();
    }
  });

  /**
   * A run waiting for minWorkers (1) whose only node was dropped, and that node back under a new
   * id (held 1 s); `skewMs`: how far Date.now is set behind the timers once the wait begins.
   * Checks the wait is still on at `before` ms and has taken the node at `after`.
   */
  async function heldNodeTaken(skewMs: number, before: number, after: number): Promise<void> {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    try {
      const cluster = new Cluster(undefined, { minWorkers: 1, waitTimeoutMs: 60_000, balance: 'equal', log: () => {}, trainRows: 100 });
      const first = fakeNode('node-1');
      cluster.addNode(first);
      await cluster.ready();
      cluster.failed(first, 0, new ParticipantFault('node-1', 'timeout', 'no answer'));
      cluster.addNode(fakeNode('node-2'));
      let got: string[] | undefined;
      const next = cluster.ready().then((ps) => (got = ps.map((p) => p.id)));
      if (skewMs > 0) vi.setSystemTime(Date.now() - skewMs);
      await vi.advanceTimersByTimeAsync(before);
      expect(got).toBeUndefined();
      await vi.advanceTimersByTimeAsync(after - before);
      await next;
      expect(got).toEqual(['node-2']);
      await cluster.close();
    } finally {
      vi.useRealTimers();
    }
  }

  it('a run waiting for minWorkers takes a held node as soon as its wait is over', () => heldNodeTaken(0, 999, 1000));

  // Node's timers run on the loop's time, cached per iteration: a timer can end a few ms before
  // Date.now reaches what it was set for
  it('a held node is taken when its wait is over by the clock, where a timer of its length ends a little early', () => heldNodeTaken(5, 1000, 1010));
});
