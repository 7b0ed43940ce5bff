/**
 * Gradient accumulation (cluster.microBatchSize): micro-batches keep virtual batches whole; an
 * engine's gradient, loss and metric sums in micro-batches are the whole batch's (a CNN with
 * batch norm and dropout, and a Dense stack); through train(), two threads in micro-batches with
 * class weights, a warmup-and-cosine schedule and clipping train one lane's model without them.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BatchGradient } from '../compute/engine.js';
import { createEngine } from '../compute/gradient.js';
import { microBatches } from '../compute/micro-batches.js';
import { modelSpec } from '../coordinator/fit/trainer.js';
import { checkAgainstData } from '../coordinator/validate.js';
import { ConfigError, train, type JobConfigInput } from '../index.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import type { Dataset } from '../shared/data/dataset.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { Rng } from '../shared/math/rng.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { virtualBatches } from '../shared/plan/split-plan.js';
import { maxAbsDiff, readRunWeights } from './cluster-helpers.js';
import { demoJob } from './helpers.js';
import { SIDE, strokes } from './strokes.js';

let images: Dataset;

beforeAll(async () => {
  images = strokes(96, 3);
  await initBackend('cpu');
});

describe('micro-batches', () => {
  it('split at the size, or by whole virtual batches', () => {
    expect(microBatches(10, 4)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    // groups 7 (3 rows, not contiguous), 2 (2 rows), 9 (3 rows): packed whole, in order of first row
    const groups = Int32Array.from([7, 2, 7, 2, 9, 7, 9, 9]);
    expect(microBatches(8, 5, groups)).toEqual([[0, 2, 5, 1, 3], [4, 6, 7]]);
    expect(() => microBatches(8, 2, groups)).toThrow(/virtual batch 7 has 3 rows, more than cluster.microBatchSize \(2\)/);
  });
});

/** Gradient, loss and metric sums of `spec` on the first `count` rows of `data`, whole and in micro-batches. */
async function wholeAndMicro(spec: ModelSpec, data: Dataset, count: number, micro: number, virtualBatch?: number): Promise<[BatchGradient, BatchGradient]> {
  const layout = weightLayout(spec);
  const weights = initialWeights(layout, new Rng(4));
  const rows = Int32Array.from({ length: count }, (_, i) => i);
  const groupOf = virtualBatch ? virtualBatches(rows, virtualBatch) : undefined;
  const batch = { step: 3, rows, ...(groupOf ? { groups: Int32Array.from(rows, (r) => groupOf.get(r)!) } : {}) };
  const x = data.x.subarray(0, count * data.features);
  const y = data.y.subarray(0, count * data.outputs);
  const results: BatchGradient[] = [];
  for (const s of [spec, { ...spec, microBatchSize: micro }]) {
    const engine = createEngine(s);
    engine.setWeights(weights);
    results.push(await engine.gradient(x, y, count, undefined, undefined, batch));
    engine.dispose();
  }
  return [results[0]!, results[1]!];
}

function relativeDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  let scale = 0;
  a.forEach((v, i) => {
    worst = Math.max(worst, Math.abs(v - b[i]!));
    scale = Math.max(scale, Math.abs(v));
  });
  return worst / scale;
}

describe('an engine in micro-batches', () => {
  it('a CNN with batch norm (virtual batches of 8) and dropout: the whole batch\'s gradient and sums', async () => {
    const config = validateConfig(
      {
        seed: 2,
        data: { label: { column: 'kind', type: 'categorical' } },
        model: {
          layers: [
            { type: 'reshape', targetShape: [SIDE, SIDE, 1] },
            { type: 'conv2d', filters: 4, kernelSize: 3, useBias: false },
            { type: 'batchNormalization', virtualBatchSize: 8 },
            { type: 'dropout', rate: 0.25 },
            { type: 'flatten' },
            { units: 3, activation: 'softmax' },
          ],
        },
        compile: { loss: 'categoricalCrossentropy', metrics: ['accuracy', 'auc'] },
        fit: { batchSize: 48 },
        cluster: { threads: 1, backend: 'cpu' },
      },
      'test config',
    );
    const [whole, micro] = await wholeAndMicro(modelSpec(config, images), images, 48, 16, 8);
    expect(relativeDiff(whole.gradient, micro.gradient)).toBeLessThan(1e-5);
    expect(micro.lossSum).toBeCloseTo(whole.lossSum, 4);
    expect(micro.metricSums).toEqual(whole.metricSums);
  });

  it('a Dense stack in micro-batches of 7 (the last one short)', async () => {
    const spec: ModelSpec = {
      inputDim: images.features,
      layers: [
        { units: 6, activation: 'tanh', useBias: true },
        { units: 3, activation: 'softmax', useBias: true },
      ],
      loss: 'categoricalCrossentropy',
      metrics: ['accuracy', 'precision'],
    };
    const [whole, micro] = await wholeAndMicro(spec, images, 50, 7);
    expect(relativeDiff(whole.gradient, micro.gradient)).toBeLessThan(1e-5);
    expect(micro.metricSums).toEqual(whole.metricSums);
  });
});

describe('through train()', () => {
  const job = (out: string, threads: number, microBatchSize?: number): JobConfigInput =>
    demoJob(out, 17, {
      compile: {
        optimizer: { name: 'adam', learningRate: 0.02, clipnorm: 0.5 },
        loss: 'binaryCrossentropy',
        metrics: ['accuracy', 'auc'],
        learningRateSchedule: { name: 'cosineDecay', decaySteps: 40, warmupSteps: 10, warmupTarget: 0.03 },
      },
      fit: { epochs: 2, batchSize: 96, classWeight: { '0': 0.7, '1': 1.9 } },
      cluster: { threads, backend: 'cpu', balance: 'equal', ...(microBatchSize ? { microBatchSize } : {}) },
    });

  it('two threads in micro-batches of 10 with class weights, a schedule and clipping give one lane\'s model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-micro-'));
    const one = await train(job(join(dir, 'one'), 1), { demo: true, log: () => {} });
    const micro = await train(job(join(dir, 'micro'), 2, 10), { demo: true, log: () => {} });
    expect(maxAbsDiff(readRunWeights(join(dir, 'one')), readRunWeights(join(dir, 'micro')))).toBeLessThan(1e-5);
    expect(Math.abs(micro.fit.history[1]!.values['auc']! - one.fit.history[1]!.values['auc']!)).toBeLessThan(1e-3);
  }, 120_000);

  it('a micro-batch smaller than a virtual batch is a ConfigError', () => {
    const config = validateConfig(
      {
        data: { label: { column: 'kind', type: 'categorical' } },
        model: { layers: [{ type: 'reshape', targetShape: [SIDE, SIDE, 1] }, { type: 'conv2d', filters: 2, kernelSize: 3 }, { type: 'batchNormalization', virtualBatchSize: 16 }, { type: 'flatten' }, { units: 3, activation: 'softmax' }] },
        compile: { loss: 'categoricalCrossentropy' },
        fit: { batchSize: 32 },
        cluster: { threads: 1, backend: 'cpu', microBatchSize: 8 },
      },
      'test config',
    );
    expect(() => checkAgainstDataFor(config)).toThrow(ConfigError);
    expect(() => checkAgainstDataFor(config)).toThrow(/cluster\.microBatchSize \(8\) is smaller than model\.layers\[2\]\.virtualBatchSize \(16\)/);
  });
});

function checkAgainstDataFor(config: ReturnType<typeof validateConfig>): void {
  checkAgainstData(config, modelSpec(config, images), images);
}
