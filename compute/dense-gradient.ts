/**
 * Gradients of a Dense stack computed directly (explicit backpropagation), instead of through
 * tfjs's generic tape and tfjs-layers' layer machinery. Same math, far fewer kernel calls, and
 * kernel gradients as an explicit transpose + plain matMul: on wasm, matMul with transposeA or
 * transposeB is several times slower than a plain one, and the stock Dense gradient uses exactly
 * those. Only the loss's gradient with respect to the model output goes through tf.valueAndGrad
 * (a few ops on a [batch, units] tensor), so every loss in the registry works unchanged; where the
 * loss is computed from the logits (registries.ts), at the last layer's pre-activation.
 * The transposes themselves (a weight kernel, two activations and, for the bias gradients, each
 * layer's error per step) go through a WebAssembly SIMD kernel on wasm: tfjs's wasm Transpose
 * is several times slower than the kernel with its copies (bench/kernels.ts, BENCHMARKS.md).
 * On the native backend a large product takes its transposes as flags instead (onnxruntime's
 * Gemm folds them in at no cost), and no transposed copy is made.
 *
 * Checked against the stock tape gradients (TapeGradientEngine) for every activation and loss.
 */
import * as tf from '@tensorflow/tfjs-core';
import { foldsTransposes } from '../shared/backend.js';
import { ModelError } from '../shared/errors.js';
import { Transposer } from '../shared/wasm/transpose-kernel.js';
import { weightLayout, type WeightLayout } from '../shared/model/layout.js';
import { metricLayoutOf, type MetricLayout } from '../shared/model/metric-sums.js';
import { batchLoss, evaluationLossSum, resolveLoss } from '../shared/model/registries.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import { isDenseStack, outputDim, outputLayer, type ActivationName, type DenseSpec, type ModelSpec } from '../shared/model/spec.js';
import { gradientOut, type BatchEngine, type BatchGradient, type BatchSums } from './engine.js';

type Backward = (z: tf.Tensor, a: tf.Tensor, da: tf.Tensor, alpha: number) => tf.Tensor;
type Forward = (z: tf.Tensor, alpha: number) => tf.Tensor;

/** Each activation's forward and its derivative applied to the incoming gradient `da`. */
export const ACTIVATION_MATH: Readonly<Record<ActivationName, { forward: Forward; backward: Backward }>> = {
  linear: { forward: (z) => z, backward: (_z, _a, da) => da },
  relu: { forward: (z) => tf.relu(z), backward: (z, _a, da) => tf.mul(da, tf.step(z)) },
  leakyRelu: {
    forward: (z, alpha) => tf.leakyRelu(z, alpha),
    backward: (z, _a, da, alpha) => tf.where(tf.greater(z, 0), da, tf.mul(da, alpha)),
  },
  sigmoid: { forward: (z) => tf.sigmoid(z), backward: (_z, a, da) => tf.mul(da, tf.mul(a, tf.sub(1, a))) },
  tanh: { forward: (z) => tf.tanh(z), backward: (_z, a, da) => tf.mul(da, tf.sub(1, tf.square(a))) },
  swish: {
    forward: (z) => tf.mul(z, tf.sigmoid(z)),
    backward: (z, _a, da) => {
      const s = tf.sigmoid(z);
      return tf.mul(da, tf.mul(s, tf.add(1, tf.mul(z, tf.sub(1, s)))));
    },
  },
  softmax: {
    forward: (z) => tf.softmax(z),
    backward: (_z, a, da) => tf.mul(a, tf.sub(da, tf.sum(tf.mul(da, a), -1, true))),
  },
};

/** A view of a float32 tensor's values in the wasm backend's memory; undefined on other backends. */
function heapView(t: tf.Tensor): Float32Array | undefined {
  const wasm = tf.backend() as { typedArrayFromHeap?: (t: tf.Tensor) => Float32Array };
  return tf.getBackend() === 'wasm' && typeof wasm.typedArrayFromHeap === 'function' ? wasm.typedArrayFromHeap(t) : undefined;
}

/** Whether tensors can be read synchronously here (webgpu in Node reads back only asynchronously). */
function readsSynchronously(): boolean {
  return tf.getBackend() !== 'webgpu';
}

/** Copies a float32 tensor's values into `out` at `offset`; on wasm straight from its memory (dataSync would copy twice). */
function readInto(t: tf.Tensor, out: Float32Array, offset: number): void {
  out.set(heapView(t) ?? (t.dataSync() as Float32Array), offset);
}

interface DenseParams {
  readonly spec: DenseSpec;
  readonly alpha: number;
  /** Offsets of the layer's kernel and bias gradients in the flat layout (bias: -1 without one). */
  readonly kernelOffset: number;
  readonly biasOffset: number;
  kernel: tf.Tensor2D;
  /** The kernel transposed, made on first use after each setWeights (none where products fold transposes). */
  kernelT: tf.Tensor2D | undefined;
  bias: tf.Tensor1D | undefined;
}

export class DenseGradientEngine implements BatchEngine {
  readonly layout: WeightLayout;
  readonly inputDim: number;
  readonly outputDim: number;
  private readonly layers: DenseParams[];
  private readonly lossFn: (t: tf.Tensor, p: tf.Tensor) => tf.Tensor;
  /** The loss of the last pre-activation, where it is computed from the logits (registries.ts). */
  private readonly logitsLossFn: ((t: tf.Tensor, z: tf.Tensor) => tf.Tensor) | undefined;
  private readonly metricLayout: MetricLayout;
  /** The weights the tensors were made from, reused by every setWeights (no fresh megabytes per step). */
  private readonly staging: Float32Array;

  /** `transposer`: the SIMD transpose (null: tf.transpose, as where WebAssembly SIMD does not run). */
  constructor(
    readonly spec: ModelSpec,
    private readonly transposer: Transposer | null = Transposer.create(),
  ) {
    if (!isDenseStack(spec)) throw new ModelError('the dense engine computes stacks of Dense layers only; this model has other layers (the tape engine computes it)');
    this.layout = weightLayout(spec);
    this.inputDim = spec.inputDim;
    this.outputDim = outputDim(spec);
    const loss = resolveLoss(spec.loss, spec.lossOptions, outputLayer(spec).activation);
    this.lossFn = loss.fn;
    this.logitsLossFn = loss.logits;
    this.metricLayout = metricLayoutOf(spec);
    let entry = 0;
    const dense: readonly DenseSpec[] = spec.layers;
    this.layers = dense.map((layer) => {
      const alpha = layer.alpha ?? 0.3;
      const kernelOffset = this.layout.entries[entry++]!.offset;
      const biasOffset = layer.useBias ? this.layout.entries[entry++]!.offset : -1;
      return { spec: layer, alpha, kernelOffset, biasOffset, kernel: tf.zeros([1, 1]), kernelT: undefined, bias: undefined };
    });
    this.staging = new Float32Array(this.layout.size);
    this.setWeights(this.staging);
  }

  setWeights(flat: Float32Array): void {
    if (flat.length !== this.layout.size) throw new RangeError(`weights have ${flat.length} values, the model has ${this.layout.size}`);
    // The old tensors go first: on the cpu backend a tensor keeps the array it was made from.
    for (const layer of this.layers) this.disposeLayer(layer);
    if (flat !== this.staging) this.staging.set(flat);
    let e = 0;
    for (const layer of this.layers) {
      const k = this.layout.entries[e++]!;
      const [fanIn, units] = k.shape as [number, number];
      const values = this.staging.subarray(k.offset, k.offset + k.size);
      layer.kernel = tf.tensor2d(values, [fanIn, units]);
      layer.kernelT = undefined;
      if (layer.spec.useBias) {
        const b = this.layout.entries[e++]!;
        layer.bias = tf.tensor1d(this.staging.subarray(b.offset, b.offset + b.size));
      } else layer.bias = undefined;
    }
  }

  private disposeLayer(layer: DenseParams): void {
    tf.dispose([layer.kernel, ...(layer.kernelT ? [layer.kernelT] : []), ...(layer.bias ? [layer.bias] : [])]);
    layer.kernelT = undefined;
  }

  /** The layer's kernel transposed (kept until the next setWeights, outside any tidy). */
  private transposedKernel(layer: DenseParams): tf.Tensor2D {
    if (!layer.kernelT) {
      const [fanIn, units] = layer.kernel.shape;
      const values = this.staging.subarray(layer.kernelOffset, layer.kernelOffset + fanIn * units);
      layer.kernelT = tf.keep(this.transposeValues(values, fanIn, units) ?? tf.transpose(layer.kernel));
    }
    return layer.kernelT;
  }

  /**
   * The transpose of rows x cols `values` as a tensor made by the SIMD kernel, or undefined where
   * it does not run (or the matrix is too large for it). Only on wasm, whose tensors copy the values they are made from (the kernel's
   * result is overwritten by its next call; on cpu a tensor would keep it).
   */
  private transposeValues(values: Float32Array, rows: number, cols: number): tf.Tensor2D | undefined {
    if (!this.transposer || tf.getBackend() !== 'wasm') return undefined;
    const transposed = this.transposer.transpose(values, rows, cols);
    return transposed && tf.tensor2d(transposed, [cols, rows]);
  }

  /** The transpose of a matrix tensor by the SIMD kernel, or undefined where it does not run. */
  private kernelTranspose(t: tf.Tensor2D): tf.Tensor2D | undefined {
    const values = this.transposer ? heapView(t) : undefined;
    return values && this.transposeValues(values, t.shape[0], t.shape[1]);
  }

  /** The transpose of a matrix (inside a tidy of the caller). */
  private transpose(t: tf.Tensor2D): tf.Tensor2D {
    return this.kernelTranspose(t) ?? tf.transpose(t);
  }

  /**
   * Sums over the batch (axis 0). tfjs's wasm Sum over axis 0 transposes with its own slow kernel
   * and then sums rows; doing the transpose with ours gives the same bits, faster (bench/kernels.ts).
   */
  private columnSums(t: tf.Tensor2D): tf.Tensor {
    const transposed = this.kernelTranspose(t);
    return transposed ? tf.sum(transposed, 1) : tf.sum(t, 0);
  }

  /** Pre-activations and activations of every layer (inside a tidy of the caller). */
  private forward(x: tf.Tensor2D): { zs: tf.Tensor[]; as: tf.Tensor[] } {
    const zs: tf.Tensor[] = [];
    const as: tf.Tensor[] = [x];
    let a: tf.Tensor = x;
    for (const layer of this.layers) {
      const z = tf.fused.matMul({ a: a as tf.Tensor2D, b: layer.kernel, ...(layer.bias ? { bias: layer.bias } : {}) });
      a = ACTIVATION_MATH[layer.spec.activation].forward(z, layer.alpha);
      zs.push(z);
      as.push(a);
    }
    return { zs, as };
  }

  async gradient(x: Float32Array, y: Float32Array, count: number, out?: Float32Array, onReady?: (start: number) => void, rows?: BatchRows): Promise<BatchGradient> {
    const gradient = gradientOut(this.layout.size, out);
    // Where reads are synchronous each layer's gradients are read out inside the backward pass
    // (and announced with onReady while the rest is computed); elsewhere they are kept and read
    // after it, last layer first.
    const sync = readsSynchronously();
    const later: { readonly t: tf.Tensor; readonly offset: number; readonly ready?: number }[] = [];
    const take = (t: tf.Tensor, offset: number, ready?: number): void => {
      if (sync) {
        readInto(t, gradient, offset);
        if (ready !== undefined) onReady?.(ready);
      } else later.push({ t: tf.keep(t), offset, ...(ready !== undefined ? { ready } : {}) });
    };
    const { lossSum, outputs } = tf.tidy(() => {
      const xs = tf.tensor2d(x, [count, this.inputDim]);
      const ys = tf.tensor2d(y, [count, this.outputDim]);
      const { zs, as } = this.forward(xs);
      const out = as[as.length - 1]!;
      const last = this.layers.length - 1;
      // From the logits the loss's gradient is taken at the last pre-activation directly.
      const logits = this.logitsLossFn;
      const { value, grad } = logits
        ? tf.valueAndGrad((z: tf.Tensor) => batchLoss(logits(ys, z), ys, this.spec.classWeights, rows?.weights))(zs[last]!)
        : tf.valueAndGrad((p: tf.Tensor) => batchLoss(this.lossFn(ys, p), ys, this.spec.classWeights, rows?.weights))(out);
      let da: tf.Tensor = grad;
      // Last layer first: each layer's gradients are read out as soon as they exist, and the
      // values from its kernel's offset to the end are then final (its bias and the later layers).
      for (let i = last; i >= 0; i--) {
        const layer = this.layers[i]!;
        const dz = i === last && logits ? da : ACTIVATION_MATH[layer.spec.activation].backward(zs[i]!, as[i + 1]!, da, layer.alpha);
        const [fanIn, units] = layer.kernel.shape;
        const fold = foldsTransposes(2 * count * fanIn * units);
        if (layer.bias) take(fold ? tf.sum(dz, 0) : this.columnSums(dz as tf.Tensor2D), layer.biasOffset);
        take(fold ? tf.matMul(as[i]! as tf.Tensor2D, dz as tf.Tensor2D, true, false) : tf.matMul(this.transpose(as[i]! as tf.Tensor2D), dz), layer.kernelOffset, layer.kernelOffset);
        if (i > 0) da = fold ? tf.matMul(dz as tf.Tensor2D, layer.kernel, false, true) : tf.matMul(dz, this.transposedKernel(layer));
      }
      return { lossSum: tf.mul(value, count), outputs: out };
    });
    try {
      for (const { t, offset, ready } of later) {
        gradient.set((await t.data()) as Float32Array, offset);
        if (ready !== undefined) onReady?.(ready);
      }
      const [loss, p] = await Promise.all([lossSum.data(), outputs.data()]);
      return { gradient, count, lossSum: loss[0]!, metricSums: this.metricLayout.sums(y, p, count, { sample: rows?.weights, training: true }) };
    } finally {
      tf.dispose([lossSum, outputs, ...later.map((l) => l.t)]);
    }
  }

  async evaluate(x: Float32Array, y: Float32Array, count: number, weights?: Float32Array): Promise<BatchSums> {
    const sums = tf.tidy(() => {
      const xs = tf.tensor2d(x, [count, this.inputDim]);
      const ys = tf.tensor2d(y, [count, this.outputDim]);
      const { zs, as } = this.forward(xs);
      const out = as[as.length - 1]!;
      const loss = this.logitsLossFn ? this.logitsLossFn(ys, zs[zs.length - 1]!) : this.lossFn(ys, out);
      return [evaluationLossSum(loss, weights), out] as const;
    });
    const [loss, p] = await Promise.all(sums.map((t) => t.data()));
    tf.dispose([...sums]);
    return { count, lossSum: loss![0]!, metricSums: this.metricLayout.sums(y, p!, count, { sample: weights, training: false }) };
  }

  async predict(x: Float32Array, count: number): Promise<Float32Array> {
    const out = tf.tidy(() => {
      const { as } = this.forward(tf.tensor2d(x, [count, this.inputDim]));
      return as[as.length - 1]!;
    });
    const values = (await out.data()) as Float32Array;
    out.dispose();
    return values;
  }

  dispose(): void {
    for (const layer of this.layers) this.disposeLayer(layer);
  }
}
