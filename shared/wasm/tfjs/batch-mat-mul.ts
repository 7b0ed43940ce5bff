/**
 * BatchMatMul for tfjs-backend-wasm with its transposes done first: the backend's own kernel is
 * fast on plain operands and several times slower with transposeA or transposeB (BENCHMARKS.md),
 * which every Dense and conv layer's backward pass asks for. A transposed operand is copied
 * transposed into the heap, then the stock kernel multiplies. Broadcast batch dimensions go to
 * the stock kernel as they are.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { stockKernel, type WasmBackend, type WasmKernel } from './wasm-backend.js';

/** Copies each [rows x cols] matrix of `from` into `to` as [cols x rows], in 32 x 32 blocks. */
function transposeInto(from: Float32Array, to: Float32Array, batch: number, rows: number, cols: number): void {
  const B = 32;
  for (let n = 0; n < batch; n++) {
    const base = n * rows * cols;
    for (let r0 = 0; r0 < rows; r0 += B) {
      const r1 = Math.min(rows, r0 + B);
      for (let c0 = 0; c0 < cols; c0 += B) {
        const c1 = Math.min(cols, c0 + B);
        for (let r = r0; r < r1; r++) {
          for (let c = c0; c < c1; c++) to[base + c * rows + r] = from[base + r * cols + c]!;
        }
      }
    }
  }
}

function batchOf(shape: readonly number[]): number {
  return shape.slice(0, -2).reduce((a, n) => a * n, 1);
}

export const batchMatMul: WasmKernel = (args) => {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const stock = stockKernel('BatchMatMul');
  const sameBatch = a.shape.length === b.shape.length && a.shape.slice(0, -2).every((n, i) => n === b.shape[i]);
  if ((!transposeA && !transposeB) || !sameBatch || a.dtype !== 'float32' || b.dtype !== 'float32') return stock(args);
  const backend = args.backend as WasmBackend;
  const made: tf.TensorInfo[] = [];
  const plain = (t: tf.TensorInfo, transpose: boolean): tf.TensorInfo => {
    if (!transpose) return t;
    const rows = t.shape.at(-2)!;
    const cols = t.shape.at(-1)!;
    const out = backend.makeOutput([...t.shape.slice(0, -2), cols, rows], 'float32');
    made.push(out);
    return out;
  };
  const pa = plain(a, transposeA);
  const pb = plain(b, transposeB);
  // views after both allocations (growing the heap detaches earlier ones)
  if (transposeA) transposeInto(backend.typedArrayFromHeap(a), backend.typedArrayFromHeap(pa), batchOf(a.shape), a.shape.at(-2)!, a.shape.at(-1)!);
  if (transposeB) transposeInto(backend.typedArrayFromHeap(b), backend.typedArrayFromHeap(pb), batchOf(b.shape), b.shape.at(-2)!, b.shape.at(-1)!);
  const product = stock({ inputs: { a: pa, b: pb }, backend: args.backend, attrs: { ...(args.attrs as object), transposeA: false, transposeB: false } });
  for (const t of made) backend.disposeData(t.dataId);
  return product;
};
