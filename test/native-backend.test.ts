/**
 * The native backend: tfjs-backend-wasm with its matrix products and convolutions on
 * onnxruntime-node's CPU Gemm. Its kernels give the cpu backend's values within float32
 * rounding, for every transpose, fused bias and activation, batch, and each convolution path
 * (1x1, stride 1 as a flipped convolution, strided through col2im, dilated); the products run
 * on onnxruntime (its call count moves); gradients of a Dense model and a CNN match float64
 * references; small products stay on wasm; `auto` takes it where it loads.
 */
import '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DenseGradientEngine } from '../compute/dense-gradient.js';
import { createEngine, TapeGradientEngine } from '../compute/gradient.js';
import { NativeEngine, nativeEngineSupports } from '../compute/native-engine.js';
import { weightLayout } from '../shared/model/layout.js';
import { backendReport, initBackend, NATIVE_MIN_FLOPS } from '../shared/backend.js';
import { Rng } from '../shared/math/rng.js';
import { NativeProducts, nativeThreads } from '../shared/native/onnxruntime.js';
import { onnxModel } from '../shared/native/onnx-model.js';
import type { ActivationName, LossName, ModelSpec } from '../shared/model/spec.js';
import { maxRelativeDiff } from './thread-runs.js';

function values(shape: number[], seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
}

type Op = () => tf.Tensor | tf.Tensor[];

/** `op` on the cpu backend and on native: values, and how many products ran on onnxruntime. */
async function bothWays(op: Op): Promise<{ cpu: Float32Array[]; native: Float32Array[]; calls: number }> {
  const run = (): Float32Array[] => {
    const out = tf.tidy(op);
    const list = Array.isArray(out) ? out : [out];
    const read = list.map((t) => t.dataSync() as Float32Array);
    tf.dispose(list);
    return read;
  };
  await initBackend('cpu');
  const cpu = run();
  await initBackend('native');
  const products = await NativeProducts.start(1);
  const before = products.calls;
  const native = run();
  return { cpu, native, calls: products.calls - before };
}

const t = (shape: number[], seed: number): tf.Tensor => tf.tensor(values(shape, seed), shape);

describe('the native backend', () => {
  afterAll(async () => {
    await initBackend('wasm');
  });

  it('writes the ONNX model onnxruntime loads (a Gemm with symbolic dimensions)', () => {
    const bytes = onnxModel({ nodes: [{ op: 'Gemm', inputs: ['A', 'B'], outputs: ['Y'], attributes: { transA: 1, alpha: { float: 0.5 } } }], inputs: { A: ['K', 'M'], B: ['K', 'N'] }, outputs: { Y: ['M', 'N'] } });
    const text = new TextDecoder('latin1').decode(bytes);
    for (const s of ['Gemm', 'transA', 'alpha', 'com.microsoft', 'dptrain']) expect(text).toContain(s);
  });

  it('starts, and says on what', async () => {
    expect(await initBackend('native')).toBe('native');
    expect(tf.getBackend()).toBe('wasm');
    expect(backendReport()).toMatchObject({ name: 'native', adapter: expect.stringMatching(/^onnxruntime-node \d+\.\d+\.\d+, 1 thread\(s\) a lane$/) });
    expect(nativeThreads()).toBe(1);
  });

  const products: [string, Op, number][] = [
    ['plain', () => tf.matMul(t([64, 100], 1), t([100, 200], 2)), 1],
    ['transposeA', () => tf.matMul(t([100, 64], 1), t([100, 200], 2), true, false), 1],
    ['transposeB', () => tf.matMul(t([64, 100], 1), t([200, 100], 2), false, true), 1],
    ['both transposed', () => tf.matMul(t([100, 64], 1), t([200, 100], 2), true, true), 1],
    ['batched, 3 matrices', () => tf.matMul(t([3, 64, 100], 1), t([3, 200, 100], 2), false, true), 3],
    ['fused bias + relu', () => tf.fused.matMul({ a: t([64, 100], 1), b: t([100, 200], 2), bias: t([200], 3), activation: 'relu' }), 1],
    ['fused bias + leakyrelu 0.1', () => tf.fused.matMul({ a: t([64, 100], 1), b: t([100, 200], 2), bias: t([200], 3), activation: 'leakyrelu', leakyreluAlpha: 0.1 }), 1],
    ['fused sigmoid, transposeB', () => tf.fused.matMul({ a: t([64, 100], 1), b: t([200, 100], 2), transposeB: true, activation: 'sigmoid' }), 1],
    ['fused elu', () => tf.fused.matMul({ a: t([64, 100], 1), b: t([100, 200], 2), bias: t([200], 3), activation: 'elu' }), 1],
    ['fused prelu', () => tf.fused.matMul({ a: t([64, 100], 1), b: t([100, 200], 2), activation: 'prelu', preluActivationWeights: t([200], 4) }), 1],
  ];
  for (const [name, op, calls] of products) {
    it(`matMul ${name}: the cpu backend's values, computed on onnxruntime`, async () => {
      const r = await bothWays(op);
      expect(r.calls).toBe(calls);
      expect(maxRelativeDiff(r.native[0]!, r.cpu[0]!)).toBeLessThan(1e-5);
    });
  }

  it('a product below the threshold stays on wasm (the suite sets DPTRAIN_NATIVE_MIN_FLOPS=0; users get the default)', async () => {
    expect(process.env['DPTRAIN_NATIVE_MIN_FLOPS']).toBe('0');
    const op = () => tf.matMul(t([16, 16], 1), t([16, 16], 2));
    expect((await bothWays(op)).calls).toBe(1);
    delete process.env['DPTRAIN_NATIVE_MIN_FLOPS'];
    try {
      expect(2 * 16 * 16 * 16).toBeLessThan(NATIVE_MIN_FLOPS);
      const r = await bothWays(op);
      expect(r.calls).toBe(0);
      expect(maxRelativeDiff(r.native[0]!, r.cpu[0]!)).toBeLessThan(1e-5);
      process.env['DPTRAIN_NATIVE_MIN_FLOPS'] = 'lots';
      await expect(initBackend('native')).rejects.toThrow('DPTRAIN_NATIVE_MIN_FLOPS must be a number >= 0, got "lots"');
    } finally {
      process.env['DPTRAIN_NATIVE_MIN_FLOPS'] = '0';
    }
  });

  /** A convolution's output and both gradients (of the sum of squares of its output): four products (the output twice). */
  const conv = (xShape: number[], fShape: number[], strides: number | [number, number], pad: 'valid' | 'same'): Op => () => {
    const f = (x: tf.Tensor, w: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, strides, pad);
    const x = t(xShape, 5);
    const w = t(fShape, 6);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(f(a, b))))([x, w]);
    return [f(x, w), dx!, dw!];
  };
  const convolutions: [string, Op][] = [
    ['3x3 valid (a flipped convolution for dx)', conv([8, 13, 13, 16], [3, 3, 16, 32], 1, 'valid')],
    ['3x3 same', conv([8, 12, 12, 16], [3, 3, 16, 32], 1, 'same')],
    ['5x3 same, 1 input channel', conv([16, 28, 28, 1], [5, 3, 1, 32], 1, 'same')],
    ['3x3 stride 2 same (col2im for dx)', conv([8, 13, 13, 16], [3, 3, 16, 32], 2, 'same')],
    ['1x1 (the input is its own patches)', conv([8, 10, 10, 32], [1, 1, 32, 64], 1, 'valid')],
  ];
  for (const [name, op] of convolutions) {
    it(`conv2d ${name}: output, dx and dW are the cpu backend's, on onnxruntime`, async () => {
      const r = await bothWays(op);
      expect(r.calls).toBe(4);
      r.native.forEach((v, i) => expect(maxRelativeDiff(v, r.cpu[i]!), ['y', 'dx', 'dW'][i]).toBeLessThan(1e-5));
    });
  }

  it('a dilated conv2d (tfjs has no gradient for it)', async () => {
    const r = await bothWays(() => tf.conv2d(t([8, 14, 14, 16], 1) as tf.Tensor4D, t([3, 3, 16, 32], 2) as tf.Tensor4D, 1, 'valid', 'NHWC', 2));
    expect(r.calls).toBe(1);
    expect(maxRelativeDiff(r.native[0]!, r.cpu[0]!)).toBeLessThan(1e-5);
  });

  it('a fused conv2d with bias and relu', async () => {
    const r = await bothWays(() => tf.fused.conv2d({ x: t([8, 13, 13, 16], 1) as tf.Tensor4D, filter: t([3, 3, 16, 32], 2) as tf.Tensor4D, strides: 1, pad: 'same', bias: t([32], 3), activation: 'relu' }));
    expect(r.calls).toBe(1);
    expect(maxRelativeDiff(r.native[0]!, r.cpu[0]!)).toBeLessThan(1e-5);
  });
});

/**
 * Gradients against float64 references computed here, not by any backend: a Dense model
 * (x 64x100 -> relu 128 -> linear 10, mean squared error) on the dense and tape engines, and
 * one convolution's filter gradient.
 */
describe('native gradients against float64', () => {
  const rows = 64;
  const spec: ModelSpec = { inputDim: 100, layers: [{ units: 128, activation: 'relu', useBias: true }, { units: 10, activation: 'linear', useBias: true }], loss: 'meanSquaredError', metrics: [] };
  const x = values([rows, 100], 11);
  const y = values([rows, 10], 12);
  const weights = Float32Array.from(values([100 * 128 + 128 + 128 * 10 + 10], 13), (v) => v * 0.1);

  /** The mean-squared-error gradient in float64, in the flat layout (kernel, bias per layer). */
  function reference(): Float64Array {
    const w1 = weights.subarray(0, 12800);
    const b1 = weights.subarray(12800, 12928);
    const w2 = weights.subarray(12928, 14208);
    const b2 = weights.subarray(14208);
    const g = new Float64Array(weights.length);
    for (let r = 0; r < rows; r++) {
      const z1 = new Float64Array(128);
      for (let j = 0; j < 128; j++) {
        let s = b1[j]!;
        for (let i = 0; i < 100; i++) s += x[r * 100 + i]! * w1[i * 128 + j]!;
        z1[j] = s;
      }
      const a1 = z1.map((v) => Math.max(0, v));
      const dz2 = new Float64Array(10);
      for (let k = 0; k < 10; k++) {
        let s = b2[k]!;
        for (let j = 0; j < 128; j++) s += a1[j]! * w2[j * 10 + k]!;
        // d/dz of mean over rows and outputs of (z - y)^2
        dz2[k] = (2 * (s - y[r * 10 + k]!)) / (rows * 10);
      }
      for (let j = 0; j < 128; j++) {
        let da = 0;
        for (let k = 0; k < 10; k++) {
          g[12928 + j * 10 + k]! += a1[j]! * dz2[k]!;
          da += dz2[k]! * w2[j * 10 + k]!;
        }
        const dz1 = z1[j]! > 0 ? da : 0;
        g[12800 + j]! += dz1;
        for (let i = 0; i < 100; i++) g[i * 128 + j]! += x[r * 100 + i]! * dz1;
      }
      for (let k = 0; k < 10; k++) g[14208 + k]! += dz2[k]!;
    }
    return g;
  }

  let expected: Float64Array;
  beforeAll(async () => {
    expected = reference();
    await initBackend('native');
  });
  afterAll(async () => {
    await initBackend('wasm');
  });

  for (const engine of ['dense', 'tape'] as const) {
    it(`a Dense model's gradient on the ${engine} engine: within 1e-5 of float64, its products on onnxruntime`, async () => {
      const products = await NativeProducts.start(1);
      const before = products.calls;
      const e = engine === 'dense' ? new DenseGradientEngine(spec) : new TapeGradientEngine(spec);
      e.setWeights(weights);
      const { gradient } = await e.gradient(x, y, rows);
      e.dispose();
      // forward, kernel gradient and (second layer) input gradient: the suite sends every product to onnxruntime
      expect(products.calls - before).toBe(5);
      expect(maxRelativeDiff(gradient, Float32Array.from(expected))).toBeLessThan(1e-5);
    });
  }

  it("a convolution's filter gradient: within 1e-5 of float64", async () => {
    // x 4x9x9x8, W 3x3x8x16, valid, loss = sum(y * u) for a fixed u: dW[fh,fw,c,o] = sum x[b,oh+fh,ow+fw,c] u[b,oh,ow,o]
    const xs = values([4, 9, 9, 8], 21);
    const u = values([4, 7, 7, 16], 22);
    const w = values([3, 3, 8, 16], 23);
    const dW = new Float64Array(3 * 3 * 8 * 16);
    for (let b = 0; b < 4; b++)
      for (let oh = 0; oh < 7; oh++)
        for (let ow = 0; ow < 7; ow++)
          for (let fh = 0; fh < 3; fh++)
            for (let fw = 0; fw < 3; fw++)
              for (let c = 0; c < 8; c++) {
                const xv = xs[((b * 9 + oh + fh) * 9 + ow + fw) * 8 + c]!;
                for (let o = 0; o < 16; o++) dW[((fh * 3 + fw) * 8 + c) * 16 + o]! += xv * u[((b * 7 + oh) * 7 + ow) * 16 + o]!;
              }
    const got = tf.tidy(() => {
      const [g] = tf.grads((f: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(tf.tensor4d(xs, [4, 9, 9, 8]), f as tf.Tensor4D, 1, 'valid'), tf.tensor4d(u, [4, 7, 7, 16]))))([tf.tensor4d(w, [3, 3, 8, 16])]);
      return g!.dataSync() as Float32Array;
    });
    expect(maxRelativeDiff(got, Float32Array.from(dW))).toBeLessThan(1e-5);
  });
});

describe('auto', () => {
  afterAll(async () => {
    await initBackend('wasm');
  });

  it('takes native where onnxruntime-node loads and there is no GPU, and says why', async () => {
    const notes: string[] = [];
    const name = await initBackend('auto', (m) => notes.push(m));
    // a machine with a hardware GPU takes it first (tensorflow or webgpu); none here or in CI
    if (name === 'native') {
      expect(backendReport().reason).toMatch(/^auto: no GPU \(.*\); onnxruntime's CPU kernels$/);
      expect(notes).toEqual([]);
    } else expect(['tensorflow', 'webgpu']).toContain(name);
  });
});

/**
 * A Dense stack on native runs as two onnxruntime sessions (compute/native-engine.ts): the
 * gradients, loss and metric sums of the stock tape engine on the cpu backend, for every hidden
 * activation it computes and every output and loss pairing; evaluate and predict too.
 */
describe('the native Dense engine (forward and backward as onnxruntime sessions)', () => {
  afterAll(async () => {
    await initBackend('wasm');
  });

  const cases: [ActivationName, ActivationName, LossName, number][] = [
    ['relu', 'sigmoid', 'binaryCrossentropy', 1],
    ['leakyRelu', 'sigmoid', 'binaryCrossentropy', 1],
    ['sigmoid', 'linear', 'meanSquaredError', 2],
    ['tanh', 'softmax', 'categoricalCrossentropy', 3],
    ['linear', 'tanh', 'meanAbsoluteError', 2],
    ['relu', 'relu', 'meanSquaredError', 2],
  ];
  for (const [hidden, output, loss, units] of cases) {
    it(`hidden ${hidden}, ${output} output, ${loss}: the tape engine's gradient on cpu`, async () => {
      const spec: ModelSpec = {
        inputDim: 30,
        layers: [
          { units: 40, activation: hidden, useBias: true, alpha: 0.2 },
          { units: 24, activation: hidden, useBias: false },
          { units, activation: output, useBias: true },
        ],
        loss,
        metrics: ['accuracy', 'meanSquaredError'],
      };
      const rng = new Rng(7);
      const n = 33;
      const x = values([n, 30], 31);
      const y = Float32Array.from({ length: n * units }, () => (loss.includes('Crossentropy') ? (rng.next() < 0.5 ? 0 : 1) : rng.normal()));
      const w = Float32Array.from(values([weightLayout(spec).size], 32), (v) => v * 0.2);
      await initBackend('cpu');
      const tape = new TapeGradientEngine(spec);
      tape.setWeights(w);
      const expected = await tape.gradient(x, y, n);
      const expectedEval = await tape.evaluate(x, y, n);
      const expectedOut = await tape.predict(x, n);
      tape.dispose();
      await initBackend('native');
      const engine = createEngine(spec);
      expect(engine).toBeInstanceOf(NativeEngine);
      engine.setWeights(w);
      const got = await engine.gradient(x, y, n);
      expect(maxRelativeDiff(got.gradient, expected.gradient)).toBeLessThan(1e-5);
      expect(got.lossSum).toBeCloseTo(expected.lossSum, 4);
      got.metricSums.forEach((m, k) => expect(m).toBeCloseTo(expected.metricSums[k]!, 4));
      const evaluated = await engine.evaluate(x, y, n);
      expect(evaluated.lossSum).toBeCloseTo(expectedEval.lossSum, 4);
      expect(maxRelativeDiff(await engine.predict(x, n), expectedOut)).toBeLessThan(1e-5);
      // into a given array, twice (the sessions and buffers are reused)
      const out = new Float32Array(w.length);
      expect((await engine.gradient(x, y, n, out)).gradient).toBe(out);
      expect(out).toEqual(got.gradient);
      engine.dispose();
    });
  }

  it('a hidden swish or softmax, or a small batch, goes to the tfjs engine', async () => {
    await initBackend('native');
    const swish: ModelSpec = { inputDim: 4, layers: [{ units: 3, activation: 'swish', useBias: true }, { units: 1, activation: 'sigmoid', useBias: true }], loss: 'binaryCrossentropy', metrics: [] };
    expect(nativeEngineSupports(swish)).toBe(false);
    expect(createEngine(swish)).toBeInstanceOf(DenseGradientEngine);
    expect(createEngine({ ...swish, layers: [{ units: 3, activation: 'relu', useBias: true }, swish.layers[1]!] })).toBeInstanceOf(NativeEngine);
    await initBackend('wasm');
    expect(createEngine({ ...swish, layers: [{ units: 3, activation: 'relu', useBias: true }, swish.layers[1]!] })).toBeInstanceOf(DenseGradientEngine);
  });
});

/**
 * Conv nets on native run as the same two sessions (compute/native-graph.ts: channels-first
 * inside, Conv/ConvTranspose gradients, max-pool argmax scatter): the tape engine's gradients,
 * loss, metrics, evaluation and predictions on the cpu backend, for valid and same padding,
 * strides that leave rows unused, overlapping pools, 1x1 kernels, global pooling and flatten.
 */
describe('the native engine on conv nets', () => {
  afterAll(async () => {
    await initBackend('wasm');
  });

  const nets: [string, ModelSpec][] = [
    [
      'reshape, conv valid + relu, max-pool 2, conv same + relu, flatten, dense relu, softmax',
      {
        inputDim: 64,
        layers: [
          { type: 'reshape', targetShape: [8, 8, 1] },
          { type: 'conv2d', filters: 4, kernelSize: [3, 3], strides: [1, 1], padding: 'valid', activation: 'relu', useBias: true },
          { type: 'maxPooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
          { type: 'conv2d', filters: 6, kernelSize: [3, 3], strides: [1, 1], padding: 'same', activation: 'relu', useBias: true },
          { type: 'flatten' },
          { units: 5, activation: 'relu', useBias: true },
          { units: 3, activation: 'softmax', useBias: true },
        ],
        loss: 'categoricalCrossentropy',
        metrics: ['accuracy'],
      },
    ],
    [
      'image input, conv stride 2 same + tanh, overlapping max-pool same, 1x1 conv, global pool, sigmoid',
      {
        inputDim: 162,
        inputShape: [9, 9, 2],
        layers: [
          { type: 'conv2d', filters: 5, kernelSize: [3, 3], strides: [2, 2], padding: 'same', activation: 'tanh', useBias: true },
          { type: 'maxPooling2d', poolSize: [3, 3], strides: [2, 2], padding: 'same' },
          { type: 'conv2d', filters: 4, kernelSize: [1, 1], strides: [1, 1], padding: 'valid', activation: 'linear', useBias: false },
          { type: 'globalAveragePooling2d' },
          { type: 'activation', activation: 'sigmoid' },
          { units: 1, activation: 'sigmoid', useBias: true },
        ],
        loss: 'binaryCrossentropy',
        metrics: ['binaryAccuracy'],
      },
    ],
    [
      'conv stride 2 valid leaving a row unused, leakyRelu, 2x3 kernel, flatten, linear',
      {
        inputDim: 300,
        inputShape: [10, 10, 3],
        layers: [
          { type: 'conv2d', filters: 4, kernelSize: [2, 3], strides: [2, 2], padding: 'valid', activation: 'leakyRelu', alpha: 0.1, useBias: true },
          { type: 'conv2d', filters: 3, kernelSize: [3, 3], strides: [2, 1], padding: 'valid', activation: 'sigmoid', useBias: true },
          { type: 'flatten' },
          { units: 2, activation: 'linear', useBias: true },
        ],
        loss: 'meanSquaredError',
        metrics: ['meanAbsoluteError'],
      },
    ],
    [
      'a first conv with more filters than patch values (stride 2, same), a pool leaving a row out',
      {
        inputDim: 243,
        inputShape: [9, 9, 3],
        layers: [
          { type: 'conv2d', filters: 30, kernelSize: [3, 3], strides: [2, 2], padding: 'same', activation: 'relu', useBias: true },
          { type: 'maxPooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
          { type: 'conv2d', filters: 4, kernelSize: [1, 1], strides: [1, 1], padding: 'valid', activation: 'relu', useBias: true },
          { type: 'flatten' },
          { units: 3, activation: 'softmax', useBias: true },
        ],
        loss: 'categoricalCrossentropy',
        metrics: ['accuracy'],
      },
    ],
  ];
  for (const [name, spec] of nets) {
    it(`${name}: the tape engine's gradient on cpu`, async () => {
      const outputs = (spec.layers.at(-1) as { units: number }).units;
      const rng = new Rng(11);
      const n = 37;
      // mostly zeros, as images' backgrounds are: pool windows of equal values, where the argmax is the first
      const x = values([n, spec.inputDim], 41).map((v) => (v < 1 ? 0 : v));
      const y = Float32Array.from({ length: n * outputs }, (_, i) =>
        spec.loss === 'categoricalCrossentropy' ? (i % outputs === Math.floor(i / outputs) % outputs ? 1 : 0) : spec.loss === 'binaryCrossentropy' ? (rng.next() < 0.5 ? 0 : 1) : rng.normal(),
      );
      const w = Float32Array.from(values([weightLayout(spec).size], 42), (v) => v * 0.3);
      // positive biases, so the zeros' windows are ties above relu's cut
      for (const entry of weightLayout(spec).entries) if (entry.kind === 'bias') w.fill(0.1, entry.offset, entry.offset + entry.size);
      await initBackend('cpu');
      const tape = new TapeGradientEngine(spec);
      tape.setWeights(w);
      const expected = await tape.gradient(x, y, n);
      const expectedEval = await tape.evaluate(x, y, n);
      const expectedOut = await tape.predict(x, n);
      tape.dispose();
      await initBackend('native');
      const engine = createEngine(spec);
      expect(engine).toBeInstanceOf(NativeEngine);
      engine.setWeights(w);
      const got = await engine.gradient(x, y, n);
      // float32 sums over every position of every sample, in another order than tfjs's
      expect(maxRelativeDiff(got.gradient, expected.gradient)).toBeLessThan(3e-5);
      expect(got.lossSum).toBeCloseTo(expected.lossSum, 4);
      got.metricSums.forEach((m, k) => expect(m).toBeCloseTo(expected.metricSums[k]!, 4));
      expect((await engine.evaluate(x, y, n)).lossSum).toBeCloseTo(expectedEval.lossSum, 4);
      expect(maxRelativeDiff(await engine.predict(x, n), expectedOut)).toBeLessThan(1e-5);
      // a smaller batch through the same sessions and buffers
      const part = await engine.gradient(x.subarray(0, 5 * spec.inputDim), y.subarray(0, 5 * outputs), 5);
      await initBackend('cpu');
      const again = new TapeGradientEngine(spec);
      again.setWeights(w);
      expect(maxRelativeDiff(part.gradient, (await again.gradient(x.subarray(0, 5 * spec.inputDim), y.subarray(0, 5 * outputs), 5)).gradient)).toBeLessThan(3e-5);
      again.dispose();
      engine.dispose();
    });
  }

  it('dropout, batch norm, embeddings, average pooling and a user tfjs model stay on the tape engine', () => {
    const conv = nets[0]![1];
    const withLayer = (layer: ModelSpec['layers'][number]): ModelSpec => ({ ...conv, layers: [...conv.layers.slice(0, 5), layer, ...conv.layers.slice(5)] });
    expect(nativeEngineSupports(conv)).toBe(true);
    expect(nativeEngineSupports(withLayer({ type: 'dropout', rate: 0.5, seed: 1 }))).toBe(false);
    expect(nativeEngineSupports({ ...conv, layers: [...conv.layers.slice(0, 2), { type: 'averagePooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' }, ...conv.layers.slice(3)] })).toBe(false);
    expect(nativeEngineSupports({ ...conv, layers: [...conv.layers.slice(0, 2), { type: 'activation', activation: 'swish' }, ...conv.layers.slice(2)] })).toBe(false);
  });
});
