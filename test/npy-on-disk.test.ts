/**
 * .npy samples left on disk (data.inMemory false): the same rows, split and training as the
 * samples in memory, over threads and a worker node; clear errors for a damaged or vanished
 * file; and a data set several times larger than the coordinator's peak memory trains with a
 * peak that does not grow with the file.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchRange } from '../shared/data/npy-http.js';
import { keepOnDisk, readJobData } from '../coordinator/job-data.js';
import { Trainer, modelSpec } from '../coordinator/fit/trainer.js';
import { initBackend } from '../shared/backend.js';
import { loadConfig } from '../shared/config/load.js';
import { featureRows } from '../shared/data/feature-rows.js';
import { readModelInputs } from '../coordinator/model-inputs.js';
import { runJob } from '../coordinator/job.js';
import { loadSavedModel, predictCsv } from '../coordinator/saved-model.js';
import { readNpy } from '../shared/data/npy.js';
import { ConfigError, DataError } from '../shared/errors.js';
import { coordinatorUrl, jobFolder, readRunWeights, readSummary, runKillingOneOfTwoNodes, runWithNodes, startCoordinator, startWorker, trackProcesses, type Proc } from './cluster-helpers.js';
import { configInMemory, npy, npyHeader, rangeServer, ROOT, writeJobYaml } from './helpers.js';
import { maxAbsDiff, trainOnLanes } from './thread-runs.js';

const track = trackProcesses();

beforeAll(async () => {
  await initBackend('wasm');
});

/** A folder with x.npy (n samples of `features` values of dtype `descr`, from a fixed LCG, class signal in the first values) and y.npy (class ids 0-2). */
function arrays(n: number, features: number, descr: '<f4' | '|u1' | '<f8' | '<i2', extra: Record<string, unknown> = {}): { dir: string; configFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-ondisk-'));
  let seed = 12345;
  const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 7) % 3);
  const values = Array.from({ length: n * features }, (_, i) => next() + ((i % features) < 3 && (i % features) === labels[Math.floor(i / features)] ? 1 : 0));
  const data =
    descr === '|u1' ? Uint8Array.from(values, (v) => Math.round(v * 100)) : descr === '<f8' ? Float64Array.from(values) : descr === '<i2' ? Int16Array.from(values, (v) => Math.round(v * 1000) - 700) : Float32Array.from(values);
  writeFileSync(join(dir, 'x.npy'), npy(descr, [n, features], data));
  writeFileSync(join(dir, 'y.npy'), npy('<i4', [n], labels));
  const configFile = writeJobYaml(dir, {
    seed: 3,
    data: { path: 'x.npy', labels: 'y.npy', inMemory: false, testSize: 0.2, ...extra },
    model: { layers: [{ units: 8, activation: 'relu' }, { units: 3, activation: 'softmax' }] },
    compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
    fit: { epochs: 2, batchSize: 16, validationSplit: 0.1 },
    cluster: { threads: 2, backend: 'wasm' },
  });
  return { dir, configFile };
}

describe('.npy samples on disk', () => {
  it.each(['<f4', '|u1', '<f8', '<i2'] as const)('%s: the same split, labels and float32 features as in memory, read per row and per range', (descr) => {
    const { configFile } = arrays(101, 6, descr, descr === '|u1' ? { rescale: 1 / 255 } : descr === '<i2' ? { rescale: 0.001 } : {});
    const memory = readJobData(configInMemory(configFile, true)).dataset;
    const disk = readJobData(configInMemory(configFile, false)).dataset;
    expect(disk.onDisk).toBeDefined();
    expect(memory.onDisk).toBeUndefined();
    expect(disk.x.length).toBe(0);
    expect([disk.train, disk.val, disk.test]).toEqual([memory.train, memory.val, memory.test]);
    expect(disk.y).toEqual(memory.y);
    const rows = [100, 0, 5, 6, 7, 42, 41, 99, 3];
    const fromDisk = featureRows(disk);
    expect(fromDisk.gather(rows)).toEqual(featureRows(memory).gather(rows));
    expect(fromDisk.range(0, 101)).toEqual(memory.x);
    expect(fromDisk.range(37, 20)).toEqual(memory.x.slice(37 * 6, 57 * 6));
  });

  it('2 threads reading from disk train the weights of 2 threads in memory, bit for bit, with the same checkpoint fingerprint', async () => {
    const { configFile } = arrays(300, 10, '<f4');
    const memory = readJobData(configInMemory(configFile, true)).dataset;
    const disk = readJobData(configInMemory(configFile, false)).dataset;
    const config = loadConfig(configFile);
    const spec = modelSpec(config, memory);
    const fingerprint = (dataset: typeof memory): string => new Trainer(config, dataset, { publish: () => {} } as never, spec).fingerprint();
    expect(fingerprint(disk)).toBe(fingerprint(memory));
    const [fromDisk, fromMemory, inProcess] = [await trainOnLanes(config, disk, 2), await trainOnLanes(config, memory, 2), await trainOnLanes(config, disk, 'in-process')];
    expect(fromDisk.weights).toEqual(fromMemory.weights);
    expect(fromDisk.history.map((e) => e.values)).toEqual(fromMemory.history.map((e) => e.values));
    expect(maxAbsDiff(inProcess.weights, fromMemory.weights)).toBeLessThan(1e-5);
  }, 120_000);

  it('several files (a pattern or a brace range) are one array in order, in memory and on disk; mismatched files are refused naming them', () => {
    const { dir, configFile } = arrays(90, 5, '<f4');
    const whole = readJobData(configInMemory(configFile, true)).dataset;
    // the same samples and labels in 3 parts of 40, 30 and 20 rows
    const x = readNpy(join(dir, 'x.npy'));
    const y = readNpy(join(dir, 'y.npy'));
    [[0, 40], [40, 70], [70, 90]].forEach(([from, to], i) => {
      writeFileSync(join(dir, `x-${i}.npy`), npy('<f4', [to! - from!, 5], (x.values as Float32Array).slice(from! * 5, to! * 5)));
      writeFileSync(join(dir, `y-${i}.npy`), npy('<i4', [to! - from!], (y.values as Int32Array).slice(from, to)));
    });
    const config = loadConfig(configFile);
    const parts = (memory: boolean, path = 'x-*.npy', labels = 'y-{0..2}.npy') => readJobData({ ...config, data: { ...config.data, path: join(dir, path), labels: join(dir, labels), inMemory: memory } }).dataset;
    for (const memory of [true, false]) {
      const dataset = parts(memory);
      expect(dataset.y).toEqual(whole.y);
      expect(featureRows(dataset).range(0, 90)).toEqual(whole.x);
      expect(featureRows(dataset).gather([89, 0, 39, 40, 69, 70, 41])).toEqual(featureRows(whole).gather([89, 0, 39, 40, 69, 70, 41]));
    }
    expect(parts(false).onDisk).toMatchObject({ kind: 'npy', parts: [{ rows: 40 }, { rows: 30 }, { rows: 20 }] });
    expect(() => parts(false, 'x-*.npy', 'y-{0..1}.npy')).toThrow(/data\.path names 3 \.npy file\(s\) .* and data\.labels 2/);
    writeFileSync(join(dir, 'x-1.npy'), npy('<f4', [30, 6], new Float32Array(180)));
    for (const memory of [true, false]) expect(() => parts(memory)).toThrow(/x-1\.npy: .*\[30, 6\].*x-0\.npy has .*: the files of one data set share a dtype and a sample shape/);
  });

  it('data.standardize on disk: the statistics and features of the same file in memory, bit for bit; predict and evaluate standardize a .npy as training did', () => {
    const { dir, configFile } = arrays(203, 5, '<f8', { standardize: true });
    const disk = readJobData(configInMemory(configFile, false));
    const memory = readJobData(configInMemory(configFile, true));
    expect(disk.dataset.onDisk).toBeDefined();
    expect(disk.preprocessor.scaler).toEqual(memory.preprocessor.scaler);
    expect(disk.preprocessor.scaler!.std.some((s) => s !== 1)).toBe(true);
    expect(featureRows(disk.dataset).range(0, 203)).toEqual(memory.dataset.x);
    expect(featureRows(disk.dataset).gather([202, 7, 100])).toEqual(featureRows(memory.dataset).gather([202, 7, 100]));
    // what predict reads: file row lines[r] - 1 is data set row r, standardized alike
    const inputs = readModelInputs(memory.preprocessor, join(dir, 'x.npy'), { requireLabel: false });
    memory.lines.train.slice(0, 20).forEach((line, r) => expect(inputs.enc.x.subarray((line - 1) * 5, line * 5)).toEqual(memory.dataset.x.subarray(r * 5, (r + 1) * 5)));
  });

  it('auto keeps a file over a quarter of memory on disk; an image folder with inMemory false, images standardized, a short or non-finite file: errors naming the key or file', () => {
    expect(keepOnDisk('auto', 1e6)).toBe(false);
    expect(keepOnDisk('auto', 1e15)).toBe(true);
    expect([keepOnDisk(false, 1), keepOnDisk(true, 1e15)]).toEqual([true, false]);
    const { dir, configFile } = arrays(40, 4, '<f4');
    const config = loadConfig(configFile);
    // an image folder is read into memory (its tar shards need not be)
    expect(() => readJobData({ ...config, data: { ...config.data, path: dir, labels: undefined } })).toThrow(ConfigError);
    expect(() => readJobData({ ...config, data: { ...config.data, path: dir, labels: undefined } })).toThrow(/data\.inMemory: false applies to CSV, \.npy samples and tar shards; .* is an image folder/);
    const bytes = arrays(40, 4, '|u1');
    expect(() => readJobData({ ...loadConfig(bytes.configFile), data: { ...loadConfig(bytes.configFile).data, standardize: true, rescale: 1 / 255 } })).toThrow(/x\.npy: data\.standardize does not apply to images/);
    const values = new Float32Array(40 * 4);
    values[4 * 17 + 2] = Number.NaN;
    writeFileSync(join(dir, 'x.npy'), npy('<f4', [40, 4], values));
    expect(() => readJobData(config)).toThrow(/x\.npy: sample 17 has a non-finite value \(NaN\) at feature 2/);
    writeFileSync(join(dir, 'x.npy'), npy('<f4', [40, 4], new Float32Array(40 * 4 - 3)));
    expect(() => readJobData(config)).toThrow(/x\.npy: the header says 160 values of 4 bytes, the file has 628 bytes of data \(truncated\?\)/);
  });

  it('a saved model predicts a .npy file: a line and the outputs per sample, no file column', async () => {
    const { dir, configFile } = arrays(60, 4, '<f4');
    const config = loadConfig(configFile);
    await runJob({ ...config, fit: { ...config.fit, epochs: 1 }, cluster: { ...config.cluster, threads: 1 }, output: { ...config.output, dir: join(dir, 'run') } }, { handleSignals: false, log: () => undefined });
    const model = await loadSavedModel(join(dir, 'run', 'model'), 'cpu');
    const out = join(dir, 'predictions.csv');
    const predicted = await predictCsv(model, join(dir, 'x.npy'), out);
    expect(predicted.rows).toBe(60);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('line,probability_0,probability_1,probability_2,predicted,error');
    expect(lines).toHaveLength(61);
    expect(lines[60]!.split(',')).toHaveLength(6);
    expect(lines[60]!.startsWith('60,')).toBe(true);
  }, 120_000);

  it('a file cut short or removed after the start: the read names the file', () => {
    const { dir, configFile } = arrays(50, 4, '<f4');
    const { dataset } = readJobData(loadConfig(configFile));
    const rows = featureRows(dataset);
    const last = dataset.onDisk!.order.indexOf(49);
    truncateSync(join(dir, 'x.npy'), 128 + 10 * 16);
    expect(() => rows.gather([last])).toThrow(DataError);
    expect(() => rows.gather([last])).toThrow(/x\.npy: ended before row 49/);
    rmSync(join(dir, 'x.npy'));
    expect(() => rows.range(0, 2)).toThrow(/x\.npy: cannot be read \(ENOENT\)/);
  });
});

describe('worker nodes on a data set on disk', { timeout: 300_000 }, () => {
  /** A job of 1 thread + 1 node on x.npy in `dir` (uint8, 64 features, 400 samples). */
  function nodeJob(dir: string, cluster: Record<string, unknown> = {}, files = { x: 'x.npy', y: 'y.npy' }): ReturnType<typeof jobFolder> {
    const job = jobFolder(10, {});
    writeFileSync(
      job.configFile,
      stringify({
        seed: 4,
        data: { path: join(dir, files.x), labels: join(dir, files.y), inMemory: false, rescale: 0.01 },
        model: { layers: [{ units: 8, activation: 'relu' }, { units: 3, activation: 'softmax' }] },
        compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
        fit: { epochs: 2, batchSize: 32 },
        cluster: { threads: 1, minWorkers: 1, backend: 'wasm', heartbeatInterval: 0.5, heartbeatTimeout: 60, stepTimeout: 180, waitTimeout: 300, ...cluster },
      }),
    );
    return job;
  }

  async function run(job: ReturnType<typeof jobFolder>, workerArgs: string[]): Promise<{ coordinator: Proc; worker: Proc }> {
    const { coordinator, workers } = await runWithNodes(job, ['w1'], track, workerArgs);
    return { coordinator, worker: workers[0]! };
  }

  it('1 thread + 1 node: sent the rows, or (--data-dir) reading them itself and sent row numbers: the weights of one process in memory', async () => {
    const { dir } = arrays(400, 64, '|u1', { rescale: 0.01 });
    // equal balance: the node takes part in every step of both runs, so weights cost both the same
    const sent = nodeJob(dir, { balance: 'equal' });
    const config = loadConfig(sent.configFile);
    const memory = readJobData({ ...config, data: { ...config.data, inMemory: true } }).dataset;
    const expected = (await trainOnLanes(config, memory, 'in-process')).weights;
    const first = await run(sent, []);
    expect(first.coordinator.output).toContain(`features read per batch from ${join(dir, 'x.npy')}`);
    const reads = nodeJob(dir, { balance: 'equal' });
    const second = await run(reads, ['--data-dir', dir]);
    expect(second.worker.output).toContain(`reading this node's rows from ${join(dir, 'x.npy')} (400 rows)`);
    for (const job of [sent, reads]) {
      expect(readSummary(job.out).participants.find((p) => p.kind === 'node')!.samples).toBeGreaterThan(0);
      expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
    }
    // the node holds every training row (one node): float32 features against one int32 file row each
    const saved = readSummary(sent.out).traffic.node.sent - readSummary(reads.out).traffic.node.sent;
    expect(saved).toBeGreaterThan(0.9 * memory.train.count * (64 * 4 - 4));
  });

  it('a node reading a data set of 3 .npy files from --data-dir: the weights of one process in memory', async () => {
    const { dir } = arrays(400, 64, '|u1', { rescale: 0.01 });
    const x = readNpy(join(dir, 'x.npy'));
    const y = readNpy(join(dir, 'y.npy'));
    [[0, 150], [150, 300], [300, 400]].forEach(([from, to], i) => {
      writeFileSync(join(dir, `x-${i}.npy`), npy('|u1', [to! - from!, 64], (x.values as Uint8Array).slice(from! * 64, to! * 64)));
      writeFileSync(join(dir, `y-${i}.npy`), npy('<i4', [to! - from!], (y.values as Int32Array).slice(from, to)));
    });
    const job = nodeJob(dir, { balance: 'equal' }, { x: 'x-*.npy', y: 'y-*.npy' });
    const config = loadConfig(job.configFile);
    const expected = (await trainOnLanes(config, readJobData({ ...config, data: { ...config.data, inMemory: true } }).dataset, 'in-process')).weights;
    const { coordinator, worker } = await run(job, ['--data-dir', dir]);
    expect(coordinator.output).toContain('features read per batch from 3 .npy files');
    expect(worker.output).toContain(`reading this node's rows from ${join(dir, 'x-0.npy')} and 2 more file(s) (400 rows)`);
    expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
  });

  it('2 nodes reading over HTTP (--data-url, byte ranges from a loopback server), one killed with SIGKILL mid-run: the weights of one process in memory', async () => {
    const { dir } = arrays(400, 64, '|u1', { rescale: 0.01 });
    const server = await rangeServer(dir);
    try {
      const job = nodeJob(dir, { threads: 0, minWorkers: 1, startWorkers: 2, balance: 'equal' });
      const config = loadConfig(job.configFile);
      const expected = (await trainOnLanes(config, readJobData({ ...config, data: { ...config.data, inMemory: true } }).dataset, 'in-process')).weights;
      await runKillingOneOfTwoNodes(job, 5, track, ['--data-url', `${server.url}/`]);
      expect(server.ranges()).toBeGreaterThan(20);
      expect(readSummary(job.out).steps).toBe(20);
      expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
    } finally {
      server.close();
    }
  });

  it('--data-url at a server that ignores ranges, or at nothing: the node refuses the job naming the URL', async () => {
    const { dir } = arrays(100, 64, '|u1', { rescale: 0.01 });
    const plain = await rangeServer(dir, false);
    const job = nodeJob(dir);
    const coordinator = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    track(coordinator);
    const url = await coordinatorUrl(coordinator);
    try {
      const ignores = startWorker('ignores', url, job.tokenFile, ['--data-url', plain.url]);
      track(ignores);
      expect(await ignores.exited).not.toBe(0);
      expect(ignores.output).toContain(`--data-url: ${plain.url}/x.npy: the server ignored the byte range (HTTP 200)`);
      const closed = await rangeServer(dir);
      closed.close();
      const nothing = startWorker('nothing', url, job.tokenFile, ['--data-url', `${closed.url}/data/`]);
      track(nothing);
      expect(await nothing.exited).not.toBe(0);
      expect(nothing.output).toContain(`--data-url: ${closed.url}/data/x.npy: cannot be read (ECONNREFUSED)`);
    } finally {
      plain.close();
    }
  });

  it('a server that answers a range with more bytes than asked: refused, not buffered', async () => {
    const server = createServer((_req, res) => res.writeHead(206, { 'content-range': 'bytes 0-9/1000000' }).end(Buffer.alloc(1_000_000)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x.npy`;
    try {
      await expect(fetchRange(url, 0, 9)).rejects.toThrow(`${url}: the server sent more than the 10 bytes asked for`);
    } finally {
      server.close();
    }
  });

  it('a node whose --data-dir lacks the file, or holds another, refuses the job naming it; another node trains in its place', async () => {
    const { dir } = arrays(400, 64, '|u1', { rescale: 0.01 });
    const other = arrays(300, 64, '|u1').dir;
    const empty = mkdtempSync(join(tmpdir(), 'dptrain-ondisk-empty-'));
    const job = nodeJob(dir);
    const coordinator = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    track(coordinator);
    const url = await coordinatorUrl(coordinator);
    const missing = startWorker('missing', url, job.tokenFile, ['--data-dir', empty]);
    const differs = startWorker('differs', url, job.tokenFile, ['--data-dir', other]);
    track(missing);
    track(differs);
    expect(await missing.exited).not.toBe(0);
    expect(missing.output).toContain(`--data-dir: ${join(empty, 'x.npy')}: cannot be read (ENOENT); the coordinator trains on x.npy`);
    expect(await differs.exited).not.toBe(0);
    expect(differs.output).toMatch(new RegExp(`--data-dir: ${join(other, 'x.npy')} is not the file the coordinator trains on: \\d+ bytes, the coordinator's has \\d+; 300 rows of 64 values, the coordinator's has 400 of 64`));
    const good = startWorker('good', url, job.tokenFile, ['--data-dir', dir]);
    track(good);
    expect(await coordinator.exited, coordinator.output).toBe(0);
    expect(await good.exited, good.output).toBe(0);
    expect(readSummary(job.out).participants.filter((p) => p.kind === 'node' && p.samples > 0).map((p) => p.name)).toEqual(['good']);
  });
});

/** Writes x.npy of `rows` x 4096 float32 (about 16 KB a row) in chunks, never holding the file; y.npy of class ids 0-9. */
function largeArrays(dir: string, rows: number): void {
  const features = 4096;
  const fd = openSync(join(dir, 'x.npy'), 'w');
  writeSync(fd, npyHeader('<f4', [rows, features]));
  const chunk = 256;
  const block = new Float32Array(chunk * features);
  for (let first = 0; first < rows; first += chunk) {
    const n = Math.min(chunk, rows - first);
    for (let r = 0; r < n; r++) {
      const label = (first + r) % 10;
      for (let j = 0; j < features; j++) block[r * features + j] = ((Math.imul(first + r, 2654435761) ^ Math.imul(j, 40503)) & 255) / 255 + (j % 10 === label ? 1 : 0);
    }
    writeSync(fd, block, 0, n * features * 4);
  }
  closeSync(fd);
  writeFileSync(join(dir, 'y.npy'), npy('<i4', [rows], Int32Array.from({ length: rows }, (_, i) => i % 10)));
}

/** Trains on x.npy / y.npy in `dir` with the coordinator CLI (1 thread, on disk) for `epochs`, sampling its peak resident memory (VmHWM) while it runs. */
async function peakRss(dir: string, epochs: number): Promise<{ peakMb: number; output: string; summary: ReturnType<typeof readSummary> }> {
  writeFileSync(
    join(dir, 'job.yaml'),
    stringify({
      seed: 1,
      data: { path: 'x.npy', labels: 'y.npy', inMemory: false, testSize: 0.1 },
      model: { layers: [{ units: 16, activation: 'relu' }, { units: 10, activation: 'softmax' }] },
      compile: { optimizer: { name: 'adam', learningRate: 0.003 }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
      fit: { epochs, batchSize: 256 },
      cluster: { threads: 1, backend: 'wasm' },
    }),
  );
  const child = spawn(process.execPath, [join(ROOT, 'bin/coordinator.js'), 'start', '--config', join(dir, 'job.yaml'), '--out', join(dir, 'run'), '--metrics-listen', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let peakKb = 0;
  const sample = (): void => {
    try {
      const kb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
      peakKb = Math.max(peakKb, kb);
    } catch {
      // the process has exited
    }
  };
  const timer = setInterval(sample, 100);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(timer);
  expect(code, output).toBe(0);
  return { peakMb: peakKb / 1024, output, summary: readSummary(join(dir, 'run')) };
}

describe('a data set larger than memory', { timeout: 600_000 }, () => {
  // The small file trains 16 epochs so that both runs take the same steps: V8's heap and the
  // wasm memory grow with the steps taken, which would otherwise count against the larger file.
  it('1.5 GB of .npy on disk: the coordinator peaks at under a fifth of the file, and no higher than with a file 16x smaller', async () => {
    const small = mkdtempSync(join(tmpdir(), 'dptrain-ondisk-small-'));
    const large = mkdtempSync(join(tmpdir(), 'dptrain-ondisk-large-'));
    try {
      largeArrays(small, 6_000);
      largeArrays(large, 96_000);
      const fileMb = (96_000 * 4096 * 4) / 2 ** 20;
      const a = await peakRss(small, 16);
      const b = await peakRss(large, 1);
      expect(b.output).toMatch(/86400 train \/ 0 validation \/ 9600 test rows x 4096 features/);
      console.log(`peak RSS ${a.peakMb.toFixed(0)} MB (small file), ${b.peakMb.toFixed(0)} MB (${fileMb.toFixed(0)} MB file); test accuracy ${b.summary.test.accuracy}`);
      expect(b.summary.test.accuracy).toBeGreaterThan(0.9);
      expect(b.peakMb * 5, `peak ${b.peakMb.toFixed(0)} MB, file ${fileMb.toFixed(0)} MB`).toBeLessThan(fileMb);
      expect(b.peakMb - a.peakMb, `peaks ${a.peakMb.toFixed(0)} and ${b.peakMb.toFixed(0)} MB`).toBeLessThan(48);
    } finally {
      rmSync(small, { recursive: true, force: true });
      rmSync(large, { recursive: true, force: true });
    }
  });
});
