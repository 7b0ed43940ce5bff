/**
 * Keras's loss arguments (compile.loss as an object): huber and its delta, label smoothing and
 * fromLogits for the cross-entropies. Each per-sample loss and its gradient against a float64
 * reference of Keras's formula; through train(): a linear output with fromLogits trains the model
 * a sigmoid output does (the same logits), over one thread and two; bad arguments are
 * ConfigErrors naming the key.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, train, type JobConfigInput } from '../index.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { resolveLoss } from '../shared/model/registries.js';
import { Rng } from '../shared/math/rng.js';
import { maxAbsDiff, readRunWeights } from './cluster-helpers.js';
import { demoJob } from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const EPSILON = 1e-7;
const clip = (p: number): number => Math.min(1 - EPSILON, Math.max(EPSILON, p));
const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/** Per-sample loss values and d(sum of losses)/d(output), from the resolved loss on [rows, units]. */
function lossAndGradient(fn: (t: tf.Tensor, p: tf.Tensor) => tf.Tensor, y: number[], p: number[], units: number): { loss: number[]; grad: number[] } {
  return tf.tidy(() => {
    const t = tf.tensor2d(y, [y.length / units, units]);
    const q = tf.tensor2d(p, [p.length / units, units]);
    const loss = Array.from(fn(t, q).dataSync());
    const grad = Array.from(tf.grad((x: tf.Tensor) => tf.sum(fn(t, x)))(q).dataSync());
    return { loss, grad };
  });
}

describe('huber', () => {
  it("follows Keras's formula and its gradient on both sides of delta, for delta 1 and 0.5", () => {
    const y = [0, 1, 2, -1, 0.5, 3];
    const p = [0.2, 2.5, 2, 0.5, 0.5, 2.4];
    for (const delta of [1, 0.5]) {
      const { loss, grad } = lossAndGradient(resolveLoss('huber', delta === 1 ? undefined : { delta }, 'linear').fn, y, p, 2);
      const refLoss = [0, 1, 2].map((r) => {
        const terms = [0, 1].map((k) => {
          const e = p[2 * r + k]! - y[2 * r + k]!;
          return Math.abs(e) <= delta ? 0.5 * e * e : delta * Math.abs(e) - 0.5 * delta * delta;
        });
        return (terms[0]! + terms[1]!) / 2;
      });
      const refGrad = p.map((pk, k) => Math.max(-delta, Math.min(delta, pk - y[k]!)) / 2);
      loss.forEach((v, r) => expect(v, `delta ${delta} row ${r}`).toBeCloseTo(refLoss[r]!, 6));
      grad.forEach((g, k) => expect(g, `delta ${delta} output ${k}`).toBeCloseTo(refGrad[k]!, 6));
    }
  });
});

describe('label smoothing and fromLogits', () => {
  const rng = new Rng(12);
  const rows = 40;
  const yb = Array.from({ length: rows }, () => (rng.next() < 0.4 ? 1 : 0));
  const zb = Array.from({ length: rows }, () => 6 * (rng.next() - 0.5));

  it('binary: smoothed labels y(1 - s) + s/2, from probabilities and from logits alike', () => {
    const s = 0.2;
    const ref = yb.map((y, i) => {
      const t = y * (1 - s) + s / 2;
      const p = clip(sigmoid(zb[i]!));
      return -(t * Math.log(p) + (1 - t) * Math.log(1 - p));
    });
    // d/dz of the smoothed loss: sigmoid(z) - t
    const refGrad = yb.map((y, i) => sigmoid(zb[i]!) - (y * (1 - s) + s / 2));
    const fromProbabilities = lossAndGradient(resolveLoss('binaryCrossentropy', { labelSmoothing: s }, 'sigmoid').fn, yb, zb.map(sigmoid), 1);
    const fromLogits = lossAndGradient(resolveLoss('binaryCrossentropy', { labelSmoothing: s, fromLogits: true }, 'linear').fn, yb, zb, 1);
    ref.forEach((v, i) => {
      expect(fromProbabilities.loss[i]).toBeCloseTo(v, 5);
      expect(fromLogits.loss[i]).toBeCloseTo(v, 5);
      expect(fromLogits.grad[i]).toBeCloseTo(refGrad[i]!, 5);
    });
    // a sigmoid output with the plain loss takes the same logits path (tf.keras's)
    expect(resolveLoss('binaryCrossentropy', { labelSmoothing: s }, 'sigmoid').logits).toBeDefined();
  });

  it('categorical: smoothed labels y(1 - s) + s/classes, softmax applied by the loss with fromLogits', () => {
    const s = 0.1;
    const units = 3;
    const y: number[] = [];
    const z: number[] = [];
    for (let r = 0; r < 20; r++) {
      const hot = Math.floor(rng.next() * units);
      for (let k = 0; k < units; k++) {
        y.push(k === hot ? 1 : 0);
        z.push(4 * (rng.next() - 0.5));
      }
    }
    const { loss, grad } = lossAndGradient(resolveLoss('categoricalCrossentropy', { labelSmoothing: s, fromLogits: true }, 'linear').fn, y, z, units);
    for (let r = 0; r < 20; r++) {
      const row = z.slice(r * units, (r + 1) * units);
      const max = Math.max(...row);
      const total = row.reduce((a, v) => a + Math.exp(v - max), 0);
      const logSoftmax = row.map((v) => v - max - Math.log(total));
      const t = y.slice(r * units, (r + 1) * units).map((v) => v * (1 - s) + s / units);
      expect(loss[r]).toBeCloseTo(-t.reduce((a, tk, k) => a + tk * logSoftmax[k]!, 0), 5);
      // d/dz: softmax(z) - t
      for (let k = 0; k < units; k++) expect(grad[r * units + k]).toBeCloseTo(Math.exp(logSoftmax[k]!) - t[k]!, 5);
    }
  });
});

describe('through train()', { timeout: 120_000 }, () => {
  const job = (out: string, threads: number, loss: JobConfigInput['compile']['loss'], activation: 'sigmoid' | 'linear'): JobConfigInput => ({
    ...demoJob(out, 21, {
      compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss, metrics: typeof loss === 'object' && loss.name === 'huber' ? ['meanAbsoluteError'] : ['accuracy', 'auc'] },
      fit: { epochs: 2, batchSize: 64, validationSplit: 0.2 },
      cluster: { threads, backend: 'cpu', balance: 'equal' },
    }),
    model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation }] },
  });

  it('a linear output with fromLogits trains the sigmoid model (label smoothing on both), on one thread and two; its metrics read probabilities', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-loss-'));
    const sigmoidRun = await train(job(join(dir, 'sigmoid'), 1, { name: 'binaryCrossentropy', labelSmoothing: 0.1 }, 'sigmoid'), { demo: true, log: () => {} });
    const logitsRun = await train(job(join(dir, 'logits'), 2, { name: 'binaryCrossentropy', labelSmoothing: 0.1, fromLogits: true }, 'linear'), { demo: true, log: () => {} });
    const plain = await train(job(join(dir, 'plain'), 1, 'binaryCrossentropy', 'sigmoid'), { demo: true, log: () => {} });
    expect(maxAbsDiff(readRunWeights(join(dir, 'sigmoid')), readRunWeights(join(dir, 'logits')))).toBeLessThan(1e-5);
    expect(maxAbsDiff(readRunWeights(join(dir, 'sigmoid')), readRunWeights(join(dir, 'plain')))).toBeGreaterThan(1e-3);
    for (const key of ['loss', 'accuracy', 'auc', 'val_loss', 'val_accuracy', 'val_auc']) {
      expect(Math.abs(logitsRun.fit.history[1]!.values[key]! - sigmoidRun.fit.history[1]!.values[key]!), key).toBeLessThan(2e-3);
    }
    expect(logitsRun.summary.test['accuracy']).toBeGreaterThan(0.7);
    expect(plain.summary.test['loss']).toBeLessThan(sigmoidRun.summary.test['loss']!);
  });

  it('huber over two threads trains the one-lane model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-huber-'));
    await train(job(join(dir, 'one'), 1, { name: 'huber', delta: 0.3 }, 'linear'), { demo: true, log: () => {} });
    await train(job(join(dir, 'two'), 2, { name: 'huber', delta: 0.3 }, 'linear'), { demo: true, log: () => {} });
    expect(maxAbsDiff(readRunWeights(join(dir, 'one')), readRunWeights(join(dir, 'two')))).toBeLessThan(1e-5);
  });
});

describe('bad arguments', () => {
  const base = { data: { path: 'x.csv', label: { column: 'y' } }, model: { layers: [{ units: 1, activation: 'linear' }] } };
  const check = (loss: unknown): (() => unknown) => () => validateConfig({ ...base, compile: { loss } }, 'job.yaml');

  it('an argument of another loss, or out of range, is a ConfigError naming the key', () => {
    expect(check({ name: 'meanSquaredError', fromLogits: true })).toThrow(/compile\.loss\.fromLogits: fromLogits is an argument of binaryCrossentropy and categoricalCrossentropy/);
    expect(check({ name: 'binaryCrossentropy', delta: 2 })).toThrow(/compile\.loss\.delta: delta is huber's argument/);
    expect(check({ name: 'binaryCrossentropy', labelSmoothing: 1.5 })).toThrow(ConfigError);
    expect(check({ name: 'huber', delta: 0 })).toThrow(/compile\.loss\.delta/);
    expect(check({ name: 'huber', beta: 1 })).toThrow(/compile\.loss/);
    expect(validateConfig({ ...base, compile: { loss: { name: 'huber' } } }, 'job.yaml').compile.loss).toEqual({ name: 'huber' });
  });

  it('fromLogits with a sigmoid output is refused at start', async () => {
    const out = mkdtempSync(join(tmpdir(), 'dptrain-loss-bad-'));
    const job = { ...demoJob(out, 1, { compile: { loss: { name: 'binaryCrossentropy', fromLogits: true } }, fit: { epochs: 1 } }) };
    await expect(train(job, { demo: true, log: () => {} })).rejects.toThrow(/compile\.loss\.fromLogits: the outputs are to be logits, but model\.layers\[1\] applies sigmoid/);
  });
});
