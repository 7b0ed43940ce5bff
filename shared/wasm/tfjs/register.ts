/**
 * The kernels dptrain gives tfjs-backend-wasm for training convolutional and Dense models fast:
 * conv2d's filter gradient and the embedding gradient (UnsortedSegmentSum; both missing there), and replacements for its input gradient, max-pool
 * gradient, transposed matrix products and bias-gradient sums (slow there). Registered by initBackend in every thread
 * and process that starts wasm; the stock kernels they replace are kept for them to call. The
 * native backend registers its own products over these (`overrides`), and a later wasm start
 * puts these back.
 */
import * as tf from '@tensorflow/tfjs-core';
import { batchMatMul } from './batch-mat-mul.js';
import { conv2DBackpropFilter, conv2DBackpropInput } from './convolution.js';
import { maxPoolGrad } from './max-pool-grad.js';
import { sum } from './sum.js';
import { unsortedSegmentSum } from './unsorted-segment-sum.js';
import { keepStockKernel, stockKernel, type WasmKernel } from './wasm-backend.js';

const KERNELS: Readonly<Record<string, WasmKernel>> = {
  BatchMatMul: batchMatMul,
  Conv2DBackpropFilter: conv2DBackpropFilter,
  Conv2DBackpropInput: conv2DBackpropInput,
  MaxPoolGrad: maxPoolGrad,
  Sum: sum,
  UnsortedSegmentSum: unsortedSegmentSum,
};

/** Kernels some override replaced at some point: put back to dptrain's or the stock one when no longer overridden. */
const overridden = new Set<string>();

function install(kernelName: string, kernelFunc: WasmKernel): void {
  const current = tf.getKernel(kernelName, 'wasm');
  if (current?.kernelFunc === (kernelFunc as unknown)) return;
  if (current) {
    keepStockKernel(kernelName, current.kernelFunc as unknown as WasmKernel);
    tf.unregisterKernel(kernelName, 'wasm');
  }
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc, ...(current?.setupFunc ? { setupFunc: current.setupFunc } : {}) });
}

/** The wasm kernel `name` is without overrides: dptrain's, else the stock one. */
export function wasmKernel(name: string): WasmKernel {
  return KERNELS[name] ?? stockKernel(name);
}

/**
 * Registers dptrain's wasm kernels, and `overrides` over them (the native backend's products);
 * kernels an earlier call overrode and this one does not go back to wasm's. Idempotent.
 */
export function registerWasmKernels(overrides: Readonly<Record<string, WasmKernel>> = {}): void {
  for (const [name, kernel] of Object.entries(KERNELS)) if (!(name in overrides)) install(name, kernel);
  for (const name of overridden) if (!(name in overrides)) install(name, wasmKernel(name));
  for (const [name, kernel] of Object.entries(overrides)) {
    // the first install of a name keeps the stock kernel it replaces (install())
    install(name, kernel);
    overridden.add(name);
  }
}
