/**
 * A validation set of its own (data.validation, Keras's validation_data) for every kind of data:
 * its rows are the validation rows, encoded as the training data is; CSV with the preprocessing
 * fitted on data.path; .npy and tar shards the same in memory and on disk; a run reports them.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { readJobData } from '../coordinator/job-data.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { parseCsv } from '../shared/data/csv.js';
import { featureRows } from '../shared/data/feature-rows.js';
import { encode } from '../shared/data/preprocess.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { writeTar } from '../shared/data/tar.js';
import { ConfigError, DataError } from '../shared/errors.js';
import { npy } from './helpers.js';
import { trainOnLanes } from './thread-runs.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const dir = mkdtempSync(join(tmpdir(), 'dptrain-validation-'));
const model = { layers: [{ units: 4, activation: 'relu' }, { units: 3, activation: 'softmax' }] };
const compile = { loss: 'categoricalCrossentropy', metrics: ['accuracy'] };

function config(data: Record<string, unknown>, fit: Record<string, unknown> = {}, layers = model.layers): ReturnType<typeof validateConfig> {
  return validateConfig({ seed: 2, data, model: { layers }, compile, fit: { epochs: 1, batchSize: 16, ...fit }, cluster: { threads: 2, backend: 'wasm' } }, join(dir, 'job.yaml'));
}

describe('data.validation', () => {
  it('CSV: the validation file\'s rows, encoded with the preprocessing fitted on data.path; a category data.path lacks drops the row; a missing column names it', () => {
    writeFileSync(join(dir, 'train.csv'), telcoDemoCsv(300, 1));
    const valCsv = telcoDemoCsv(60, 9);
    writeFileSync(join(dir, 'val.csv'), valCsv);
    const data = { path: join(dir, 'train.csv'), drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, testSize: 0.2, validation: { path: join(dir, 'val.csv') } };
    const c = config(data, {}, [{ units: 1, activation: 'sigmoid' }] as never);
    const prepared = readJobData(c);
    const { dataset } = prepared;
    const expected = encode(parseCsv(valCsv, 'val.csv'), prepared.preprocessor);
    expect(dataset.val.count).toBe(expected.rows);
    expect(dataset.train.count + dataset.test.count).toBe(300 - prepared.rowsDropped + expected.rejected.length);
    expect(featureRows(dataset).range(dataset.val.start, dataset.val.count)).toEqual(expected.x);
    expect(() => readJobData({ ...c, fit: { ...c.fit, validationSplit: 0.1 } })).toThrow(ConfigError);
    expect(() => readJobData({ ...c, fit: { ...c.fit, validationSplit: 0.1 } })).toThrow(/fit\.validationSplit \(0\.1\) and data\.validation \(.*val\.csv\) both make a validation set; keep one/);
    writeFileSync(join(dir, 'val-short.csv'), valCsv.replace(/^customerID,gender,/, 'customerID,sex,'));
    expect(() => readJobData({ ...c, data: { ...c.data, validation: { path: join(dir, 'val-short.csv') } } })).toThrow(/unknown column "gender" in the saved preprocessing; .*val-short\.csv has columns/);
  });

  for (const inMemory of [true, false]) {
    it(`.npy ${inMemory ? 'in memory' : 'on disk'}: the validation files are the validation rows, the split of data.path as without them; a mismatch of kind or labels is a ConfigError`, async () => {
      const rows = (n: number, seed: number) => Float32Array.from({ length: n * 5 }, (_, i) => ((i * 7919 + seed * 104729) % 1000) / 1000 + (i % 5 === 0 ? Math.floor(i / 5) % 3 : 0));
      writeFileSync(join(dir, 'x.npy'), npy('<f4', [120, 5], rows(120, 1)));
      writeFileSync(join(dir, 'y.npy'), npy('<i4', [120], Int32Array.from({ length: 120 }, (_, i) => i % 3)));
      writeFileSync(join(dir, 'xv.npy'), npy('<f4', [30, 5], rows(30, 2)));
      writeFileSync(join(dir, 'yv.npy'), npy('<i4', [30], Int32Array.from({ length: 30 }, (_, i) => (i + 1) % 3)));
      const data = { path: join(dir, 'x.npy'), labels: join(dir, 'y.npy'), inMemory, testSize: 0.25 };
      const plain = readJobData(config(data)).dataset;
      const c = config({ ...data, validation: { path: join(dir, 'xv.npy'), labels: join(dir, 'yv.npy') } });
      const { dataset } = readJobData(c);
      expect([dataset.train.count, dataset.val.count, dataset.test.count]).toEqual([90, 30, 30]);
      // the train and test rows are the split of data.path as without a validation set
      expect(featureRows(dataset).range(0, 90)).toEqual(featureRows(plain).range(0, 90));
      expect(featureRows(dataset).range(dataset.test.start, 30)).toEqual(featureRows(plain).range(plain.test.start, 30));
      expect(featureRows(dataset).range(dataset.val.start, 30)).toEqual(rows(30, 2));
      expect(Array.from(dataset.y.subarray(90 * 3, 93 * 3))).toEqual([0, 1, 0, 0, 0, 1, 1, 0, 0]);
      const fit = await trainOnLanes(c, dataset, 2);
      expect(Object.keys(fit.history[0]!.values)).toEqual(expect.arrayContaining(['val_loss', 'val_accuracy']));
      expect(() => readJobData(config({ ...data, validation: { path: join(dir, 'xv.npy') } }))).toThrow(/data\.validation\.labels is required with \.npy data/);
      writeFileSync(join(dir, 'val.csv'), 'a,b\n1,2\n');
      expect(() => readJobData(config({ ...data, validation: { path: join(dir, 'val.csv') } }))).toThrow(/data\.validation\.path \(.*val\.csv\) holds csv, and data\.path holds arrays/);
    });
  }

  it('image folders: validation classes mapped by name (a subset is fine); a class data.path lacks is an error; tar shards in memory and streamed alike', () => {
    const image = (v: number) => {
      const png = new PNG({ width: 4, height: 4 });
      png.data.fill(v);
      return PNG.sync.write(png);
    };
    for (const [folder, classes] of [['train-images', ['a', 'b', 'c']], ['val-images', ['c', 'a']], ['odd-images', ['a', 'z']]] as const) {
      for (const c of classes) {
        mkdirSync(join(dir, folder, c), { recursive: true });
        for (let i = 0; i < 6; i++) writeFileSync(join(dir, folder, c, `${i}.png`), image(10 * i + c.charCodeAt(0)));
      }
    }
    const data = { path: join(dir, 'train-images'), colorMode: 'grayscale', testSize: 0.2 };
    const layers = [{ type: 'flatten' }, { units: 3, activation: 'softmax' }] as never;
    const { dataset } = readJobData(config({ ...data, validation: { path: join(dir, 'val-images') } }, {}, layers));
    expect(dataset.val.count).toBe(12);
    // the first validation images are class "a" (sorted folders): index 0 of data.path's classes
    expect(Array.from(dataset.y.subarray(dataset.val.start * 3, (dataset.val.start + 1) * 3))).toEqual([1, 0, 0]);
    expect(Array.from(dataset.y.subarray((dataset.val.start + 6) * 3, (dataset.val.start + 7) * 3))).toEqual([0, 0, 1]);
    expect(() => readJobData(config({ ...data, validation: { path: join(dir, 'odd-images') } }, {}, layers))).toThrow(DataError);
    expect(() => readJobData(config({ ...data, validation: { path: join(dir, 'odd-images') } }, {}, layers))).toThrow(/odd-images: class folder\(s\) z are not classes of data\.path \(a, b, c\)/);
    const shard = (name: string, n: number, first: number) =>
      writeFileSync(join(dir, name), writeTar(Array.from({ length: n }, (_, i) => [{ name: `${first + i}.png`, bytes: image(first + i) }, { name: `${first + i}.cls`, bytes: Buffer.from(String(i % 3)) }]).flat()));
    shard('train-0.tar', 30, 0);
    shard('train-1.tar', 30, 30);
    shard('val-0.tar', 9, 100);
    const sets = [true, false].map((inMemory) => readJobData(config({ path: join(dir, 'train-*.tar'), colorMode: 'grayscale', testSize: 0.2, inMemory, validation: { path: join(dir, 'val-0.tar') } }, {}, layers)).dataset);
    for (const set of sets) expect([set.train.count, set.val.count, set.test.count]).toEqual([48, 9, 12]);
    expect(featureRows(sets[1]!).range(0, 69)).toEqual(sets[0]!.x);
    expect(featureRows(sets[1]!).range(48, 9)).toEqual(Float32Array.from({ length: 9 * 16 }, (_, i) => Math.fround((100 + Math.floor(i / 16)) / 255)));
  });
});
