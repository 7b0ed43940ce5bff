/**
 * The command line as a user meets it: bad input gives one clear line naming the thing at fault
 * and a non-zero exit (stack only with --verbose). A few cases run the real binary in a child
 * process; the rest call the same `main` in-process (starting Node and loading TensorFlow.js
 * takes seconds per process on a small machine).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../coordinator/cli.js';
import { TELCO_COLUMNS, telcoDemoCsv } from '../shared/data/synthetic.js';
import { COORDINATOR_BIN, ROOT } from './helpers.js';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function coordinator(args: string[]): Run {
  const r = spawnSync(process.execPath, [COORDINATOR_BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `coordinator ...` in this process, capturing what it prints to stderr. */
async function coordinatorInProcess(args: string[]): Promise<Run> {
  const errors: string[] = [];
  const spy = vi.spyOn(console, 'error').mockImplementation((...parts: unknown[]) => {
    errors.push(parts.map(String).join(' '));
  });
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  try {
    const status = await main(args);
    return { status, stdout: '', stderr: errors.map((e) => `${e}\n`).join('') };
  } finally {
    spy.mockRestore();
    log.mockRestore();
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

let dir: string;
const header = 'customerID,tenure,Contract,Churn';

function writeCsv(name: string, rows: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, `${header}\n${rows.join('\n')}\n`);
  return path;
}

function writeConfig(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
}

const goodConfig = (extra = '', layers = '[{ units: 4, activation: relu }, { units: 1, activation: sigmoid }]', compile = 'loss: binaryCrossentropy') => `
data:
  drop: [customerID]
  label: { column: Churn, positive: "Yes", negative: "No" }
model:
  layers: ${layers}
compile: { ${compile} }
fit: { epochs: 1, batchSize: 8 }
cluster: { threads: 1, backend: cpu }
${extra}`;

/** Expects one error line on stderr (no stack), matching `pattern`, and exit code 1. */
function expectError(run: Run, pattern: RegExp): void {
  expect(run.status, run.stderr).toBe(1);
  const lines = run.stderr.trim().split('\n');
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error \[E_[A-Z]+\]: /);
  expect(lines[0]).toMatch(pattern);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dptrain-cli-'));
  writeCsv('good.csv', Array.from({ length: 40 }, (_, i) => `${i},${i % 30},${i % 3 ? 'Month' : 'Year'},${i % 4 ? 'No' : 'Yes'}`));
});

describe('coordinator start: bad input', () => {
  it('missing data file', async () => {
    const config = writeConfig('a.yaml', goodConfig());
    expectError(await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'nope.csv'), '--out', join(dir, 'run-a')]), /cannot read data file .*nope\.csv: no such file/);
  });
  it('missing config file', () => {
    expectError(coordinator(['start', '--config', join(dir, 'nope.yaml')]), /cannot read config file .*nope\.yaml: no such file/);
  });
  it('unknown column', async () => {
    const config = writeConfig('b.yaml', goodConfig().replace('drop: [customerID]', 'drop: [customerId]'));
    expectError(await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv'), '--out', join(dir, 'run-b')]), /unknown column "customerId" in data\.drop; .*good\.csv has columns: customerID, tenure, Contract, Churn/);
  });
  it('label with unexpected values', async () => {
    const data = writeCsv('label.csv', ['1,3,Month,Yes', '2,4,Year,No', '3,5,Month,Maybe']);
    const config = writeConfig('c.yaml', goodConfig());
    expectError(await coordinatorInProcess(['start', '--config', config, '--data', data, '--out', join(dir, 'run-c')]), /label column "Churn" has unexpected value "Maybe" on line 4 of .*label\.csv/);
  });
  it('empty data after dropping rows with missing values', async () => {
    const data = writeCsv('empty.csv', ['1,,Month,Yes', '2, ,Year,No']);
    const config = writeConfig('d.yaml', goodConfig());
    expectError(await coordinatorInProcess(['start', '--config', config, '--data', data, '--out', join(dir, 'run-d')]), /no rows left in .*empty\.csv after dropping rows with missing values \(2 rows read\)/);
  });
  it('unknown activation', async () => {
    const config = writeConfig('e.yaml', goodConfig('', '[{ units: 4, activation: relux }, { units: 1, activation: sigmoid }]'));
    expectError(await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv')]), /e\.yaml: model\.layers\[0\]\.activation: .*"leakyRelu"/);
  });
  it('unknown loss', async () => {
    const config = writeConfig('f.yaml', goodConfig('', undefined, 'loss: crossEntropyish'));
    expectError(await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv')]), /f\.yaml: compile\.loss: .*"binaryCrossentropy"/);
  });
  it('unknown optimizer', async () => {
    const config = writeConfig('g.yaml', goodConfig('', undefined, 'loss: binaryCrossentropy, optimizer: adamm'));
    expectError(await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv')]), /g\.yaml: compile\.optimizer/);
  });
  it('unknown config key', async () => {
    const config = writeConfig('h.yaml', goodConfig('output: { directory: x }'));
    expectError(await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv')]), /h\.yaml: unknown key "output\.directory"/);
  });
  it('batch size smaller than the number of threads', async () => {
    const config = writeConfig('i.yaml', goodConfig());
    expectError(
      await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv'), '--batch-size', '2', '--threads', '4', '--out', join(dir, 'run-i')]),
      /fit\.batchSize \(2\) is smaller than cluster\.threads \(4\)/,
    );
  });
  it('unknown flag and bad flag value', () => {
    expectError(coordinator(['start', '--demo', '--epochz', '3']), /epochz/);
    expectError(coordinator(['start', '--demo', '--epochs', 'three']), /--epochs must be an integer, got "three"/);
    expectError(coordinator(['start', '--demo', '--threads', 'many']), /--threads must be an integer or auto, got "many"/);
  });
  it('the tensorflow backend in coordinator threads says what to do', async () => {
    const config = writeConfig('j.yaml', goodConfig());
    expectError(
      await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv'), '--backend', 'tensorflow', '--threads', '2', '--out', join(dir, 'run-j')]),
      /cannot run in coordinator threads.*cluster\.threads: 1 without worker nodes.*worker start --backend tensorflow/,
    );
  });
  it('the tensorflow backend in the coordinator\'s own thread (one lane) is tried, and its absence says what to install', async () => {
    const config = writeConfig('j1.yaml', goodConfig());
    expectError(
      await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv'), '--backend', 'tensorflow', '--threads', '1', '--out', join(dir, 'run-j1')]),
      /backend "tensorflow" is not available: neither @tensorflow\/tfjs-node-gpu nor @tensorflow\/tfjs-node could be loaded; install it .*npm install @tensorflow\/tfjs-node-gpu@4\.22\.0/,
    );
  });
  it('the tensorflow backend with threads: auto gets the one lane in the coordinator\'s thread', async () => {
    const config = writeConfig('j2.yaml', goodConfig().replace('cluster: { threads: 1, backend: cpu }', 'cluster: { backend: tensorflow }'));
    expectError(
      await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv'), '--out', join(dir, 'run-j2')]),
      /backend "tensorflow" is not available: neither @tensorflow\/tfjs-node-gpu nor @tensorflow\/tfjs-node could be loaded/,
    );
  });
  it('cluster.inProcess: true needs one lane and no worker nodes', async () => {
    const config = writeConfig('k.yaml', goodConfig().replace('cluster: { threads: 1, backend: cpu }', 'cluster: { threads: 2, backend: cpu, inProcess: true }'));
    expectError(
      await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv'), '--out', join(dir, 'run-k')]),
      /cluster\.inProcess is true but cluster\.threads is 2: the coordinator computes in its own thread only as the one lane/,
    );
    expect(existsSync(join(dir, 'run-k'))).toBe(false); // refused before the run directory is written
  });
  it('worker nodes without cluster.listen: nobody could connect', async () => {
    const cases: [string, string, RegExp][] = [
      ['l1', 'cluster: { threads: 0, backend: cpu }', /cluster\.threads is 0 and cluster\.listen is unset: nobody would train/],
      ['l2', 'cluster: { threads: 1, backend: cpu, minWorkers: 2 }', /cluster\.minWorkers is 2 but cluster\.listen is unset: no worker node can connect; set cluster\.listen \(--listen HOST:PORT\)/],
      ['l3', 'cluster: { threads: 1, backend: cpu, startWorkers: 1 }', /cluster\.startWorkers is 1 but cluster\.listen is unset/],
    ];
    for (const [name, cluster, pattern] of cases) {
      const config = writeConfig(`${name}.yaml`, goodConfig().replace('cluster: { threads: 1, backend: cpu }', cluster));
      expectError(await coordinatorInProcess(['start', '--config', config, '--data', join(dir, 'good.csv'), '--out', join(dir, `run-${name}`)]), pattern);
      expect(existsSync(join(dir, `run-${name}`)), name).toBe(false); // refused before the run directory is written
    }
  });
  it('prints the stack trace only with --verbose', () => {
    const run = coordinator(['start', '--config', join(dir, 'nope.yaml'), '--verbose']);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^error \[E_CONFIG\]: cannot read config file/);
    expect(run.stderr).toMatch(/\n\s+at /);
  });
});

describe('coordinator demo-data', () => {
  it('writes the generated Telco-schema CSV that --demo trains on', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-demo-data-')), 'data.csv');
    const run = await coordinatorInProcess(['demo-data', '--out', out, '--rows', '50', '--seed', '3']);
    expect(run.status, run.stderr).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text).toBe(telcoDemoCsv(50, 3));
    expect(text.trim().split('\n')).toHaveLength(51);
    expect(text.split('\n')[0]).toBe(TELCO_COLUMNS.join(','));
  });
  it('needs --out, and says which command is unknown', async () => {
    expectError(await coordinatorInProcess(['demo-data']), /demo-data needs --out FILE/);
    expectError(await coordinatorInProcess(['strat']), /unknown command "strat"; expected one of: start, evaluate, predict, plot, view, demo-data, worker/);
  });
});

describe('the dptrain command', () => {
  const dptrainBin = join(ROOT, 'bin', 'dptrain.js');
  const run = (bin: string, args: string[]): Run => {
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('is one name for both sides: dptrain start ... and dptrain worker ..., with coordinator and worker as aliases', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin).toEqual({ dptrain: 'bin/dptrain.js', coordinator: 'bin/coordinator.js', worker: 'bin/worker.js' });
    const help = run(dptrainBin, ['--help']);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^usage: dptrain start \(--config FILE \| --demo\)/);
    expect(help.stdout).toContain('dptrain worker start --connect URL');
    expect(run(COORDINATOR_BIN, ['--help']).stdout).toBe(help.stdout);
    const worker = run(dptrainBin, ['worker', 'start', '--help']);
    expect(worker.status, worker.stderr).toBe(0);
    expect(worker.stdout).toMatch(/^usage: dptrain worker start --connect URL/);
    expect(run(join(ROOT, 'bin', 'worker.js'), ['start', '--help']).stdout).toBe(worker.stdout);
    const bad = run(dptrainBin, ['worker', 'strat']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('unknown command "strat"');
  }, 60_000);

  it('says that --data takes a CSV file, an image folder or X.npy, and evaluate --help names --labels', async () => {
    const logs: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => void logs.push(parts.map(String).join(' ')));
    try {
      for (const args of [['start', '--help'], ['evaluate', '--help'], ['predict', '--help']]) expect(await main(args)).toBe(0);
    } finally {
      log.mockRestore();
    }
    const [start, evaluate, predict] = logs;
    expect(start).toMatch(/--data PATH +CSV file, image folder \(a subfolder per class\) or X\.npy/);
    expect(start).not.toMatch(/--data FILE +CSV file/);
    expect(evaluate).toMatch(/--labels Y\.npy +the labels for an X\.npy --data/);
    expect(evaluate).toMatch(/image folder/);
    expect(predict).toMatch(/image\s+folder or X\.npy/);
  });
});
