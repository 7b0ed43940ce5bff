/**
 * A node's device processes (worker/device-group.ts), driven directly: their count-weighted
 * gradient equals one engine's; a device killed while it computes has its samples recomputed
 * by the other in the same call; batch norm's virtual batches go whole to one device; a node
 * with no device left fails its step with a clear error. Real processes (dist's entry).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../compute/gradient.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { Rng } from '../shared/math/rng.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { modelSpec } from '../coordinator/fit/trainer.js';
import { DeviceGroup, deviceEnvironment } from '../worker/device-group.js';
import { SIDE, strokes } from './strokes.js';
import { maxRelativeDiff } from './thread-runs.js';

const groups: DeviceGroup[] = [];
afterEach(() => {
  for (const g of groups.splice(0)) g.close();
});

beforeAll(async () => {
  await initBackend('wasm');
});

function spec(layers: unknown[]): ModelSpec {
  const config = validateConfig(
    {
      seed: 3,
      data: { label: { column: 'kind', type: 'categorical' } },
      model: { layers: [{ type: 'reshape', targetShape: [SIDE, SIDE, 1] }, { type: 'conv2d', filters: 4, kernelSize: 3, useBias: false }, ...layers, { type: 'flatten' }, { units: 3, activation: 'softmax' }] },
      compile: { optimizer: { name: 'adam' }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 1, batchSize: 48 },
    },
    'test config',
  );
  return modelSpec(config, { features: SIDE * SIDE, outputs: 3 });
}

const data = strokes(48, 9);
const x = data.x.slice(0, 48 * SIDE * SIDE);
const y = data.y.slice(0, 48 * 3);
const rows = { step: 2, rows: Int32Array.from({ length: 48 }, (_, i) => 40 + i), groups: Int32Array.from({ length: 48 }, (_, i) => Math.floor(i / 10)) }; // 10, 10, 10, 10, 8: an even row split would cut one

async function oneEngine(s: ModelSpec, weights: Float32Array): Promise<{ gradient: Float32Array; lossSum: number }> {
  const e = createEngine(s, 'dense');
  e.setWeights(weights);
  const r = await e.gradient(x, y, 48, undefined, undefined, rows);
  e.dispose();
  return { gradient: r.gradient.slice(), lossSum: r.lossSum };
}

async function group(log: string[] = []): Promise<DeviceGroup> {
  const g = await DeviceGroup.start({ backend: 'wasm', devices: [0, 1], log: (l) => log.push(l) });
  groups.push(g);
  return g;
}

describe('a node\'s device processes', { timeout: 120_000 }, () => {
  it('give each device its device: CUDA_VISIBLE_DEVICES, a WebGPU adapter by name', () => {
    expect(deviceEnvironment('tensorflow', 2)).toEqual({ DPTRAIN_DEVICE_BACKEND: 'tensorflow', CUDA_VISIBLE_DEVICES: '2' });
    expect(deviceEnvironment('webgpu', 1, ['A', 'B'])).toEqual({ DPTRAIN_DEVICE_BACKEND: 'webgpu', DPTRAIN_WEBGPU_ADAPTER: 'B' });
    expect(deviceEnvironment('wasm', 1)).toEqual({ DPTRAIN_DEVICE_BACKEND: 'wasm' });
  });

  it('two devices, batch norm over virtual batches (10, 10, 10, 10, 8) and dropout: the gradient of one engine, sums added; no virtual batch cut', async () => {
    const s = spec([{ type: 'batchNormalization', virtualBatchSize: 8 }, { type: 'dropout', rate: 0.25 }]);
    const weights = initialWeights(weightLayout(s), new Rng(4));
    const g = await group();
    expect(g.backend).toBe('wasm');
    const engine = g.engine(s);
    engine.setWeights(weights);
    const r = await engine.gradient(x, y, 48, undefined, undefined, rows);
    const one = await oneEngine(s, weights);
    expect(r.count).toBe(48);
    expect(maxRelativeDiff(r.gradient, one.gradient)).toBeLessThan(1e-5);
    expect(r.lossSum).toBeCloseTo(one.lossSum, 4);
    // a second step with new weights reaches both devices
    const next = weights.map((v) => v * 0.9);
    engine.setWeights(next);
    expect(maxRelativeDiff((await engine.gradient(x, y, 48, undefined, undefined, rows)).gradient, (await oneEngine(s, next)).gradient)).toBeLessThan(1e-5);
  });

  it('a device killed while it computes: its samples are recomputed by the other in the same call; it is restarted for later calls', async () => {
    const s = spec([{ type: 'maxPooling2d', poolSize: 2 }]);
    const weights = initialWeights(weightLayout(s), new Rng(5));
    const log: string[] = [];
    const g = await group(log);
    const engine = g.engine(s);
    engine.setWeights(weights);
    await engine.gradient(x, y, 48, undefined, undefined, rows); // both ready, weights loaded
    const victim = g.pids().find((p) => p.device === 1)!.pid!;
    const pending = engine.gradient(x, y, 48, undefined, undefined, rows);
    process.kill(victim, 'SIGKILL');
    const r = await pending;
    expect(r.count).toBe(48);
    expect(maxRelativeDiff(r.gradient, (await oneEngine(s, weights)).gradient)).toBeLessThan(1e-5);
    expect(log.join('\n')).toMatch(/device 1 lost \(killed by SIGKILL\); 1 of 2 device\(s\) left; restarting it/);
    expect(log.join('\n')).toMatch(/its \d+ sample\(s\) of this step go to the other devices/);
    // restarted: back to two live devices, and still the same gradient
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(g.pids().map((p) => p.device)).toEqual([0, 1]);
    expect(maxRelativeDiff((await engine.gradient(x, y, 48, undefined, undefined, rows)).gradient, (await oneEngine(s, weights)).gradient)).toBeLessThan(1e-5);
  });

  it('an error a device\'s engine reports (it still runs) fails the step, naming the device, instead of going round the others', async () => {
    const s = spec([{ type: 'maxPooling2d', poolSize: 2 }]);
    const g = await group();
    const engine = g.engine(s);
    engine.setWeights(initialWeights(weightLayout(s), new Rng(5)));
    // rows of 3 values for a model of 64 inputs
    await expect(engine.gradient(new Float32Array(48 * 3), y, 48)).rejects.toThrow(/^device \d: .*shape/);
    expect(g.pids()).toHaveLength(2);
  });

  it('with every device lost, the step fails saying so', async () => {
    const s = spec([{ type: 'maxPooling2d', poolSize: 2 }]);
    const g = await DeviceGroup.start({ backend: 'wasm', devices: [0, 1], log: () => undefined, restarts: 0 });
    groups.push(g);
    const engine = g.engine(s);
    engine.setWeights(initialWeights(weightLayout(s), new Rng(5)));
    for (const { pid } of g.pids()) process.kill(pid!, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await expect(engine.gradient(x, y, 48, undefined, undefined, rows)).rejects.toThrow(/every device of this node is lost \(2 of 2\)/);
  });

  it('a backend that cannot start on any device: a clear error', async () => {
    await expect(DeviceGroup.start({ backend: 'tensorflow', devices: [0], log: () => undefined })).rejects.toThrow(/no device process started: device 0 .*its backend did not start: backend "tensorflow" is not available/);
  });
});
