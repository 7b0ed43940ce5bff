/**
 * Stragglers and stalls. Unit: the straggler rule and the part deadline, with exact numbers.
 * Live: a node that answers every part 3 s late is dropped within a bounded number of steps and
 * the run's throughput recovers; a node that heartbeats but stops answering is dropped after its
 * measured-speed deadline (seconds), not after stepTimeout.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { StragglerWatch, partDeadlineMs } from '../coordinator/participants/stragglers.js';
import { coordinatorUrl, jobFolder, readSummary, scriptedNode, startCoordinator, type Proc } from './cluster-helpers.js';

describe('StragglerWatch', () => {
  const nodes = new Set(['node-1', 'node-2']);
  it('drops a node after `steps` straggling steps in a row; a normal step resets it', () => {
    const watch = new StragglerWatch({ factor: 10, steps: 3, floorSeconds: 1 });
    const slow = new Map([['thread-1', 0.01], ['node-1', 0.012], ['node-2', 3]]);
    expect(watch.observe(slow, nodes)).toEqual([]);
    expect(watch.observe(slow, nodes)).toEqual([]);
    expect(watch.observe(new Map([['thread-1', 0.01], ['node-2', 0.02]]), nodes)).toEqual([]); // reset
    expect(watch.observe(slow, nodes)).toEqual([]);
    expect(watch.observe(slow, nodes)).toEqual([]);
    const dropped = watch.observe(slow, nodes);
    expect(dropped.map((d) => d.id)).toEqual(['node-2']);
    expect(dropped[0]!.why).toBe("3 steps in a row more than 10x slower than the others (last: 3.00 s for its part, others' median 0.011 s)");
  });
  it('never drops under the floor (a slow network is not straggling), threads, or with factor 0', () => {
    const watch = new StragglerWatch({ factor: 10, steps: 1, floorSeconds: 1 });
    expect(watch.observe(new Map([['thread-1', 0.001], ['node-1', 0.5]]), nodes)).toEqual([]);
    expect(watch.observe(new Map([['thread-1', 5], ['node-1', 0.001]]), nodes)).toEqual([]);
    expect(new StragglerWatch({ factor: 0, steps: 1, floorSeconds: 0 }).observe(new Map([['thread-1', 0.001], ['node-1', 50]]), nodes)).toEqual([]);
  });
  it('part deadlines follow the measured speed, between the floor and stepTimeout', () => {
    const options = { factor: 20, floorSeconds: 5, stepTimeoutSeconds: 120 };
    expect(partDeadlineMs(undefined, 100, options)).toBe(120_000);
    expect(partDeadlineMs({ latency: 0.01, perSample: 0.001 }, 100, options)).toBe(5000);
    expect(partDeadlineMs({ latency: 0.5, perSample: 0.01 }, 100, options)).toBe(30_000);
    expect(partDeadlineMs({ latency: 10, perSample: 0 }, 100, options)).toBe(120_000);
    expect(partDeadlineMs({ latency: 0.5, perSample: 0.01 }, 100, { ...options, factor: 0 })).toBe(120_000);
  });
});

const procs: Proc[] = [];
const sockets: WebSocket[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill();
  for (const s of sockets.splice(0)) s.terminate();
});

const JOB = {
  seed: 2,
  data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
  model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
  compile: { optimizer: 'adam', loss: 'binaryCrossentropy' },
  fit: { epochs: 20, batchSize: 32 },
  metrics: { listen: false },
};

function fakeNode(url: string, name: string, delayMs: (answered: number) => number | undefined): { left: Promise<string> } {
  const node = scriptedNode(url, name, (n) => {
    const delay = delayMs(n);
    return delay === undefined ? undefined : { delayMs: delay };
  });
  sockets.push(node.socket);
  return node;
}

describe('live', { timeout: 300_000 }, () => {
  it('a node 3 s late every step is dropped within a bounded number of steps, and throughput recovers', async () => {
    const job = jobFolder(800, { ...JOB, cluster: { threads: 1, minWorkers: 0, startWorkers: 1, balance: 'proportional', backend: 'wasm', heartbeatInterval: 0.5 } });
    const coordinator = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    procs.push(coordinator);
    const url = await coordinatorUrl(coordinator);
    const slow = fakeNode(url, 'slow', () => 3000);
    const reason = await slow.left;
    expect(reason).toMatch(/is a straggler \(slow\): 3 steps in a row more than 10x slower than the others/);
    const line = (await coordinator.waitFor(/^step (\d+): node-1: is a straggler \(slow\): .* \(straggler\); it is dropped/))[1]!;
    expect(Number(line)).toBeLessThan(100);
    expect(await coordinator.exited, coordinator.output.slice(-2000)).toBe(0);
    const summary = readSummary(job.out);
    expect(summary.failures).toMatchObject({ straggler: 1 });
    expect(summary.participants.find((p) => p.name === 'slow')!.left).toMatch(/^straggler: /);
    // without it every step is fast again: the whole run took far less than a 3 s wait per step
    expect(summary.wallSeconds).toBeLessThan(60);
    expect(summary.epochs).toBe(20);
  });

  it('a node that heartbeats but stops answering is dropped after its deadline (seconds), not stepTimeout', async () => {
    const job = jobFolder(800, { ...JOB, fit: { epochs: 3, batchSize: 32 }, cluster: { threads: 1, minWorkers: 0, startWorkers: 1, backend: 'wasm', heartbeatInterval: 0.5, stepTimeout: 120 } });
    const coordinator = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    procs.push(coordinator);
    const url = await coordinatorUrl(coordinator);
    const t0 = performance.now();
    const stalled = fakeNode(url, 'stalled', (n) => (n < 6 ? 1 : undefined));
    expect(await stalled.left).toMatch(/no answer to step \d+ within 5000 ms/);
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(await coordinator.exited, coordinator.output.slice(-2000)).toBe(0);
    expect(readSummary(job.out).failures).toMatchObject({ timeout: 1 });
  });
});
