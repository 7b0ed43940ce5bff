/**
 * The kernels dptrain gives tfjs-backend-wasm (shared/wasm/tfjs/): conv2d's filter gradient
 * (missing there) and input gradient, the max-pool gradient, transposed matrix products and
 * bias-gradient sums (replacing slow ones), each checked against the cpu backend's own kernels on many shapes, and
 * a stock tf.layers CNN's `model.fit` on wasm (which fails without them) giving the cpu
 * backend's weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/backend.js';
import { batchMatMul } from '../shared/wasm/tfjs/batch-mat-mul.js';
import { conv2DBackpropFilter, conv2DBackpropInput } from '../shared/wasm/tfjs/convolution.js';
import { maxPoolGrad } from '../shared/wasm/tfjs/max-pool-grad.js';
import { sum } from '../shared/wasm/tfjs/sum.js';
import { unsortedSegmentSum } from '../shared/wasm/tfjs/unsorted-segment-sum.js';
import { Rng } from '../shared/math/rng.js';

function random(n: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

interface Gradients {
  readonly dx: Float32Array;
  readonly df: Float32Array;
  readonly dfShape: number[];
}

/** d(sum(conv2d(x, f) * dy)) by x (Conv2DBackpropInput) and by f (Conv2DBackpropFilter) on the current backend. */
function gradients(x: Float32Array, xShape: readonly number[], f: Float32Array, fShape: readonly number[], dy: (outShape: number[]) => Float32Array, strides: [number, number], pad: 'same' | 'valid'): Gradients {
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, [...xShape] as [number, number, number, number]);
    const ft = tf.tensor4d(f, [...fShape] as [number, number, number, number]);
    const out = tf.conv2d(xt, ft, strides, pad);
    const dyt = tf.tensor(dy(out.shape), out.shape);
    const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad), dyt)))([xt, ft]);
    return { dx: gx!.dataSync() as Float32Array, df: gf!.dataSync() as Float32Array, dfShape: gf!.shape };
  });
}

function relativeDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  const scale = Math.max(...Array.from(b, Math.abs));
  return Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!))) / scale;
}

async function on<T>(backend: 'wasm' | 'cpu', f: () => T): Promise<T> {
  await tf.setBackend(backend);
  return f();
}

beforeAll(async () => {
  await initBackend('wasm'); // registers the kernel
});

describe('dptrain\'s wasm kernels', () => {
  it('are the ones registered for wasm', () => {
    const ours = { Conv2DBackpropFilter: conv2DBackpropFilter, Conv2DBackpropInput: conv2DBackpropInput, MaxPoolGrad: maxPoolGrad, BatchMatMul: batchMatMul, Sum: sum, UnsortedSegmentSum: unsortedSegmentSum };
    for (const [name, kernel] of Object.entries(ours)) expect(tf.getKernel(name, 'wasm')?.kernelFunc, name).toBe(kernel);
  });

  it.each([
    // batch, height, width, in channels, filter height, filter width, out channels, strides, pad
    [2, 7, 7, 3, 3, 3, 4, [1, 1], 'valid'],
    [2, 8, 8, 3, 3, 3, 5, [2, 2], 'same'],
    [1, 5, 6, 2, 2, 3, 3, [1, 2], 'same'],
    [2, 9, 9, 4, 1, 1, 2, [1, 1], 'valid'],
    [1, 10, 10, 2, 2, 2, 3, [3, 3], 'valid'],
    [3, 28, 28, 1, 3, 3, 8, [1, 1], 'valid'],
    [2, 13, 13, 32, 3, 3, 64, [1, 1], 'valid'],
    [2, 6, 6, 3, 5, 5, 2, [1, 1], 'same'],
  ] as const)('x %i x %i x %i x %i, filter %i x %i -> %i, strides %j, %s: the cpu backend\'s gradients', async (b, h, w, c, fh, fw, co, strides, pad) => {
    const rng = new Rng(b * 1000 + h * 100 + c * 10 + co);
    const x = random(b * h * w * c, rng);
    const f = random(fh * fw * c * co, rng);
    const dySeed = rng.next();
    const dy = (shape: number[]): Float32Array => random(shape.reduce((a, n) => a * n, 1), new Rng(Math.floor(dySeed * 1e6)));
    const args = [x, [b, h, w, c], f, [fh, fw, c, co], dy, [...strides] as [number, number], pad] as const;
    const wasm = await on('wasm', () => gradients(...args));
    const cpu = await on('cpu', () => gradients(...args));
    expect(wasm.dfShape).toEqual([fh, fw, c, co]);
    expect(relativeDiff(wasm.df, cpu.df), 'filter gradient').toBeLessThan(1e-5);
    expect(relativeDiff(wasm.dx, cpu.dx), 'input gradient').toBeLessThan(1e-5);
    await tf.setBackend('wasm');
  });

  it.each([
    // batch, height, width, channels, pool, strides, pad
    [2, 26, 26, 3, 2, 2, 'valid'],
    [1, 7, 7, 2, 2, 2, 'valid'],
    [2, 7, 9, 3, 3, 2, 'same'],
    [1, 6, 6, 1, 3, 1, 'same'],
    // channels in fours: the SIMD kernel (cnn-backward.wat)
    [2, 26, 26, 8, 2, 2, 'valid'],
    [2, 7, 9, 4, 3, 2, 'same'],
    [1, 6, 6, 12, 3, 1, 'same'],
  ] as const)('MaxPoolGrad: x %i x %i x %i x %i, pool %i, stride %i, %s: the cpu backend\'s gradient, ties included', async (b, h, w, c, pool, stride, pad) => {
    const rng = new Rng(h * 10 + c);
    // quantised values, so windows have ties: the first largest gets the gradient on both backends
    const x = Float32Array.from({ length: b * h * w * c }, () => Math.floor(rng.next() * 4));
    const run = (): Float32Array =>
      tf.tidy(() => {
        const xt = tf.tensor4d(x, [b, h, w, c]);
        const dy = tf.tensor(random(tf.maxPool(xt, pool, stride, pad).size, new Rng(9)), tf.maxPool(xt, pool, stride, pad).shape);
        return tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(v as tf.Tensor4D, pool, stride, pad), dy)))(xt).dataSync() as Float32Array;
      });
    const wasm = await on('wasm', run);
    const cpu = await on('cpu', run);
    await tf.setBackend('wasm');
    // windows that do not overlap: the same bits; overlapping ones add an input's gradients in
    // window order, the cpu backend in its own, so the sums may differ in the last bit
    if (stride >= pool) expect(Array.from(wasm)).toEqual(Array.from(cpu));
    else expect(relativeDiff(wasm, cpu)).toBeLessThan(1e-6);
    expect(wasm.some((v) => v !== 0)).toBe(true);
  });

  it.each([
    // a shape, b shape, transposeA, transposeB
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[2, 33, 65], [2, 33, 40], true, false],
    [[3, 64, 1600], [3, 128, 1600], false, true],
    [[1, 4, 6], [6, 2], false, false],
  ] as const)('BatchMatMul %j x %j (transposeA %s, transposeB %s): the cpu backend\'s product', async (aShape, bShape, ta, tb) => {
    const rng = new Rng((aShape as readonly number[]).reduce((x, n) => x + n, 0));
    const a = random((aShape as readonly number[]).reduce((x, n) => x * n, 1), rng);
    const bv = random((bShape as readonly number[]).reduce((x, n) => x * n, 1), rng);
    const run = (): Float32Array => tf.tidy(() => tf.matMul(tf.tensor(a, [...aShape]), tf.tensor(bv, [...bShape]), ta, tb).dataSync() as Float32Array);
    const wasm = await on('wasm', run);
    const cpu = await on('cpu', run);
    await tf.setBackend('wasm');
    expect(relativeDiff(wasm, cpu)).toBeLessThan(1e-5);
  });

  it.each([
    [[64, 26, 26, 32], [0, 1, 2], false],
    [[5, 7], [0], true],
    [[3, 4, 5], [-3, -2], false],
    [[3, 4, 5], [1, 2], false], // not the leading axes: the stock kernel
    [[3, 4, 5], undefined, false], // every axis: the stock kernel
  ] as const)('Sum of %j over %j (keepDims %s): the cpu backend\'s sums', async (shape, axis, keepDims) => {
    const x = random((shape as readonly number[]).reduce((a, n) => a * n, 1), new Rng(shape.length));
    const run = (): { values: Float32Array; shape: number[] } =>
      tf.tidy(() => {
        const s = tf.sum(tf.tensor(x, [...shape]), axis === undefined ? undefined : [...axis], keepDims);
        return { values: s.dataSync() as Float32Array, shape: s.shape };
      });
    const wasm = await on('wasm', run);
    const cpu = await on('cpu', run);
    await tf.setBackend('wasm');
    expect(wasm.shape).toEqual(cpu.shape);
    expect(relativeDiff(wasm.values, cpu.values)).toBeLessThan(1e-5);
  });

  it('UnsortedSegmentSum (an embedding\'s gradient): the cpu backend\'s sums, ids out of range dropped', async () => {
    const x = random(9 * 5, new Rng(8));
    const ids = Int32Array.from([0, 3, 3, 1, -1, 7, 0, 2, 3]);
    const run = (): Float32Array => tf.tidy(() => tf.unsortedSegmentSum(tf.tensor2d(x, [9, 5]), tf.tensor1d(ids, 'int32'), 5).dataSync() as Float32Array);
    const wasm = await on('wasm', run);
    const cpu = await on('cpu', run);
    await tf.setBackend('wasm');
    expect(relativeDiff(wasm, cpu)).toBeLessThan(1e-6);
  });

  it('a stock tf.layers CNN trains with model.fit on wasm to the cpu backend\'s weights', async () => {
    const rng = new Rng(3);
    const xs = random(16 * 12 * 12 * 1, rng);
    const ys = Float32Array.from({ length: 16 * 3 }, (_, i) => (i % 3 === Math.floor(i / 3) % 3 ? 1 : 0));
    const fit = async (): Promise<Float32Array[]> => {
      const model = tfl.sequential({
        layers: [
          tfl.layers.conv2d({ inputShape: [12, 12, 1], filters: 4, kernelSize: 3, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }),
          tfl.layers.maxPooling2d({ poolSize: 2 }),
          tfl.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
          tfl.layers.flatten(),
          tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }),
        ],
      });
      model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
      const x = tf.tensor4d(xs, [16, 12, 12, 1]);
      const y = tf.tensor2d(ys, [16, 3]);
      await model.fit(x, y, { batchSize: 8, epochs: 2, shuffle: false, verbose: 0 });
      const weights = model.getWeights().map((t) => t.dataSync() as Float32Array);
      tf.dispose([x, y]);
      model.dispose();
      return weights;
    };
    await tf.setBackend('wasm');
    const wasm = await fit();
    await tf.setBackend('cpu');
    const cpu = await fit();
    await tf.setBackend('wasm');
    expect(wasm.length).toBe(cpu.length);
    wasm.forEach((w, k) => {
      const diff = Math.max(...Array.from(w, (v, i) => Math.abs(v - cpu[k]![i]!)));
      expect(diff, `weight ${k}`).toBeLessThan(1e-4);
    });
  });
});
