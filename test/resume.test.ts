/**
 * Exact resume, with real coordinator processes: a run killed with SIGKILL in the middle of an
 * epoch, and one stopped with SIGTERM, each continued with `coordinator start --resume`, end
 * with the weights of an uninterrupted run of the same config (within 1e-5) and a history
 * without duplicated or missing epochs. One thread, so the uninterrupted run is the reference.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runJob } from '../coordinator/job.js';
import { loadConfig } from '../shared/config/load.js';
import { jobFolder, maxAbsDiff, readRunWeights, readSummary, spawnNode, type Proc } from './cluster-helpers.js';
import { COORDINATOR_BIN } from './helpers.js';

const EPOCHS = 6;
const job = jobFolder(1500, {
  seed: 9,
  data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
  model: { layers: [{ units: 24, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
  compile: { loss: 'binaryCrossentropy', optimizer: 'adam' },
  fit: { epochs: EPOCHS, batchSize: 32, validationSplit: 0.1, earlyStopping: { monitor: 'val_loss', patience: 20, restoreBestWeights: true } },
  cluster: { threads: 1, backend: 'wasm' },
  checkpoint: { everySteps: 4, keep: 3 },
  metrics: { listen: false },
});

const procs: Proc[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill();
});

function coordinator(args: string[]): Proc {
  const p = spawnNode('coordinator', COORDINATOR_BIN, args);
  procs.push(p);
  return p;
}

function checkpointSteps(runDir: string): number[] {
  const dir = join(runDir, 'checkpoints');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => /^step-(\d+)\.ckpt$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
}

function historyEpochs(runDir: string): number[] {
  return (JSON.parse(readFileSync(join(runDir, 'history.json'), 'utf8')) as { epoch: number[] }).epoch;
}

describe('resume from checkpoints', { timeout: 900_000 }, () => {
  let reference: Float32Array;
  let stepsPerEpoch: number;

  it('an uninterrupted run (the reference) checkpoints at epoch ends and every 4 steps, keeping 3', async () => {
    const out = join(job.dir, 'reference');
    const result = await runJob(loadConfig(job.configFile, { 'output.dir': out }), { handleSignals: false, log: () => undefined });
    expect(result.summary.interrupted).toBe(false);
    reference = readRunWeights(out);
    stepsPerEpoch = result.summary.steps / EPOCHS;
    expect(Number.isInteger(stepsPerEpoch)).toBe(true);
    expect(checkpointSteps(out).sort((a, b) => a - b)).toHaveLength(3);
    expect(Math.max(...checkpointSteps(out))).toBe(result.summary.steps);
  });

  it('kill -9 in the middle of epoch 2 keeps the finished epochs in history.csv; --resume: same final weights, every epoch once', async () => {
    const out = join(job.dir, 'killed');
    const run = coordinator(['start', '--config', job.configFile, '--out', out]);
    await run.waitFor(/^Epoch 1\//);
    // wait for a checkpoint inside epoch 2, then kill at once
    const deadline = Date.now() + 120_000;
    while (!checkpointSteps(out).some((s) => s > stepsPerEpoch && s < 2 * stepsPerEpoch) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    run.kill('SIGKILL');
    expect(await run.exited).toBe(null);
    expect(existsSync(join(out, 'summary.json')), 'the run was killed before it finished').toBe(false);
    // as Keras's CSVLogger: the killed run kept the history of the epochs it finished
    const kept = readFileSync(join(out, 'history.csv'), 'utf8').trim().split('\n').slice(1).map((line) => Number(line.split(',')[0]));
    expect(kept.length).toBeGreaterThanOrEqual(1);
    expect(kept).toEqual(kept.map((_, i) => i + 1));

    const resumed = coordinator(['start', '--resume', out]);
    expect(await resumed.exited, resumed.output).toBe(0);
    const summary = readSummary(out);
    const fromStep = Number(/step-(\d+)\.ckpt$/.exec(summary.resumedFrom ?? '')?.[1]);
    expect(fromStep % stepsPerEpoch, `resumed mid-epoch (from step ${fromStep})`).not.toBe(0);
    expect(resumed.output).toMatch(/resuming from .*step-\d+\.ckpt \(epoch \d+, batch \d+, step \d+\)/);
    expect(maxAbsDiff(readRunWeights(out), reference)).toBeLessThan(1e-5);
    expect(historyEpochs(out)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(summary.steps).toBe(EPOCHS * stepsPerEpoch);
  });

  it('SIGTERM finishes the step, checkpoints and exits 0; --resume gives the same final weights', async () => {
    const out = join(job.dir, 'terminated');
    const run = coordinator(['start', '--config', job.configFile, '--out', out]);
    await run.waitFor(/^Epoch 1\//);
    run.kill('SIGTERM');
    expect(await run.exited, run.output).toBe(0);
    expect(run.output).toMatch(/SIGTERM: stopping after this step/);
    expect(run.output).toMatch(/Stopped at step \d+; checkpoint .*\.ckpt\. Continue with: dptrain start --resume /);
    const stopped = readSummary(out);
    expect(stopped.interrupted).toBe(true);
    // the unfinished epoch's samples count too: every computed sample, as the participants say
    expect(stopped.samples).toBe(stopped.participants.reduce((a, p) => a + p.samples, 0));
    expect(existsSync(join(out, 'model', 'model.json'))).toBe(false);

    const resumed = coordinator(['start', '--resume', out]);
    expect(await resumed.exited, resumed.output).toBe(0);
    expect(maxAbsDiff(readRunWeights(out), reference)).toBeLessThan(1e-5);
    expect(historyEpochs(out)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(readSummary(out).interrupted).toBe(false);
  });

  it('refuses a checkpoint of other data', async () => {
    const out = join(job.dir, 'reference');
    const other = loadConfig(job.configFile, { 'output.dir': out, seed: 10 });
    await expect(runJob(other, { resume: true, handleSignals: false, log: () => undefined })).rejects.toThrow(/fingerprint differs/);
  });
});
