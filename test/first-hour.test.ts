/**
 * A newcomer's first hour: help on every command, flag values blamed on the flag, too many
 * threads, Ctrl-C while waiting for worker nodes, /readyz while waiting, --model given a run
 * directory, a second worker's metrics port, a worker that never connects, the progress bar.
 */
import { createServer, type Server } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main as coordinatorMain } from '../coordinator/cli.js';
import { ProgressBar } from '../coordinator/progress.js';
import { main as workerMain, startMetrics } from '../worker/cli.js';
import { WorkerMetrics } from '../worker/metrics.js';
import { train } from '../index.js';
import { TOKEN, jobFolder, spawnNode, startCoordinator, WORKER_BIN, type Proc } from './cluster-helpers.js';

/** Runs a CLI's main in this process, capturing what it prints. */
async function capture(main: (argv: string[]) => Promise<number>, argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...p: unknown[]) => void out.push(p.map(String).join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...p: unknown[]) => void err.push(p.map(String).join(' ')));
  try {
    const status = await main(argv);
    return { status, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

const procs: Proc[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill();
});

const rows = Array.from({ length: 80 }, (_, i) => ({ a: i % 7, b: (i * 13) % 5, y: i % 7 > 3 ? 'yes' : 'no' }));
const tinyJob = {
  data: { label: { column: 'y', positive: 'yes' } },
  model: { layers: [{ units: 4, activation: 'relu' as const }, { units: 1, activation: 'sigmoid' as const }] },
  compile: { optimizer: 'adam' as const, loss: 'binaryCrossentropy' as const },
  fit: { epochs: 1, batchSize: 16 },
  metrics: { listen: false as const },
};

describe('help', () => {
  for (const command of ['start', 'evaluate', 'predict', 'plot', 'demo-data']) {
    it(`coordinator ${command} --help (and -h, and coordinator help ${command})`, async () => {
      for (const argv of [[command, '--help'], [command, '-h'], ['help', command]]) {
        const r = await capture(coordinatorMain, argv);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^usage: dptrain ${command}`));
      }
    });
  }
  for (const command of ['start', 'backends']) {
    it(`worker ${command} --help (and worker help ${command})`, async () => {
      for (const argv of [[command, '--help'], ['help', command]]) {
        const r = await capture(workerMain, argv);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^usage: dptrain worker ${command}`));
      }
    });
  }
  it('worker help lists the commands', async () => {
    const r = await capture(workerMain, ['help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: dptrain worker <command> +\(alias: worker <command>\)[\s\S]*start --connect URL[\s\S]*backends/);
  });
});

describe('flag values', () => {
  it('a bad value is blamed on the flag, not the config file; --epochs -1 is read as a value', async () => {
    const config = join(mkdtempSync(join(tmpdir(), 'dptrain-flags-')), 'job.yaml');
    writeFileSync(config, 'data: { path: x.csv, label: { column: y, positive: "1" } }\nmodel: { layers: [{ units: 1, activation: sigmoid }] }\ncompile: { loss: binaryCrossentropy }\nfit: { epochs: 3 }\n');
    for (const argv of [['--epochs=-1'], ['--epochs', '-1']]) {
      const r = await capture(coordinatorMain, ['start', '--config', config, ...argv]);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe('error [E_CONFIG]: --epochs -1: Too small: expected number to be >0 (fit.epochs)');
    }
    const both = await capture(coordinatorMain, ['start', '--config', config, '--batch-size', '0', '--threads', '-2']);
    expect(both.stderr).toContain('--batch-size 0: Too small');
    expect(both.stderr).toContain('--threads -2: Too small');
    expect(both.stderr).not.toContain('job.yaml');
  });

  it('train() overrides are named as overrides', async () => {
    await expect(train(tinyJob, { rows, overrides: { 'fit.epochs': 0 }, log: () => {} })).rejects.toThrow('override fit.epochs 0: Too small: expected number to be >0 (fit.epochs)');
  });
});

describe('threads', () => {
  it('more threads than cores warns', async () => {
    const lines: string[] = [];
    const out = mkdtempSync(join(tmpdir(), 'dptrain-threads-'));
    const threads = availableParallelism() + 1;
    await train({ ...tinyJob, cluster: { threads }, output: { dir: out } }, { rows, log: (l) => lines.push(l) });
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^warning: cluster\\.threads ${threads} is more than this machine's ${availableParallelism()} core\\(s\\)`)));
  }, 120_000);
});

describe('waiting for worker nodes', { timeout: 120_000 }, () => {
  it('/readyz answers 503 while waiting; Ctrl-C then stops at once with exit 0 and nothing to checkpoint', async () => {
    const job = jobFolder(200, { ...tinyJob, data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' } }, cluster: { threads: 0, minWorkers: 1 } });
    const c = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out, '--metrics-listen', '127.0.0.1:0']);
    procs.push(c);
    const metricsUrl = (await c.waitFor(/metrics on (http:\/\/\S+)\/metrics/))[1]!;
    await c.waitFor(/waiting for worker nodes: 0 of 1 connected/);
    expect((await fetch(`${metricsUrl}/readyz`)).status).toBe(503);
    expect((await fetch(`${metricsUrl}/healthz`)).status).toBe(200);
    const t0 = performance.now();
    c.kill('SIGINT');
    expect(await c.exited, c.output).toBe(0);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(c.output).toContain('SIGINT: stopping now (the run was waiting for worker nodes)');
    expect(c.output).toContain('Stopped before the first step: nothing to checkpoint.');
  });
});

describe('saved models', () => {
  it('--model takes the run directory as well as <run>/model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-model-'));
    const { runDir } = await train({ ...tinyJob, output: { dir: join(dir, 'run') } }, { rows, log: () => {} });
    for (const model of [runDir, join(runDir, 'model')]) {
      const r = await capture(coordinatorMain, ['evaluate', '--model', model, '--data', join(runDir, 'data.csv'), '--backend', 'cpu']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Evaluate: loss: [\d.]+ - accuracy: [\d.]+/);
    }
  }, 120_000);
});

describe('worker nodes on one host', () => {
  it('a taken default metrics port falls back to a free one and says which; a taken explicit one warns', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const lines: string[] = [];
      const server = await startMetrics(undefined, new WorkerMetrics('cpu'), (l) => lines.push(l), `127.0.0.1:${port}`);
      expect(server).toBeDefined();
      expect(lines[0]).toMatch(new RegExp(`^metrics on http://127\\.0\\.0\\.1:(\\d+)/metrics \\(127\\.0\\.0\\.1:${port} is taken`));
      expect(lines[0]).not.toContain(`:${port}/metrics`);
      await server!.close();
      const warned: string[] = [];
      expect(await startMetrics(`127.0.0.1:${port}`, new WorkerMetrics('cpu'), (l) => warned.push(l))).toBeUndefined();
      expect(warned[0]).toMatch(new RegExp(`^warning: no metrics server: cannot listen on 127\\.0\\.0\\.1:${port}`));
    } finally {
      taken.close();
    }
  });

  it('a worker that never connected says it cannot connect, and its first retries come quickly', async () => {
    const closed: Server = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const t0 = performance.now();
    const w = spawnNode('w', WORKER_BIN, ['start', '--connect', `ws://127.0.0.1:${port}`, '--retries', '2', '--backend', 'cpu', '--metrics-listen', 'off'], { DPTRAIN_TOKEN: TOKEN });
    procs.push(w);
    expect(await w.exited).toBe(1);
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(w.output).toMatch(new RegExp(`cannot connect to ws://127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\); retry 1/2 in 0\\.\\d s`));
    expect(w.output).toMatch(new RegExp(`error \\[E_WORKER\\]: cannot connect to the coordinator at ws://127\\.0\\.0\\.1:${port}: 3 attempt\\(s\\) failed`));
    expect(w.output).not.toMatch(/lost/);
  }, 60_000);
});

describe('progress bar', () => {
  it('draws steps, ETA and running loss in place on a terminal, and wipes itself', () => {
    const written: string[] = [];
    let t = 0;
    const bar = new ProgressBar({ write: (s: string) => written.push(s), columns: 200 }, () => t);
    bar.epochStarted();
    for (let b = 1; b <= 10; b++) {
      t += 60; // 60 ms a step: every other step is drawn (100 ms apart), and the last always
      bar.batchEnded(b, 10, { loss: 0.5 / b, accuracy: 0.7 });
    }
    expect(written[0]).toBe('\r\x1b[2K 1/10 [==>...........................] - ETA: 1s - loss: 0.5000 - accuracy: 0.7000');
    expect(written.at(-1)).toBe('\r\x1b[2K10/10 [==============================] - ETA: 0s - loss: 0.0500 - accuracy: 0.7000');
    expect(written.length).toBeLessThan(10);
    bar.clear();
    expect(written.at(-1)).toBe('\r\x1b[2K');
  });

  it("after a resume mid-epoch the ETA counts only this process's batches", () => {
    const written: string[] = [];
    let t = 0;
    const bar = new ProgressBar({ write: (s: string) => written.push(s), columns: 200 }, () => t);
    bar.epochStarted();
    // resumed after batch 50 of 100: one batch of 1 s, 49 to go
    t += 1000;
    bar.batchEnded(51, 100, { loss: 0.5 });
    expect(written.at(-1)).toContain(' - ETA: 49s - ');
  });

  it('a job with a terminal gets the bar; with a log function and no terminal, one line per epoch only', async () => {
    const drawn: string[] = [];
    const lines: string[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-bar-'));
    await train({ ...tinyJob, output: { dir: join(dir, 'a') } }, { rows, log: (l) => lines.push(l), progress: { write: (s: string) => drawn.push(s) } });
    expect(drawn.some((s) => /\d+\/4 \[/.test(s))).toBe(true);
    expect(lines.filter((l) => l.startsWith('Epoch 1/1'))).toHaveLength(1);
    // the bar goes to the terminal only, never into the log lines
    expect(lines.filter((l) => /\d+\/\d+ \[[=>.]+\]/.test(l))).toEqual([]);
  }, 120_000);
});
