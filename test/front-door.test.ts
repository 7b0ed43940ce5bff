/**
 * What stood in a newcomer's way in the first hour, one `describe` each: a resume of a run
 * started with a relative --data path, data checks that disagreed, corrupt images in evaluate,
 * the epoch timer, files the README's commands leave in the clone, the Telco examples, plots,
 * and predictions a user cannot join back to their rows.
 */
import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { readSummary, spawnNode, type Proc } from './cluster-helpers.js';
import { ROOT } from './helpers.js';

const DPTRAIN_BIN = join(ROOT, 'bin', 'dptrain.js');

const procs: Proc[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill();
});

/** `dptrain ARGS` run from `cwd`. */
function dptrain(args: string[], cwd: string): Proc {
  const p = spawnNode('dptrain', DPTRAIN_BIN, args, {}, cwd);
  procs.push(p);
  return p;
}

const churnJob = {
  seed: 5,
  data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
  model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
  compile: { loss: 'binaryCrossentropy', optimizer: 'adam' },
  fit: { epochs: 40, batchSize: 32, validationSplit: 0.1 },
  cluster: { threads: 1, backend: 'wasm' },
  checkpoint: { everySteps: 5 },
  metrics: { listen: false },
};

describe('resume of a run started with a relative --data path', { timeout: 300_000 }, () => {
  it('Ctrl-C, then the printed --resume command works from any directory; moved data is given with --data and checked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-resume-relative-'));
    writeFileSync(join(dir, 'churn.csv'), telcoDemoCsv(600, 3));
    writeFileSync(join(dir, 'other.csv'), telcoDemoCsv(600, 4));
    writeFileSync(join(dir, 'job.yaml'), stringify(churnJob));
    const run = join(dir, 'runs', 'churn');

    const first = dptrain(['start', '--config', 'job.yaml', '--data', 'churn.csv', '--out', 'runs/churn'], dir);
    await first.waitFor(/^Epoch 2\//);
    first.kill('SIGINT');
    expect(await first.exited, first.output).toBe(0);
    const printed = /Continue with: (dptrain start --resume (\S+))/.exec(first.output);
    expect(printed?.[2], first.output).toBe(run);
    const saved = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as { data: { path: string }; output: { dir: string } };
    expect(saved.data.path).toBe(join(dir, 'churn.csv'));
    expect(saved.output.dir).toBe(run);

    // the data moved: the resume names the missing file and the flag that fixes it
    renameSync(join(dir, 'churn.csv'), join(dir, 'moved.csv'));
    const missing = dptrain(['start', '--resume', run], ROOT);
    expect(await missing.exited).toBe(1);
    expect(missing.output).toContain(`the run's data.path ${join(dir, 'churn.csv')} is not there any more; if it moved, give its new place: dptrain start --resume ${run} --data NEW_PATH`);
    // other rows under --data are refused by the checkpoint's fingerprint
    const other = dptrain(['start', '--resume', run, '--data', 'other.csv'], dir);
    expect(await other.exited).toBe(1);
    expect(other.output).toMatch(/fingerprint differs/);
    // the moved file, relative to where the command runs
    const resumed = dptrain(['start', '--resume', 'runs/churn', '--data', 'moved.csv'], dir);
    expect(await resumed.exited, resumed.output).toBe(0);
    const summary = readSummary(run);
    expect(summary.interrupted).toBe(false);
    expect(summary.resumedFrom).toMatch(/step-\d+\.ckpt$/);
    expect((JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as { data: { path: string } }).data.path).toBe(join(dir, 'moved.csv'));
    expect(existsSync(join(run, 'model', 'model.json'))).toBe(true);
  });
});
