/**
 * The native backend's kernels: tfjs-backend-wasm's matrix products and convolutions computed
 * by onnxruntime's CPU Gemm (onnxruntime.ts) on the wasm heap's own values, everything else
 * left on wasm. Transposes are folded into the Gemm (no copies), a fused bias goes in as Gemm's
 * C, and a fused activation runs as the wasm backend's own kernel after it. Convolutions (NHWC)
 * are im2col (row by row, runs of taps copied whole: shared/wasm/cnn-backward.wat) and one Gemm:
 * forward y (M x outC) = patches (M x K) W (K x outC), the filter's gradient dW = patches^T dy,
 * the input's dcols = dy W^T written into col2im's memory and scattered back onto the input. A
 * 1x1 convolution without stride or padding is its input's own patches. A product below
 * `minFlops`, or of a shape these do not cover, goes to the wasm kernel it replaces.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CnnBackward } from '../wasm/cnn-backward-kernel.js';
import type { WasmBackend, WasmKernel } from '../wasm/tfjs/wasm-backend.js';
import type { NativeProducts } from './onnxruntime.js';

/** What the native kernels call: the products, and the wasm kernels they stand in for. */
export interface NativeKernelContext {
  readonly products: NativeProducts;
  /** The wasm kernel registered for `name` without the native ones (dptrain's or the stock one). */
  readonly wasmKernel: (name: string) => WasmKernel;
  /** Products of fewer floating-point operations stay on wasm (the call costs more than it saves). */
  readonly minFlops: number;
}

/** tfjs's fused activations as the wasm kernels that compute them. */
const ACTIVATION_KERNELS: Readonly<Record<string, string>> = { relu: 'Relu', relu6: 'Relu6', elu: 'Elu', sigmoid: 'Sigmoid', leakyrelu: 'LeakyRelu', prelu: 'Prelu' };

interface FusedAttrs {
  readonly activation?: string;
  readonly leakyreluAlpha?: number;
}

function batchOf(shape: readonly number[]): number {
  let batch = 1;
  for (let i = 0; i < shape.length - 2; i++) batch *= shape[i]!;
  return batch;
}

/** A bias Gemm can take as C: one value per output column. */
function columnBias(bias: tf.TensorInfo | undefined, n: number): boolean {
  return bias === undefined || (bias.dtype === 'float32' && tf.util.sizeFromShape(bias.shape) === n && bias.shape.at(-1) === n);
}

/** Applies a fused activation to `out` with the wasm backend's kernel (disposing `out`), or returns it. */
function activate(out: tf.TensorInfo, attrs: FusedAttrs, prelu: tf.TensorInfo | undefined, backend: unknown): tf.TensorInfo {
  const activation = attrs.activation ?? 'linear';
  if (activation === 'linear') return out;
  const kernel = tf.getKernel(ACTIVATION_KERNELS[activation]!, 'wasm')!;
  const inputs = activation === 'prelu' ? { x: out, alpha: prelu! } : { x: out };
  const attrsOut: tf.NamedAttrMap = activation === 'leakyrelu' ? { alpha: attrs.leakyreluAlpha ?? 0.2 } : {};
  const activated = kernel.kernelFunc({ inputs, backend: backend as tf.KernelBackend, attrs: attrsOut }) as tf.TensorInfo;
  (backend as WasmBackend).disposeData(out.dataId);
  return activated;
}

/** Whether a fused activation can run after the product (its kernel exists on wasm). */
function activationRuns(attrs: FusedAttrs): boolean {
  const activation = attrs.activation ?? 'linear';
  if (activation === 'linear') return true;
  const name = ACTIVATION_KERNELS[activation];
  return name !== undefined && tf.getKernel(name, 'wasm') !== undefined;
}

/**
 * BatchMatMul and _FusedMatMul: a Gemm per matrix of the batch (the same batch on both sides;
 * broadcast batches go to wasm).
 */
function matMul(ctx: NativeKernelContext, name: 'BatchMatMul' | '_FusedMatMul'): WasmKernel {
  return (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo };
    const attrs = args.attrs as { transposeA: boolean; transposeB: boolean } & FusedAttrs;
    const { transposeA: transA, transposeB: transB } = attrs;
    const rank = a.shape.length;
    const m = a.shape[transA ? rank - 1 : rank - 2]!;
    const k = a.shape[transA ? rank - 2 : rank - 1]!;
    const n = b.shape[transB ? b.shape.length - 2 : b.shape.length - 1]!;
    const batch = batchOf(a.shape);
    // the size first: most products of a small model stop here, at the cost of a few multiplications
    if (2 * batch * m * k * n < ctx.minFlops) return ctx.wasmKernel(name)(args);
    const sameBatch = rank === b.shape.length && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]);
    if (!sameBatch || a.dtype !== 'float32' || b.dtype !== 'float32' || !columnBias(bias, n) || !activationRuns(attrs)) return ctx.wasmKernel(name)(args);
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput([...a.shape.slice(0, -2), m, n], 'float32');
    // views after the allocation (growing the heap detaches earlier ones)
    const av = backend.typedArrayFromHeap(a);
    const bv = backend.typedArrayFromHeap(b);
    const ov = backend.typedArrayFromHeap(out);
    const biasView = bias ? backend.typedArrayFromHeap(bias) : undefined;
    for (let i = 0; i < batch; i++) {
      ctx.products.gemm(av.subarray(i * m * k), bv.subarray(i * k * n), ov.subarray(i * m * n), { m, k, n, transA, transB }, biasView);
    }
    return activate(out, attrs, preluActivationWeights, args.backend);
  };
}

interface ConvAttrs extends FusedAttrs {
  readonly strides: [number, number] | number;
  readonly pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  readonly dataFormat: 'NHWC' | 'NCHW';
  readonly dilations?: [number, number] | number;
  readonly dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** M (output positions), K (filter taps), N (output channels) of a convolution. */
function convDims(info: tf.backend_util.Conv2DInfo): { m: number; k: number; n: number } {
  return { m: info.batchSize * info.outHeight * info.outWidth, k: info.filterHeight * info.filterWidth * info.inChannels, n: info.outChannels };
}

/** A 1x1 convolution with stride 1 and no padding: the input (M x C) is its own patches. */
function pointwise(info: tf.backend_util.Conv2DInfo): boolean {
  const { filterHeight, filterWidth, strideHeight, strideWidth, padInfo } = info;
  return filterHeight === 1 && filterWidth === 1 && strideHeight === 1 && strideWidth === 1 && padInfo.top === 0 && padInfo.left === 0 && padInfo.bottom === 0 && padInfo.right === 0;
}

function convInfo(xShape: readonly number[], filterShape: readonly number[], attrs: ConvAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number], attrs.strides, attrs.dilations ?? 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
}

/** The patches of x (M rows of K values): a view of the heap for a 1x1 convolution, else im2col's (valid until its next call). */
function patches(backend: WasmBackend, x: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): Float32Array | undefined {
  return pointwise(info) ? backend.typedArrayFromHeap(x) : CnnBackward.shared()?.im2col(backend.typedArrayFromHeap(x), info);
}

/** Conv2D and FusedConv2D (NHWC): y = patches W [+ bias], then the fused activation. */
function conv2D(ctx: NativeKernelContext, name: 'Conv2D' | 'FusedConv2D'): WasmKernel {
  return (args) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo };
    const attrs = args.attrs as ConvAttrs;
    if (attrs.dataFormat !== 'NHWC' || !CnnBackward.shared() || x.dtype !== 'float32' || filter.dtype !== 'float32') return ctx.wasmKernel(name)(args);
    const info = convInfo(x.shape, filter.shape, attrs);
    const { m, k, n } = convDims(info);
    if (2 * m * k * n < ctx.minFlops || !columnBias(bias, n) || !activationRuns(attrs)) return ctx.wasmKernel(name)(args);
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput([...info.outShape], 'float32');
    const cols = patches(backend, x, info);
    if (!cols) {
      backend.disposeData(out.dataId);
      return ctx.wasmKernel(name)(args);
    }
    const biasView = bias ? backend.typedArrayFromHeap(bias) : undefined;
    ctx.products.gemm(cols, backend.typedArrayFromHeap(filter), backend.typedArrayFromHeap(out), { m, k, n, transA: false, transB: false }, biasView);
    return activate(out, attrs, preluActivationWeights, args.backend);
  };
}

/** Conv2DBackpropFilter (NHWC): dW (K x outC) = patches^T (K x M) dy (M x outC). */
function conv2DBackpropFilter(ctx: NativeKernelContext): WasmKernel {
  return (args) => {
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const attrs = args.attrs as ConvAttrs & { filterShape: [number, number, number, number] };
    if (attrs.dataFormat !== 'NHWC' || !CnnBackward.shared()) return ctx.wasmKernel('Conv2DBackpropFilter')(args);
    const info = convInfo(x.shape, attrs.filterShape, attrs);
    const { m, k, n } = convDims(info);
    if (2 * m * k * n < ctx.minFlops) return ctx.wasmKernel('Conv2DBackpropFilter')(args);
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput([...attrs.filterShape], 'float32');
    const cols = patches(backend, x, info);
    if (!cols) {
      backend.disposeData(out.dataId);
      return ctx.wasmKernel('Conv2DBackpropFilter')(args);
    }
    ctx.products.gemm(cols, backend.typedArrayFromHeap(dy), backend.typedArrayFromHeap(out), { m: k, k: m, n, transA: true, transB: false });
    return out;
  };
}

/**
 * W rotated by 180 degrees with its channels swapped, as a (fH * fW * outC) x inC matrix:
 * W'[(fh, fw, o)][c] = W[fH-1-fh][fW-1-fw][c][o], the filter of the input's gradient as a convolution.
 */
function flippedFilter(w: Float32Array, fH: number, fW: number, inC: number, outC: number, into: Float32Array): Float32Array {
  for (let fh = 0; fh < fH; fh++) {
    for (let fw = 0; fw < fW; fw++) {
      const from = ((fH - 1 - fh) * fW + (fW - 1 - fw)) * inC * outC;
      const to = (fh * fW + fw) * outC * inC;
      for (let c = 0; c < inC; c++) for (let o = 0; o < outC; o++) into[to + o * inC + c] = w[from + c * outC + o]!;
    }
  }
  return into;
}

/**
 * Conv2DBackpropInput (NHWC). With stride and dilation 1, the input's gradient is itself a
 * convolution: dy's patches under every input position (padded by the filter's size less the
 * forward padding) times the flipped filter, written straight into the output, with no
 * scatter. Otherwise dcols (M x K) = dy W^T is written into col2im's memory and scattered back
 * onto the input.
 */
function conv2DBackpropInput(ctx: NativeKernelContext): WasmKernel {
  let flipped = new Float32Array(0);
  return (args) => {
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const attrs = args.attrs as ConvAttrs & { inputShape: [number, number, number, number] };
    const cnn = CnnBackward.shared();
    if (attrs.dataFormat !== 'NHWC' || !cnn) return ctx.wasmKernel('Conv2DBackpropInput')(args);
    const info = convInfo(attrs.inputShape, filter.shape, attrs);
    const { m, k, n } = convDims(info);
    if (2 * m * k * n < ctx.minFlops) return ctx.wasmKernel('Conv2DBackpropInput')(args);
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput([...attrs.inputShape], 'float32');
    if (pointwise(info)) {
      ctx.products.gemm(backend.typedArrayFromHeap(dy), backend.typedArrayFromHeap(filter), backend.typedArrayFromHeap(out), { m, k: n, n: k, transA: false, transB: true });
      return out;
    }
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, padInfo } = info;
    if (strideHeight === 1 && strideWidth === 1 && dilationHeight === 1 && dilationWidth === 1) {
      const full = { batchSize, inHeight: outHeight, inWidth: outWidth, inChannels: outChannels, outHeight: inHeight, outWidth: inWidth, strideHeight: 1, strideWidth: 1, filterHeight, filterWidth, padInfo: { top: filterHeight - 1 - padInfo.top, left: filterWidth - 1 - padInfo.left } };
      const cols = cnn.im2col(backend.typedArrayFromHeap(dy), full);
      if (cols) {
        const kFull = filterHeight * filterWidth * outChannels;
        if (flipped.length < kFull * inChannels) flipped = new Float32Array(kFull * inChannels);
        const w = flippedFilter(backend.typedArrayFromHeap(filter), filterHeight, filterWidth, inChannels, outChannels, flipped);
        ctx.products.gemm(cols, w, backend.typedArrayFromHeap(out), { m: batchSize * inHeight * inWidth, k: kFull, n: inChannels, transA: false, transB: false });
        return out;
      }
    }
    const dcols = (into: Float32Array): void => ctx.products.gemm(backend.typedArrayFromHeap(dy), backend.typedArrayFromHeap(filter), into, { m, k: n, n: k, transA: false, transB: true });
    const dx = cnn.col2imFrom(dcols, tf.util.sizeFromShape(attrs.inputShape), info);
    if (!dx) {
      backend.disposeData(out.dataId);
      return ctx.wasmKernel('Conv2DBackpropInput')(args);
    }
    backend.typedArrayFromHeap(out).set(dx);
    return out;
  };
}

/** The kernels the native backend registers over wasm's, by tfjs kernel name. */
export function nativeKernels(ctx: NativeKernelContext): Readonly<Record<string, WasmKernel>> {
  return {
    BatchMatMul: matMul(ctx, 'BatchMatMul'),
    _FusedMatMul: matMul(ctx, '_FusedMatMul'),
    Conv2D: conv2D(ctx, 'Conv2D'),
    FusedConv2D: conv2D(ctx, 'FusedConv2D'),
    Conv2DBackpropFilter: conv2DBackpropFilter(ctx),
    Conv2DBackpropInput: conv2DBackpropInput(ctx),
  };
}
