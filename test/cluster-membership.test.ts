/**
 * Cluster membership: how many worker nodes a step waits for. `startWorkers` gates the first step
 * only; after it `minWorkers` are enough, so a run that started with two nodes goes on with one.
 */
import { describe, expect, it } from 'vitest';
import type { RowRange } from '../shared/data/dataset.js';
import { Cluster, type ClusterOptions } from '../coordinator/participants/cluster.js';
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
});
