/**
 * End to end through the CLI: the seed's churn model on the real Telco file, the tuned variant,
 * and the demo. The saved model is read back with tf.loadLayersModel and must reproduce the
 * test metrics the run printed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { prepareJobData, type Summary } from '../coordinator/job.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { readCsv } from '../shared/data/csv.js';
import { loadModel } from '../shared/model/io.js';
import { COORDINATOR_BIN, HAVE_TELCO, ROOT, TELCO_CSV } from './helpers.js';

function train(args: string[]): { out: string; stdout: string; summary: Summary } {
  const out = mkdtempSync(join(tmpdir(), 'dptrain-run-'));
  const r = spawnSync(process.execPath, [COORDINATOR_BIN, 'start', ...args, '--out', out], { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  return { out, stdout: r.stdout, summary: JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary };
}

/** Loads the run's saved model and evaluates it on the run's own test split. */
async function reevaluate(out: string, table = readCsv(TELCO_CSV)): Promise<{ accuracy: number; loss: number }> {
  const config = validateConfig(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')), 'config.json');
  const { dataset } = prepareJobData(config, table);
  const model = await loadModel(join(out, 'model'));
  const { start, count } = dataset.test;
  const xs = tf.tensor2d(dataset.x.slice(start * dataset.features, (start + count) * dataset.features), [count, dataset.features]);
  const ys = dataset.y.slice(start, start + count);
  const p = (model.predict(xs) as tf.Tensor).dataSync();
  // The loss from the logits, as training reports it (tf.keras's form): the last layer's
  // pre-activation from the layer before it and the last layer's kernel and bias.
  const last = model.layers[model.layers.length - 1]!;
  const hidden = tfl.model({ inputs: model.inputs, outputs: model.layers[model.layers.length - 2]!.output as tfl.SymbolicTensor });
  const [kernel, bias] = last.getWeights();
  const z = tf.add(tf.matMul(hidden.predict(xs) as tf.Tensor2D, kernel as tf.Tensor2D), bias!).dataSync();
  let correct = 0;
  let loss = 0;
  p.forEach((prob, i) => {
    const y = ys[i]!;
    if ((prob > 0.5 ? 1 : 0) === y) correct++;
    const zi = z[i]!;
    loss += Math.max(zi, 0) - zi * y + Math.log1p(Math.exp(-Math.abs(zi)));
  });
  return { accuracy: correct / count, loss: loss / count };
}

beforeAll(async () => {
  await initBackend('cpu');
});

describe.skipIf(!HAVE_TELCO)('Telco churn, seed setup (64-64-1 on raw features, adam 0.001, batch 32, validationSplit 0.2, early stopping on val_loss with patience 50)', () => {
  let run: ReturnType<typeof train>;
  beforeAll(() => {
    run = train(['--config', 'examples/telco-churn.yaml', '--data', TELCO_CSV, '--threads', '2']);
  }, 900_000);

  it('reaches test accuracy >= 0.77 and writes summary.json', () => {
    const s = run.summary;
    expect(s.test.accuracy).toBeGreaterThanOrEqual(0.77);
    expect(s).toMatchObject({ trainRows: 4500, valRows: 1125, testRows: 1407, features: 45, threads: 2, backend: 'native' });
    expect(s.epochs).toBeGreaterThan(0);
    expect(s.bestEpoch).toBeGreaterThan(0);
    expect(s.bestEpoch).toBeLessThanOrEqual(s.epochs);
    expect(s.samplesPerSecond).toBeGreaterThan(0);
    expect(s.wallSeconds).toBeGreaterThan(0);
    expect(s.samples).toBe(s.epochs * 4500);
  });

  it('prints Keras-like progress and where the files went', () => {
    expect(run.stdout).toMatch(/Epoch 1\/1000 - 141 steps - [\d.]+s - loss: [\d.]+ - accuracy: [\d.]+ - val_loss: [\d.]+ - val_accuracy: [\d.]+ - \d+ samples\/s/);
    expect(run.stdout).toMatch(/Test: loss: [\d.]+ - accuracy: [\d.]+/);
    expect(run.stdout).toContain(`Run files: ${run.out}`);
  });

  it('writes history (JSON and CSV), config and preprocessing to the run directory', () => {
    const history = JSON.parse(readFileSync(join(run.out, 'history.json'), 'utf8')) as Record<string, number[]>;
    expect(Object.keys(history)).toEqual(expect.arrayContaining(['epoch', 'loss', 'accuracy', 'val_loss', 'val_accuracy']));
    expect(history['loss']).toHaveLength(run.summary.epochs);
    const csv = readFileSync(join(run.out, 'history.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('epoch,loss,accuracy,val_loss,val_accuracy,seconds,samples_per_second');
    expect(csv).toHaveLength(run.summary.epochs + 1);
    const pre = JSON.parse(readFileSync(join(run.out, 'preprocessing.json'), 'utf8')) as { features: string[] };
    expect(pre.features).toHaveLength(45);
    expect(existsSync(join(run.out, 'model', 'model.json'))).toBe(true);
    expect(existsSync(join(run.out, 'model', 'weights.bin'))).toBe(true);
  });

  it('saves a model that tf.loadLayersModel reads back and that reproduces the test metrics', async () => {
    const again = await reevaluate(run.out);
    expect(again.accuracy).toBeCloseTo(run.summary.test['accuracy']!, 6);
    expect(again.loss).toBeCloseTo(run.summary.test.loss, 3);
  });
});

describe('demo', () => {
  it('coordinator start --demo (the README command) trains on generated data with no file', async () => {
    const { out, summary, stdout } = train(['--demo']);
    expect(existsSync(join(out, 'demo-data.csv'))).toBe(true);
    expect(summary.features).toBe(45);
    expect(summary.test.accuracy).toBeGreaterThan(0.7);
    // The demo (seed 42, 5 epochs, early stopping on val_loss with patience 2) always stops early:
    // val_loss is best at epoch 2, and epochs 3 and 4 are worse by about 0.004 (1%), far beyond any
    // backend's rounding; the weights of epoch 2 come back.
    const history = JSON.parse(readFileSync(join(out, 'history.json'), 'utf8')) as Record<string, number[]>;
    const valLoss = history['val_loss']!;
    expect(valLoss).toHaveLength(4);
    expect(Math.min(...valLoss)).toBe(valLoss[1]);
    expect(valLoss[2]! - valLoss[1]!).toBeGreaterThan(0.002);
    expect(valLoss[3]! - valLoss[1]!).toBeGreaterThan(0.002);
    expect(summary).toMatchObject({ stoppedEarly: true, epochs: 4, bestEpoch: 2, restoredBestWeights: true });
    expect(stdout).toContain('Restored the weights of epoch 2 (early stopping).');
    expect(stdout).toMatch(/Epoch 1\/5/);
    expect(stdout).not.toMatch(/Epoch 5\/5/);
    // threads: auto (the default) gives this small model one lane, in the coordinator's thread.
    expect(summary.threads).toBe(1);
    // backend auto says why it is native: no GPU here (a GPU machine would say which it took)
    expect(stdout).toMatch(/computing in the coordinator's thread on native \(onnxruntime-node [\d.]+, 1 thread\(s\) a lane; auto: no GPU \([^)]*\); onnxruntime's CPU kernels\) \[threads: auto chose 1 of \d+ core\(s\): a step is ~1\.4 MFLOP/);
    const again = await reevaluate(out, readCsv(join(out, 'demo-data.csv')));
    expect(again.accuracy).toBeCloseTo(summary.test['accuracy']!, 6);
  }, 600_000);
});
