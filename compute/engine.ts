/**
 * What a participant computes each step, behind one interface: the gradient of a batch, and loss
 * and metric sums for evaluation. Two implementations: DenseGradientEngine (direct Dense
 * backpropagation, the default) and TapeGradientEngine (tfjs-layers model + tf.variableGrads,
 * the stock reference).
 */
import type { WeightLayout } from '../shared/model/layout.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import type { ModelSpec } from '../shared/model/spec.js';

/** Sums over a batch: loss and each metric, summed over samples (divide by count for means). */
export interface BatchSums {
  readonly count: number;
  readonly lossSum: number;
  readonly metricSums: number[];
}

export interface BatchGradient extends BatchSums {
  /** Mean gradient of the loss over the batch, in flat layout. */
  readonly gradient: Float32Array;
}

export interface BatchEngine {
  readonly spec: ModelSpec;
  readonly layout: WeightLayout;
  setWeights(flat: Float32Array): void;
  /**
   * `out`: where to write the gradient (layout.size values), e.g. straight into a thread's result
   * packet. `onReady(start)`: called during the backward pass when out[start..] holds its final
   * values, with `start` going down (a node sends those values while the rest is computed); an
   * engine that finishes all at once need not call it. `rows`: the step and the training rows
   * (and virtual batches) of the samples, which a model with dropout or batch norm needs.
   * Asynchronous because a GPU backend (webgpu) reads results back only asynchronously; on
   * wasm and cpu the work is done synchronously and the promise is already settled.
   */
  gradient(x: Float32Array, y: Float32Array, count: number, out?: Float32Array, onReady?: (start: number) => void, rows?: BatchRows): Promise<BatchGradient>;
  /** Loss and metric sums; `weights`: each row's weight in the loss sum (data.sampleWeight, Keras's sample_weight in validation), metrics unweighted (Keras's `metrics`). */
  evaluate(x: Float32Array, y: Float32Array, count: number, weights?: Float32Array): Promise<BatchSums>;
  predict(x: Float32Array, count: number): Promise<Float32Array>;
  dispose(): void;
}

/** The array a gradient of `size` values goes into: `out` when given (checked), else a new one. */
export function gradientOut(size: number, out: Float32Array | undefined): Float32Array {
  if (!out) return new Float32Array(size);
  if (out.length !== size) throw new RangeError(`gradient output has ${out.length} values, the model has ${size}`);
  return out;
}

export { ENGINES, type EngineName } from '../shared/model/spec.js';
