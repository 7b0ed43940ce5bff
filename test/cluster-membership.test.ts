/**
 * Cluster membership: how many worker nodes a step waits for. `startWorkers` gates the first step
 * only; after it `minWorkers` are enough, so a run that started with two nodes goes on with one.
 * Nodes that join and leave by the thousand leave bounded traces: stats, log lines, the live
 * page's records.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { RowRange } from '../shared/data/dataset.js';
import { EVENTS_FILE, RunFeed } from '../coordinator/live/run-feed.js';
import { TrainingMetrics } from '../coordinator/metrics.js';
import type { FeedRecord, ParticipantsRecord } from '../coordinator/live/records.js';
import { Cluster, DEPARTED_KEPT, MEMBERSHIP_LINES_PER_MINUTE, type ClusterOptions } from '../coordinator/participants/cluster.js';
import { ParticipantFault } from '../coordinator/participants/participant.js';
import type { RemoteNode } from '../coordinator/participants/remote-node.js';

/** A connected node as the cluster sees it: it can be admitted, given rows, and closed. */
function fakeNode(id: string): { node: RemoteNode; close: () => void } {
  let onClose: ((reason: string, message: string) => void) | undefined;
  const node = {
    id,
    kind: 'node',
    name: id,
    backend: 'wasm',
    address: '127.0.0.1',
    open: true,
    holds: undefined,
    ranges: [] as RowRange[],
    start: () => {},
    sendRows: (range: RowRange) => node.ranges.push(range),
    onClose: (f: typeof onClose) => (onClose = f),
    drop: () => (node.open = false),
    bye: () => (node.open = false),
  };
  return {
    node: node as unknown as RemoteNode,
    close: () => {
      node.open = false;
      onClose?.('disconnected', 'socket closed');
    },
  };
}

function cluster(options: Partial<ClusterOptions>, log: string[] = []): Cluster {
  return new Cluster(undefined, { minWorkers: 1, waitTimeoutMs: 60_000, balance: 'equal', log: (l) => log.push(l), trainRows: 100, ...options });
}

/** Whether the promise settles within a few event-loop turns. */
async function settles(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return done;
}

describe('Cluster.ready: minWorkers and startWorkers', () => {
  it('startWorkers 2, minWorkers 1: the first step waits for two nodes, later steps go on with one', async () => {
    const log: string[] = [];
    const c = cluster({ minWorkers: 1, startWorkers: 2 }, log);
    const [a, b] = [fakeNode('node-1'), fakeNode('node-2')];
    const first = c.ready();
    c.addNode(a.node);
    expect(await settles(first)).toBe(false); // one node is enough to go on, not to start
    c.addNode(b.node);
    expect((await first).map((p) => p.id)).toEqual(['node-1', 'node-2']);
    expect(log[0]).toBe('waiting for worker nodes: 0 of 2 connected (timeout 60 s)');

    a.close();
    const next = c.ready();
    expect(await settles(next)).toBe(true);
    expect((await next).map((p) => p.id)).toEqual(['node-2']);
  });

  it('without startWorkers, minWorkers gates the first step too', async () => {
    const c = cluster({ minWorkers: 1 });
    const first = c.ready();
    c.addNode(fakeNode('node-1').node);
    expect((await first).map((p) => p.id)).toEqual(['node-1']);
  });

  it('minWorkers still holds after the start: the run pauses below it', async () => {
    const c = cluster({ minWorkers: 2, startWorkers: 2 });
    const [a, b, d] = [fakeNode('node-1'), fakeNode('node-2'), fakeNode('node-3')];
    c.addNode(a.node);
    c.addNode(b.node);
    await c.ready();
    a.close();
    const next = c.ready();
    expect(await settles(next)).toBe(false);
    c.addNode(d.node);
    expect((await next).map((p) => p.id)).toEqual(['node-2', 'node-3']);
  });

  it('names startWorkers when the start times out', async () => {
    const c = cluster({ minWorkers: 1, startWorkers: 3, waitTimeoutMs: 20 });
    c.addNode(fakeNode('node-1').node);
    await expect(c.ready()).rejects.toThrow('waited 0 s for worker nodes: 1 of 3 connected; start workers with `worker start --connect ...` or lower cluster.startWorkers');
  });

  it('robust aggregation: a step waits for cluster.minVotes participants, and goes on once they are there', async () => {
    const log: string[] = [];
    const c = cluster({ minWorkers: 0, minVotes: { votes: 3, aggregation: 'median' } }, log);
    const [a, b, d] = [fakeNode('node-1'), fakeNode('node-2'), fakeNode('node-3')];
    c.addNode(a.node);
    c.addNode(b.node);
    const first = c.ready();
    expect(await settles(first)).toBe(false);
    expect(log).toContain('waiting for worker nodes: 2 of 3 connected (cluster.minVotes 3 for median: 2 participant(s)) (timeout 60 s)');
    c.addNode(d.node);
    expect((await first).map((p) => p.id)).toEqual(['node-1', 'node-2', 'node-3']);
    // one leaves: the next step waits again rather than let two votes decide
    a.close();
    expect(await settles(c.ready())).toBe(false);
    const timed = cluster({ minWorkers: 0, minVotes: { votes: 3, aggregation: 'median' }, waitTimeoutMs: 20 });
    timed.addNode(fakeNode('node-4').node);
    await expect(timed.ready()).rejects.toThrow(/waited 0 s for worker nodes: 1 of 3 connected; .* or lower cluster\.minVotes/);
  });
});

describe('Cluster: nodes that join and leave by the thousand', () => {
  it('keeps the stats of present nodes and the latest departures, sums the rest (samples and failures conserved); log lines and live records stay bounded', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    try {
      const log: string[] = [];
      const file = join(mkdtempSync(join(tmpdir(), 'dptrain-churn-')), EVENTS_FILE);
      const feed = RunFeed.open({
        file,
        log: () => undefined,
        run: { name: 'churn', model: '3-1', parameters: 4, epochs: 1, batchSize: 8, trainRows: 100, valRows: 0, testRows: 0, features: 3, metrics: [], startStep: 0 },
      });
      const metrics = new TrainingMetrics();
      const c = cluster({ minWorkers: 1, observer: feed, metrics }, log);
      feed.attach(c, { last: undefined, lastFailed: undefined });
      const stay = fakeNode('node-0');
      c.addNode(stay.node);
      const cycles = 3000;
      let samples = 0;
      let failures = 0;
      let first: RemoteNode | undefined;
      for (let i = 1; i <= cycles; i++) {
        const n = fakeNode(`node-${i}`);
        first ??= n.node;
        c.addNode(n.node);
        expect((await c.ready()).map((p) => p.id)).toEqual(['node-0', n.node.id]);
        c.succeeded(stay.node, i, 5, 0.01);
        c.succeeded(n.node, i, 3, 0.01);
        samples += 8;
        // one in three is dropped for a failed part, the others disconnect
        if (i % 3 === 0) {
          c.failed(n.node, i, new ParticipantFault(n.node.id, 'timeout', 'no answer within 30 s'));
          failures++;
        } else n.close();
        if (i === cycles / 2) vi.advanceTimersByTime(60_000); // a second minute, with its own budget
      }
      // a part of a node long folded into the sums still counts there
      c.succeeded(first!, cycles + 1, 2, 0.01);
      c.failed(first!, cycles + 1, new ParticipantFault(first!.id, 'disconnected', 'gone'));
      samples += 2;
      failures++;

      expect(c.stats.size).toBe(1 + DEPARTED_KEPT);
      expect([...c.stats.keys()].slice(1)).toEqual(Array.from({ length: DEPARTED_KEPT }, (_, k) => `node-${cycles - DEPARTED_KEPT + 1 + k}`));
      expect(c.departed.nodes).toBe(cycles - DEPARTED_KEPT);
      const kept = [...c.stats.values()];
      expect(kept.reduce((a, s) => a + s.samples, 0) + c.departed.samples).toBe(samples);
      expect(kept.reduce((a, s) => a + s.failures, 0) + c.departed.failures).toBe(failures);
      expect(kept.reduce((a, s) => a + s.steps, 0) + c.departed.steps).toBe(2 * cycles + 1);
      // the samples counter keeps a series for the kept ones (and the late part's), and still counts every sample
      const series = (await metrics.registry.getSingleMetric('dptrain_samples_total')!.get()).values;
      expect(series.length).toBeLessThanOrEqual(1 + DEPARTED_KEPT + 1);
      expect(metrics.samplesTotal).toBe(samples);

      await c.close();
      // two minutes: per minute and kind (membership, failures) the first lines verbatim and one sum
      expect(log.length).toBeLessThanOrEqual(2 * 2 * (MEMBERSHIP_LINES_PER_MINUTE + 1));
      const joinedLines = log.filter((l) => / joined$/.test(l)).length;
      const leftLines = log.filter((l) => / left at step /.test(l)).length;
      const sums = log.map((l) => /^\.\.\. and (\d+) more node\(s\) joined, (\d+) more left in the last minute/.exec(l)).filter((m) => m !== null);
      expect(sums).toHaveLength(2);
      expect(joinedLines + sums.reduce((a, m) => a + Number(m[1]), 0)).toBe(cycles + 1);
      expect(leftLines + sums.reduce((a, m) => a + Number(m[2]), 0)).toBe(cycles);
      expect(log).toContainEqual(expect.stringMatching(/^\.\.\. and \d+ more failed part\(s\) in the last minute \(timeout \d+/));

      // the live page: the same bounded list, the departed summed, events and records bounded
      await feed.close();
      const records = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as FeedRecord);
      const lists = records.filter((r): r is ParticipantsRecord => r.type === 'participants');
      expect(lists.length).toBeLessThanOrEqual(2 * (MEMBERSHIP_LINES_PER_MINUTE + 2));
      const last = lists[lists.length - 1]!;
      expect(last.rows).toHaveLength(1 + DEPARTED_KEPT);
      expect(last.departed).toEqual({ ...c.departed });
      const events = records.filter((r) => r.type === 'event' && (r.kind === 'joined' || r.kind === 'left' || r.kind === 'failure'));
      expect(events.length).toBeLessThanOrEqual(2 * 2 * (MEMBERSHIP_LINES_PER_MINUTE + 1));
      // what the feed keeps of nodes follows the list (its private map of node details)
      expect(feed['nodes'].size).toBeLessThanOrEqual(1 + DEPARTED_KEPT);
    } finally {
      vi.useRealTimers();
    }
  });
});
