/**
 * One training step of the issue's MNIST CNN (conv 32 3x3 relu, max-pool 2, conv 64 3x3 relu,
 * max-pool 2, flatten, dense 128 relu, dense 10 softmax; Adam) with stock tf.layers
 * `model.trainOnBatch`, on wasm (with dptrain's Conv2DBackpropFilter) and cpu, and where the wasm
 * step's time goes, kernel by kernel (tf.profile).
 *
 *   node dist/bench/cnn-step.js [--batch 64] [--steps 5] [--backends wasm,cpu]
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from '../shared/backend.js';
import { Rng } from '../shared/math/rng.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

function cnn(): tfl.LayersModel {
  const model = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu' }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu' }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 128, activation: 'relu' }),
      tfl.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
  return model;
}

async function main(): Promise<void> {
  const batch = Number(flag('batch', '64'));
  const steps = Number(flag('steps', '5'));
  const backends = flag('backends', 'wasm,cpu').split(',');
  await initBackend('wasm');
  const rng = new Rng(1);
  const xs = Float32Array.from({ length: batch * 28 * 28 }, () => rng.next());
  const ys = Float32Array.from({ length: batch * 10 }, (_, i) => (i % 10 === Math.floor(i / 10) % 10 ? 1 : 0));
  for (const backend of backends) {
    await tf.setBackend(backend);
    const model = cnn();
    const x = tf.tensor4d(xs, [batch, 28, 28, 1]);
    const y = tf.tensor2d(ys, [batch, 10]);
    await model.trainOnBatch(x, y); // warm-up
    const times: number[] = [];
    for (let s = 0; s < steps; s++) {
      const t0 = performance.now();
      await model.trainOnBatch(x, y);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)]!;
    console.log(`${backend}: batch ${batch}, median ${median.toFixed(1)} ms per step (min ${times[0]!.toFixed(1)}, max ${times.at(-1)!.toFixed(1)}), ${((batch / median) * 1000).toFixed(0)} samples/s`);
    if (backend === 'wasm') {
      const profile = await tf.profile(async () => {
        await model.trainOnBatch(x, y);
      });
      const byKernel = new Map<string, number>();
      for (const k of profile.kernels) byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + (typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0));
      const top = [...byKernel].sort((a, b) => b[1] - a[1]).slice(0, 10);
      console.log(`  wasm kernels: ${top.map(([n, ms]) => `${n} ${ms.toFixed(1)} ms`).join(', ')}`);
    }
    tf.dispose([x, y]);
    model.dispose();
  }
}

await main();
