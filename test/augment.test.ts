/**
 * Image augmentation (Keras's RandomFlip, RandomTranslation, RandomRotation, RandomZoom,
 * RandomContrast as model.layers): the transforms against hand-computed images, draws that are a
 * function of (seed, step, row), the config's rules, and training on real MNIST digits that
 * equals one process over threads and over worker nodes reading from disk, one killed mid-run.
 */
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createEngine } from '../compute/gradient.js';
import { modelSpec } from '../coordinator/fit/trainer.js';
import { featureRows } from '../shared/data/feature-rows.js';
import { readJobData } from '../coordinator/job-data.js';
import { initBackend } from '../shared/backend.js';
import { loadConfig } from '../shared/config/load.js';
import { ConfigError } from '../shared/errors.js';
import { augmentBatch, type AugmentLayerSpec, type AugmentSpec } from '../shared/model/augment.js';
import { jobFolder, readRunWeights, readSummary, runKillingOneOfTwoNodes, trackProcesses } from './cluster-helpers.js';
import { npy } from './helpers.js';
import { maxAbsDiff, trainOnLanes } from './thread-runs.js';

const require = createRequire(import.meta.url);
const track = trackProcesses();

beforeAll(async () => {
  await initBackend('wasm');
});

/** One [h, w, c] image through one layer at step 0, row 0. */
function one(layer: AugmentLayerSpec, shape: AugmentSpec['shape'], values: number[]): number[] {
  const x = Float32Array.from(values);
  augmentBatch(x, 1, { shape, layers: [layer] }, 0, [0]);
  return Array.from(x);
}

const image3x3 = [1, 2, 3, 4, 5, 6, 7, 8, 9];

describe('augmentation transforms', () => {
  it('a translation by a fixed whole pixel moves the image, filled as fillMode says', () => {
    const right = (fillMode: 'constant' | 'nearest' | 'reflect' | 'wrap') => one({ type: 'randomTranslation', height: [0, 0], width: [1 / 3, 1 / 3], fillMode, fillValue: -1, seed: 1 }, [3, 3, 1], image3x3);
    expect(right('constant')).toEqual([-1, 1, 2, -1, 4, 5, -1, 7, 8]);
    expect(right('nearest')).toEqual([1, 1, 2, 4, 4, 5, 7, 7, 8]);
    // reflect: (d c b a | a b c d): the column left of the first is the first
    expect(right('reflect')).toEqual([1, 1, 2, 4, 4, 5, 7, 7, 8]);
    const down = one({ type: 'randomTranslation', height: [1 / 3, 1 / 3], width: [0, 0], fillMode: 'constant', fillValue: 0, seed: 1 }, [3, 3, 1], image3x3);
    expect(down).toEqual([0, 0, 0, 1, 2, 3, 4, 5, 6]);
  });

  it('a quarter turn maps the grid onto itself; a zoom of 0 is the identity; zooming out by 2 reads twice as far from the centre', () => {
    const turned = one({ type: 'randomRotation', factor: [0.25, 0.25], fillMode: 'constant', fillValue: 0, seed: 1 }, [3, 3, 1], image3x3);
    // output (x, y) reads input (y, 2 - x)
    const expected = Array.from({ length: 9 }, (_, i) => image3x3[(2 - (i % 3)) * 3 + Math.floor(i / 3)]!);
    turned.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
    expect(one({ type: 'randomZoom', height: [0, 0], fillMode: 'reflect', fillValue: 0, seed: 1 }, [3, 3, 1], image3x3)).toEqual(image3x3);
    const zoomed = one({ type: 'randomZoom', height: [1, 1], fillMode: 'constant', fillValue: -5, seed: 1 }, [3, 3, 1], image3x3);
    // about the centre (1, 1): the centre stays, the corners read 2 pixels away (outside)
    expect(zoomed[4]).toBe(5);
    expect([zoomed[0], zoomed[2], zoomed[6], zoomed[8]]).toEqual([-5, -5, -5, -5]);
    // width drawn on its own: only the rows are zoomed
    const tall = one({ type: 'randomZoom', height: [1, 1], width: [0, 0], fillMode: 'constant', fillValue: -5, seed: 1 }, [3, 3, 1], image3x3);
    expect(tall).toEqual([-5, -5, -5, 4, 5, 6, -5, -5, -5]);
  });

  it('contrast scales each channel about its mean by a factor in [1 - lower, 1 + upper], clipped to the value range', () => {
    const values = Array.from({ length: 2 * 2 * 2 }, (_, i) => (i % 2 === 0 ? 0.2 + 0.1 * i : 0.9 - 0.05 * i));
    const out = one({ type: 'randomContrast', factor: [0.5, 0.5], valueRange: [0, 1], seed: 7 }, [2, 2, 2], values);
    for (const k of [0, 1]) {
      const xs = values.filter((_, i) => i % 2 === k);
      const ys = out.filter((_, i) => i % 2 === k);
      const mean = xs.reduce((a, v) => a + v, 0) / xs.length;
      const factor = (ys[0]! - mean) / (xs[0]! - mean);
      expect(factor).toBeGreaterThanOrEqual(0.5);
      expect(factor).toBeLessThanOrEqual(1.5);
      ys.forEach((y, i) => expect(y).toBeCloseTo(Math.min(1, Math.max(0, (xs[i]! - mean) * factor + mean)), 6));
    }
    const clipped = one({ type: 'randomContrast', factor: [0, 4], valueRange: [0.3, 0.6], seed: 7 }, [2, 2, 1], [0, 0.2, 0.8, 1]);
    expect(Math.min(...clipped)).toBe(Math.fround(0.3));
    expect(Math.max(...clipped)).toBe(Math.fround(0.6));
  });

  it('flips about half the rows; a row\'s draws depend on (seed, step, row) only, not on its batch', () => {
    const layer: AugmentLayerSpec = { type: 'randomFlip', mode: 'horizontal', seed: 3 };
    const shape: AugmentSpec['shape'] = [1, 3, 1];
    const n = 400;
    const x = Float32Array.from({ length: n * 3 }, (_, i) => i % 3);
    augmentBatch(x, n, { shape, layers: [layer] }, 5, Array.from({ length: n }, (_, i) => i));
    let flipped = 0;
    for (let r = 0; r < n; r++) {
      const row = Array.from(x.subarray(r * 3, r * 3 + 3));
      expect([[0, 1, 2], [2, 1, 0]]).toContainEqual(row);
      if (row[0] === 2) flipped++;
    }
    expect(flipped / n).toBeGreaterThan(0.4);
    expect(flipped / n).toBeLessThan(0.6);
    const spec: AugmentSpec = { shape: [4, 4, 1], layers: [layer, { type: 'randomRotation', factor: [-0.1, 0.1], fillMode: 'reflect', fillValue: 0, seed: 4 }, { type: 'randomContrast', factor: [0.3, 0.3], valueRange: [0, 1], seed: 5 }] };
    const images = Float32Array.from({ length: 3 * 16 }, (_, i) => ((i * 37) % 17) / 17);
    const together = images.slice();
    augmentBatch(together, 3, spec, 9, [40, 7, 12]);
    for (const [i, row] of [[0, 40], [1, 7], [2, 12]] as const) {
      const alone = images.slice(i * 16, (i + 1) * 16);
      augmentBatch(alone, 1, spec, 9, [row]);
      expect(alone).toEqual(together.subarray(i * 16, (i + 1) * 16));
    }
    const nextStep = images.slice();
    augmentBatch(nextStep, 3, spec, 10, [40, 7, 12]);
    expect(nextStep).not.toEqual(together);
  });
});

/** x.npy: `n` real MNIST digits as uint8 [n, 28, 28, 1] (the package's first of each class in turn); y.npy their digits. */
function mnistArrays(n: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-augment-'));
  const digits = Array.from({ length: 10 }, (_, d) => require(`mnist/src/digits/${d}.json`).data as number[]);
  const x = new Uint8Array(n * 784);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const d = i % 10;
    const k = Math.floor(i / 10);
    x.set(Uint8Array.from(digits[d]!.slice(k * 784, (k + 1) * 784), (v) => Math.round(v * 255)), i * 784);
    y[i] = d;
  }
  writeFileSync(join(dir, 'x.npy'), npy('|u1', [n, 28, 28, 1], x));
  writeFileSync(join(dir, 'y.npy'), npy('<i4', [n], y));
  return dir;
}

const AUGMENTATION = [
  { type: 'randomTranslation', heightFactor: 0.1, widthFactor: 0.1 },
  { type: 'randomRotation', factor: 0.05, fillMode: 'constant' },
  { type: 'randomZoom', heightFactor: 0.1 },
  { type: 'randomContrast', factor: 0.2 },
];
const CNN = [{ type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' }, { type: 'maxPooling2d', poolSize: 2 }, { type: 'flatten' }, { units: 10, activation: 'softmax' }];

function augmentedJob(dir: string, layers: unknown[], cluster: Record<string, unknown>): ReturnType<typeof jobFolder> {
  const job = jobFolder(10, {});
  writeFileSync(
    job.configFile,
    stringify({
      seed: 6,
      data: { path: join(dir, 'x.npy'), labels: join(dir, 'y.npy'), inMemory: false, testSize: 0.2 },
      model: { layers },
      compile: { optimizer: { name: 'adam', learningRate: 0.003 }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 2, batchSize: 32 },
      cluster: { backend: 'wasm', heartbeatInterval: 0.5, heartbeatTimeout: 60, stepTimeout: 180, waitTimeout: 300, ...cluster },
    }),
  );
  return job;
}

describe('augmentation in a job', { timeout: 600_000 }, () => {
  it('comes out of the stack into spec.augment with the image shape; after a model layer, or on flat samples: a ConfigError naming the layer', () => {
    const dir = mnistArrays(50);
    const config = loadConfig(augmentedJob(dir, [...AUGMENTATION, ...CNN], { threads: 1 }).configFile);
    const { dataset } = readJobData(config);
    const spec = modelSpec(config, dataset);
    expect(spec.layers.map((l) => l.type ?? 'dense')).toEqual(['conv2d', 'maxPooling2d', 'flatten', 'dense']);
    expect(spec.augment!.shape).toEqual([28, 28, 1]);
    expect(spec.augment!.layers.map((l) => l.type)).toEqual(['randomTranslation', 'randomRotation', 'randomZoom', 'randomContrast']);
    expect(spec.augment!.layers[0]).toMatchObject({ height: [-0.1, 0.1], width: [-0.1, 0.1], fillMode: 'reflect' });
    expect(spec.augment!.layers[3]).toMatchObject({ factor: [0.2, 0.2], valueRange: [0, 1] });
    const late = loadConfig(augmentedJob(dir, [CNN[0], { type: 'randomFlip' }, ...CNN.slice(1)], { threads: 1 }).configFile);
    expect(() => modelSpec(late, dataset)).toThrow(ConfigError);
    expect(() => modelSpec(late, dataset)).toThrow('model.layers[1] (randomFlip): augmentation comes before the model\'s layers (after a reshape at most); move it before model.layers[0] (conv2d)');
    const flat = { ...dataset, sampleShape: undefined };
    expect(() => modelSpec(config, flat)).toThrow('model.layers[0] (randomTranslation): augments images [height, width, channels], and the samples are [784] here; add a reshape layer before it');
    const reshaped = loadConfig(augmentedJob(dir, [{ type: 'reshape', targetShape: [28, 28, 1] }, { type: 'randomFlip', mode: 'horizontal' }, ...CNN], { threads: 1 }).configFile);
    expect(modelSpec(reshaped, flat).augment!.shape).toEqual([28, 28, 1]);
  });

  it('2 threads = one process; it changes training, not evaluation', async () => {
    const dir = mnistArrays(400);
    const config = loadConfig(augmentedJob(dir, [...AUGMENTATION, ...CNN], { threads: 2 }).configFile);
    const plain = loadConfig(augmentedJob(dir, CNN, { threads: 2 }).configFile);
    const { dataset } = readJobData(config);
    const threads = await trainOnLanes(config, dataset, 2);
    const one = await trainOnLanes(config, dataset, 'in-process');
    expect(maxAbsDiff(threads.weights, one.weights)).toBeLessThan(1e-4);
    const unaugmented = await trainOnLanes(plain, dataset, 'in-process');
    expect(maxAbsDiff(unaugmented.weights, one.weights)).toBeGreaterThan(1e-3);
    // the same weights evaluate alike with and without the augmentation layers
    const withAugment = createEngine(modelSpec(config, dataset));
    const without = createEngine(modelSpec(plain, dataset));
    withAugment.setWeights(one.weights);
    without.setWeights(one.weights);
    const x = featureRows(dataset).range(dataset.test.start, dataset.test.count);
    const y = dataset.y.slice(dataset.test.start * 10, (dataset.test.start + dataset.test.count) * 10);
    expect(await withAugment.evaluate(x, y, dataset.test.count)).toEqual(await without.evaluate(x, y, dataset.test.count));
    withAugment.dispose();
    without.dispose();
  });

  it('2 nodes reading the file themselves (--data-dir), one killed with SIGKILL mid-run: the weights of one process', async () => {
    const dir = mnistArrays(400);
    const job = augmentedJob(dir, [...AUGMENTATION, ...CNN], { threads: 0, minWorkers: 1, startWorkers: 2, balance: 'equal' });
    const config = loadConfig(job.configFile);
    const expected = (await trainOnLanes(config, readJobData(config).dataset, 'in-process')).weights;
    await runKillingOneOfTwoNodes(job, 5, track, ['--data-dir', dir]);
    expect(readSummary(job.out).steps).toBe(20);
    expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
  });
});
