/**
 * The library entry (`import { train } from 'dptrain'`): a job from a config object, its saved
 * model used for predictions, config errors as typed errors, the host's signals left alone, and
 * the package's own name resolving to the built entry with its type declarations.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, evaluateCsv, loadSavedModel, predictCsv, train, type Callback, type FitLoopView, type JobConfigInput } from '../index.js';
import { parseCsv } from '../shared/data/csv.js';
import { maxAbsDiff, readRunWeights } from './cluster-helpers.js';
import { ROOT } from './helpers.js';

const config = (out: string): JobConfigInput => ({
  seed: 4,
  data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
  model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
  compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'binaryCrossentropy' },
  fit: { epochs: 3, batchSize: 32, validationSplit: 0.1 },
  cluster: { threads: 1, backend: 'cpu' },
  metrics: { listen: false },
  output: { dir: out },
});

describe('dptrain as a library', () => {
  it('train() runs a job from a config object; its saved model predicts and evaluates CSV rows', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-api-')), 'run');
    const lines: string[] = [];
    const signalListeners = () => process.listenerCount('SIGINT') + process.listenerCount('SIGTERM');
    const before = signalListeners();
    const during: number[] = [];
    const result = await train(config(out), {
      demo: true,
      overrides: { 'fit.epochs': 2 },
      log: (line) => {
        lines.push(line);
        during.push(signalListeners());
      },
    });
    expect(result.runDir).toBe(out);
    expect(result.summary.epochs).toBe(2); // the override won over the object's 3
    expect(result.fit.history.map((e) => e.epoch)).toEqual([1, 2]);
    expect(lines.filter((l) => l.startsWith('Epoch '))).toHaveLength(2);
    expect(during.every((n) => n === before), 'train() added signal handlers to the host process').toBe(true);

    const model = await loadSavedModel(join(out, 'model'), 'cpu');
    const data = join(out, 'demo-data.csv');
    const predicted = await predictCsv(model, data);
    expect(predicted.rows).toBe(readFileSync(data, 'utf8').trim().split('\n').length - 1 - predicted.rejected.length);
    expect(predicted.outputs.every((p) => p >= 0 && p <= 1)).toBe(true);
    const evaluated = await evaluateCsv(model, data);
    expect(evaluated.values['accuracy']).toBeGreaterThan(0.6);

    // The same data as objects in memory (rows) trains to the same bits.
    const table = parseCsv(readFileSync(data, 'utf8'), data);
    const rows = Array.from({ length: table.rowCount }, (_, r) => Object.fromEntries(table.header.map((name, k) => [name, table.cell(r, k)])));
    const fromRows = join(out, '..', 'from-rows');
    const again = await train({ ...config(fromRows), fit: { epochs: 2, batchSize: 32, validationSplit: 0.1 } }, { rows, log: () => {} });
    expect(again.summary.test).toEqual(result.summary.test);
    expect(maxAbsDiff(readRunWeights(fromRows), readRunWeights(out))).toBe(0);
    expect(readFileSync(join(fromRows, 'data.csv'), 'utf8')).toBe(readFileSync(data, 'utf8'));
  });

  it("a caller's callbacks see every batch and epoch, and one can end training as early stopping does", async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-api-')), 'run');
    const seen: string[] = [];
    const stopAfterSecondEpoch: Callback & { loop?: FitLoopView } = {
      setLoop(loop) {
        this.loop = loop;
      },
      onEpochBegin: (epoch) => {
        seen.push(`begin ${epoch}`);
      },
      onBatchEnd: (log) => {
        if (log.batch === log.batches) seen.push(`last batch ${log.batch} loss ${log.logs['loss']! > 0}`);
      },
      onEpochEnd(log) {
        seen.push(`end ${log.epoch}`);
        if (log.epoch === 2) this.loop!.stop('finished');
      },
    };
    const result = await train(config(out), { demo: true, callbacks: [stopAfterSecondEpoch], log: () => {} });
    const batches = Math.ceil(result.summary.trainRows / 32);
    expect(seen).toEqual(['begin 0', `last batch ${batches} loss true`, 'end 1', 'begin 1', `last batch ${batches} loss true`, 'end 2']);
    expect(result.summary).toMatchObject({ epochs: 2, stoppedEarly: true, interrupted: false });
    expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
  });

  it('callbacks may be async: each is awaited before the loop goes on, and a rejection ends train() with its error', async () => {
    const seen: string[] = [];
    const slow: Callback = {
      onEpochBegin: (epoch) => {
        seen.push(`begin ${epoch}`);
      },
      async onEpochEnd(log) {
        await new Promise((r) => setTimeout(r, 30));
        seen.push(`end ${log.epoch} written`);
      },
    };
    await train(config(join(mkdtempSync(join(tmpdir(), 'dptrain-api-')), 'run')), { demo: true, callbacks: [slow], log: () => {} });
    expect(seen).toEqual(['begin 0', 'end 1 written', 'begin 1', 'end 2 written', 'begin 2', 'end 3 written']);
    const failing: Callback = {
      async onBatchEnd(log) {
        if (log.batch === 2) throw new Error('the experiment tracker is down');
      },
    };
    await expect(train(config(join(mkdtempSync(join(tmpdir(), 'dptrain-api-')), 'run')), { demo: true, callbacks: [failing], log: () => {} })).rejects.toThrow('the experiment tracker is down');
  });

  it("stop('finished') from a batch ends the epoch there, as Keras's stop_training does", async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-api-')), 'run');
    const ends: { epoch: number; samples: number; steps: number }[] = [];
    const stopAtThird: Callback & { loop?: FitLoopView } = {
      setLoop(loop) {
        this.loop = loop;
      },
      onBatchEnd(log) {
        if (log.step === 3) this.loop!.stop('finished');
      },
      onEpochEnd(log) {
        ends.push({ epoch: log.epoch, samples: log.samples, steps: log.steps });
      },
    };
    const result = await train(config(out), { demo: true, callbacks: [stopAtThird], log: () => {} });
    expect(result.summary).toMatchObject({ steps: 3, epochs: 1, stoppedEarly: true, interrupted: false });
    expect(ends).toEqual([{ epoch: 1, samples: 96, steps: 3 }]);
    expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
  });

  it('rows and a data.path, or rows and demo, are refused before anything is written', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-api-')), 'run');
    const withPath = { ...config(out), data: { ...config(out).data, path: 'x.csv' } } as JobConfigInput;
    await expect(train(withPath, { rows: [{ a: 1 }] })).rejects.toThrow('rows were given and data.path is set (x.csv): give one of them');
    await expect(train(config(out), { rows: [{ a: 1 }], demo: true })).rejects.toThrow('give demo data or rows, not both');
    await expect(train(config(out), { rows: [{ a: {} as never }] })).rejects.toThrow('rows[0].a: a object is not a cell value');
    expect(existsSync(out)).toBe(false);
  });

  it('a config mistake is a ConfigError naming the key, before anything is written', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-api-')), 'run');
    const bad = { ...config(out), fit: { epoch: 2 } } as unknown as JobConfigInput;
    const error = await train(bad, { demo: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe('train() config: unknown key "fit.epoch"');
    expect(existsSync(out)).toBe(false);
  });

  it("the package's name resolves to the built entry, with type declarations", () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "const m = await import('dptrain'); console.log(Object.keys(m).sort().join(','));"], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split(',')).toEqual(expect.arrayContaining(['train', 'loadSavedModel', 'predictCsv', 'evaluateCsv', 'validateConfig', 'ConfigError']));
    expect(readFileSync(join(ROOT, 'dist/index.d.ts'), 'utf8')).toMatch(/export declare function train\(config: TrainConfig \| string, options\?: TrainOptions\): Promise<JobResult>;/);
  });
});
