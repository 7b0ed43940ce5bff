/**
 * The saved model directory on the Telco data: `coordinator predict` on the raw file gives the
 * probabilities of the trained model in memory (within 1e-6) and lists the 11 rows with a blank
 * TotalCharges by line; `coordinator evaluate` on the held-out test rows (from split.json)
 * reproduces the test metrics of the run; tf.loadLayersModel reads the files.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { runJob, type JobResult } from '../coordinator/job.js';
import { evaluateCsv, loadSavedModel, predictCsv } from '../coordinator/saved-model.js';
import { validateConfig } from '../shared/config/load.js';
import { readCsv } from '../shared/data/csv.js';
import { encode, type Preprocessor } from '../shared/data/preprocess.js';
import { initBackend } from '../shared/backend.js';
import { modelWithWeights } from '../shared/model/build.js';
import { loadModel } from '../shared/model/io.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { COORDINATOR_BIN, HAVE_TELCO, ROOT, TELCO_CSV } from './helpers.js';

/** The Telco file's lines as text. */
const raw = (): string[] => readFileSync(TELCO_CSV, 'utf8').split(/\r?\n/);

function coordinator(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [COORDINATOR_BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!HAVE_TELCO)('saved model: predict and evaluate on the Telco file', { timeout: 900_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-saved-'));
  const out = join(dir, 'run');
  let run: JobResult;

  it('trains and saves model.json, weights.bin, preprocessing.json, dptrain-model.json, split.json', async () => {
    const config = validateConfig(
      {
        seed: 4,
        data: { path: TELCO_CSV, drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes', negative: 'No' }, standardize: true },
        model: { layers: [{ units: 32, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
        compile: { loss: 'binaryCrossentropy' },
        fit: { epochs: 3, batchSize: 64, validationSplit: 0.1 },
        cluster: { threads: 1, backend: 'wasm' },
        metrics: { listen: false },
        output: { dir: out },
      },
      'saved-model test',
    );
    run = await runJob(config, { handleSignals: false, log: () => undefined });
    expect(run.summary.test.accuracy).toBeGreaterThan(0.7);
    for (const f of ['model.json', 'weights.bin', 'preprocessing.json', 'dptrain-model.json']) expect(readFileSync(join(out, 'model', f)).length, f).toBeGreaterThan(10);
  });

  it('predict: the raw file gives the in-memory model\'s probabilities, and the 11 blank TotalCharges rows are listed by line', async () => {
    const predictions = join(dir, 'predictions.csv');
    const r = coordinator(['predict', '--model', join(out, 'model'), '--data', TELCO_CSV, '--out', predictions, '--backend', 'cpu']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/11 row\(s\) could not be transformed/);

    // the trained weights in memory, as a tfjs-layers model, on the same rows
    await initBackend('cpu');
    const pre = JSON.parse(readFileSync(join(out, 'preprocessing.json'), 'utf8')) as Preprocessor;
    const enc = encode(readCsv(TELCO_CSV), pre, { requireLabel: false });
    const model = modelWithWeights(JSON.parse(readFileSync(join(out, 'model', 'dptrain-model.json'), 'utf8')) as ModelSpec, run.fit.weights);
    const expected = tf.tidy(() => (model.predict(tf.tensor2d(enc.x, [enc.rows, enc.features])) as tf.Tensor).dataSync());

    const lines = readFileSync(predictions, 'utf8').trim().split('\n');
    // the dropped id column comes along, so predictions join back to the customers
    expect(lines[0]).toBe('line,customerID,probability_Yes,predicted,error');
    const ids = raw().slice(1).filter((l) => l.trim() !== '').map((l) => l.split(',')[0]);
    expect(lines.slice(1).map((l) => l.split(',')[1])).toEqual(ids);
    const rows = lines.slice(1).map((l) => l.split(',')).map(([line, , ...rest]) => [line!, ...rest]);
    expect(rows).toHaveLength(7043);
    const ok = rows.filter((c) => c[1] !== '');
    const rejected = rows.filter((c) => c[1] === '');
    expect(ok).toHaveLength(7032);
    let maxDiff = 0;
    ok.forEach((c, i) => {
      expect(Number(c[0])).toBe(enc.lines[i]);
      maxDiff = Math.max(maxDiff, Math.abs(Number(c[1]) - expected[i]!));
      expect(c[2]).toBe(Number(c[1]) > 0.5 ? 'Yes' : 'No');
    });
    expect(maxDiff).toBeLessThan(1e-6);
    // the rejected lines are exactly those whose TotalCharges is blank in the file
    const file = raw();
    const tc = file[0]!.split(',').indexOf('TotalCharges');
    const blank = file.flatMap((l, i) => (i > 0 && l.trim() !== '' && l.split(',')[tc]!.trim() === '' ? [i + 1] : []));
    expect(rejected.map((c) => Number(c[0]))).toEqual(blank);
    expect(rejected.every((c) => c.slice(3).join(',').includes('missing value in column ""TotalCharges""'))).toBe(true);

    // tf.loadLayersModel reads the saved files and predicts the same
    const loaded = await loadModel(join(out, 'model'));
    const again = tf.tidy(() => (loaded.predict(tf.tensor2d(enc.x, [enc.rows, enc.features])) as tf.Tensor).dataSync());
    expect(Math.max(...again.map((v, i) => Math.abs(v - expected[i]!)))).toBeLessThan(1e-6);
  });

  it('evaluate: the held-out test rows (split.json) give the test loss and accuracy the run reported', () => {
    const split = JSON.parse(readFileSync(join(out, 'split.json'), 'utf8')) as { test: number[] };
    const raw = readFileSync(TELCO_CSV, 'utf8').split(/\r?\n/);
    const testCsv = join(dir, 'test.csv');
    writeFileSync(testCsv, `${[raw[0], ...split.test.map((line) => raw[line - 1])].join('\n')}\n`);
    const r = coordinator(['evaluate', '--model', join(out, 'model'), '--data', testCsv, '--backend', 'wasm']);
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as { rows: number; loss: number; accuracy: number };
    expect(result.rows).toBe(run.summary.testRows);
    expect(Math.abs(result.loss - run.summary.test.loss)).toBeLessThan(1e-6);
    expect(Math.abs(result.accuracy - run.summary.test['accuracy']!)).toBeLessThan(1e-9);
  });

  it('a file larger than a chunk of rows (8 copies of the file, 56,344 rows) is predicted and evaluated a chunk at a time: each copy as the file alone', async () => {
    const model = await loadSavedModel(join(out, 'model'), 'cpu');
    const lines = raw().filter((l) => l.trim() !== '');
    const big = join(dir, 'telco-x8.csv');
    writeFileSync(big, `${[lines[0], ...Array.from({ length: 8 }, () => lines.slice(1)).flat()].join('\n')}\n`);
    const one = await predictCsv(model, TELCO_CSV);
    const eight = await predictCsv(model, big, join(dir, 'predictions-x8.csv'));
    expect(eight.rows).toBe(8 * one.rows);
    expect(eight.rejected).toHaveLength(8 * one.rejected.length);
    for (let copy = 0; copy < 8; copy++) {
      const part = eight.outputs.subarray(copy * one.rows, (copy + 1) * one.rows);
      expect(Math.max(...Array.from(part, (v, i) => Math.abs(v - one.outputs[i]!)))).toBeLessThan(1e-6);
    }
    const written = readFileSync(join(dir, 'predictions-x8.csv'), 'utf8').trim().split('\n');
    expect(written).toHaveLength(1 + 8 * 7043);
    expect(written.slice(1).map((l) => Number(l.split(',')[0]))).toEqual(Array.from({ length: 8 * 7043 }, (_, i) => i + 2));
    const [a, b] = [await evaluateCsv(model, TELCO_CSV), await evaluateCsv(model, big)];
    expect(b.rows).toBe(8 * a.rows);
    expect(Math.abs(b.values['loss']! - a.values['loss']!)).toBeLessThan(1e-6);
    expect(b.values['accuracy']).toBeCloseTo(a.values['accuracy']!, 9);
  });

  it('says what is wrong with a directory that is not a model', () => {
    const r = coordinator(['evaluate', '--model', dir, '--data', TELCO_CSV]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error \[E_MODEL\]: .*dptrain-model\.json: no such file/);
  });
});
