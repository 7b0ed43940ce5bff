/**
 * CSV rows left in their files (data.inMemory false): the same preprocessing, split, labels and
 * float32 features as the table in memory, read per row and per range; 2 threads train the same
 * weights bit for bit; several files, a validation file and a file that changed are handled; and
 * the coordinator's peak memory does not grow with the file.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readJobData } from '../coordinator/job-data.js';
import { Trainer, modelSpec } from '../coordinator/fit/trainer.js';
import { initBackend } from '../shared/backend.js';
import { loadConfig } from '../shared/config/load.js';
import { featureRows } from '../shared/data/feature-rows.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { DataError } from '../shared/errors.js';
import { ROOT } from './helpers.js';
import { trainOnLanes } from './thread-runs.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** Telco-schema rows with what a real file has: CRLF line ends, a quoted category with a comma, UTF-8, a multi-line quoted cell in a dropped column, blanks. */
function awkwardCsv(rows: number, seed: number): string {
  const lines = telcoDemoCsv(rows, seed).trimEnd().split('\n');
  return `${lines
    .map((line, i) => {
      if (i === 0) return line;
      let out = line;
      if (i % 7 === 0) out = out.replace('Electronic check', '"Electronic, check é"');
      if (i % 11 === 0) out = `"${out.split(',')[0]}\nsecond line",${out.split(',').slice(1).join(',')}`;
      return out;
    })
    .join('\r\n')}\r\n`;
}

function job(rows: number, extra: Record<string, unknown> = {}): { dir: string; configFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-csv-ondisk-'));
  writeFileSync(join(dir, 'data.csv'), awkwardCsv(rows, 5));
  const configFile = join(dir, 'job.yaml');
  writeFileSync(
    configFile,
    stringify({
      seed: 4,
      data: { path: 'data.csv', drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true, testSize: 0.2, inMemory: false, ...extra },
      model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
      compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'binaryCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 2, batchSize: 32, validationSplit: 0.1 },
      cluster: { threads: 2, backend: 'wasm' },
    }),
  );
  return { dir, configFile };
}

function inMemory(configFile: string, value: boolean): ReturnType<typeof loadConfig> {
  const config = loadConfig(configFile);
  return { ...config, data: { ...config.data, inMemory: value } };
}

describe('CSV rows on disk', () => {
  it('the same preprocessing, split, labels, lines and float32 features as the table in memory, read per row and per range', () => {
    const { configFile } = job(400);
    const memory = readJobData(inMemory(configFile, true));
    const disk = readJobData(inMemory(configFile, false));
    expect(disk.dataset.onDisk?.kind).toBe('csv');
    expect(memory.dataset.onDisk).toBeUndefined();
    expect(disk.dataset.x.length).toBe(0);
    expect(disk.preprocessor).toEqual(memory.preprocessor);
    expect([disk.rowsRead, disk.rowsDropped, disk.warnings]).toEqual([memory.rowsRead, memory.rowsDropped, memory.warnings]);
    expect(disk.lines).toEqual(memory.lines);
    const d = disk.dataset;
    const m = memory.dataset;
    expect([d.train, d.val, d.test]).toEqual([m.train, m.val, m.test]);
    expect(d.y).toEqual(m.y);
    const rows = [0, d.train.count - 1, 5, 6, 7, 42, 41, d.test.start + d.test.count - 1, 3];
    expect(featureRows(d).gather(rows)).toEqual(featureRows(m).gather(rows));
    const all = d.train.count + d.val.count + d.test.count;
    expect(featureRows(d).range(0, all)).toEqual(m.x);
  });

  it('2 threads reading the file train the weights of 2 threads on the table, bit for bit, with the same checkpoint fingerprint', async () => {
    const { configFile } = job(600);
    const memory = readJobData(inMemory(configFile, true)).dataset;
    const disk = readJobData(inMemory(configFile, false)).dataset;
    const config = loadConfig(configFile);
    const spec = modelSpec(config, memory);
    const fingerprint = (dataset: typeof memory): string => new Trainer(config, dataset, { publish: () => {} } as never, spec).fingerprint();
    expect(fingerprint(disk)).toBe(fingerprint(memory));
    const [fromDisk, fromMemory] = [await trainOnLanes(config, disk, 2), await trainOnLanes(config, memory, 2)];
    expect(fromDisk.weights).toEqual(fromMemory.weights);
    expect(fromDisk.history.map((e) => e.values)).toEqual(fromMemory.history.map((e) => e.values));
  }, 120_000);

  it('several files with their columns in another order, and a validation file, as the same files in memory', () => {
    const { dir, configFile } = job(300, { path: 'parts/part-*.csv', validation: { path: 'val.csv' } });
    const text = awkwardCsv(300, 6);
    const [head, ...rows] = text.trimEnd().split('\r\n');
    const names = head!.split(',');
    // part 2 with its columns reversed (a multi-line quoted cell is two of these lines: kept together)
    const records: string[] = [];
    for (const row of rows) {
      if (records.length > 0 && records[records.length - 1]!.split('"').length % 2 === 0) records[records.length - 1] += `\r\n${row}`;
      else records.push(row);
    }
    const reversed = (record: string): string => {
      const cells = record.match(/("([^"]|"")*"|[^,]*)(,|$)/g)!.map((c) => c.replace(/,$/, '')).slice(0, names.length);
      return cells.reverse().join(',');
    };
    mkdirSync(join(dir, 'parts'));
    writeFileSync(join(dir, 'parts', 'part-1.csv'), `${head}\r\n${records.slice(0, 120).join('\r\n')}\r\n`);
    writeFileSync(join(dir, 'parts', 'part-2.csv'), `${[...names].reverse().join(',')}\n${records.slice(120).map(reversed).join('\n')}\n`);
    writeFileSync(join(dir, 'val.csv'), awkwardCsv(80, 8));
    const config = loadConfig(configFile);
    const withValidation = { ...config, fit: { ...config.fit, validationSplit: 0 } };
    const memory = readJobData({ ...withValidation, data: { ...withValidation.data, inMemory: true } });
    const disk = readJobData({ ...withValidation, data: { ...withValidation.data, inMemory: false } });
    expect(disk.preprocessor).toEqual(memory.preprocessor);
    expect(disk.lines).toEqual(memory.lines);
    expect(disk.dataset.val.count).toBeGreaterThan(60);
    const all = memory.dataset.train.count + memory.dataset.val.count + memory.dataset.test.count;
    expect(featureRows(disk.dataset).range(0, all)).toEqual(memory.dataset.x);
    expect(disk.dataset.y).toEqual(memory.dataset.y);
  });

  it('a file changed after it was read: the row that no longer encodes is an error naming the file', () => {
    const { dir, configFile } = job(200);
    const disk = readJobData(inMemory(configFile, false)).dataset;
    writeFileSync(join(dir, 'data.csv'), readFileSync(join(dir, 'data.csv'), 'utf8').replace(/Yes|No/g, 'Maybe'));
    expect(() => featureRows(disk).range(0, 50)).toThrow(DataError);
    expect(() => featureRows(disk).range(0, 50)).toThrow(/data\.csv: the row at bytes \d+-\d+ no longer encodes .*the file changed while training/);
  });
});

/** Trains on data.csv in `dir` with the coordinator CLI (1 thread, CSV on disk) for `epochs`, sampling its peak resident memory (VmHWM). */
async function peakRss(dir: string, epochs: number): Promise<number> {
  writeFileSync(
    join(dir, 'job.yaml'),
    stringify({
      seed: 1,
      data: { path: 'data.csv', drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true, testSize: 0.1, inMemory: false },
      model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
      compile: { loss: 'binaryCrossentropy' },
      fit: { epochs, batchSize: 256 },
      cluster: { threads: 1, backend: 'wasm' },
    }),
  );
  const child = spawn(process.execPath, [join(ROOT, 'bin/coordinator.js'), 'start', '--config', join(dir, 'job.yaml'), '--out', join(dir, 'run'), '--metrics-listen', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let peakKb = 0;
  const timer = setInterval(() => {
    try {
      peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0));
    } catch {
      // the process has exited
    }
  }, 100);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(timer);
  expect(code, output).toBe(0);
  expect(output).toMatch(/features read per batch from/);
  return peakKb / 1024;
}

describe('a CSV file far larger than the coordinator holds', { timeout: 600_000 }, () => {
  it('80 MB of CSV on disk: the coordinator grows by under half the file (its index of rows: labels, spans, the split), where the rows in memory would be 2.5x the file', async () => {
    const small = mkdtempSync(join(tmpdir(), 'dptrain-csv-small-'));
    const large = mkdtempSync(join(tmpdir(), 'dptrain-csv-large-'));
    try {
      const block = telcoDemoCsv(75_000, 3);
      writeFileSync(join(small, 'data.csv'), block);
      const body = block.slice(block.indexOf('\n') + 1);
      writeFileSync(join(large, 'data.csv'), block);
      for (let i = 1; i < 8; i++) appendFileSync(join(large, 'data.csv'), body);
      const fileMb = (8 - 1) * Buffer.byteLength(body) / 2 ** 20;
      const a = await peakRss(small, 8);
      const b = await peakRss(large, 1);
      console.log(`CSV on disk: peak RSS ${a.toFixed(0)} MB (${(fileMb / 7).toFixed(0)} MB file, 8 epochs), ${b.toFixed(0)} MB (${((fileMb * 8) / 7).toFixed(0)} MB file, 1 epoch)`);
      expect(b - a, `peaks ${a.toFixed(0)} and ${b.toFixed(0)} MB for ${fileMb.toFixed(0)} MB more file`).toBeLessThan(fileMb / 2);
    } finally {
      rmSync(small, { recursive: true, force: true });
      rmSync(large, { recursive: true, force: true });
    }
  });
});
