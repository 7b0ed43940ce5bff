/**
 * Sum for tfjs-backend-wasm over every axis but the last, the bias gradient of every Dense and
 * conv layer (dy summed over batch and positions): the backend's own kernel first transposes
 * the reduced axes innermost, which costs more than the sum. Here each row is added into one
 * float32 accumulator per channel, in row order: the stock kernel's sums, bit for bit
 * (test/dense-gradient.test.ts). Any other reduction goes to the stock kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CnnBackward } from '../cnn-backward-kernel.js';
import { stockKernel, type WasmBackend, type WasmKernel } from './wasm-backend.js';

export const sum: WasmKernel = (args) => {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
  const rank = x.shape.length;
  const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
  const leading = rank >= 2 && axes.length === rank - 1 && axes.every((a, i) => a === i);
  if (!leading || x.dtype !== 'float32') return stockKernel('Sum')(args);
  const backend = args.backend as WasmBackend;
  const channels = x.shape[rank - 1]!;
  const rows = tf.util.sizeFromShape(x.shape) / channels;
  const out = backend.makeOutput(keepDims ? [...x.shape.map(() => 1).slice(0, -1), channels] : [channels], 'float32');
  const values = backend.typedArrayFromHeap(x);
  // float32, row after row: the stock kernel's own order, so the bits are the same (the SIMD
  // kernel adds four channels at a time, each in row order too)
  const simd = channels % 4 === 0 ? CnnBackward.shared()?.sumRows(values, rows, channels) : undefined;
  if (simd) {
    backend.typedArrayFromHeap(out).set(simd);
    return out;
  }
  const acc = new Float32Array(channels);
  for (let r = 0, at = 0; r < rows; r++) for (let c = 0; c < channels; c++, at++) acc[c]! += values[at]!;
  backend.typedArrayFromHeap(out).set(acc);
  return out;
};
