/**
 * The layer registry, pure (no TensorFlow.js): for each layer type, the shape it gives a sample,
 * its weights in Keras order, and its forward floating-point operations per sample. The flat
 * weight layout (layout.ts), thread-count choice and the checks of a model against its data
 * read it; build.ts maps each type to its tfjs-layers layer. Add a layer type by adding an entry
 * here and one there.
 */
import { ModelError } from '../errors.js';
import { inputShape, isDense, type LayerSpec, type LayerType, type ModelSpec, type Padding } from './spec.js';

export type Shape = readonly number[];

/** movingMean and movingVariance are state, not trained: a step sets them from batch statistics. */
export type WeightKind = 'kernel' | 'bias' | 'embeddings' | 'gamma' | 'beta' | 'movingMean' | 'movingVariance';

export interface LayerWeights {
  readonly kind: WeightKind;
  readonly shape: readonly number[];
}

/** Weights a step sets from batch statistics instead of a gradient. */
export function isStatistic(kind: WeightKind): boolean {
  return kind === 'movingMean' || kind === 'movingVariance';
}

interface LayerKind<L extends LayerSpec> {
  outputShape(input: Shape, layer: L, where: string): Shape;
  weights(input: Shape, layer: L): LayerWeights[];
  /** Forward multiply-adds x 2 per sample. */
  flops(input: Shape, layer: L): number;
}

type Of<T extends LayerType> = Extract<LayerSpec, { type: T }>;

function image(input: Shape, where: string, what: string): [number, number, number] {
  if (input.length !== 3) {
    throw new ModelError(`${where} (${what}) needs each sample as [height, width, channels]; it gets [${input.join(', ')}]: put a reshape layer before it (e.g. targetShape: [28, 28, 1])`);
  }
  return input as [number, number, number];
}

/** Output length along one axis, as Keras computes it. */
function outLength(size: number, window: number, stride: number, padding: Padding): number {
  return padding === 'same' ? Math.ceil(size / stride) : Math.floor((size - window) / stride) + 1;
}

function spatial(input: [number, number, number], window: readonly [number, number], strides: readonly [number, number], padding: Padding, where: string): [number, number] {
  const h = outLength(input[0], window[0], strides[0], padding);
  const w = outLength(input[1], window[1], strides[1], padding);
  if (h < 1 || w < 1) throw new ModelError(`${where}: a ${window.join('x')} window does not fit a ${input[0]}x${input[1]} input with padding "${padding}"`);
  return [h, w];
}

const size = (shape: Shape): number => shape.reduce((a, n) => a * n, 1);

const dense: LayerKind<Extract<LayerSpec, { units: number }>> = {
  outputShape(input, layer, where) {
    if (input.length !== 1) throw new ModelError(`${where} (dense) needs a flat input; it gets [${input.join(', ')}]: put a flatten layer before it`);
    return [layer.units];
  },
  weights: (input, layer) => [{ kind: 'kernel', shape: [input[0]!, layer.units] }, ...(layer.useBias ? [{ kind: 'bias' as const, shape: [layer.units] }] : [])],
  flops: (input, layer) => 2 * input[0]! * layer.units,
};

const conv2d: LayerKind<Of<'conv2d'>> = {
  outputShape(input, layer, where) {
    return [...spatial(image(input, where, 'conv2d'), layer.kernelSize, layer.strides, layer.padding, where), layer.filters];
  },
  weights: (input, layer) => [
    { kind: 'kernel', shape: [layer.kernelSize[0], layer.kernelSize[1], input[2]!, layer.filters] },
    ...(layer.useBias ? [{ kind: 'bias' as const, shape: [layer.filters] }] : []),
  ],
  flops(input, layer) {
    const [h, w] = spatial(input as [number, number, number], layer.kernelSize, layer.strides, layer.padding, '');
    return 2 * h * w * layer.filters * layer.kernelSize[0] * layer.kernelSize[1] * input[2]!;
  },
};

const pool: LayerKind<Of<'maxPooling2d' | 'averagePooling2d'>> = {
  outputShape: (input, layer, where) => [...spatial(image(input, where, layer.type), layer.poolSize, layer.strides, layer.padding, where), input[2]!],
  weights: () => [],
  flops: (input) => size(input),
};

const LAYERS: { readonly [T in LayerType]: LayerKind<Of<T>> } = {
  dense: dense as LayerKind<Of<'dense'>>,
  conv2d,
  maxPooling2d: pool,
  averagePooling2d: pool,
  globalAveragePooling2d: {
    outputShape: (input, _layer, where) => [image(input, where, 'globalAveragePooling2d')[2]],
    weights: () => [],
    flops: (input) => size(input),
  },
  flatten: { outputShape: (input) => [size(input)], weights: () => [], flops: () => 0 },
  dropout: { outputShape: (input) => input, weights: () => [], flops: (input) => size(input) },
  activation: { outputShape: (input) => input, weights: () => [], flops: (input) => size(input) },
  batchNormalization: {
    outputShape: (input) => input,
    weights: (input) => (['gamma', 'beta', 'movingMean', 'movingVariance'] as const).map((kind) => ({ kind, shape: [input.at(-1)!] })),
    flops: (input) => 8 * size(input),
  },
  embedding: {
    outputShape: (input, layer) => [...input, layer.outputDim],
    weights: (_input, layer) => [{ kind: 'embeddings', shape: [layer.inputDim, layer.outputDim] }],
    flops: (input, layer) => size(input) * layer.outputDim,
  },
  reshape: {
    outputShape(input, layer, where) {
      if (size(layer.targetShape) !== size(input)) {
        throw new ModelError(`${where} (reshape): [${layer.targetShape.join(', ')}] has ${size(layer.targetShape)} values per sample, its input [${input.join(', ')}] has ${size(input)}`);
      }
      return layer.targetShape;
    },
    weights: () => [],
    flops: () => 0,
  },
};

function kindOf(layer: LayerSpec): LayerKind<LayerSpec> {
  return LAYERS[isDense(layer) ? 'dense' : layer.type] as LayerKind<LayerSpec>;
}

export function layerType(layer: LayerSpec): LayerType {
  return isDense(layer) ? 'dense' : layer.type;
}

/** Each layer's input shape (per sample), its output shape and its weights, checked as they chain. */
export function layerShapes(spec: ModelSpec): { readonly input: Shape; readonly output: Shape; readonly weights: LayerWeights[] }[] {
  if (spec.keras) throw new ModelError('a tfjs-layers model has no model.layers to check (tfjs-layers built it)');
  let shape: Shape = inputShape(spec);
  return spec.layers.map((layer, i) => {
    const kind = kindOf(layer);
    const input = shape;
    shape = kind.outputShape(input, layer, `model.layers[${i}]`);
    return { input, output: shape, weights: kind.weights(input, layer) };
  });
}

/**
 * Float32 values one row of a batch holds during a forward and backward pass, roughly: its input
 * and every layer's output, and a gradient of each. Undefined for a tfjs-layers model (its layers'
 * shapes are known only once built). What a batch of n rows costs is about 4 x n x this bytes.
 */
export function activationValuesPerRow(spec: ModelSpec): number | undefined {
  if (spec.keras) return undefined;
  const size = (shape: Shape): number => shape.reduce((a, n) => a * n, 1);
  return 2 * layerShapes(spec).reduce((a, layer) => a + size(layer.output), size(inputShape(spec)));
}

/** Forward floating-point operations per sample. */
export function forwardFlops(spec: ModelSpec): number {
  // a tfjs-layers model: 2 per weight, as if every weight were used once per sample (a lower bound)
  if (spec.keras) return 2 * spec.keras.weights.reduce((a, w) => a + w.shape.reduce((b, n) => b * n, 1), 0);
  return layerFlops(spec).reduce((a, n) => a + n, 0);
}

/** Each layer's forward floating-point operations per sample (model.layers only). */
export function layerFlops(spec: ModelSpec): number[] {
  const shapes = layerShapes(spec);
  return spec.layers.map((layer, i) => kindOf(layer).flops(shapes[i]!.input, layer));
}

/** "784-reshape[28,28,1]-conv2d 32-max-pool-flatten-dense 10": a model in one line, for logs. */
export function describeModel(spec: ModelSpec): string {
  if (spec.keras) {
    const layers = (spec.keras.config['layers'] as { className?: string }[] | undefined) ?? [];
    return `${spec.keras.inputShape.join('x')} -> tfjs-layers ${spec.keras.className === 'Model' ? 'functional model' : 'Sequential'} (${layers.map((l) => l.className ?? '?').join(', ')}) -> ${spec.keras.outputs}`;
  }
  const augment = spec.augment ? `${spec.augment.layers.map((l) => l.type).join(', ')} (training) -> ` : '';
  if (spec.layers.every(isDense) && !augment) return [spec.inputDim, ...spec.layers.map((l) => (l as { units: number }).units)].join('-');
  const parts = spec.layers.map((layer) => {
    if (isDense(layer)) return `dense ${layer.units}`;
    if (layer.type === 'conv2d') return `conv ${layer.filters}x${layer.kernelSize.join('x')}`;
    if (layer.type === 'reshape') return `reshape [${layer.targetShape.join(',')}]`;
    if (layer.type === 'flatten') return 'flatten';
    if (layer.type === 'embedding') return `embedding ${layer.inputDim}x${layer.outputDim}`;
    if (layer.type === 'dropout') return `dropout ${layer.rate}`;
    if (layer.type === 'activation') return layer.activation;
    if (layer.type === 'batchNormalization') return `batch-norm /${layer.virtualBatchSize}`;
    if (layer.type === 'globalAveragePooling2d') return 'global-avg-pool';
    return `${layer.type === 'maxPooling2d' ? 'max' : 'avg'}-pool ${layer.poolSize.join('x')}`;
  });
  return `${augment}${[inputShape(spec).join('x'), ...parts].join(' -> ')}`;
}
