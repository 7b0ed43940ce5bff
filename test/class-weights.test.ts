/**
 * Keras's class_weight (fit.classWeight): each row's loss weighted by its class, the batch's loss
 * their sum over its rows divided by the rows. Every engine's gradient is the weighted sum of the
 * rows' own gradients (each row through the same engine without weights) in float64, for a
 * sigmoid and a softmax output; two threads give one lane's weights; bad keys are ConfigErrors.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DenseGradientEngine } from '../compute/dense-gradient.js';
import { createEngine, TapeGradientEngine } from '../compute/gradient.js';
import { ConfigError, train, type JobConfigInput } from '../index.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { modelSpec } from '../coordinator/fit/trainer.js';
import { Rng } from '../shared/math/rng.js';
import { weightLayout } from '../shared/model/layout.js';
import type { ModelSpec } from '../shared/model/spec.js';
import type { BatchEngine } from '../compute/engine.js';
import { maxAbsDiff, readRunWeights } from './cluster-helpers.js';
import { demoJob } from './helpers.js';

const binary: ModelSpec = {
  inputDim: 6,
  layers: [
    { units: 5, activation: 'relu', useBias: true },
    { units: 1, activation: 'sigmoid', useBias: true },
  ],
  loss: 'binaryCrossentropy',
  metrics: ['accuracy'],
  classWeights: [0.5, 3],
};
const categorical: ModelSpec = {
  inputDim: 6,
  layers: [
    { units: 5, activation: 'tanh', useBias: true },
    { units: 3, activation: 'softmax', useBias: true },
  ],
  loss: 'categoricalCrossentropy',
  metrics: ['accuracy'],
  classWeights: [1, 0.25, 4],
};

/** The class-weighted mean of the rows' own gradients, in float64. */
async function reference(make: (spec: ModelSpec) => BatchEngine, spec: ModelSpec, w: Float32Array, x: Float32Array, y: Float32Array, n: number): Promise<Float64Array> {
  const outputs = spec.layers.at(-1)!.type === undefined ? (spec.layers.at(-1) as { units: number }).units : 1;
  const { classWeights, ...plain } = spec;
  const engine = make(plain);
  engine.setWeights(w);
  const sum = new Float64Array(w.length);
  for (let r = 0; r < n; r++) {
    const yr = y.subarray(r * outputs, (r + 1) * outputs);
    const cls = outputs === 1 ? yr[0]! : yr.indexOf(1);
    const g = (await engine.gradient(x.subarray(r * 6, (r + 1) * 6), yr, 1)).gradient;
    for (let i = 0; i < g.length; i++) sum[i]! += (classWeights![cls]! * g[i]!) / n;
  }
  engine.dispose();
  return sum;
}

const engines: [string, 'cpu' | 'native', (spec: ModelSpec) => BatchEngine][] = [
  ['dense engine', 'cpu', (spec) => new DenseGradientEngine(spec)],
  ['tape engine', 'cpu', (spec) => new TapeGradientEngine(spec)],
  ['native engine', 'native', (spec) => createEngine(spec)],
];

describe('class weights in every engine', () => {
  afterAll(async () => {
    await initBackend('wasm');
  });
  for (const [name, backend, make] of engines) {
    for (const spec of [binary, categorical]) {
      it(`${name}, ${spec.loss}: the class-weighted mean of the rows' gradients`, async () => {
        await initBackend(backend);
        const outputs = (spec.layers.at(-1) as { units: number }).units;
        const rng = new Rng(4);
        const n = 13;
        const x = Float32Array.from({ length: n * 6 }, () => rng.normal());
        const y = new Float32Array(n * outputs);
        for (let r = 0; r < n; r++) {
          if (outputs === 1) y[r] = r % 3 === 0 ? 1 : 0;
          else y[r * outputs + (r % outputs)] = 1;
        }
        const w = Float32Array.from({ length: weightLayout(spec).size }, () => rng.normal() * 0.5);
        const expected = await reference(make, spec, w, x, y, n);
        const engine = make(spec);
        engine.setWeights(w);
        const got = await engine.gradient(x, y, n);
        engine.dispose();
        let worst = 0;
        let scale = 0;
        got.gradient.forEach((v, i) => {
          worst = Math.max(worst, Math.abs(v - expected[i]!));
          scale = Math.max(scale, Math.abs(expected[i]!));
        });
        expect(worst / scale).toBeLessThan(1e-5);
      });
    }
  }
});

describe('fit.classWeight', () => {
  const config = (out: string, threads: number, classWeight?: Record<string, number>): JobConfigInput => demoJob(out, 6, {
    compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'binaryCrossentropy', metrics: ['accuracy', 'auc', 'prAuc', 'precision', 'recall', 'f1Score'] },
    fit: { epochs: 2, batchSize: 64, validationSplit: 0.2, ...(classWeight ? { classWeight } : {}) },
    cluster: { threads, backend: 'cpu', balance: 'equal' },
  });

  it('two threads give one lane\'s weights and metrics (AUC, precision, recall), and the weights differ from a run without class weights', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-class-weight-'));
    const one = await train(config(join(dir, 'one'), 1, { '1': 3 }), { demo: true, log: () => {} });
    const two = await train(config(join(dir, 'two'), 2, { '1': 3 }), { demo: true, log: () => {} });
    const plain = await train(config(join(dir, 'plain'), 1), { demo: true, log: () => {} });
    expect(maxAbsDiff(readRunWeights(join(dir, 'one')), readRunWeights(join(dir, 'two')))).toBeLessThan(1e-5);
    expect(maxAbsDiff(readRunWeights(join(dir, 'one')), readRunWeights(join(dir, 'plain')))).toBeGreaterThan(1e-3);
    // every epoch's metrics, train and validation, as one lane reports them (a thresholded count
    // may flip where an output sits within float rounding of a threshold: a hair, not a point)
    const keys = Object.keys(one.fit.history[1]!.values);
    expect(keys).toEqual(expect.arrayContaining(['auc', 'val_auc', 'precision', 'val_recall', 'prAuc', 'f1Score']));
    one.fit.history.forEach((epoch, e) => {
      for (const key of keys) expect(Math.abs(two.fit.history[e]!.values[key]! - epoch.values[key]!), `${key} in epoch ${e + 1}`).toBeLessThan(2e-3);
    });
    // class weights trade precision for recall, as on imbalanced data they should
    const last = (r: typeof one, key: string): number => r.fit.history.at(-1)!.values[key]!;
    expect(last(one, 'val_recall')).toBeGreaterThan(last(plain, 'val_recall'));
    expect(last(one, 'val_precision')).toBeLessThan(last(plain, 'val_precision'));
  }, 120_000);

  it('a class that does not exist, a regression loss or a negative weight is a ConfigError naming the key', () => {
    const data = { features: 4, outputs: 1 };
    const spec = (fit: object, loss = 'binaryCrossentropy') => () => modelSpec(validateConfig({ ...config('x', 1), compile: { loss }, fit } as never, 'job.yaml'), data);
    expect(spec({ classWeight: { '0': 1, '1': 2 } })().classWeights).toEqual([1, 2]);
    expect(spec({ classWeight: { '1': 2 } })().classWeights).toEqual([1, 2]);
    expect(spec({ classWeight: { '2': 2 } })).toThrow(ConfigError);
    expect(spec({ classWeight: { '2': 2 } })).toThrow(/fit\.classWeight\.2: there is no class 2; the classes are 0 to 1/);
    expect(spec({ classWeight: { '1': 2 } }, 'meanSquaredError')).toThrow(/fit\.classWeight: class weights weigh a classifier's loss/);
    expect(spec({ classWeight: { '1': -2 } })).toThrow(/fit\.classWeight/);
    expect(spec({ classWeight: { yes: 2 } })).toThrow(/fit\.classWeight/);
  });
});
