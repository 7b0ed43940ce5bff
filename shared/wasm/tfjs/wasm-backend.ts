/** What dptrain's wasm kernels read of tfjs-backend-wasm's backend (its class is not in its public types). */
import type * as tf from '@tensorflow/tfjs-core';

export interface WasmBackend {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  /** A view of a tensor's values in the wasm heap; taken after the last allocation (growing the heap detaches views). */
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
  disposeData(dataId: object): boolean;
}

export type WasmKernel = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs: unknown }) => tf.TensorInfo;

/** tfjs-backend-wasm's own kernels that dptrain replaced, kept for the replacements to call. */
const stock = new Map<string, WasmKernel>();

export function keepStockKernel(name: string, kernel: WasmKernel): void {
  if (!stock.has(name)) stock.set(name, kernel);
}

/** The stock kernel a replacement calls (kept by register.ts before it replaced it). */
export function stockKernel(name: string): WasmKernel {
  const kernel = stock.get(name);
  if (!kernel) throw new Error(`tfjs-backend-wasm's ${name} kernel was not kept (registerWasmKernels keeps each one it replaces)`);
  return kernel;
}
