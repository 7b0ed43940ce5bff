/**
 * conv2d's gradients for tfjs-backend-wasm. Conv2DBackpropFilter: the backend ships without it
 * (4.22: a stock `model.fit` of a CNN fails with "Kernel 'Conv2DBackpropFilter' not registered
 * for backend 'wasm'"). Conv2DBackpropInput: its own is a slow loop (BENCHMARKS.md). The
 * filter's gradient is one matrix product: with the input's patches as K = filterHeight x
 * filterWidth x inChannels rows of M = batch x outHeight x outWidth values (im2col, transposed),
 * dW (K x outChannels) = patches (K x M) x dy (M x outChannels), which the backend's own
 * BatchMatMul computes; the K index order is the filter's [fh, fw, inChannels] layout, so the
 * product is dW as it is. NHWC (channelsLast) only, as tfjs-layers' conv2d uses. im2col and
 * col2im run as WebAssembly kernels (shared/wasm/cnn-backward.wat) where WebAssembly SIMD runs,
 * else as the loops below; both give the same values.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CnnBackward } from '../cnn-backward-kernel.js';
import { stockKernel, type WasmBackend, type WasmKernel } from './wasm-backend.js';

/** What both gradients are told of the convolution. */
interface ConvAttrs {
  readonly strides: [number, number] | number;
  readonly pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  readonly dataFormat: 'NHWC' | 'NCHW';
  readonly dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

interface Attrs extends ConvAttrs {
  readonly filterShape: [number, number, number, number];
}

/**
 * Writes the patches of `x` (NHWC) as the columns of `colsT` (K rows of M values: row k holds
 * filter tap (fh, fw, channel) under every output position, zeros where it hangs over the
 * padding). Laid out transposed so that the product needs no transpose: BatchMatMul with
 * transposeA runs a slow path on wasm (BENCHMARKS.md).
 */
function im2colTransposed(x: Float32Array, colsT: Float32Array, info: tf.backend_util.Conv2DInfo): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, padInfo } = info;
  const positions = batchSize * outHeight * outWidth;
  for (let fh = 0; fh < filterHeight; fh++) {
    for (let fw = 0; fw < filterWidth; fw++) {
      for (let c = 0; c < inChannels; c++) {
        let at = ((fh * filterWidth + fw) * inChannels + c) * positions;
        for (let b = 0; b < batchSize; b++) {
          const image = b * inHeight * inWidth * inChannels + c;
          for (let oh = 0; oh < outHeight; oh++) {
            const ih = oh * strideHeight + fh * dilationHeight - padInfo.top;
            if (ih < 0 || ih >= inHeight) {
              colsT.fill(0, at, at + outWidth);
              at += outWidth;
              continue;
            }
            const line = image + ih * inWidth * inChannels;
            for (let ow = 0; ow < outWidth; ow++, at++) {
              const iw = ow * strideWidth + fw * dilationWidth - padInfo.left;
              colsT[at] = iw < 0 || iw >= inWidth ? 0 : x[line + iw * inChannels]!;
            }
          }
        }
      }
    }
  }
}

export function conv2DBackpropFilter(args: Parameters<WasmKernel>[0]): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const backend = args.backend as WasmBackend;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as Attrs;
  if (dataFormat !== 'NHWC') throw new Error(`Conv2DBackpropFilter on wasm supports NHWC (channelsLast) only, not ${dataFormat}`);
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast');
  const rows = info.batchSize * info.outHeight * info.outWidth;
  const rowLength = info.filterHeight * info.filterWidth * info.inChannels;
  const cols = backend.makeOutput([1, rowLength, rows], 'float32');
  // views taken after the allocation: growing the heap detaches earlier ones
  const simd = CnnBackward.shared()?.im2colT(backend.typedArrayFromHeap(x), info);
  if (simd) backend.typedArrayFromHeap(cols).set(simd);
  else im2colTransposed(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(cols), info);
  const product = matMulKernel()({
    inputs: { a: cols, b: { dataId: dy.dataId, shape: [1, rows, info.outChannels], dtype: 'float32' } },
    backend: args.backend,
    attrs: { transposeA: false, transposeB: false },
  });
  backend.disposeData(cols.dataId);
  return { dataId: product.dataId, shape: [...filterShape], dtype: 'float32' };
}

interface InputAttrs extends ConvAttrs {
  readonly inputShape: [number, number, number, number];
}

/** Adds each row of `cols` (one output position's patch gradient, K values) into `dx` (NHWC) where the patch came from. */
function col2im(cols: Float32Array, dx: Float32Array, info: tf.backend_util.Conv2DInfo): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, padInfo } = info;
  dx.fill(0);
  let at = 0;
  for (let b = 0; b < batchSize; b++) {
    const image = b * inHeight * inWidth * inChannels;
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        for (let fh = 0; fh < filterHeight; fh++) {
          const ih = oh * strideHeight + fh * dilationHeight - padInfo.top;
          for (let fw = 0; fw < filterWidth; fw++, at += inChannels) {
            const iw = ow * strideWidth + fw * dilationWidth - padInfo.left;
            if (ih < 0 || ih >= inHeight || iw < 0 || iw >= inWidth) continue;
            const to = image + (ih * inWidth + iw) * inChannels;
            for (let c = 0; c < inChannels; c++) dx[to + c]! += cols[at + c]!;
          }
        }
      }
    }
  }
}

/**
 * Conv2DBackpropInput (the input's gradient), replacing tfjs-backend-wasm's own loop: the patch
 * gradients are one product, dy (M x outChannels) x W^T (outChannels x K), scattered back onto
 * the input (col2im).
 */
export function conv2DBackpropInput(args: Parameters<WasmKernel>[0]): tf.TensorInfo {
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const backend = args.backend as WasmBackend;
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = args.attrs as InputAttrs;
  if (dataFormat !== 'NHWC') throw new Error(`Conv2DBackpropInput on wasm supports NHWC (channelsLast) only, not ${dataFormat}`);
  const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, false, 'channelsLast');
  const rows = info.batchSize * info.outHeight * info.outWidth;
  const rowLength = info.filterHeight * info.filterWidth * info.inChannels;
  const outChannels = info.outChannels;
  const filterT = backend.makeOutput([1, outChannels, rowLength], 'float32');
  {
    const w = backend.typedArrayFromHeap(filter);
    const t = backend.typedArrayFromHeap(filterT);
    for (let k = 0; k < rowLength; k++) for (let o = 0; o < outChannels; o++) t[o * rowLength + k] = w[k * outChannels + o]!;
  }
  const product = matMulKernel()({
    inputs: { a: { dataId: dy.dataId, shape: [1, rows, outChannels], dtype: 'float32' }, b: filterT },
    backend: args.backend,
    attrs: { transposeA: false, transposeB: false },
  });
  backend.disposeData(filterT.dataId);
  const dx = backend.makeOutput([...inputShape], 'float32');
  const size = tf.util.sizeFromShape(inputShape);
  const simd = CnnBackward.shared()?.col2im(backend.typedArrayFromHeap(product), size, info);
  if (simd) backend.typedArrayFromHeap(dx).set(simd);
  else col2im(backend.typedArrayFromHeap(product), backend.typedArrayFromHeap(dx), info);
  backend.disposeData(product.dataId);
  return dx;
}

/** The backend's own BatchMatMul (captured before dptrain's replaces it: see register.ts). */
function matMulKernel(): WasmKernel {
  return stockKernel('BatchMatMul');
}
