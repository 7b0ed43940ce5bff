/**
 * cluster.reduction: peers with real worker processes on 127.0.0.1: the nodes all-reduce among
 * themselves and step the optimizer themselves. The same job reduced through the coordinator
 * gives the same bits (same membership, same split); the coordinator's link carries about one
 * gradient a step instead of n; a node killed mid-run costs one step through the coordinator and
 * the run ends with the weights of one process.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/backend.js';
import { weightLayout } from '../shared/model/layout.js';
import { modelSpec } from '../coordinator/fit/trainer.js';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { prepareJobData } from '../coordinator/job.js';
import { validateConfig } from '../shared/config/load.js';
import { readCsv } from '../shared/data/csv.js';
import { coordinatorUrl, jobFolder, selfSignedCertificate, maxAbsDiff, readRunWeights, readSummary, runWithNodes, spawnNode, startCoordinator, startWorker, type Proc } from './cluster-helpers.js';
import { COORDINATOR_BIN } from './helpers.js';
import { referenceWeights } from './reference.js';
import { trainOnLanes } from './thread-runs.js';

const procs: Proc[] = [];
const track = (p: Proc): Proc => (procs.push(p), p);

afterEach(() => {
  for (const p of procs.splice(0)) p.kill();
});

beforeAll(async () => {
  await initBackend('cpu');
});

const WIDE = [{ units: 256, activation: 'relu' }, { units: 128, activation: 'relu' }, { units: 1, activation: 'sigmoid' }];

/** Smooth units and SGD: runs with different splits stay within 1e-4 of one process over hundreds of steps (see the joining test). */
const SMOOTH = [{ units: 64, activation: 'tanh' }, { units: 32, activation: 'tanh' }, { units: 1, activation: 'sigmoid' }];
const SGD = { name: 'sgd', learningRate: 0.05, momentum: 0.9 };

function peersJob(reduction: 'peers' | 'coordinator' | 'auto', cluster: Record<string, unknown> = {}, rows = 800, epochs = 2, optimizer: Record<string, unknown> = { name: 'adam', learningRate: 0.003 }, layers = WIDE, extra: Record<string, unknown> = {}) {
  const job = jobFolder(rows, {
    ...extra,
    seed: 5,
    data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, testSize: 0.2, standardize: true },
    model: { layers },
    compile: { optimizer, loss: 'binaryCrossentropy', ...(extra.compile as Record<string, unknown> | undefined) },
    fit: { epochs, batchSize: 40 },
    cluster: { backend: 'wasm', threads: 1, minWorkers: 3, balance: 'equal', reduction, heartbeatInterval: 0.5, heartbeatTimeout: 60, stepTimeout: 120, waitTimeout: 300, ...cluster },
  });
  const config = validateConfig(parseYaml(readFileSync(job.configFile, 'utf8')), job.configFile);
  return { ...job, config, dataset: prepareJobData(config, readCsv(job.dataFile)).dataset };
}

describe('reduction among peers (real processes on 127.0.0.1)', { timeout: 900_000 }, () => {
  it('1 thread + 3 nodes: every step among peers, the bits of the same run through the coordinator, about S a step on its link instead of 3S', async () => {
    // Adam with amsgrad: the state nodes get carries three slots (m, v, vHat); a warmup and
    // cosine schedule and a global clip: each node steps on the rate its round names, clipped
    const adam = { name: 'adam', learningRate: 0.001, amsgrad: true, globalClipnorm: 0.05 };
    const compile = { compile: { learningRateSchedule: { name: 'cosineDecay', decaySteps: 20, warmupTarget: 0.004, warmupSteps: 8 } } };
    const peers = peersJob('peers', {}, 800, 2, adam, WIDE, compile);
    const star = peersJob('coordinator', {}, 800, 2, adam, WIDE, compile);
    const a = await runWithNodes(peers, ['w1', 'w2', 'w3'], track);
    const b = await runWithNodes(star, ['w1', 'w2', 'w3'], track);
    expect(a.summary.steps).toBe(b.summary.steps);
    expect(a.summary.peerSteps).toBe(a.summary.steps);
    expect(b.summary.peerSteps).toBe(0);
    expect(a.coordinator.output).not.toMatch(/reduced through the coordinator/);
    const wa = readRunWeights(peers.out);
    expect(Buffer.from(wa.buffer).equals(Buffer.from(readRunWeights(star.out).buffer))).toBe(true);
    // every node's own steps gave the coordinator's weights, bit for bit (the commit's check)
    for (const w of a.workers) expect(w.output).not.toMatch(/differ from the coordinator's|needs the coordinator's state again/);

    // traffic on the coordinator's node connections: gradients in, weights out
    const spec = modelSpec(peers.config, peers.dataset);
    const S = 4 * weightLayout(spec).size;
    const steps = a.summary.steps;
    // star: each node's gradient in and new weights out, every step
    expect(b.summary.traffic.node.received / steps).toBeGreaterThan(2.9 * S);
    expect(b.summary.traffic.node.sent / steps).toBeGreaterThan(2.9 * S);
    // peers: the reduced gradient in (S), the thread's block out (S), and once per node the state (4S)
    expect(a.summary.traffic.node.received / steps).toBeLessThan(1.15 * S);
    const shards = 3 * peers.dataset.train.count * (peers.dataset.features + 1) * 4;
    expect((a.summary.traffic.node.sent - shards - 3 * 4 * S) / steps).toBeLessThan(1.3 * S);
    // every node did compute, and the data went to each once
    for (const p of a.summary.participants.filter((q) => q.kind === 'node')) expect(p.samples).toBeGreaterThan(0);
  });

  it('reduction auto (the default): among peers from nodes x S = 16 MiB on (2 nodes x 8.4 MiB), through the coordinator below, saying why', async () => {
    // 45-2048-1024-1: 2.19M parameters, S = 8.4 MiB
    const big = peersJob('auto', { minWorkers: 2, threads: 0 }, 240, 1, { name: 'adam', learningRate: 0.001 }, [{ units: 2048, activation: 'relu' }, { units: 1024, activation: 'relu' }, { units: 1, activation: 'sigmoid' }]);
    const a = await runWithNodes(big, ['w1', 'w2'], track);
    expect(a.summary.steps).toBeGreaterThan(0);
    expect(a.summary.peerSteps).toBe(a.summary.steps);
    expect(a.coordinator.output).not.toMatch(/reduction auto/);
    const small = peersJob('auto', { minWorkers: 2, threads: 0 }, 240, 1);
    const b = await runWithNodes(small, ['w1', 'w2'], track);
    expect(b.summary.peerSteps).toBe(0);
    expect(b.coordinator.output).toMatch(/step 0: reduced through the coordinator: reduction auto: 2 nodes x 0\.\d+ MiB of gradient = 0\.\d+ MiB a step on the coordinator's link, under the 16\.0 MiB from which nodes reduce among themselves/);
  });

  it('a node frozen mid-round, then killed: that step goes through the coordinator, the rest among the two left, the weights of one process', async () => {
    const job = peersJob('peers', { threads: 0, minWorkers: 2, startWorkers: 3 }, 1200);
    const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
    const url = await coordinatorUrl(coordinator);
    const victim = track(startWorker('victim', url, job.tokenFile, ['--metrics-listen', 'off', '--verbose']));
    const others = ['w2', 'w3'].map((name) => track(startWorker(name, url, job.tokenFile, ['--metrics-listen', 'off'])));
    await victim.waitFor(/^\[worker\] step 20 \(peers\):/m, 600_000);
    // frozen mid-round (or at the start of the next): the round cannot complete, whatever it had
    // received; the nodes waiting on it are not blamed; the step through the coordinator finds it
    victim.kill('SIGSTOP');
    await coordinator.waitFor(/the round among peers failed/, 300_000);
    await coordinator.waitFor(/\(victim\) left at step \d+: timeout/, 300_000);
    victim.kill('SIGKILL');
    expect(await coordinator.exited, coordinator.output).toBe(0);
    for (const w of others) expect(await w.exited, w.output).toBe(0);
    expect(coordinator.output).not.toMatch(/\((w2|w3)\) left/);
    const summary = readSummary(job.out);
    const steps = summary.steps;
    expect(summary.samples).toBe(2 * job.dataset.train.count);
    expect(summary.participants.reduce((a, p) => a + p.samples, 0)).toBe(2 * job.dataset.train.count);
    // only the step the victim froze in went through the coordinator
    expect(summary.peerSteps).toBe(steps - 1);
    const expected = await referenceWeights(job.config, job.dataset);
    expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
    // the survivors stepped from the coordinator's state: no weight check failed
    for (const w of others) expect(w.output).not.toMatch(/differ from the coordinator's/);
  });

  /**
   * Three nodes, one of which fails at an exact point of step 5's round (worker/fault-point.ts).
   * The round is not committed, nobody steps, step 5 goes through the coordinator without the
   * victim, and the run ends with the weights of one process.
   */
  async function failAtStep5(point: string, epochs = 2, cluster: Record<string, unknown> = {}) {
    const job = peersJob('peers', { threads: 0, minWorkers: 2, startWorkers: 3, ...cluster }, 800, epochs, SGD, SMOOTH);
    const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
    const url = await coordinatorUrl(coordinator);
    const victim = track(startWorker('victim', url, job.tokenFile, ['--metrics-listen', 'off'], { DPTRAIN_FAULT_POINT: point }));
    const others = ['w2', 'w3'].map((name) => track(startWorker(name, url, job.tokenFile, ['--metrics-listen', 'off'])));
    expect(await coordinator.exited, coordinator.output).toBe(0);
    for (const w of others) expect(await w.exited, w.output).toBe(0);
    expect(coordinator.output).toMatch(/step 5: the round among peers failed/);
    expect(coordinator.output).not.toMatch(/\((w2|w3)\) left/);
    const summary = readSummary(job.out);
    expect(summary.samples).toBe(epochs * job.dataset.train.count);
    const expected = (await trainOnLanes(job.config, job.dataset, 'in-process')).weights;
    expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
    // the survivors stepped on the coordinator's weights after step 5: no weight check failed
    for (const w of others) expect(w.output).not.toMatch(/differ from the coordinator's/);
    return { summary, coordinator, victim, others };
  }

  it('a node that owns a shard killed once it holds a block of another: step 5 through the coordinator, the weights of one process', async () => {
    const { summary, victim } = await failAtStep5('kill-after-block@5');
    expect(await victim.exited).toBe(null); // SIGKILL
    expect(summary.peerSteps).toBe(summary.steps - 1);
  });

  it('a node killed during the all-gather, its shard sent to one peer only: nobody steps twice, the weights of one process', async () => {
    const { summary, victim } = await failAtStep5('kill-mid-gather@5');
    expect(await victim.exited).toBe(null);
    expect(summary.peerSteps).toBe(summary.steps - 1);
  });

  it('a straggler dropped at step 5 whose frames then arrive: refused as late, it rejoins later, the weights of one process', async () => {
    // the victim's block of step 5 comes 3 s late: past its 1 s deadline in the round and in the
    // step through the coordinator after it; the others are rounds further on by then
    const { coordinator, victim, others } = await failAtStep5('stall-block@5:3000', 80, { stepDeadline: { factor: 20, floorSeconds: 1 } });
    expect(coordinator.output).toMatch(/\(victim\) left at step \d+: timeout: no answer to step 5/);
    expect(others.map((w) => w.output).join('\n')).toMatch(/a (block|reduced) frame of epoch \d+ step 5 from node-\d+ came after its round: dropped/);
    // it took part again, among peers, before the end
    expect(await victim.exited, victim.output).toBe(0);
    expect(coordinator.output.match(/\(victim, [^)]*\) joined/g), coordinator.output).toHaveLength(2);
    // rejoined under a new id, it reconnects to its peers as that id: no round fails for frames
    // that claim the old one
    expect(coordinator.output.match(/the round among peers failed/g), coordinator.output).toHaveLength(1);
  });

  it('a node joining mid-run gets the state, the next step is a new epoch among three, the weights of one process', async () => {
    // Long enough that the late node joins well before the end on a loaded machine. Over hundreds
    // of steps the rounding of another split (the join's step is the machine's) is enough to tip
    // a ReLU or, with Adam, a tiny second moment, and runs part by far more than 1e-4, from one
    // process as from a run through the coordinator (measured: 0.03 to 0.3); tanh units and SGD
    // keep one process's path.
    const job = peersJob('peers', { threads: 0, minWorkers: 2 }, 1200, 20, SGD, SMOOTH);
    const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
    const url = await coordinatorUrl(coordinator);
    const first = ['w1', 'w2'].map((name) => track(startWorker(name, url, job.tokenFile, ['--metrics-listen', 'off', ...(name === 'w1' ? ['--verbose'] : [])])));
    await first[0]!.waitFor(/^\[worker\] step 5 \(peers\):/m, 600_000);
    const joiner = track(startWorker('late', url, job.tokenFile, ['--metrics-listen', 'off', '--verbose']));
    expect(await coordinator.exited, coordinator.output).toBe(0);
    for (const w of [...first, joiner]) expect(await w.exited, w.output).toBe(0);
    const summary = readSummary(job.out);
    expect(summary.peerSteps, coordinator.output).toBe(summary.steps);
    expect(summary.participants.find((p) => p.name === 'late')!.samples).toBeGreaterThan(0);
    expect(joiner.output).toMatch(/step \d+ \(peers\)/);
    const expected = (await trainOnLanes(job.config, job.dataset, 'in-process')).weights;
    expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
  });

  it('with cluster.tls: nodes with --peer-cert reduce among peers over wss://; a node without one sends its steps through the coordinator, named', async () => {
    const run = async (names: string[], withPeerTls: (name: string) => boolean) => {
      const job = peersJob('peers', { threads: 1, minWorkers: names.length }, 400, 1, SGD, SMOOTH);
      const { cert, key } = selfSignedCertificate(job.dir);
      const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out, '--tls-cert', cert, '--tls-key', key]));
      const url = await coordinatorUrl(coordinator);
      expect(url).toMatch(/^wss:\/\//);
      const workers = names.map((name) => track(startWorker(name, url, job.tokenFile, ['--metrics-listen', 'off', '--ca', cert, ...(withPeerTls(name) ? ['--peer-cert', cert, '--peer-key', key] : [])])));
      expect(await coordinator.exited, coordinator.output).toBe(0);
      for (const w of workers) expect(await w.exited, w.output).toBe(0);
      return { summary: readSummary(job.out), coordinator, workers };
    };
    const encrypted = await run(['w1', 'w2'], () => true);
    expect(encrypted.summary.peerSteps).toBe(encrypted.summary.steps);
    for (const w of encrypted.workers) expect(w.output).toMatch(/peer endpoint on port \d+ \(wss:\/\/\)/);
    const mixed = await run(['w1', 'w2'], (name) => name === 'w1');
    expect(mixed.summary.peerSteps).toBe(0);
    expect(mixed.coordinator.output).toMatch(/reduced through the coordinator: node-\d has a peer endpoint without TLS, and this job's connections use it/);
  });

  it('the coordinator killed with SIGKILL mid-run and resumed: the nodes reconnect, get its state, and the run ends with the weights of one process', async () => {
    const job = peersJob('peers', { threads: 0, minWorkers: 2 }, 1200, 6, SGD, SMOOTH, { checkpoint: { everySteps: 4, keep: 3 } });
    const first = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
    const url = await coordinatorUrl(first);
    const nodes = ['w1', 'w2'].map((name) => track(startWorker(name, url, job.tokenFile, ['--metrics-listen', 'off', '--retries', '30'])));
    await first.waitFor(/^Epoch 1\//m, 300_000);
    first.kill('SIGKILL');
    expect(await first.exited).toBe(null);
    // on the same address: the nodes reconnect there by themselves
    const again = track(spawnNode('coordinator', COORDINATOR_BIN, ['start', '--resume', job.out, '--listen', new URL(url).host, '--token-file', job.tokenFile]));
    expect(await again.exited, again.output).toBe(0);
    for (const w of nodes) expect(await w.exited, w.output).toBe(0);
    expect(again.output).toMatch(/resuming from .*step-\d+\.ckpt/);
    const summary = readSummary(job.out);
    expect(summary.peerSteps, again.output).toBeGreaterThan(0);
    const expected = (await trainOnLanes(job.config, job.dataset, 'in-process')).weights;
    expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
  });
});
