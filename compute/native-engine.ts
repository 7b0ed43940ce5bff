/**
 * A model's gradient on the native backend as two onnxruntime sessions instead of one tfjs kernel
 * per operation: the forward graph and the backward graph of native-graph.ts, each one run per
 * call, the weights and rows read where they lie, the values the backward pass needs kept in one
 * growing buffer between the two, and the gradients written straight into the flat gradient.
 * Between the two, the loss's gradient at the last Dense layer's pre-activation is taken in tfjs
 * as DenseGradientEngine takes it (every loss and metric of the registry, from the logits where
 * registries.ts says so), on [batch, outputs] tensors only.
 *
 * Models the graphs do not compute, and batches whose largest product is below the native
 * backend's threshold, go to the engine `fallback` makes (the Dense engine or the tape engine).
 */
import * as tf from '@tensorflow/tfjs-core';
import { foldsTransposes } from '../shared/backend.js';
import { NativeSession, nativeThreads, type NativeValue } from '../shared/native/onnxruntime.js';
import { MaxPoolArgmax } from '../shared/wasm/max-pool-kernel.js';
import { onnxModel } from '../shared/native/onnx-model.js';
import { layerFlops } from '../shared/model/layers.js';
import { weightLayout, type WeightLayout } from '../shared/model/layout.js';
import { metricLayoutOf, type MetricLayout } from '../shared/model/metric-sums.js';
import { batchLoss, evaluationLossSum, resolveLoss } from '../shared/model/registries.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import { outputDim, outputLayer, type ModelSpec } from '../shared/model/spec.js';
import { ACTIVATION_MATH } from './dense-gradient.js';
import { gradientOut, type BatchEngine, type BatchGradient, type BatchSums } from './engine.js';
import { nativeGraphs, nativeGraphSupports, type GraphWeight, type NativeGraphs } from './native-graph.js';

export { nativeGraphSupports as nativeEngineSupports };

interface Sessions {
  readonly forward: NativeSession;
  readonly backward: NativeSession;
}

/** What one forward pass leaves: the saved values and pool indices by name (views of the arena), Z and P. */
interface ForwardValues {
  readonly saved: Record<string, NativeValue>;
  readonly z: Float32Array;
  readonly p: Float32Array;
}

export class NativeEngine implements BatchEngine {
  readonly layout: WeightLayout;
  private readonly graphs: NativeGraphs;
  private readonly outputDim: number;
  private readonly weights: Float32Array;
  private readonly lossFn: (t: tf.Tensor, p: tf.Tensor) => tf.Tensor;
  private readonly logitsLossFn: ((t: tf.Tensor, z: tf.Tensor) => tf.Tensor) | undefined;
  private readonly metricLayout: MetricLayout;
  /** The largest product's floating-point operations per sample (the threshold's test). */
  private readonly flopsPerSample: number;
  private small: BatchEngine | undefined;
  private smallHasWeights = false;
  private sessions: Promise<Sessions> | undefined;
  /** Where the forward pass's saved values and the pools' indices lie (the argmax kernel's memory). */
  private readonly pools = new MaxPoolArgmax();

  /** `fallback`: the engine for small batches, made on first use. */
  constructor(
    readonly spec: ModelSpec,
    private readonly fallback: () => BatchEngine,
  ) {
    this.graphs = nativeGraphs(spec);
    this.layout = weightLayout(spec);
    this.outputDim = outputDim(spec);
    this.weights = new Float32Array(this.layout.size);
    const loss = resolveLoss(spec.loss, spec.lossOptions, outputLayer(spec).activation);
    this.lossFn = loss.fn;
    this.logitsLossFn = loss.logits;
    this.metricLayout = metricLayoutOf(spec);
    this.flopsPerSample = Math.max(...layerFlops(spec));
  }

  private ready(): Promise<Sessions> {
    this.sessions ??= (async () => {
      const threads = nativeThreads();
      const [forward, backward] = await Promise.all([NativeSession.create(onnxModel(this.graphs.forward), threads), NativeSession.create(onnxModel(this.graphs.backward), threads)]);
      return { forward, backward };
    })();
    return this.sessions;
  }

  setWeights(flat: Float32Array): void {
    if (flat.length !== this.layout.size) throw new RangeError(`weights have ${flat.length} values, the model has ${this.layout.size}`);
    this.weights.set(flat);
    this.smallHasWeights = false;
  }

  /** The fallback engine, its weights brought up to date (only small batches pay for its tensors). */
  private smallEngine(): BatchEngine {
    this.small ??= this.fallback();
    if (!this.smallHasWeights) this.small.setWeights(this.weights);
    this.smallHasWeights = true;
    return this.small;
  }

  /** Whether a batch of `count` is worth the sessions: its largest product at or above the native threshold. */
  private big(count: number): boolean {
    return foldsTransposes(count * this.flopsPerSample);
  }

  private weight(w: GraphWeight): NativeValue {
    const { offset, size } = this.layout.entries[w.entry]!;
    return [this.weights.subarray(offset, offset + size), w.dims];
  }

  /** Runs the forward graph on `count` rows, then (for a gradient) the pools' argmax. */
  private forward(s: Sessions, x: Float32Array, count: number, training: boolean): ForwardValues {
    const perSample = (dims: readonly number[]): number => dims.reduce((a, n) => a * n, 1);
    const { saved: kept, argmax } = this.graphs;
    const floatSize = kept.reduce((a, v) => a + (v.int64 ? 0 : count * perSample(v.dims)), 2 * count * this.outputDim);
    const indexSize = kept.reduce((a, v) => a + (v.int64 ? count * perSample(v.dims) : 0), 0) + argmax.reduce((a, p) => a + count * p.c * p.ho * p.wo, 0);
    const arena = this.pools.arena(floatSize, indexSize);
    let atFloat = 0;
    let atIndex = 0;
    const take = (dims: readonly number[], int64: boolean): NativeValue => {
      const n = count * perSample(dims);
      const all = [count, ...dims];
      if (int64) return [arena.indices.subarray(atIndex, (atIndex += n)), all];
      return [arena.floats.subarray(atFloat, (atFloat += n)), all];
    };
    const saved: Record<string, NativeValue> = {};
    for (const v of kept) saved[v.name] = take(v.dims, v.int64);
    const z = take([this.outputDim], false)[0] as Float32Array;
    const p = take([this.outputDim], false)[0] as Float32Array;
    const inputs: Record<string, NativeValue> = { X: [x, [count, ...this.graphs.inputShape]] };
    for (const w of this.graphs.forwardWeights) inputs[w.name] = this.weight(w);
    s.forward.run(inputs, { ...saved, Z: [z, [count, this.outputDim]], P: [p, [count, this.outputDim]] });
    for (const pool of training ? argmax : []) {
      const indices = take([pool.c, pool.ho, pool.wo], true);
      this.pools.argmax(saved[pool.input]![0] as Float32Array, indices[0] as BigInt64Array, { ...pool, planes: count * pool.c });
      saved[pool.output] = indices;
    }
    return { saved, z, p };
  }

  async gradient(x: Float32Array, y: Float32Array, count: number, out?: Float32Array, onReady?: (start: number) => void, rows?: BatchRows): Promise<BatchGradient> {
    if (!this.big(count)) return this.smallEngine().gradient(x, y, count, out, onReady, rows);
    const gradient = gradientOut(this.layout.size, out);
    const s = await this.ready();
    const { saved, z, p } = this.forward(s, x, count, true);
    const last = outputLayer(this.spec);
    // the loss's gradient at the last pre-activation, its value and the metrics, in tfjs
    const metricSums = this.metricLayout.sums(y, p, count, { sample: rows?.weights, training: true });
    const { dz, lossSum } = tf.tidy(() => {
      const ys = tf.tensor2d(y, [count, this.outputDim]);
      const zs = tf.tensor2d(z, [count, this.outputDim]);
      const ps = tf.tensor2d(p, [count, this.outputDim]);
      const logits = this.logitsLossFn;
      let value: tf.Scalar;
      let d: tf.Tensor;
      if (logits) {
        ({ value, grad: d } = tf.valueAndGrad((t: tf.Tensor) => batchLoss(logits(ys, t), ys, this.spec.classWeights, rows?.weights))(zs));
      } else {
        const { value: v, grad } = tf.valueAndGrad((t: tf.Tensor) => batchLoss(this.lossFn(ys, t), ys, this.spec.classWeights, rows?.weights))(ps);
        value = v;
        d = ACTIVATION_MATH[last.activation].backward(zs, ps, grad, last.alpha ?? 0.3);
      }
      return {
        dz: d.dataSync() as Float32Array,
        lossSum: (value.dataSync()[0] as number) * count,
      };
    });
    const inputs: Record<string, NativeValue> = { ...saved, dZ: [dz, [count, this.outputDim]] };
    if (this.graphs.backward.inputs['X']) inputs['X'] = [x, [count, ...this.graphs.inputShape]];
    for (const w of this.graphs.backwardWeights) inputs[w.name] = this.weight(w);
    const outputs: Record<string, NativeValue> = {};
    for (const w of this.graphs.gradients) {
      const { offset, size } = this.layout.entries[w.entry]!;
      outputs[w.name] = [gradient.subarray(offset, offset + size), w.dims];
    }
    s.backward.run(inputs, outputs);
    return { gradient, count, lossSum, metricSums };
  }

  async evaluate(x: Float32Array, y: Float32Array, count: number, weights?: Float32Array): Promise<BatchSums> {
    if (!this.big(count)) return this.smallEngine().evaluate(x, y, count, weights);
    const { z, p } = this.forward(await this.ready(), x, count, false);
    return tf.tidy(() => {
      const ys = tf.tensor2d(y, [count, this.outputDim]);
      const ps = tf.tensor2d(p, [count, this.outputDim]);
      const loss = this.logitsLossFn ? this.logitsLossFn(ys, tf.tensor2d(z, [count, this.outputDim])) : this.lossFn(ys, ps);
      return { count, lossSum: evaluationLossSum(loss, weights).dataSync()[0] as number, metricSums: this.metricLayout.sums(y, p, count, { sample: weights, training: false }) };
    });
  }

  async predict(x: Float32Array, count: number): Promise<Float32Array> {
    if (!this.big(count)) return this.smallEngine().predict(x, count);
    return this.forward(await this.ready(), x, count, false).p.slice();
  }

  dispose(): void {
    this.small?.dispose();
    void this.sessions?.then((s) => {
      s.forward.dispose();
      s.backward.dispose();
    });
  }
}
