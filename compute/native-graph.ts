/**
 * A layer stack's gradient as two ONNX graphs for onnxruntime (pure: no tfjs, no session): the
 * forward pass, which outputs what the backward pass needs (each weighted layer's input, each
 * nonlinear activation's output, each max-pool's argmax indices) and the last Dense layer's
 * pre-activation Z and output P; and the backward pass, which takes dZ (the loss's gradient at Z,
 * computed in tfjs by the engine) with those values and the weights, and outputs every weight's
 * gradient in the flat layout's shapes (a conv kernel as [kh, kw, in, out]).
 *
 * Images run channels-first inside the graphs (onnxruntime's Conv and MaxPool are NCHW): the
 * input is transposed once on the way in, and flatten transposes back, so Dense kernels and the
 * flat order are Keras's. Convolution gradients: the kernel's is a Conv of the input (batch and
 * channels swapped) with dZ as the filter, dilated by the stride; the input's a ConvTranspose of
 * dZ with the kernel. A max-pool's gradient is scattered (summed) onto the argmax indices.
 *
 * Supported: dense, conv2d, maxPooling2d, globalAveragePooling2d, flatten, reshape and activation
 * layers; hidden activations linear, relu, leakyRelu (alpha > 0), sigmoid, tanh; a last Dense
 * layer with any activation but swish. Anything else (dropout, batch norm, embeddings, average
 * pooling, a user's tfjs model) is not: `nativeGraphSupports` says so and the tape engine runs it.
 */
import type { OnnxConstant, OnnxGraph, OnnxNode } from '../shared/native/onnx-model.js';
import type { TiledPool } from '../shared/wasm/max-pool-kernel.js';
import { layerShapes, type Shape } from '../shared/model/layers.js';
import { isDense, type ActivationName, type LayerSpec, type ModelSpec, type Padding } from '../shared/model/spec.js';

/** Hidden activations whose derivative the backward graph takes from the activation alone. */
const HIDDEN: ReadonlySet<ActivationName> = new Set(['linear', 'relu', 'leakyRelu', 'sigmoid', 'tanh']);
/** Output activations the forward graph computes. */
const OUTPUT: ReadonlySet<ActivationName> = new Set(['linear', 'relu', 'leakyRelu', 'sigmoid', 'tanh', 'softmax']);
const LAYERS: ReadonlySet<string> = new Set(['dense', 'conv2d', 'maxPooling2d', 'globalAveragePooling2d', 'flatten', 'reshape', 'activation']);

/** A value the forward graph hands the backward one: its name, per-sample dims, element type. */
export interface SavedValue {
  readonly name: string;
  readonly dims: readonly number[];
  readonly int64: boolean;
}

/** A weight the graphs read or a gradient the backward graph writes: its name and its layout entry. */
export interface GraphWeight {
  readonly name: string;
  /** Index into the flat layout's entries. */
  readonly entry: number;
  readonly dims: readonly number[];
}

/** A max-pool whose argmax indices are computed between the passes (its windows tile its input). */
export interface PoolArgmax extends Omit<TiledPool, 'planes'> {
  /** The saved value the pool read ([N, c, h, w]), and the int64 input of the backward graph the indices go to ([N, c, ho, wo]). */
  readonly input: string;
  readonly output: string;
  /** Channels: a batch of N has N x c planes. */
  readonly c: number;
}

export interface NativeGraphs {
  readonly forward: OnnxGraph;
  /** Pools whose indices the engine computes after the forward pass. */
  readonly argmax: readonly PoolArgmax[];
  readonly backward: OnnxGraph;
  /** Forward outputs (besides Z and P) the backward graph takes as inputs. */
  readonly saved: readonly SavedValue[];
  /** Weights the forward graph reads (every one). */
  readonly forwardWeights: readonly GraphWeight[];
  /** Weights the backward graph reads (those it propagates through). */
  readonly backwardWeights: readonly GraphWeight[];
  /** The gradients it writes, one per trainable weight. */
  readonly gradients: readonly GraphWeight[];
  /** Features per sample (X is [N, ...inputShape]) and outputs. */
  readonly inputShape: readonly number[];
  readonly outputs: number;
}

const alphaOf = (layer: { alpha?: number }): number => layer.alpha ?? 0.3;

function activationOf(layer: LayerSpec): ActivationName | undefined {
  if (isDense(layer) || layer.type === 'conv2d' || layer.type === 'activation') return layer.activation;
  return undefined;
}

/** Whether these graphs compute the model (else the tape engine does). */
export function nativeGraphSupports(spec: ModelSpec): boolean {
  if (spec.keras || spec.layers.length === 0) return false;
  const last = spec.layers.at(-1)!;
  if (!isDense(last) || !OUTPUT.has(last.activation)) return false;
  let shapes: ReturnType<typeof layerShapes>;
  try {
    shapes = layerShapes(spec);
  } catch {
    return false;
  }
  if (![1, 3].includes(shapes[0]!.input.length)) return false;
  return spec.layers.every((layer, i) => {
    if (!LAYERS.has(isDense(layer) ? 'dense' : layer.type)) return false;
    if (layer.type === 'reshape' && ![1, 3].includes(layer.targetShape.length)) return false;
    const act = activationOf(layer);
    if (act !== undefined && i < spec.layers.length - 1 && !HIDDEN.has(act)) return false;
    return act !== 'leakyRelu' || alphaOf(layer as { alpha?: number }) > 0;
  });
}

/** Explicit pads [top, left, bottom, right] as Keras's 'same' puts them (the odd one at the end). */
function padsOf(input: Shape, window: readonly [number, number], strides: readonly [number, number], padding: Padding): number[] {
  if (padding === 'valid') return [0, 0, 0, 0];
  const along = (size: number, k: number, s: number): [number, number] => {
    const total = Math.max((Math.ceil(size / s) - 1) * s + k - size, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)];
  };
  const [t, b] = along(input[0]!, window[0], strides[0]);
  const [l, r] = along(input[1]!, window[1], strides[1]);
  return [t, l, b, r];
}

/** Whether a pool's windows tile its input without overlap or padding (rows and columns past the last window are left out). */
function tiles(layer: { readonly poolSize: readonly [number, number]; readonly strides: readonly [number, number]; readonly padding: Padding }, input: Shape): boolean {
  const pads = padsOf(input, layer.poolSize, layer.strides, layer.padding);
  return pads.every((p) => p === 0) && layer.strides[0] === layer.poolSize[0] && layer.strides[1] === layer.poolSize[1];
}

/** Builds both graphs as it walks the stack; one instance per call of `nativeGraphs`. */
class Builder {
  readonly fwd: OnnxNode[] = [];
  readonly bwd: OnnxNode[] = [];
  readonly constants: Record<string, OnnxConstant> = {};
  private readonly bwdConstants: Record<string, OnnxConstant> = {};
  private readonly savedSet = new Map<string, SavedValue>();

  int64(name: string, values: readonly number[], backward: boolean): string {
    (backward ? this.bwdConstants : this.constants)[name] = { dims: [values.length], int64: values };
    return name;
  }

  float(name: string, value: number, backward: boolean): string {
    (backward ? this.bwdConstants : this.constants)[name] = { dims: [], float: [value] };
    return name;
  }

  save(name: string, dims: readonly number[], int64 = false): string {
    this.savedSet.set(name, { name, dims, int64 });
    return name;
  }

  get saved(): SavedValue[] {
    return [...this.savedSet.values()];
  }

  get backwardConstants(): Record<string, OnnxConstant> {
    return this.bwdConstants;
  }

  /**
   * Nodes transposing `input` (dims, 'N' for the batch) by `perm` into `output`: axes that stay
   * side by side are merged first, since onnxruntime's Transpose is much slower on four axes
   * than on the same move as two or three (a [64, 32, 26, 26] swap of the first two: ~18 ms
   * against ~1.3 ms as [64, 32, 676] here).
   */
  transpose(input: string, output: string, perm: readonly number[], dims: readonly (number | 'N')[], backward: boolean): OnnxNode[] {
    const groups: number[][] = [];
    for (const axis of perm) {
      const last = groups.at(-1);
      if (last && last.at(-1)! + 1 === axis) last.push(axis);
      else groups.push([axis]);
    }
    const byInput = [...groups].sort((a, b) => a[0]! - b[0]!);
    const size = (axes: readonly number[]): number => axes.reduce((a, k) => (dims[k] === 'N' ? -1 : a * (dims[k] as number)), 1);
    const attributes = { perm: { ints: groups.map((g) => byInput.indexOf(g)) } };
    if (groups.length === perm.length) return [{ op: 'Transpose', inputs: [input], outputs: [output], attributes }];
    const outDims = perm.map((k) => (dims[k] === 'N' ? -1 : (dims[k] as number)));
    if (groups.length === 1) return [{ op: 'Reshape', inputs: [input, this.int64(`${output}_dims`, outDims, backward)], outputs: [output] }];
    return [
      { op: 'Reshape', inputs: [input, this.int64(`${output}_merged`, byInput.map(size), backward)], outputs: [`${output}_in`] },
      { op: 'Transpose', inputs: [`${output}_in`], outputs: [`${output}_out`], attributes },
      { op: 'Reshape', inputs: [`${output}_out`, this.int64(`${output}_dims`, outDims, backward)], outputs: [output] },
    ];
  }

  /** Forward: `a` = activation(`z`). */
  activate(activation: ActivationName, z: string, a: string, alpha: number, channelAxis: number): void {
    const node = (op: string, attributes?: OnnxNode['attributes']): void => void this.fwd.push({ op, inputs: [z], outputs: [a], ...(attributes ? { attributes } : {}) });
    switch (activation) {
      case 'relu':
        return node('Relu');
      case 'leakyRelu':
        return node('LeakyRelu', { alpha: { float: alpha } });
      case 'sigmoid':
        return node('Sigmoid');
      case 'tanh':
        return node('Tanh');
      case 'softmax':
        return node('Softmax', { axis: channelAxis });
      default:
        return node('Identity');
    }
  }

  /** Backward: `dz` = the activation's derivative at output `a`, times `da`. */
  derivative(activation: ActivationName, a: string, da: string, dz: string, alpha: number): void {
    const push = (...nodes: OnnxNode[]): void => void this.bwd.push(...nodes);
    switch (activation) {
      case 'relu':
        // a = relu(z) >= 0, so sign(a) is tfjs's step(z): 1 where z > 0, else 0
        return push({ op: 'Sign', inputs: [a], outputs: [`${a}_step`] }, { op: 'Mul', inputs: [da, `${a}_step`], outputs: [dz] });
      case 'leakyRelu':
        return push(
          { op: 'Greater', inputs: [a, this.float('zero', 0, true)], outputs: [`${a}_positive`] },
          { op: 'Mul', inputs: [da, this.float(`${a}_alpha`, alpha, true)], outputs: [`${da}_leak`] },
          { op: 'Where', inputs: [`${a}_positive`, da, `${da}_leak`], outputs: [dz] },
        );
      case 'sigmoid':
        return push(
          { op: 'Sub', inputs: [this.float('one', 1, true), a], outputs: [`${a}_rest`] },
          { op: 'Mul', inputs: [a, `${a}_rest`], outputs: [`${a}_slope`] },
          { op: 'Mul', inputs: [da, `${a}_slope`], outputs: [dz] },
        );
      case 'tanh':
        return push(
          { op: 'Mul', inputs: [a, a], outputs: [`${a}_squared`] },
          { op: 'Sub', inputs: [this.float('one', 1, true), `${a}_squared`], outputs: [`${a}_slope`] },
          { op: 'Mul', inputs: [da, `${a}_slope`], outputs: [dz] },
        );
      default:
        return push({ op: 'Identity', inputs: [da], outputs: [dz] });
    }
  }
}

/** Per-sample dims as the graphs hold them: images [c, h, w], flat values [n]. */
const graphDims = (shape: Shape): number[] => (shape.length === 3 ? [shape[2]!, shape[0]!, shape[1]!] : [...shape]);

/** The forward and backward graphs of a model `nativeGraphSupports`. */
export function nativeGraphs(spec: ModelSpec): NativeGraphs {
  if (!nativeGraphSupports(spec)) throw new Error('nativeGraphs: a model these graphs do not compute');
  const shapes = layerShapes(spec);
  const b = new Builder();
  const layers = spec.layers;
  const L = layers.length;
  const inputShape = shapes[0]!.input;
  const forwardWeights: GraphWeight[] = [];
  const argmax: PoolArgmax[] = [];
  const backwardWeights: GraphWeight[] = [];
  const gradients: GraphWeight[] = [];
  // entries of the flat layout, in layer order
  let entry = 0;
  const weightEntries = layers.map((_, i) => shapes[i]!.weights.map((w) => ({ entry: entry++, dims: w.shape })));
  const firstWeighted = weightEntries.findIndex((w) => w.length > 0);
  /**
   * Whether max-pool `i` takes the derivative of the activation below it (a conv or activation
   * layer's, feeding only the pool) on its own output: the same values at the argmax positions,
   * the only ones the gradient reaches, on a tensor a window's size smaller.
   */
  const foldsActivation = (i: number): boolean => {
    const pool = layers[i];
    const below = layers[i - 1];
    if (pool?.type !== 'maxPooling2d' || below === undefined || i <= firstWeighted) return false;
    const act = activationOf(below);
    return act !== undefined && act !== 'linear' && !isDense(below);
  };

  // forward
  let cur = 'X';
  if (inputShape.length === 3) {
    b.fwd.push(...b.transpose('X', 'X_nchw', [0, 3, 1, 2], ['N', ...inputShape], false));
    cur = 'X_nchw';
  }
  /** The name each layer read as its input, and the name of its output. */
  const inputOf: string[] = [];
  const outputOf: string[] = [];
  layers.forEach((layer, i) => {
    const { input, output } = shapes[i]!;
    inputOf.push(cur);
    const last = i === L - 1;
    const act = activationOf(layer);
    const [kernel, bias] = weightEntries[i]!;
    if (kernel) forwardWeights.push({ name: `K${i}`, ...kernel });
    if (bias) forwardWeights.push({ name: `B${i}`, ...bias });
    const weighted = kernel !== undefined;
    if (weighted && i > firstWeighted) backwardWeights.push({ name: `K${i}`, ...kernel });
    const a = last ? 'P' : `A${i}`;
    const z = last ? 'Z' : act === undefined || act === 'linear' ? a : `Z${i}`;
    if (isDense(layer)) {
      if (weighted) b.save(cur, graphDims(input));
      b.fwd.push({ op: 'Gemm', inputs: bias ? [cur, `K${i}`, `B${i}`] : [cur, `K${i}`], outputs: [z] });
    } else {
      switch (layer.type) {
        case 'conv2d': {
          b.save(cur, graphDims(input));
          b.fwd.push(...b.transpose(`K${i}`, `K${i}_oihw`, [3, 2, 0, 1], kernel!.dims, false));
          const attributes = { kernel_shape: { ints: [...layer.kernelSize] }, strides: { ints: [...layer.strides] }, pads: { ints: padsOf(input, layer.kernelSize, layer.strides, layer.padding) } };
          b.fwd.push({ op: 'Conv', inputs: bias ? [cur, `K${i}_oihw`, `B${i}`] : [cur, `K${i}_oihw`], outputs: [z], attributes });
          break;
        }
        case 'maxPooling2d': {
          const attributes = { kernel_shape: { ints: [...layer.poolSize] }, strides: { ints: [...layer.strides] }, pads: { ints: padsOf(input, layer.poolSize, layer.strides, layer.padding) } };
          if (i <= firstWeighted) b.fwd.push({ op: 'MaxPool', inputs: [cur], outputs: [a], attributes });
          else if (tiles(layer, input)) {
            // onnxruntime's MaxPool is several times faster without indices: the kernel of
            // shared/wasm/max-pool.wat finds them between the two passes, from the pool's input
            b.fwd.push({ op: 'MaxPool', inputs: [cur], outputs: [a], attributes });
            const [h, w, c] = input as [number, number, number];
            argmax.push({ input: b.save(cur, graphDims(input)), output: `I${i}`, c, h, w, ho: output[0]!, wo: output[1]!, ph: layer.poolSize[0], pw: layer.poolSize[1] });
          } else b.fwd.push({ op: 'MaxPool', inputs: [cur], outputs: [a, b.save(`I${i}`, graphDims(output), true)], attributes });
          if (foldsActivation(i)) b.save(a, graphDims(output));
          break;
        }
        case 'globalAveragePooling2d':
          b.fwd.push({ op: 'ReduceMean', inputs: [cur], outputs: [a], attributes: { axes: { ints: [2, 3] }, keepdims: 0 } });
          break;
        case 'flatten':
        case 'reshape': {
          // to Keras's order (channels last), reshaped, and to channels-first again for an image
          let from = cur;
          if (input.length === 3) {
            b.fwd.push(...b.transpose(cur, `${a}_nhwc`, [0, 2, 3, 1], ['N', ...graphDims(input)], false));
            from = `${a}_nhwc`;
          }
          const target = output.length === 3 ? [-1, ...output] : [-1, output[0]!];
          const reshaped = output.length === 3 ? `${a}_nhwc_out` : a;
          b.fwd.push({ op: 'Reshape', inputs: [from, b.int64(`shape${i}`, target, false)], outputs: [reshaped] });
          if (output.length === 3) b.fwd.push(...b.transpose(reshaped, a, [0, 3, 1, 2], ['N', ...output], false));
          break;
        }
        case 'activation':
          break;
        default:
          throw new Error(`nativeGraphs: layer ${layer.type}`);
      }
    }
    if (act !== undefined && z !== a) {
      b.activate(act, layer.type === 'activation' ? cur : z, a, alphaOf(layer as { alpha?: number }), 1);
      if (!last && act !== 'linear') b.save(a, graphDims(output));
    } else if (act !== undefined && layer.type === 'activation') {
      b.fwd.push({ op: 'Identity', inputs: [cur], outputs: [a] });
    }
    outputOf.push(a);
    cur = a;
  });

  // backward: g is the gradient at the current layer's output
  const outputs = shapes.at(-1)!.output[0]!;
  let g = 'dZ';
  for (let i = L - 1; i >= 0; i--) {
    const layer = layers[i]!;
    const { input, output } = shapes[i]!;
    const last = i === L - 1;
    const act = activationOf(layer);
    const needsInput = i > firstWeighted;
    const [kernel, bias] = weightEntries[i]!;
    // the gradient at the pre-activation
    let dz = g;
    if (!last && act !== undefined && act !== 'linear' && !foldsActivation(i + 1)) {
      dz = `dZ${i}`;
      b.derivative(act, outputOf[i]!, g, dz, alphaOf(layer as { alpha?: number }));
    }
    const x = inputOf[i]!;
    const gIn = `G${i}`;
    if (isDense(layer)) {
      b.bwd.push({ op: 'Gemm', inputs: [x, dz], outputs: [`dK${i}`], attributes: { transA: 1 } });
      gradients.push({ name: `dK${i}`, ...kernel! });
      if (bias) {
        b.bwd.push({ op: 'ReduceSum', inputs: [dz, b.int64(`axes${i}`, [0], true)], outputs: [`dB${i}`], attributes: { keepdims: 0 } });
        gradients.push({ name: `dB${i}`, ...bias });
      }
      if (needsInput) b.bwd.push({ op: 'Gemm', inputs: [dz, `K${i}`], outputs: [gIn], attributes: { transB: 1 } });
    } else {
      switch (layer.type) {
        case 'conv2d': {
          const pads = padsOf(input, layer.kernelSize, layer.strides, layer.padding);
          const [kh, kw] = layer.kernelSize;
          const [sh, sw] = layer.strides;
          const [ho, wo] = output as [number, number, number];
          const channels = input[2]!;
          if (kh * kw * channels <= layer.filters) {
            // few patch values (a first layer's): each sample's patches, one product per sample
            // with its dZ as it lies, summed over samples; the other way needs dZ transposed,
            // which cost more than the Conv for a first layer's large dZ
            let xp = x;
            if (pads.some((p) => p > 0)) {
              b.bwd.push({ op: 'Pad', inputs: [x, b.int64(`pads${i}`, [0, 0, pads[0]!, pads[1]!, 0, 0, pads[2]!, pads[3]!], true)], outputs: [`${x}_padded`] });
              xp = `${x}_padded`;
            }
            const taps: string[] = [];
            for (let r = 0; r < kh; r++) {
              for (let c = 0; c < kw; c++) {
                const tap = `${x}_tap${i}_${r}_${c}`;
                b.bwd.push({
                  op: 'Slice',
                  inputs: [xp, b.int64(`${tap}_from`, [r, c], true), b.int64(`${tap}_to`, [r + (ho - 1) * sh + 1, c + (wo - 1) * sw + 1], true), b.int64('hw', [2, 3], true), b.int64(`steps${i}`, [sh, sw], true)],
                  outputs: [tap],
                });
                taps.push(tap);
              }
            }
            const k = kh * kw * channels;
            b.bwd.push(
              { op: 'Concat', inputs: taps, outputs: [`P${i}`], attributes: { axis: 1 } },
              { op: 'Reshape', inputs: [`P${i}`, b.int64(`patches${i}`, [-1, k, ho * wo], true)], outputs: [`P${i}_cols`] },
              ...b.transpose(`P${i}_cols`, `P${i}_rows`, [0, 2, 1], ['N', k, ho * wo], true),
              { op: 'Reshape', inputs: [dz, b.int64(`rows${i}`, [-1, layer.filters, ho * wo], true)], outputs: [`${dz}_rows`] },
              { op: 'MatMul', inputs: [`${dz}_rows`, `P${i}_rows`], outputs: [`dK${i}_samples`] },
              { op: 'ReduceSum', inputs: [`dK${i}_samples`, b.int64('axis0', [0], true)], outputs: [`dK${i}_ok`], attributes: { keepdims: 0 } },
              // [filters, kh * kw * channels] -> Keras's [kh, kw, channels, filters]
              { op: 'Transpose', inputs: [`dK${i}_ok`], outputs: [`dK${i}_flat`], attributes: { perm: { ints: [1, 0] } } },
              { op: 'Reshape', inputs: [`dK${i}_flat`, b.int64(`kernel${i}`, [kh, kw, channels, layer.filters], true)], outputs: [`dK${i}`] },
            );
          } else {
            b.bwd.push(
              ...b.transpose(x, `${x}_cnhw`, [1, 0, 2, 3], ['N', ...graphDims(input)], true),
              ...b.transpose(dz, `${dz}_onhw`, [1, 0, 2, 3], ['N', ...graphDims(output)], true),
              { op: 'Conv', inputs: [`${x}_cnhw`, `${dz}_onhw`], outputs: [`dK${i}_full`], attributes: { dilations: { ints: [sh, sw] }, pads: { ints: pads } } },
            );
            // the filter gradient's window may overhang the kernel where the stride leaves rows unused
            const span = (d: 0 | 1): number => input[d]! + pads[d]! + pads[d + 2]! - (output[d]! - 1) * layer.strides[d];
            let dk = `dK${i}_full`;
            if (span(0) !== kh || span(1) !== kw) {
              b.bwd.push({ op: 'Slice', inputs: [dk, b.int64(`starts${i}`, [0, 0], true), b.int64(`ends${i}`, [kh, kw], true), b.int64(`sliceAxes${i}`, [2, 3], true)], outputs: [`dK${i}_cut`] });
              dk = `dK${i}_cut`;
            }
            b.bwd.push(...b.transpose(dk, `dK${i}`, [2, 3, 0, 1], [channels, layer.filters, kh, kw], true));
          }
          gradients.push({ name: `dK${i}`, ...kernel! });
          if (bias) {
            b.bwd.push({ op: 'ReduceSum', inputs: [dz, b.int64(`axes${i}`, [0, 2, 3], true)], outputs: [`dB${i}`], attributes: { keepdims: 0 } });
            gradients.push({ name: `dB${i}`, ...bias });
          }
          if (needsInput) {
            const outputPadding = [0, 1].map((d) => input[d]! - (layer.strides[d]! * (output[d]! - 1) + layer.kernelSize[d]! - pads[d]! - pads[d + 2]!));
            b.bwd.push(
              ...b.transpose(`K${i}`, `K${i}_oihw`, [3, 2, 0, 1], kernel!.dims, true),
              {
                op: 'ConvTranspose',
                inputs: [dz, `K${i}_oihw`],
                outputs: [gIn],
                attributes: { kernel_shape: { ints: [kh, kw] }, strides: { ints: [...layer.strides] }, pads: { ints: pads }, output_padding: { ints: outputPadding } },
              },
            );
          }
          break;
        }
        case 'maxPooling2d': {
          if (!needsInput) break;
          const [h, w, c] = input as [number, number, number];
          if (foldsActivation(i)) {
            // the activation below, differentiated at the argmax positions only: its value there is the pool's output
            const below = layers[i - 1]!;
            b.derivative(activationOf(below)!, outputOf[i]!, g, `${g}_act`, alphaOf(below as { alpha?: number }));
            g = `${g}_act`;
          }
          if (layer.strides[0] >= layer.poolSize[0] && layer.strides[1] >= layer.poolSize[1]) {
            // windows that do not overlap: each input position receives from one window at most
            b.bwd.push(
              { op: 'Shape', inputs: [g], outputs: [`${g}_shape`] },
              { op: 'Slice', inputs: [`${g}_shape`, b.int64('zero1', [0], true), b.int64('one1', [1], true)], outputs: [`${g}_n`] },
              { op: 'Concat', inputs: [`${g}_n`, b.int64(`chw${i}`, [c, h, w], true)], outputs: [`G${i}_shape`], attributes: { axis: 0 } },
              { op: 'MaxUnpool', inputs: [g, `I${i}`, `G${i}_shape`], outputs: [gIn], attributes: { kernel_shape: { ints: [...layer.poolSize] }, strides: { ints: [...layer.strides] } } },
            );
            break;
          }
          // overlapping windows: the contributions to one position are summed
          b.bwd.push(
            { op: 'Shape', inputs: [`I${i}`], outputs: [`I${i}_shape`] },
            { op: 'Slice', inputs: [`I${i}_shape`, b.int64('zero1', [0], true), b.int64('one1', [1], true)], outputs: [`I${i}_n`] },
            { op: 'Mul', inputs: [`I${i}_n`, b.int64(`chw${i}`, [c * h * w], true)], outputs: [`G${i}_size`] },
            { op: 'ConstantOfShape', inputs: [`G${i}_size`], outputs: [`G${i}_zeros`] },
            { op: 'Reshape', inputs: [`I${i}`, b.int64('flat', [-1], true)], outputs: [`I${i}_flat`] },
            { op: 'Reshape', inputs: [g, 'flat'], outputs: [`${g}_flat`] },
            { op: 'ScatterElements', inputs: [`G${i}_zeros`, `I${i}_flat`, `${g}_flat`], outputs: [`G${i}_flat`], attributes: { axis: 0, reduction: { string: 'add' } } },
            { op: 'Reshape', inputs: [`G${i}_flat`, b.int64(`shape${i}`, [-1, c, h, w], true)], outputs: [gIn] },
          );
          break;
        }
        case 'globalAveragePooling2d': {
          if (!needsInput) break;
          const [h, w, c] = input as [number, number, number];
          b.bwd.push(
            { op: 'Reshape', inputs: [g, b.int64(`shape${i}`, [-1, c, 1, 1], true)], outputs: [`${g}_nc11`] },
            { op: 'Expand', inputs: [`${g}_nc11`, b.int64(`expand${i}`, [1, c, h, w], true)], outputs: [`${g}_spread`] },
            { op: 'Mul', inputs: [`${g}_spread`, b.float(`mean${i}`, 1 / (h * w), true)], outputs: [gIn] },
          );
          break;
        }
        case 'flatten':
        case 'reshape': {
          if (!needsInput) break;
          let from = g;
          if (output.length === 3) {
            b.bwd.push(...b.transpose(g, `${g}_nhwc`, [0, 2, 3, 1], ['N', ...graphDims(output)], true));
            from = `${g}_nhwc`;
          }
          const target = input.length === 3 ? [-1, ...input] : [-1, input[0]!];
          const reshaped = input.length === 3 ? `${gIn}_nhwc` : gIn;
          b.bwd.push({ op: 'Reshape', inputs: [from, b.int64(`unshape${i}`, target, true)], outputs: [reshaped] });
          if (input.length === 3) b.bwd.push(...b.transpose(reshaped, gIn, [0, 3, 1, 2], ['N', ...input], true));
          break;
        }
        case 'activation':
          if (needsInput) b.bwd.push({ op: 'Identity', inputs: [dz], outputs: [gIn] });
          break;
      }
    }
    g = gIn;
  }
  for (const w of backwardWeights) if (w.name.startsWith('K') && !b.bwd.some((n) => n.inputs.includes(w.name))) throw new Error(`nativeGraphs: ${w.name} unused`);

  const perSample = (dims: readonly number[]): (number | string)[] => ['N', ...dims];
  const saved = b.saved.filter((s) => s.name !== 'X_nchw');
  // X (and its channels-first copy) the backward graph reads as X
  const usesInput = b.bwd.some((n) => n.inputs.includes('X') || n.inputs.includes('X_nchw'));
  const forward: OnnxGraph = {
    nodes: b.fwd,
    constants: b.constants,
    opset: 17,
    inputs: { X: perSample(inputShape), ...Object.fromEntries(forwardWeights.map((w) => [w.name, w.dims])) },
    outputs: { ...Object.fromEntries(saved.filter((s) => s.name !== 'X').map((s) => [s.name, perSample(s.dims)])), Z: ['N', outputs], P: ['N', outputs] },
    int64: saved.filter((s) => s.int64).map((s) => s.name),
  };
  const backwardNodes: OnnxNode[] = usesInput && inputShape.length === 3 ? [...b.transpose('X', 'X_nchw', [0, 3, 1, 2], ['N', ...inputShape], true), ...b.bwd] : b.bwd;
  const backward: OnnxGraph = {
    nodes: backwardNodes,
    constants: b.backwardConstants,
    opset: 17,
    inputs: {
      dZ: ['N', outputs],
      ...Object.fromEntries(argmax.map((p) => [p.output, ['N', p.c, p.ho, p.wo]])),
      ...(usesInput ? { X: perSample(inputShape) } : {}),
      ...Object.fromEntries(saved.filter((s) => s.name !== 'X').map((s) => [s.name, perSample(s.dims)])),
      ...Object.fromEntries(backwardWeights.map((w) => [w.name, w.dims])),
    },
    outputs: Object.fromEntries(gradients.map((w) => [w.name, w.dims])),
    int64: [...saved.filter((s) => s.int64).map((s) => s.name), ...argmax.map((p) => p.output)],
  };
  return { forward, argmax, backward, saved: saved.filter((s) => s.name !== 'X'), forwardWeights, backwardWeights, gradients, inputShape, outputs };
}
