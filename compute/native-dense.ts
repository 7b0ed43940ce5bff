/**
 * A Dense stack's gradient on the native backend as two onnxruntime sessions instead of one
 * tfjs kernel per operation: the forward pass (each layer's Gemm with its bias, then its
 * activation) and the backward pass (each layer's kernel gradient A^T dZ, bias gradient
 * ReduceSum(dZ), the previous layer's dA = dZ W^T and its activation's derivative, from the
 * activations alone), each one run per call, the weights and rows read where they lie and the
 * gradients written straight into the flat gradient. Between the two, the loss's gradient with
 * respect to the last pre-activation is taken in tfjs as DenseGradientEngine takes it (every
 * loss and metric of the registry, from the logits where registries.ts says so), on
 * [batch, outputs] tensors only.
 *
 * Hidden activations: linear, relu, leakyRelu (alpha > 0), sigmoid, tanh; the output layer's
 * may be any but swish. Other models, and batches whose largest product is below the native
 * backend's threshold, go to DenseGradientEngine.
 */
import * as tf from '@tensorflow/tfjs-core';
import { foldsTransposes } from '../shared/backend.js';
import { NativeSession, nativeThreads, type Float32Value } from '../shared/native/onnxruntime.js';
import { onnxModel, type OnnxConstant, type OnnxGraph, type OnnxNode } from '../shared/native/onnx-model.js';
import { weightLayout, type WeightLayout } from '../shared/model/layout.js';
import { logitsLoss, losses, metrics } from '../shared/model/registries.js';
import { isDenseStack, outputDim, outputLayer, type ActivationName, type DenseSpec, type ModelSpec } from '../shared/model/spec.js';
import { ACTIVATION_MATH, DenseGradientEngine } from './dense-gradient.js';
import { gradientOut, type BatchEngine, type BatchGradient, type BatchSums } from './engine.js';

/** Hidden activations whose derivative the backward graph takes from the activation alone. */
const HIDDEN: ReadonlySet<ActivationName> = new Set(['linear', 'relu', 'leakyRelu', 'sigmoid', 'tanh']);
/** Output activations the forward graph computes. */
const OUTPUT: ReadonlySet<ActivationName> = new Set(['linear', 'relu', 'leakyRelu', 'sigmoid', 'tanh', 'softmax']);

const alphaOf = (layer: DenseSpec): number => layer.alpha ?? 0.3;

/** Whether this engine computes the model (else DenseGradientEngine does). */
export function nativeDenseSupports(spec: ModelSpec): boolean {
  if (!isDenseStack(spec)) return false;
  const layers: readonly DenseSpec[] = spec.layers;
  return layers.every((l, i) => (i === layers.length - 1 ? OUTPUT : HIDDEN).has(l.activation) && (l.activation !== 'leakyRelu' || alphaOf(l) > 0));
}

/** The forward graph: X -> A1 .. A(L-1) (hidden activations), Z (last pre-activation) and P (the output). */
function forwardGraph(layers: readonly DenseSpec[], inputDim: number): OnnxGraph {
  const nodes: OnnxNode[] = [];
  const inputs: Record<string, (number | string)[]> = { X: ['N', inputDim] };
  const outputs: Record<string, (number | string)[]> = {};
  let prev = 'X';
  let fanIn = inputDim;
  layers.forEach((layer, i) => {
    const l = i + 1;
    const last = l === layers.length;
    inputs[`W${l}`] = [fanIn, layer.units];
    if (layer.useBias) inputs[`b${l}`] = [layer.units];
    const z = last ? 'Z' : `Z${l}`;
    nodes.push({ op: 'Gemm', inputs: layer.useBias ? [prev, `W${l}`, `b${l}`] : [prev, `W${l}`], outputs: [z] });
    const a = last ? 'P' : `A${l}`;
    const act = (op: string, attributes?: OnnxNode['attributes']): void => void nodes.push({ op, inputs: [z], outputs: [a], ...(attributes ? { attributes } : {}) });
    switch (layer.activation) {
      case 'relu':
        act('Relu');
        break;
      case 'leakyRelu':
        act('LeakyRelu', { alpha: { float: alphaOf(layer) } });
        break;
      case 'sigmoid':
        act('Sigmoid');
        break;
      case 'tanh':
        act('Tanh');
        break;
      case 'softmax':
        act('Softmax', { axis: 1 });
        break;
      default:
        act('Identity');
    }
    if (!last) outputs[a] = ['N', layer.units];
    prev = a;
    fanIn = layer.units;
  });
  outputs['Z'] = ['N', fanIn];
  outputs['P'] = ['N', fanIn];
  return { nodes, inputs, outputs, opset: 11 };
}

/**
 * The backward graph: from dZ (the loss's gradient at the last pre-activation), the activations
 * A0 = X .. A(L-1) and the kernels W2 .. WL, each layer's dW and db (with a bias).
 */
function backwardGraph(layers: readonly DenseSpec[], inputDim: number): OnnxGraph {
  const nodes: OnnxNode[] = [];
  const L = layers.length;
  const units = (l: number): number => (l === 0 ? inputDim : layers[l - 1]!.units);
  const inputs: Record<string, (number | string)[]> = { [`dZ${L}`]: ['N', units(L)], A0: ['N', inputDim] };
  const outputs: Record<string, (number | string)[]> = {};
  const constants: Record<string, OnnxConstant> = { zero: { dims: [], float: [0] }, one: { dims: [], float: [1] } };
  for (let l = L; l >= 1; l--) {
    const layer = layers[l - 1]!;
    if (l < L) inputs[`A${l}`] = ['N', units(l)];
    nodes.push({ op: 'Gemm', inputs: [`A${l - 1}`, `dZ${l}`], outputs: [`dW${l}`], attributes: { transA: 1 } });
    outputs[`dW${l}`] = [units(l - 1), units(l)];
    if (layer.useBias) {
      nodes.push({ op: 'ReduceSum', inputs: [`dZ${l}`], outputs: [`db${l}`], attributes: { axes: { ints: [0] }, keepdims: 0 } });
      outputs[`db${l}`] = [units(l)];
    }
    if (l === 1) break;
    inputs[`W${l}`] = [units(l - 1), units(l)];
    nodes.push({ op: 'Gemm', inputs: [`dZ${l}`, `W${l}`], outputs: [`dA${l - 1}`], attributes: { transB: 1 } });
    const below = layers[l - 2]!;
    const [dA, A, dZ] = [`dA${l - 1}`, `A${l - 1}`, `dZ${l - 1}`];
    switch (below.activation) {
      case 'relu':
        // A = relu(Z) >= 0, so sign(A) is tfjs's step(Z): 1 where Z > 0, else 0
        nodes.push({ op: 'Sign', inputs: [A], outputs: [`${A}_step`] }, { op: 'Mul', inputs: [dA, `${A}_step`], outputs: [dZ] });
        break;
      case 'leakyRelu':
        constants[`alpha${l - 1}`] = { dims: [], float: [alphaOf(below)] };
        nodes.push(
          { op: 'Greater', inputs: [A, 'zero'], outputs: [`${A}_positive`] },
          { op: 'Mul', inputs: [dA, `alpha${l - 1}`], outputs: [`${dA}_leak`] },
          { op: 'Where', inputs: [`${A}_positive`, dA, `${dA}_leak`], outputs: [dZ] },
        );
        break;
      case 'sigmoid':
        nodes.push(
          { op: 'Sub', inputs: ['one', A], outputs: [`${A}_rest`] },
          { op: 'Mul', inputs: [A, `${A}_rest`], outputs: [`${A}_slope`] },
          { op: 'Mul', inputs: [dA, `${A}_slope`], outputs: [dZ] },
        );
        break;
      case 'tanh':
        nodes.push(
          { op: 'Mul', inputs: [A, A], outputs: [`${A}_squared`] },
          { op: 'Sub', inputs: ['one', `${A}_squared`], outputs: [`${A}_slope`] },
          { op: 'Mul', inputs: [dA, `${A}_slope`], outputs: [dZ] },
        );
        break;
      default:
        nodes.push({ op: 'Identity', inputs: [dA], outputs: [dZ] });
    }
  }
  return { nodes, inputs, outputs, constants, opset: 11 };
}

interface Sessions {
  readonly forward: NativeSession;
  readonly backward: NativeSession;
}

export class NativeDenseEngine implements BatchEngine {
  readonly layout: WeightLayout;
  private readonly layers: readonly DenseSpec[];
  private readonly inputDim: number;
  private readonly outputDim: number;
  private readonly weights: Float32Array;
  /** Offsets of each layer's kernel and bias (-1: none) in the flat layout. */
  private readonly offsets: { kernel: number; bias: number }[];
  private readonly lossFn: (t: tf.Tensor, p: tf.Tensor) => tf.Tensor;
  private readonly logitsLossFn: ((t: tf.Tensor, z: tf.Tensor) => tf.Tensor) | undefined;
  private readonly metricFns: ((t: tf.Tensor, p: tf.Tensor) => tf.Tensor)[];
  /** Small batches: the tfjs engine (its products stay on wasm below the threshold). */
  private readonly small: DenseGradientEngine;
  private smallHasWeights = false;
  private sessions: Promise<Sessions> | undefined;
  /** Activations of the last forward pass, grown to the largest batch seen. */
  private activations = new Float32Array(0);

  constructor(readonly spec: ModelSpec) {
    if (!nativeDenseSupports(spec) || !isDenseStack(spec)) throw new Error('NativeDenseEngine: not a Dense stack of the activations it computes');
    this.layers = spec.layers;
    this.layout = weightLayout(spec);
    this.inputDim = spec.inputDim;
    this.outputDim = outputDim(spec);
    this.weights = new Float32Array(this.layout.size);
    let e = 0;
    this.offsets = this.layers.map((layer) => ({ kernel: this.layout.entries[e++]!.offset, bias: layer.useBias ? this.layout.entries[e++]!.offset : -1 }));
    this.lossFn = losses[spec.loss].fn;
    this.logitsLossFn = logitsLoss(spec.loss, outputLayer(spec).activation);
    this.metricFns = spec.metrics.map((name) => metrics[name].fn(this.outputDim));
    this.small = new DenseGradientEngine(spec);
  }

  private ready(): Promise<Sessions> {
    this.sessions ??= (async () => {
      const threads = nativeThreads();
      const [forward, backward] = await Promise.all([NativeSession.create(onnxModel(forwardGraph(this.layers, this.inputDim)), threads), NativeSession.create(onnxModel(backwardGraph(this.layers, this.inputDim)), threads)]);
      return { forward, backward };
    })();
    return this.sessions;
  }

  setWeights(flat: Float32Array): void {
    if (flat.length !== this.layout.size) throw new RangeError(`weights have ${flat.length} values, the model has ${this.layout.size}`);
    this.weights.set(flat);
    this.smallHasWeights = false;
  }

  /** The tfjs engine, its weights brought up to date (only small batches pay for its tensors). */
  private smallEngine(): DenseGradientEngine {
    if (!this.smallHasWeights) this.small.setWeights(this.weights);
    this.smallHasWeights = true;
    return this.small;
  }

  /** Whether a batch of `count` is worth the sessions: its largest product at or above the native threshold. */
  private big(count: number): boolean {
    let fanIn = this.inputDim;
    let most = 0;
    for (const layer of this.layers) {
      most = Math.max(most, 2 * count * fanIn * layer.units);
      fanIn = layer.units;
    }
    return foldsTransposes(most);
  }

  private kernel(l: number): Float32Value {
    const fanIn = l === 0 ? this.inputDim : this.layers[l - 1]!.units;
    const { kernel } = this.offsets[l]!;
    return [this.weights.subarray(kernel, kernel + fanIn * this.layers[l]!.units), [fanIn, this.layers[l]!.units]];
  }

  /** Runs the forward graph on `count` rows: the hidden activations (views of this.activations), Z and P. */
  private forward(s: Sessions, x: Float32Array, count: number): { hidden: Float32Array[]; z: Float32Array; p: Float32Array } {
    const sizes = [...this.layers.slice(0, -1).map((l) => count * l.units), count * this.outputDim, count * this.outputDim];
    const total = sizes.reduce((a, n) => a + n, 0);
    if (this.activations.length < total) this.activations = new Float32Array(total);
    const views: Float32Array[] = [];
    let at = 0;
    for (const n of sizes) {
      views.push(this.activations.subarray(at, at + n));
      at += n;
    }
    const inputs: Record<string, Float32Value> = { X: [x, [count, this.inputDim]] };
    this.layers.forEach((layer, i) => {
      inputs[`W${i + 1}`] = this.kernel(i);
      const { bias } = this.offsets[i]!;
      if (bias >= 0) inputs[`b${i + 1}`] = [this.weights.subarray(bias, bias + layer.units), [layer.units]];
    });
    const outputs: Record<string, Float32Value> = {};
    const hidden = views.slice(0, -2);
    hidden.forEach((v, i) => (outputs[`A${i + 1}`] = [v, [count, this.layers[i]!.units]]));
    const [z, p] = views.slice(-2) as [Float32Array, Float32Array];
    outputs['Z'] = [z, [count, this.outputDim]];
    outputs['P'] = [p, [count, this.outputDim]];
    s.forward.run(inputs, outputs);
    return { hidden, z, p };
  }

  async gradient(x: Float32Array, y: Float32Array, count: number, out?: Float32Array, onReady?: (start: number) => void): Promise<BatchGradient> {
    if (!this.big(count)) return this.smallEngine().gradient(x, y, count, out, onReady);
    const gradient = gradientOut(this.layout.size, out);
    const s = await this.ready();
    const { hidden, z, p } = this.forward(s, x, count);
    const last = this.layers.at(-1)!;
    // the loss's gradient at the last pre-activation, its value and the metrics, in tfjs
    const { dz, lossSum, metricSums } = tf.tidy(() => {
      const ys = tf.tensor2d(y, [count, this.outputDim]);
      const zs = tf.tensor2d(z, [count, this.outputDim]);
      const ps = tf.tensor2d(p, [count, this.outputDim]);
      const logits = this.logitsLossFn;
      let value: tf.Scalar;
      let d: tf.Tensor;
      if (logits) {
        ({ value, grad: d } = tf.valueAndGrad((t: tf.Tensor) => tf.mean(logits(ys, t)) as tf.Scalar)(zs));
      } else {
        const { value: v, grad } = tf.valueAndGrad((t: tf.Tensor) => tf.mean(this.lossFn(ys, t)) as tf.Scalar)(ps);
        value = v;
        d = ACTIVATION_MATH[last.activation].backward(zs, ps, grad, alphaOf(last));
      }
      return {
        dz: d.dataSync() as Float32Array,
        lossSum: (value.dataSync()[0] as number) * count,
        metricSums: this.metricFns.map((fn) => tf.sum(fn(ys, ps)).dataSync()[0] as number),
      };
    });
    const inputs: Record<string, Float32Value> = { [`dZ${this.layers.length}`]: [dz, [count, this.outputDim]], A0: [x, [count, this.inputDim]] };
    hidden.forEach((a, i) => (inputs[`A${i + 1}`] = [a, [count, this.layers[i]!.units]]));
    const outputs: Record<string, Float32Value> = {};
    this.layers.forEach((layer, i) => {
      const [, dims] = this.kernel(i);
      const { kernel, bias } = this.offsets[i]!;
      outputs[`dW${i + 1}`] = [gradient.subarray(kernel), dims];
      if (bias >= 0) outputs[`db${i + 1}`] = [gradient.subarray(bias), [layer.units]];
      if (i > 0) inputs[`W${i + 1}`] = this.kernel(i);
    });
    s.backward.run(inputs, outputs);
    return { gradient, count, lossSum, metricSums };
  }

  async evaluate(x: Float32Array, y: Float32Array, count: number): Promise<BatchSums> {
    if (!this.big(count)) return this.smallEngine().evaluate(x, y, count);
    const { z, p } = this.forward(await this.ready(), x, count);
    return tf.tidy(() => {
      const ys = tf.tensor2d(y, [count, this.outputDim]);
      const ps = tf.tensor2d(p, [count, this.outputDim]);
      const loss = this.logitsLossFn ? this.logitsLossFn(ys, tf.tensor2d(z, [count, this.outputDim])) : this.lossFn(ys, ps);
      return { count, lossSum: tf.sum(loss).dataSync()[0] as number, metricSums: this.metricFns.map((fn) => tf.sum(fn(ys, ps)).dataSync()[0] as number) };
    });
  }

  async predict(x: Float32Array, count: number): Promise<Float32Array> {
    if (!this.big(count)) return this.smallEngine().predict(x, count);
    return this.forward(await this.ready(), x, count).p.slice();
  }

  dispose(): void {
    this.small.dispose();
    void this.sessions?.then((s) => {
      s.forward.dispose();
      s.backward.dispose();
    });
  }
}
