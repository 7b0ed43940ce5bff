/**
 * Keras's gradient clipping on the optimizer (shared/optimize/clip.ts): exact numbers for
 * clipnorm (per variable), globalClipnorm and clipvalue; one of them at most in a config; and
 * through train(): applied once to the reduced gradient, so one lane and two threads give the
 * same weights, and each variable's update is bounded as the setting says.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clipGradient } from '../shared/optimize/clip.js';
import { ConfigError, train, type JobConfigInput } from '../index.js';
import { validateConfig } from '../shared/config/load.js';
import { weightLayout } from '../shared/model/layout.js';
import { maxAbsDiff, readRunWeights } from './cluster-helpers.js';
import { demoJob } from './helpers.js';

const vars = [
  { offset: 0, size: 2 },
  { offset: 2, size: 2 },
];

describe('gradient clipping', () => {
  it('clipnorm scales each variable whose norm is over it to that norm, and leaves the others', () => {
    const g = Float32Array.of(3, 4, 0.3, 0.4);
    clipGradient(g, vars, { clipnorm: 1 });
    expect(Array.from(g)).toEqual([Math.fround(0.6), Math.fround(0.8), Math.fround(0.3), Math.fround(0.4)]);
  });

  it('globalClipnorm scales the whole gradient by one factor', () => {
    const g = Float32Array.of(3, 4, 0.3, 0.4);
    clipGradient(g, vars, { globalClipnorm: 1 });
    const norm = Math.sqrt(9 + 16 + Math.fround(0.3) ** 2 + Math.fround(0.4) ** 2);
    expect(Array.from(g)).toEqual([3, 4, Math.fround(0.3), Math.fround(0.4)].map((v) => Math.fround(v / norm)));
    const small = Float32Array.of(0.1, 0, 0, 0.1);
    clipGradient(small, vars, { globalClipnorm: 1 });
    expect(Array.from(small)).toEqual([Math.fround(0.1), 0, 0, Math.fround(0.1)]);
  });

  it('clipvalue clips each value', () => {
    const g = Float32Array.of(3, -4, 0.3, -0.4);
    clipGradient(g, vars, { clipvalue: 0.35 });
    expect(Array.from(g)).toEqual([0.35, -0.35, 0.3, -0.35].map(Math.fround));
  });

  it('a config may set one of the three, as Keras allows', () => {
    const base = { data: { label: { column: 'Churn', positive: 'Yes' } }, model: { layers: [{ units: 1, activation: 'sigmoid' }] } };
    expect(() => validateConfig({ ...base, compile: { loss: 'binaryCrossentropy', optimizer: { name: 'adam', clipnorm: 1, clipvalue: 0.5 } } } as never, 'job.yaml')).toThrow(ConfigError);
    expect(() => validateConfig({ ...base, compile: { loss: 'binaryCrossentropy', optimizer: { name: 'adam', clipnorm: 1, clipvalue: 0.5 } } } as never, 'job.yaml')).toThrow(/one of clipnorm, clipvalue and globalClipnorm/);
    expect(validateConfig({ ...base, compile: { loss: 'binaryCrossentropy', optimizer: { name: 'sgd', globalClipnorm: 2 } } } as never, 'job.yaml').compile.optimizer).toMatchObject({ name: 'sgd', globalClipnorm: 2 });
  });

  it('through train(): once on the reduced gradient (1 lane = 2 threads), each variable moving at most learningRate x clipnorm', async () => {
    const config = (out: string, threads: number): JobConfigInput => demoJob(out, 3, {
      compile: { optimizer: { name: 'sgd', learningRate: 1, clipnorm: 0.01 }, loss: 'binaryCrossentropy' },
      // one step: the whole training set in one batch
      fit: { epochs: 1, batchSize: 100000 },
      cluster: { threads, backend: 'cpu', balance: 'equal' },
    });
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-clip-'));
    const one = await train(config(join(dir, 'one'), 1), { demo: true, log: () => {} });
    await train(config(join(dir, 'two'), 2), { demo: true, log: () => {} });
    expect(one.summary.steps).toBe(1);
    const a = readRunWeights(join(dir, 'one'));
    const b = readRunWeights(join(dir, 'two'));
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
    // the initial weights: the same run with a learning rate too small to move them
    const still = await train({ ...config(join(dir, 'still'), 1), compile: { optimizer: { name: 'sgd', learningRate: 1e-30 }, loss: 'binaryCrossentropy' } }, { demo: true, log: () => {} });
    expect(still.summary.steps).toBe(1);
    const w0 = readRunWeights(join(dir, 'still'));
    const spec = { inputDim: 45, layers: [{ units: 8, activation: 'relu' as const, useBias: true }, { units: 1, activation: 'sigmoid' as const, useBias: true }], loss: 'binaryCrossentropy' as const, metrics: [] };
    expect(a.length).toBe(weightLayout(spec).size);
    const norms = weightLayout(spec).entries.map((e) => Math.sqrt(a.subarray(e.offset, e.offset + e.size).reduce((s, v, i) => s + (v - w0[e.offset + i]!) ** 2, 0)));
    for (const n of norms) expect(n).toBeLessThan(0.01 * 1.0001);
    // the kernels' gradients are over the bound here: clipped to it
    expect(Math.max(...norms)).toBeGreaterThan(0.0099);
  });
});
