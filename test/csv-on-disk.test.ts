/**
 * CSV rows left in their files (data.inMemory false): the same preprocessing, split, labels and
 * float32 features as the table in memory, read per row and per range; 2 threads train the same
 * weights bit for bit, and a worker node is sent them encoded; several files, a validation file
 * and a file that changed are handled; the coordinator holds an index of the rows, not their
 * features (its peak RSS is measured in bench/data-memory.ts).
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readJobData } from '../coordinator/job-data.js';
import { Trainer, modelSpec } from '../coordinator/fit/trainer.js';
import { initBackend } from '../shared/backend.js';
import { loadConfig } from '../shared/config/load.js';
import { featureRows } from '../shared/data/feature-rows.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { DataError } from '../shared/errors.js';
import { configInMemory, rangeServer, writeJobYaml } from './helpers.js';
import { jobFolder, readRunWeights, readSummary, runWithNodes, trackProcesses } from './cluster-helpers.js';
import { maxAbsDiff, trainOnLanes } from './thread-runs.js';

const track = trackProcesses();

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
  const configFile = writeJobYaml(dir, {
    seed: 4,
    data: { path: 'data.csv', drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true, testSize: 0.2, inMemory: false, ...extra },
    model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
    compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'binaryCrossentropy', metrics: ['accuracy'] },
    fit: { epochs: 2, batchSize: 32, validationSplit: 0.1 },
    cluster: { threads: 2, backend: 'wasm' },
  });
  return { dir, configFile };
}

describe('CSV rows on disk', () => {
  it('the same preprocessing, split, labels, lines and float32 features as the table in memory, read per row and per range', () => {
    const { configFile } = job(400);
    const memory = readJobData(configInMemory(configFile, true));
    const disk = readJobData(configInMemory(configFile, false));
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
    const memory = readJobData(configInMemory(configFile, true)).dataset;
    const disk = readJobData(configInMemory(configFile, false)).dataset;
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

  it('1 thread + 1 worker node, sent the rows encoded, reading them from --data-dir, or over HTTP (--data-url): the weights of one process on the table', async () => {
    const { dir } = job(300);
    const nodeJob = (): ReturnType<typeof jobFolder> => {
      const folder = jobFolder(10, {});
      writeJobYaml(folder.dir, {
        seed: 4,
        data: { path: join(dir, 'data.csv'), drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true, inMemory: false },
        model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
        compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'binaryCrossentropy', metrics: ['accuracy'] },
        fit: { epochs: 2, batchSize: 32 },
        cluster: { threads: 1, minWorkers: 1, backend: 'wasm', balance: 'equal', heartbeatInterval: 0.5, heartbeatTimeout: 60, stepTimeout: 180, waitTimeout: 300 },
      });
      return folder;
    };
    const sent = nodeJob();
    const config = loadConfig(sent.configFile);
    const expected = (await trainOnLanes(config, readJobData(configInMemory(sent.configFile, true)).dataset, 'in-process')).weights;
    const first = await runWithNodes(sent, ['w1'], track);
    expect(first.coordinator.output).toContain(`features read per batch from ${join(dir, 'data.csv')}`);
    const reads = nodeJob();
    const second = await runWithNodes(reads, ['w1'], track, ['--data-dir', dir]);
    expect(second.workers[0]!.output).toContain(`reading this node's rows from ${join(dir, 'data.csv')}`);
    const server = await rangeServer(dir);
    const fetches = nodeJob();
    try {
      const third = await runWithNodes(fetches, ['w1'], track, ['--data-url', `${server.url}/`]);
      expect(third.workers[0]!.output).toContain(`reading this node's rows from ${server.url}/data.csv`);
      expect(server.ranges()).toBeGreaterThan(5);
    } finally {
      server.close();
    }
    for (const run of [sent, reads, fetches]) {
      expect(readSummary(run.out).participants.find((p) => p.kind === 'node')!.samples).toBeGreaterThan(0);
      expect(maxAbsDiff(readRunWeights(run.out), expected)).toBeLessThan(1e-4);
    }
    // a node reading the file is sent three numbers a row instead of 46 float32 features
    expect(readSummary(sent.out).traffic.node.sent - readSummary(reads.out).traffic.node.sent).toBeGreaterThan(0);
  }, 300_000);

  it('a file changed after it was read: the row that no longer encodes is an error naming the file', () => {
    const { dir, configFile } = job(200);
    const disk = readJobData(configInMemory(configFile, false)).dataset;
    writeFileSync(join(dir, 'data.csv'), readFileSync(join(dir, 'data.csv'), 'utf8').replace(/Yes|No/g, 'Maybe'));
    expect(() => featureRows(disk).range(0, 50)).toThrow(DataError);
    expect(() => featureRows(disk).range(0, 50)).toThrow(/data\.csv: the row at bytes \d+-\d+ no longer encodes .*the file changed while training/);
  });
});

describe('what the coordinator holds of CSV rows on disk', () => {
  it('no features: per row its label, its place in the split and its file and byte span, under 48 bytes a row', () => {
    const { configFile } = job(3000);
    const { dataset, lines } = readJobData(configInMemory(configFile, false));
    const onDisk = dataset.onDisk!;
    expect(onDisk.kind).toBe('csv');
    if (onDisk.kind !== 'csv') return;
    const rows = dataset.train.count + dataset.val.count + dataset.test.count;
    expect(dataset.x.length).toBe(0);
    const held = dataset.y.byteLength + onDisk.order.byteLength + onDisk.part.byteLength + onDisk.start.byteLength + onDisk.end.byteLength + 8 * (lines.train.length + lines.val.length + lines.test.length);
    expect(held / rows).toBeLessThan(48);
    // in memory the same rows are 46 float32 features each, 4x what is held on disk's behalf
    const memory = readJobData(configInMemory(configFile, true)).dataset;
    expect(memory.x.byteLength / rows).toBe(46 * 4);
    expect(held / rows).toBeLessThan(memory.x.byteLength / rows / 4);
  });
});
