/**
 * UnsortedSegmentSum for tfjs-backend-wasm, which ships without it: the gradient of a gather, so
 * of every Embedding layer (a stock embedding `model.fit` on wasm fails with "Kernel
 * 'UnsortedSegmentSum' not registered"). Row i of x is added into row segmentIds[i] of the
 * output; ids outside [0, numSegments) are dropped, as TensorFlow does.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WasmBackend, WasmKernel } from './wasm-backend.js';

export const unsortedSegmentSum: WasmKernel = ({ inputs, backend: b, attrs }) => {
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = attrs as { numSegments: number };
  if (x.dtype !== 'float32') throw new Error(`UnsortedSegmentSum on wasm sums float32, not ${x.dtype}`);
  const backend = b as WasmBackend;
  const rows = segmentIds.shape.reduce((a, n) => a * n, 1);
  const width = tf.util.sizeFromShape(x.shape) / Math.max(1, rows);
  const out = backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], 'float32');
  const sums = backend.typedArrayFromHeap(out);
  const values = backend.typedArrayFromHeap(x);
  const ids = backend.typedArrayFromHeap(segmentIds) as unknown as Int32Array;
  sums.fill(0);
  for (let i = 0; i < rows; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= numSegments) continue;
    const from = i * width;
    const to = id * width;
    for (let k = 0; k < width; k++) sums[to + k]! += values[from + k]!;
  }
  return out;
};
