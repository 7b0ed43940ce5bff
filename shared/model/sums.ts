/**
 * What a participant's sums (loss and metrics over `count` samples) can be, per loss and metric:
 * anything outside is a peer's lie or a broken engine, refused like a bad gradient. Values are
 * computed in float32, so no per-sample value exceeds FLT_MAX.
 */
import { FLT_MAX, metricLayoutOf } from './metric-sums.js';
import type { LossName, ModelSpec } from './spec.js';

/** Float32 sums may land a hair outside an exact bound. */
const SLACK = 1e-5;

type Range = (count: number) => readonly [number, number];

const nonNegative: Range = (n) => [0, n * FLT_MAX];

const LOSS_RANGE: Readonly<Record<LossName, Range>> = {
  binaryCrossentropy: nonNegative,
  categoricalCrossentropy: nonNegative,
  meanSquaredError: nonNegative,
  meanAbsoluteError: nonNegative,
  // -sum(l2norm(yTrue) * l2norm(yPred)) per sample: within [-1, 1]
  cosineSimilarity: (n) => [-n, n],
  huber: nonNegative,
};

function outside(value: number, [lo, hi]: readonly [number, number], count: number): boolean {
  const slack = SLACK * Math.max(1, count);
  return !(value >= lo - slack && value <= hi + slack);
}

/** Why these sums cannot be right for `count` samples of `spec`, or undefined when they can. */
export function sumsProblem(spec: ModelSpec, count: number, lossSum: number, metricSums: readonly number[]): string | undefined {
  if (!Number.isInteger(count) || count < 0) return `count ${count} is not a number of samples`;
  const lossRange = LOSS_RANGE[spec.loss](count);
  if (outside(lossSum, lossRange, count)) return `loss sum ${lossSum} for ${count} samples is outside [${lossRange[0]}, ${lossRange[1]}] (${spec.loss})`;
  const layout = metricLayoutOf(spec);
  if (metricSums.length !== layout.width) return `${metricSums.length} metric sums, the model's metrics take ${layout.width}`;
  for (let k = 0; k < metricSums.length; k++) {
    const { name, most } = layout.bound(k, count);
    const value = metricSums[k]!;
    if (outside(value, [0, most], count)) return `${name} sum ${value} for ${count} samples is outside [0, ${most}]`;
  }
  return undefined;
}
