/**
 * The kernels dptrain gives tfjs-backend-wasm for training convolutional and Dense models fast:
 * conv2d's filter gradient and the embedding gradient (UnsortedSegmentSum; both missing there), and replacements for its input gradient, max-pool
 * gradient, transposed matrix products and bias-gradient sums (slow there). Registered by initBackend in every thread
 * and process that starts wasm; the stock kernels they replace are kept for them to call.
 */
import * as tf from '@tensorflow/tfjs-core';
import { batchMatMul } from './batch-mat-mul.js';
import { conv2DBackpropFilter, conv2DBackpropInput } from './convolution.js';
import { maxPoolGrad } from './max-pool-grad.js';
import { sum } from './sum.js';
import { unsortedSegmentSum } from './unsorted-segment-sum.js';
import { keepStockKernel, type WasmKernel } from './wasm-backend.js';

const KERNELS: Readonly<Record<string, WasmKernel>> = {
  BatchMatMul: batchMatMul,
  Conv2DBackpropFilter: conv2DBackpropFilter,
  Conv2DBackpropInput: conv2DBackpropInput,
  MaxPoolGrad: maxPoolGrad,
  Sum: sum,
  UnsortedSegmentSum: unsortedSegmentSum,
};

/** Registers dptrain's wasm kernels (a second call does nothing). */
export function registerWasmKernels(): void {
  for (const [kernelName, kernelFunc] of Object.entries(KERNELS)) {
    const current = tf.getKernel(kernelName, 'wasm');
    if (current?.kernelFunc === (kernelFunc as unknown)) continue;
    if (current) {
      keepStockKernel(kernelName, current.kernelFunc as unknown as WasmKernel);
      tf.unregisterKernel(kernelName, 'wasm');
    }
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc, ...(current?.setupFunc ? { setupFunc: current.setupFunc } : {}) });
  }
}
