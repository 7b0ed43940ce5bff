/**
 * Batch norm's moving statistics, set once per step: the combined "gradient" holds, at a moving
 * mean's or variance's entries, the count-weighted mean of the step's virtual-batch statistics
 * (compute/gradient.ts), and the weights move towards it as tfjs-layers moves them
 * (w - (w - target) (1 - momentum), in float32), while the optimizer leaves them alone. Pure.
 */
import { layerName, type WeightLayout } from '../model/layout.js';
import type { ModelSpec } from '../model/spec.js';

export interface StatisticRange {
  readonly offset: number;
  readonly size: number;
  readonly momentum: number;
}

const f = Math.fround;

/** Where the model's moving statistics lie in the flat weights, with their layer's momentum. */
export function statisticRanges(spec: ModelSpec, layout: WeightLayout): StatisticRange[] {
  return spec.layers.flatMap((layer, i) => {
    if (layer.type !== 'batchNormalization') return [];
    const name = layerName('batchNormalization', i);
    return layout.entries.filter((e) => !e.trainable && e.name.startsWith(`${name}/`)).map((e) => ({ offset: e.offset, size: e.size, momentum: layer.momentum }));
  });
}

/**
 * One optimizer step on `weights` along `gradient` (`step`), with the statistic ranges kept out
 * of it and then moved towards their targets in `gradient`.
 */
export function stepWithStatistics(weights: Float32Array, gradient: Float32Array, ranges: readonly StatisticRange[], step: (weights: Float32Array, gradient: Float32Array) => void): void {
  if (ranges.length === 0) return step(weights, gradient);
  const before = ranges.map((r) => weights.slice(r.offset, r.offset + r.size));
  const targets = ranges.map((r) => gradient.slice(r.offset, r.offset + r.size));
  for (const r of ranges) gradient.fill(0, r.offset, r.offset + r.size);
  step(weights, gradient);
  ranges.forEach((r, k) => {
    const decay = f(1 - r.momentum);
    const old = before[k]!;
    const target = targets[k]!;
    for (let i = 0; i < r.size; i++) weights[r.offset + i] = f(old[i]! - f(f(old[i]! - target[i]!) * decay));
    gradient.set(target, r.offset);
  });
}
