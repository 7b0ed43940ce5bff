/**
 * Flat weights: the whole model's trainable parameters as one Float32Array, in Keras order
 * (for each Dense layer: kernel [fanIn, units] row-major, then bias [units]). The optimizer,
 * the reduction and the wire all work on this one array; only the gradient engine maps it to
 * tensors.
 */
import { Rng } from '../math/rng.js';
import type { ModelSpec } from './spec.js';

export interface WeightEntry {
  readonly name: string;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly size: number;
  readonly kind: 'kernel' | 'bias';
}

export interface WeightLayout {
  readonly entries: readonly WeightEntry[];
  /** Total number of parameters. */
  readonly size: number;
}

/** Layer names used in built and saved models: dense_1, dense_2, ... */
export function denseName(index: number): string {
  return `dense_${index + 1}`;
}

export function weightLayout(spec: ModelSpec): WeightLayout {
  const entries: WeightEntry[] = [];
  let offset = 0;
  let fanIn = spec.inputDim;
  spec.layers.forEach((layer, i) => {
    const kernel = { name: `${denseName(i)}/kernel`, shape: [fanIn, layer.units], offset, size: fanIn * layer.units, kind: 'kernel' as const };
    entries.push(kernel);
    offset += kernel.size;
    if (layer.useBias) {
      entries.push({ name: `${denseName(i)}/bias`, shape: [layer.units], offset, size: layer.units, kind: 'bias' });
      offset += layer.units;
    }
    fanIn = layer.units;
  });
  return { entries, size: offset };
}

/** Keras defaults: glorotUniform kernels (limit sqrt(6 / (fanIn + fanOut))), zero biases. */
export function initialWeights(layout: WeightLayout, rng: Rng): Float32Array {
  const weights = new Float32Array(layout.size);
  for (const entry of layout.entries) {
    if (entry.kind !== 'kernel') continue;
    const [fanIn, fanOut] = entry.shape as [number, number];
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    for (let i = 0; i < entry.size; i++) weights[entry.offset + i] = (rng.next() * 2 - 1) * limit;
  }
  return weights;
}
