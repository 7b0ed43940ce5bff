/**
 * Remote worker nodes, with real processes on 127.0.0.1: a coordinator process and worker
 * processes (`bin/coordinator.js start --listen`, `bin/worker.js start --connect`).
 * - Synchronous: nodes (with or without threads) give the single-process reference's weights,
 *   also when they send their gradients in parts (small buckets here, so that every step has one).
 * - Faults: kill -9 a worker mid-epoch; every step is applied once and the weights still equal
 *   the reference (its part of the step in flight is recomputed). Both workers train from the
 *   first step (startWorkers 2) whichever connects first, and the survivor goes on (minWorkers 1).
 * - Membership: a worker started mid-run takes part from then on.
 * - Hostile peers: bad token, other protocol version, garbage and truncated frames, an
 *   oversize frame, a gradient of the wrong length, a gradient part that does not fit and a NaN
 *   gradient are rejected with a logged reason while training goes on.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parse as parseYaml } from 'yaml';
import { prepareJobData } from '../coordinator/job.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import type { JobConfig } from '../shared/config/schema.js';
import { readCsv } from '../shared/data/csv.js';
import { encodeFloat16 } from '../shared/math/float16.js';
import { stepsPerEpoch } from '../shared/plan/split-plan.js';
import { PROTOCOL_VERSION, type Message } from '../shared/protocol/schemas.js';
import { decodeMessage, encodeMessage } from '../shared/protocol/codec.js';
import {
  TOKEN,
  coordinatorUrl,
  jobFolder,
  maxAbsDiff,
  readRunWeights,
  readSummary,
  startCoordinator,
  startWorker,
  type Proc,
} from './cluster-helpers.js';
import { referenceWeights } from './reference.js';

const procs: Proc[] = [];
const track = (p: Proc): Proc => (procs.push(p), p);

afterEach(async () => {
  for (const p of procs.splice(0)) p.kill();
});

beforeAll(async () => {
  await initBackend('cpu');
});

function jobConfig(fit: { epochs: number; batchSize: number }, cluster: Record<string, unknown>): Record<string, unknown> {
  return {
    seed: 5,
    data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, testSize: 0.2, standardize: true },
    model: { layers: [{ units: 16, activation: 'relu' }, { units: 8, activation: 'tanh' }, { units: 1, activation: 'sigmoid' }] },
    compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'binaryCrossentropy' },
    fit,
    cluster: { backend: 'wasm', heartbeatInterval: 0.5, heartbeatTimeout: 60, stepTimeout: 180, waitTimeout: 300, ...cluster },
  };
}

/** The coordinator's config and data set, as it prepares them from the folder's files. */
function prepared(configFile: string, dataFile: string): { config: JobConfig; dataset: ReturnType<typeof prepareJobData>['dataset'] } {
  const config = validateConfig(parseYaml(readFileSync(configFile, 'utf8')), configFile);
  return { config, dataset: prepareJobData(config, readCsv(dataFile)).dataset };
}

/** Batch size that gives exactly `steps` steps per epoch for `rows` rows. */
function batchFor(rows: number, steps: number): number {
  for (let b = Math.ceil(rows / steps); b > 0; b--) if (stepsPerEpoch(rows, b) === steps) return b;
  throw new Error(`no batch size gives ${steps} steps for ${rows} rows`);
}

/** Makes a job folder with a batch size that gives `stepsPerEpochWanted` steps per epoch. */
function jobWithSteps(rows: number, epochs: number, stepsPerEpochWanted: number, cluster: Record<string, unknown>) {
  const probe = jobFolder(rows, jobConfig({ epochs, batchSize: 32 }, cluster));
  const { dataset } = prepared(probe.configFile, probe.dataFile);
  const batchSize = batchFor(dataset.train.count, stepsPerEpochWanted);
  const job = jobFolder(rows, jobConfig({ epochs, batchSize }, cluster));
  return { ...job, ...prepared(job.configFile, job.dataFile) };
}

// Generous limits: these start several Node processes, which can take minutes on a loaded 2-core machine.
describe('remote worker nodes (real processes on 127.0.0.1)', { timeout: 900_000 }, () => {
  // One thread beside the nodes: threads and nodes in one step, split by measured speed.
  // (Nodes alone, without threads, are the kill -9 test below.)
  for (const threads of [1]) {
    it(`${threads} thread(s) + 2 worker processes, 30 steps: weights equal the single-process reference`, async () => {
      // 512-byte buckets: each node sends the last two layers' gradients ahead of the first's
      const job = jobWithSteps(600, 2, 15, { threads, minWorkers: 2, balance: 'auto', gradientBucketBytes: 512 });
      const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
      const url = await coordinatorUrl(coordinator);
      const workers = ['w1', 'w2'].map((name) => track(startWorker(name, url, job.tokenFile)));
      expect(await coordinator.exited, coordinator.output).toBe(0);
      for (const w of workers) expect(await w.exited, w.output).toBe(0);

      const summary = readSummary(job.out);
      expect(summary.steps).toBe(30);
      expect(summary.samples).toBe(2 * job.dataset.train.count);
      const nodes = summary.participants.filter((p) => p.kind === 'node');
      expect(nodes).toHaveLength(2);
      // every training sample of every epoch was computed exactly once, by somebody
      expect(summary.participants.reduce((a, p) => a + p.samples, 0)).toBe(2 * job.dataset.train.count);
      for (const n of nodes) expect(n.samples).toBeGreaterThan(0);
      const expected = await referenceWeights(job.config, job.dataset);
      expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
    });
  }

  it('kill -9 of one of two workers mid-epoch: every step applied once, weights equal the reference', async () => {
    // Both nodes from the first step (startWorkers 2), and the survivor alone may go on (minWorkers 1)
    const job = jobWithSteps(2100, 2, 50, { threads: 0, minWorkers: 1, startWorkers: 2, balance: 'equal', gradientBucketBytes: 512 });
    const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
    const url = await coordinatorUrl(coordinator);
    const victim = track(startWorker('victim', url, job.tokenFile, ['--verbose']));
    const survivor = track(startWorker('survivor', url, job.tokenFile));
    await victim.waitFor(/^\[worker\] step 30:/, 600_000); // step 30 of 100: mid-way through epoch 1
    victim.kill('SIGKILL');
    expect(await coordinator.exited, coordinator.output).toBe(0);
    expect(await survivor.exited, survivor.output).toBe(0);

    expect(coordinator.output).toContain('2 worker node(s) connected; training');
    expect(coordinator.output).toMatch(/\(victim\) left at step \d+: disconnected/);
    const summary = readSummary(job.out);
    expect(summary.steps).toBe(100);
    expect(summary.samples).toBe(2 * job.dataset.train.count);
    expect(summary.participants.reduce((a, p) => a + p.samples, 0)).toBe(2 * job.dataset.train.count);
    const victimStats = summary.participants.find((p) => p.name === 'victim')!;
    expect(victimStats.left).toMatch(/disconnected/);
    expect(victimStats.firstStep).toBe(0);
    expect(victimStats.lastStep).toBeLessThan(99);
    expect(summary.participants.find((p) => p.name === 'survivor')!.lastStep).toBe(99);
    const expected = await referenceWeights(job.config, job.dataset);
    expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
  });

  it('uses a worker that joins mid-run, and rejects hostile peers with a reason while training goes on', async () => {
    // More epochs than the test needs: it stops the run with SIGTERM once every peer has been seen,
    // so the run outlasts the test's peers on a machine of any speed.
    // The nodes send float16 gradients here: the run must still learn (accuracy below).
    const job = jobFolder(1200, jobConfig({ epochs: 10_000, batchSize: 32 }, { threads: 1, minWorkers: 1, maxMessageBytes: 1 << 20, gradientDtype: 'float16' }));
    const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
    const url = await coordinatorUrl(coordinator);
    track(startWorker('first', url, job.tokenFile));
    await coordinator.waitFor(/^Epoch 1\//);
    const late = track(startWorker('late', url, job.tokenFile));
    await late.waitFor(/connected to/);

    const hello = (over: Record<string, unknown> = {}) => ({ type: 'hello', version: PROTOCOL_VERSION, token: TOKEN, name: 'evil', backend: 'wasm', ...over });
    const packr = new Packr({ useRecords: false });
    const frames: [string, Uint8Array, RegExp][] = [
      ['bad token', packr.pack(hello({ token: 'wrong-token-0000000000' })), /rejected peer .*: bad token/],
      ['other version', packr.pack(hello({ version: PROTOCOL_VERSION + 1 })), new RegExp(`rejected peer .*: protocol version ${PROTOCOL_VERSION + 1} is not supported`)],
      ['garbage', Uint8Array.from([0xc1, 0x00, 0xff, 0x13]), /rejected peer .*: (not a msgpack message|unknown message type)/],
      ['truncated', packr.pack(hello()).subarray(0, 20), /rejected peer .*: not a msgpack message/],
      ['oversize', new Uint8Array(2 << 20), /rejected peer .*: Max payload size exceeded/],
    ];
    for (const [what, frame, logged] of frames) {
      const answer = await rawPeer(url, [frame]);
      expect(answer.closed, what).toBe(true);
      await coordinator.waitFor(logged);
    }
    // Authenticated peers that misbehave at their first step.
    for (const [what, bad, logged, misfit] of [
      ['wrong-length gradient', (g: Float32Array) => g.subarray(1), /gradient has \d+ values, the model has \d+ parameters \(shape\)/, false],
      ['NaN gradient (float16)', (g: Float32Array) => g.fill(Number.NaN, 3, 4), /node-\d+: returned a non-finite gradient \(value 3 is NaN, loss sum [\d.e+-]+\) \(non_finite\)/, false],
      ['gradient part that does not fit', (g: Float32Array) => g, /gradient part \d+\.\.\d+ does not end where the next values start \(\d+\) \(shape\)/, true],
    ] as const) {
      const peer = await badWorker(url, bad, misfit);
      expect(peer.droppedWith, what).toMatch(/./);
      await coordinator.waitFor(logged);
    }

    coordinator.kill('SIGTERM');
    expect(await coordinator.exited, coordinator.output).toBe(0);
    const summary = readSummary(job.out);
    expect(summary.interrupted).toBe(true);
    expect(summary.epochs).toBeGreaterThanOrEqual(1);
    expect(summary.steps).toBeGreaterThanOrEqual(summary.epochs * stepsPerEpoch(summary.trainRows, 32));
    expect(summary.samples).toBeGreaterThanOrEqual(summary.epochs * summary.trainRows);
    // every step's samples were computed exactly once, by somebody
    expect(summary.participants.reduce((a, p) => a + p.samples, 0)).toBe(summary.samples);
    const lateStats = summary.participants.find((p) => p.name === 'late')!;
    expect(lateStats.firstStep).toBeGreaterThan(0);
    expect(lateStats.samples).toBeGreaterThan(0);
    expect(summary.rejectedPeers).toMatchObject({ auth: 1, version: 1, malformed: 2, oversize: 1 });
    expect(summary.failures).toMatchObject({ shape: 2, non_finite: 1 });
    const history = JSON.parse(readFileSync(join(job.out, 'history.json'), 'utf8')) as { accuracy: number[] };
    expect(history.accuracy.at(-1)).toBeGreaterThan(0.7);
  });
});

/** Opens a connection, sends raw frames, and reports whether the server closed it. */
function rawPeer(url: string, frames: Uint8Array[]): Promise<{ closed: boolean; messages: Message[] }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    const messages: Message[] = [];
    socket.on('open', () => frames.forEach((f) => socket.send(f)));
    socket.on('message', (data: Buffer) => messages.push(decodeMessage(data)));
    socket.on('close', () => resolve({ closed: true, messages }));
    socket.on('error', () => undefined);
    setTimeout(() => reject(new Error(`server did not close the connection; got ${JSON.stringify(messages.map((m) => m.type))}`)), 300_000);
  });
}

/**
 * A peer that authenticates, then answers its first step with a corrupted gradient, or (misfit)
 * first sends a part of it that stops one value short of the gradient's end.
 */
function badWorker(url: string, corrupt: (g: Float32Array) => Float32Array, misfit = false): Promise<{ droppedWith: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    let parameters = 0;
    let features = 0;
    let dropped = '';
    socket.on('open', () => socket.send(encodeMessage({ type: 'hello', version: PROTOCOL_VERSION, token: TOKEN, name: 'evil', backend: 'wasm' })));
    socket.on('message', (data: Buffer) => {
      const m = decodeMessage(data);
      if (m.type === 'job') ({ parameters, features } = m);
      if (m.type === 'error') dropped = m.message;
      if (m.type === 'step') {
        const count = m.rows.length + m.x.length / features;
        const gradient = corrupt(new Float32Array(parameters).fill(0.01));
        // encode by hand: encodeMessage is for valid messages, but bytes are bytes. A gradient of
        // the job's length goes as float16 (as the job asks), a shorter one as float32.
        const half = gradient.length === parameters ? encodeFloat16(gradient) : undefined;
        const bytes = half ? half.halves : gradient;
        const packr = new Packr({ useRecords: false, moreTypes: false });
        if (misfit) {
          socket.send(packr.pack({ type: 'gradient_part', step: m.step, offset: 1, dtype: 'float32', scaleExp: 0, values: new Uint8Array(4 * (parameters - 2)) }));
          return;
        }
        const frame = packr.pack({
          type: 'gradient',
          step: m.step,
          count,
          lossSum: 0.5 * count,
          metricSums: [count / 2],
          computeMs: 1,
          dtype: half ? 'float16' : 'float32',
          scaleExp: half ? half.scaleExp : 0,
          parts: 0,
          gradient: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        });
        socket.send(frame);
      }
    });
    socket.on('close', () => resolve({ droppedWith: dropped }));
    socket.on('error', () => undefined);
    setTimeout(() => reject(new Error("the bad worker was never dropped")), 300_000);
  });
}

