/**
 * MaxPoolGrad for tfjs-backend-wasm, replacing its own loop: each output's gradient goes to the
 * first largest input of its window (the cpu backend's rule, so both give the same values).
 * NHWC, as tfjs-layers' maxPooling2d uses. Channels in fours run as a WebAssembly SIMD kernel
 * (shared/wasm/cnn-backward.wat), others in the loop below; both give the same values.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CnnBackward } from '../cnn-backward-kernel.js';
import type { WasmBackend, WasmKernel } from './wasm-backend.js';

interface Attrs {
  readonly filterSize: [number, number] | number;
  readonly strides: [number, number] | number;
  readonly pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  readonly dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export const maxPoolGrad: WasmKernel = ({ inputs, backend: b, attrs }) => {
  const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const backend = b as WasmBackend;
  const { filterSize, strides, pad, dimRoundingMode } = attrs as Attrs;
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, strideHeight, strideWidth, effectiveFilterHeight, effectiveFilterWidth, padInfo } = info;
  const dx = backend.makeOutput([...input.shape], 'float32');
  const out = backend.typedArrayFromHeap(dx);
  const x = backend.typedArrayFromHeap(input);
  const g = backend.typedArrayFromHeap(dy);
  if (inChannels % 4 === 0) {
    const simd = CnnBackward.shared()?.maxPoolGrad(x, g, { ...info, filterHeight: effectiveFilterHeight, filterWidth: effectiveFilterWidth });
    if (simd) {
      out.set(simd);
      return dx;
    }
  }
  out.fill(0);
  const rowStride = inWidth * inChannels;
  // per window, the channels innermost (contiguous in NHWC): the best value and index of each
  const best = new Float32Array(inChannels);
  const where = new Int32Array(inChannels);
  let at = 0;
  for (let n = 0; n < batchSize; n++) {
    const image = n * inHeight * rowStride;
    for (let oh = 0; oh < outHeight; oh++) {
      const top = oh * strideHeight - padInfo.top;
      const rMin = Math.max(0, top);
      const rMax = Math.min(inHeight, top + effectiveFilterHeight);
      for (let ow = 0; ow < outWidth; ow++, at += inChannels) {
        const left = ow * strideWidth - padInfo.left;
        const cMin = Math.max(0, left);
        const cMax = Math.min(inWidth, left + effectiveFilterWidth);
        best.fill(Number.NEGATIVE_INFINITY);
        where.fill(-1);
        // rows, then columns, in window order: the first largest input wins, as on the cpu backend
        for (let r = rMin; r < rMax; r++) {
          for (let col = cMin; col < cMax; col++) {
            const base = image + r * rowStride + col * inChannels;
            for (let c = 0; c < inChannels; c++) {
              const v = x[base + c]!;
              if (v > best[c]!) {
                best[c] = v;
                where[c] = base + c;
              }
            }
          }
        }
        for (let c = 0; c < inChannels; c++) if (where[c]! >= 0) out[where[c]!]! += g[at + c]!;
      }
    }
  }
  return dx;
};
