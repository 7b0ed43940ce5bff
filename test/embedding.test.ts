/**
 * An embedding model (integer token ids as features) keeps the core guarantee: 1 and 2 threads
 * on wasm give the weights of one plain TensorFlow.js process (cpu). tfjs-backend-wasm cannot
 * train an embedding without dptrain's UnsortedSegmentSum kernel (shared/wasm/tfjs/). Token
 * ids that are not integers in [0, inputDim) are refused, naming the row and feature. Over
 * worker node processes (one killed with SIGKILL), the weights of one process of ours.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { prepareJobData } from '../coordinator/job.js';
import { readCsv } from '../shared/data/csv.js';
import { jobFolder, readRunWeights, readSummary, runKillingOneOfTwoNodes, runWithNodes, runWithOneNode, trackProcesses } from './cluster-helpers.js';
import { modelSpec } from '../coordinator/fit/trainer.js';
import { maxAbsDiff, trainOnLanes } from './thread-runs.js';
import { checkAgainstData } from '../coordinator/validate.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import type { JobConfig } from '../shared/config/schema.js';
import type { Dataset } from '../shared/data/dataset.js';
import { Rng } from '../shared/math/rng.js';
import { weightLayout } from '../shared/model/layout.js';
import { TRAINING_BACKENDS, type TrainingBackend } from './helpers.js';
import { referenceWeights } from './reference.js';

const TOKENS = 6;
const VOCAB = 20;
const TRAIN_ROWS = 130;

/** Rows of 6 token ids; the label: whether token 3 or token 7 occurs. */
function sentences(rows: number): Dataset {
  const rng = new Rng(4);
  const x = new Float32Array(new SharedArrayBuffer(rows * TOKENS * 4));
  const y = new Float32Array(new SharedArrayBuffer(rows * 4));
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < TOKENS; t++) x[r * TOKENS + t] = Math.floor(rng.next() * VOCAB);
    y[r] = Array.from(x.subarray(r * TOKENS, (r + 1) * TOKENS)).some((v) => v === 3 || v === 7) ? 1 : 0;
  }
  return { x, y, features: TOKENS, outputs: 1, train: { start: 0, count: TRAIN_ROWS }, val: { start: TRAIN_ROWS, count: 0 }, test: { start: TRAIN_ROWS, count: rows - TRAIN_ROWS } };
}

function jobConfig(threads: number, inputDim = VOCAB, backend: TrainingBackend = 'wasm'): JobConfig {
  return validateConfig(
    {
      seed: 2,
      data: { label: { column: 'y', positive: '1' } },
      model: { layers: [{ type: 'embedding', inputDim, outputDim: 4 }, { type: 'flatten' }, { units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
      compile: { optimizer: { name: 'adam', learningRate: 0.02 }, loss: 'binaryCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 4, batchSize: 26 },
      cluster: { threads, backend },
    },
    'test config',
  );
}

let dataset: Dataset;
beforeAll(async () => {
  dataset = sentences(150);
  await initBackend('cpu');
});


describe('embedding models, data-parallel', () => {
  it('embeddings first in the flat weights, uniform in [-0.05, 0.05]', () => {
    const entries = weightLayout(modelSpec(jobConfig(1), dataset)).entries;
    expect(entries.map((e) => `${e.name} [${e.shape.join(',')}]`)).toEqual(['embedding_1/embeddings [20,4]', 'dense_3/kernel [24,8]', 'dense_3/bias [8]', 'dense_4/kernel [8,1]', 'dense_4/bias [1]']);
  });

  it.each(TRAINING_BACKENDS.flatMap((backend) => [1, 2].map((threads) => [threads, backend] as const)))('%i thread(s) on %s, 20 steps: the weights of one process (max abs diff < 1e-4), and it learns', async (threads, backend) => {
    await initBackend('cpu');
    const expected = await referenceWeights(jobConfig(1), dataset);
    const fit = await trainOnLanes(jobConfig(threads, VOCAB, backend), dataset, threads);
    expect(fit.steps).toBe(20);
    expect(maxAbsDiff(fit.weights, expected)).toBeLessThan(1e-4);
    expect(fit.history.at(-1)!.values['loss']!).toBeLessThan(fit.history[0]!.values['loss']!);
  });

  it('token ids outside [0, inputDim) or not integers are refused, naming the row and feature', () => {
    const config = jobConfig(1, 10);
    expect(() => checkAgainstData(config, modelSpec(config, dataset), dataset)).toThrow(/model.layers\[0\] \(embedding\) needs integer features in \[0, 10\): row \d+ \(of the prepared data\) has 1\d as feature \d/);
    const fractional = { ...dataset, x: Float32Array.from(dataset.x, (v, i) => (i === 7 ? 2.5 : v)) };
    expect(() => checkAgainstData(jobConfig(1), modelSpec(jobConfig(1), fractional), fractional)).toThrow(/row 1 \(of the prepared data\) has 2.5 as feature 1/);
  });
});

describe.each(TRAINING_BACKENDS)('an embedding model over worker node processes on %s', { timeout: 600_000 }, (backend) => {
  const track = trackProcesses();

  /** 2,000 sentences as CSV (t0..t5, y): 1,600 train, 2 epochs of 32 = 100 steps. */
  function sentenceJob(cluster: Record<string, unknown>) {
    const job = jobFolder(10, {
      ...jobConfig(1),
      data: { label: { column: 'y', positive: '1' }, testSize: 0.2 },
      fit: { epochs: 2, batchSize: 32 },
      cluster: { backend, heartbeatInterval: 0.5, heartbeatTimeout: 60, stepTimeout: 180, waitTimeout: 300, ...cluster },
    });
    const data = sentences(2000);
    const lines = ['t0,t1,t2,t3,t4,t5,y'];
    for (let r = 0; r < 2000; r++) lines.push([...data.x.subarray(r * TOKENS, (r + 1) * TOKENS), data.y[r]].join(','));
    writeFileSync(job.dataFile, lines.join('\n') + '\n');
    const config = validateConfig(parseYaml(readFileSync(job.configFile, 'utf8')), job.configFile);
    return { ...job, config, dataset: prepareJobData(config, readCsv(job.dataFile)).dataset };
  }

  it('1 thread + 1 node, 2 nodes reduced among peers, and 2 nodes of which one is killed with SIGKILL: the weights of one process', async () => {
    const pair = sentenceJob({ threads: 1, minWorkers: 1 });
    const expected = (await trainOnLanes(pair.config, pair.dataset, 'in-process')).weights;
    expect((await runWithOneNode(pair, track, ['--backend', backend])).participants.find((p) => p.kind === 'node')!.samples).toBeGreaterThan(0);
    expect(maxAbsDiff(readRunWeights(pair.out), expected)).toBeLessThan(1e-4);

    const peers = sentenceJob({ threads: 0, minWorkers: 2, balance: 'equal', reduction: 'peers' });
    const { summary, coordinator } = await runWithNodes(peers, ['p1', 'p2'], track, ['--backend', backend]);
    expect(summary.peerSteps, coordinator.output).toBe(summary.steps);
    expect(maxAbsDiff(readRunWeights(peers.out), expected)).toBeLessThan(1e-4);

    const killed = sentenceJob({ threads: 0, minWorkers: 1, startWorkers: 2, balance: 'equal' });
    await runKillingOneOfTwoNodes(killed, 3, track, ['--backend', backend]);
    expect(readSummary(killed.out).steps).toBe(100);
    expect(maxAbsDiff(readRunWeights(killed.out), expected)).toBeLessThan(1e-4);
  });
});
