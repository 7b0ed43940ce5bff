/**
 * A node holding the token still cannot write what it likes into a run's figures: sums out of
 * range are refused like a bad gradient (the part is recomputed), and validation and test
 * figures come from the coordinator's own lane, so summary.json's test figures are what
 * `coordinator evaluate` gives on the saved model.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { evaluateCsv, loadSavedModel } from '../coordinator/saved-model.js';
import { sumsProblem } from '../shared/model/sums.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { coordinatorUrl, jobFolder, readSummary, scriptedNode, startCoordinator, type Proc } from './cluster-helpers.js';

const spec: ModelSpec = { inputDim: 3, layers: [{ units: 1, activation: 'sigmoid', useBias: true }], loss: 'binaryCrossentropy', metrics: ['accuracy', 'meanSquaredError'] };

describe('sumsProblem', () => {
  it('accepts what a float32 engine can produce and refuses the rest', () => {
    expect(sumsProblem(spec, 10, 4.2, [7, 1.5])).toBeUndefined();
    expect(sumsProblem(spec, 10, 0, [10, 0])).toBeUndefined();
    expect(sumsProblem(spec, 10, 1e300, [7, 1])).toBe('loss sum 1e+300 for 10 samples is outside [0, 3.4028234663852886e+39] (binaryCrossentropy)');
    expect(sumsProblem(spec, 10, -1, [7, 1])).toMatch(/^loss sum -1 for 10 samples is outside/);
    expect(sumsProblem(spec, 10, 1, [-1e6, 1])).toBe('accuracy sum -1000000 for 10 samples is outside [0, 10]');
    expect(sumsProblem(spec, 10, 1, [10.5, 1])).toMatch(/^accuracy sum 10\.5/);
    expect(sumsProblem(spec, 10, 1, [5, -2])).toMatch(/^meanSquaredError sum -2/);
    expect(sumsProblem(spec, 10, 1, [5])).toBe("1 metric sums, the model's metrics take 2");
    expect(sumsProblem({ ...spec, loss: 'cosineSimilarity' }, 10, -9.5, [5, 1])).toBeUndefined();
    expect(sumsProblem({ ...spec, loss: 'cosineSimilarity' }, 10, -11, [5, 1])).toMatch(/outside \[-10, 10\]/);
  });
});

const procs: Proc[] = [];
const sockets: WebSocket[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill();
  for (const s of sockets.splice(0)) s.terminate();
});

/** A node with the token whose gradients are valid but whose sums are `lie`s (scriptedNode: its evaluations claim an accuracy of 1). */
function lyingNode(url: string, lie: { lossSum?: number; accuracySum?: number; gradient?: number }): { left: Promise<string>; evaluations: () => number } {
  const node = scriptedNode(url, 'liar', () => ({
    ...(lie.lossSum !== undefined ? { lossSum: lie.lossSum } : {}),
    ...(lie.accuracySum !== undefined ? { metricSums: [lie.accuracySum] } : {}),
    value: lie.gradient ?? 1e-6,
  }));
  sockets.push(node.socket);
  return node;
}

const JOB = {
  seed: 4,
  data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
  model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
  compile: { optimizer: 'adam', loss: 'binaryCrossentropy' },
  fit: { epochs: 3, batchSize: 32, validationSplit: 0.2 },
  cluster: { threads: 1, minWorkers: 0, startWorkers: 1, backend: 'wasm', heartbeatInterval: 0.5 },
  metrics: { listen: false },
};

describe('hostile sums from a node with the token', { timeout: 300_000 }, () => {
  for (const [what, lie, logged] of [
    ['a loss sum of 1e300', { lossSum: 1e300 }, /returned sums that cannot be: loss sum 1e\+300 for \d+ samples is outside/],
    ['an accuracy sum of -1e6', { accuracySum: -1e6 }, /returned sums that cannot be: accuracy sum -1000000 for \d+ samples is outside \[0, \d+\]/],
  ] as const) {
    it(`${what} is refused like a bad gradient; its part is recomputed and history stays true`, async () => {
      const job = jobFolder(600, JOB);
      const coordinator = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
      procs.push(coordinator);
      const liar = lyingNode(await coordinatorUrl(coordinator), lie);
      expect(await liar.left).toMatch(logged);
      await coordinator.waitFor(new RegExp(`${logged.source}.* \\(out_of_range\\); its part is recomputed`));
      expect(await coordinator.exited, coordinator.output.slice(-2000)).toBe(0);
      expect(readSummary(job.out).failures).toMatchObject({ out_of_range: 1 });
      const history = JSON.parse(readFileSync(join(job.out, 'history.json'), 'utf8')) as { loss: number[]; accuracy: number[] };
      for (const v of history.loss) expect(v).toBeLessThan(2);
      for (const v of history.accuracy) expect(v).toBeGreaterThanOrEqual(0);
    });
  }

  it('cluster.aggregation: median keeps training on course against a node sending gradients of 1e30, and says so', async () => {
    const job = jobFolder(600, { ...JOB, fit: { epochs: 20, batchSize: 32 }, cluster: { ...JOB.cluster, threads: 2, aggregation: 'median', balance: 'equal' } });
    const coordinator = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    procs.push(coordinator);
    lyingNode(await coordinatorUrl(coordinator), { gradient: 1e30 });
    expect(await coordinator.exited, coordinator.output.slice(-2000)).toBe(0);
    expect(coordinator.output).toMatch(/warning: step \d+: node-1's gradient norm is [\d.e+]+x the allowed 1 x median norm; clipped/);
    const summary = readSummary(job.out);
    expect(summary.participants.find((p) => p.name === 'liar')!.samples).toBeGreaterThan(0);
    expect(summary.test['accuracy']).toBeGreaterThan(0.7);
  });

  it('validation and test run on the coordinator\'s lane: summary.json equals coordinator evaluate on the saved model', async () => {
    const job = jobFolder(600, JOB);
    const coordinator = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    procs.push(coordinator);
    const liar = lyingNode(await coordinatorUrl(coordinator), {});
    expect(await coordinator.exited, coordinator.output.slice(-2000)).toBe(0);
    expect(liar.evaluations()).toBe(0);
    const summary = readSummary(job.out);
    expect(summary.participants.find((p) => p.name === 'liar')!.samples).toBeGreaterThan(0); // it did train
    // the run's own test rows, as a CSV for `coordinator evaluate`
    const lines = readFileSync(job.dataFile, 'utf8').split('\n');
    const split = JSON.parse(readFileSync(join(job.out, 'split.json'), 'utf8')) as { test: number[] };
    const testCsv = join(job.dir, 'test.csv');
    writeFileSync(testCsv, [lines[0], ...split.test.map((line) => lines[line - 1])].join('\n') + '\n');
    const model = await loadSavedModel(job.out, 'wasm');
    const again = await evaluateCsv(model, testCsv);
    expect(again.rows).toBe(summary.testRows);
    expect(again.values['accuracy']).toBe(summary.test['accuracy']);
    expect(again.values['loss']).toBeCloseTo(summary.test.loss, 6);
  });
});
