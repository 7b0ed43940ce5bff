/**
 * Worker nodes on the webgpu backend take part in training with the core guarantee: a job with a
 * coordinator thread (wasm) and a node on webgpu, two coordinator threads on webgpu (Dawn runs
 * in Piscina threads), and a node with `--devices 2` on webgpu, give
 * the weights of one process (cpu, stock tfjs) within float32 rounding. On Mesa's software
 * adapter where there is no GPU (CI installs it and requires these tests: DPTRAIN_REQUIRE_WEBGPU).
 * And `--devices 2` on wasm: the node's two device processes, one killed mid-run, one gradient
 * per step to the coordinator, the weights of one process.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { prepareJobData } from '../coordinator/job.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { readCsv } from '../shared/data/csv.js';
import { coordinatorUrl, jobFolder, maxAbsDiff, readRunWeights, readSummary, runKillingOneDevice, runWithOneNode, spawnNode, startCoordinator, startWorker, trackProcesses } from './cluster-helpers.js';
import { COORDINATOR_BIN } from './helpers.js';
import { referenceWeights } from './reference.js';
import { webgpuAvailable } from './webgpu-helpers.js';

const available = await webgpuAvailable();

const track = trackProcesses();

beforeAll(async () => {
  await initBackend('cpu');
});

/** The demo's churn rows (600: 480 train), a Dense net, 2 epochs of batch 32: 30 steps. */
function denseJob(cluster: Record<string, unknown>) {
  const job = jobFolder(600, {
    seed: 4,
    data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, testSize: 0.2, standardize: true },
    model: { layers: [{ units: 16, activation: 'relu' }, { units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
    compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'binaryCrossentropy', metrics: ['accuracy'] },
    fit: { epochs: 2, batchSize: 32 },
    cluster: { backend: 'wasm', heartbeatInterval: 0.5, heartbeatTimeout: 120, stepTimeout: 240, waitTimeout: 300, ...cluster },
  });
  const config = validateConfig(parseYaml(readFileSync(job.configFile, 'utf8')), job.configFile);
  return { ...job, config, dataset: prepareJobData(config, readCsv(job.dataFile)).dataset };
}

/** Weights after 30 Adam steps through a GPU's float32 (other summation order): rounding, not a different run. */
const WEBGPU_TOLERANCE = 1e-4;

describe.skipIf(!available.ok)(`worker nodes on webgpu (${available.ok ? available.adapter : available.why})`, { timeout: 600_000 }, () => {
  it('1 thread (wasm) + 1 node on --backend webgpu: the weights of one process; the coordinator logs the adapter', async () => {
    const job = denseJob({ threads: 1, minWorkers: 1 });
    const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
    const worker = track(startWorker('gpu-1', await coordinatorUrl(coordinator), job.tokenFile, ['--backend', 'webgpu']));
    expect(await coordinator.exited, coordinator.output).toBe(0);
    expect(await worker.exited, worker.output).toBe(0);
    expect(worker.output).toMatch(/backend webgpu: webgpu on \S/);
    expect(coordinator.output).toContain(`(gpu-1, webgpu, ${available.ok ? available.adapter : ''}`);
    const summary = readSummary(job.out);
    expect(summary.steps).toBe(30);
    const node = summary.participants.find((p) => p.kind === 'node')!;
    expect(node.backend).toBe('webgpu');
    expect(node.samples).toBeGreaterThan(0);
    expect(maxAbsDiff(readRunWeights(job.out), await referenceWeights(job.config, job.dataset))).toBeLessThan(WEBGPU_TOLERANCE);
  });

  it('2 coordinator threads on webgpu (Dawn inside Piscina threads): the weights of one process', async () => {
    const job = denseJob({ threads: 2, backend: 'webgpu' });
    const coordinator = track(spawnNode('coordinator', COORDINATOR_BIN, ['start', '--config', job.configFile, '--out', job.out]));
    expect(await coordinator.exited, coordinator.output).toBe(0);
    expect(coordinator.output).toMatch(/2 thread\(s\) on webgpu \(\S/);
    expect(readSummary(job.out).participants.map((p) => [p.kind, p.backend])).toEqual([
      ['thread', 'webgpu'],
      ['thread', 'webgpu'],
    ]);
    expect(maxAbsDiff(readRunWeights(job.out), await referenceWeights(job.config, job.dataset))).toBeLessThan(WEBGPU_TOLERANCE);
  });

  it('1 node with --devices 2 on webgpu (no threads): one gradient per step, the weights of one process', async () => {
    const job = denseJob({ threads: 0, minWorkers: 1 });
    const summary = await runWithOneNode(job, track, ['--backend', 'webgpu', '--devices', '2']);
    expect(summary.participants.map((p) => [p.kind, p.backend, p.steps, p.samples])).toEqual([['node', 'webgpu', 30, 2 * job.dataset.train.count]]);
    expect(maxAbsDiff(readRunWeights(job.out), await referenceWeights(job.config, job.dataset))).toBeLessThan(WEBGPU_TOLERANCE);
  });
});

describe('a node with --devices 2 on wasm', { timeout: 600_000 }, () => {
  it('one device process killed with SIGKILL mid-run: the node goes on, restarts it, the weights of one process', async () => {
    const job = denseJob({ threads: 0, minWorkers: 1 });
    await runKillingOneDevice(job, 10, track);
    const summary = readSummary(job.out);
    expect(summary.steps).toBe(30);
    expect(summary.participants.map((p) => [p.kind, p.samples])).toEqual([['node', 2 * job.dataset.train.count]]);
    expect(maxAbsDiff(readRunWeights(job.out), await referenceWeights(job.config, job.dataset))).toBeLessThan(1e-5);
  });
});
