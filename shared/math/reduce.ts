/**
 * Gradient reduction: the weighted mean of the participants' mean gradients, weighted by the
 * number of samples each computed. sum_i(n_i * g_i) / sum_i(n_i) equals the gradient of the mean
 * loss over the whole global batch, which is what makes N participants equal to one process.
 * Accumulates in float64 in a fixed participant order, so a run is bit-reproducible.
 */

/** One participant's contribution to a step. */
export interface GradientContribution {
  /** Mean gradient over this participant's samples, flat (see shared/model/layout.ts). */
  readonly gradient: Float32Array;
  /** Samples it was computed on (> 0). */
  readonly count: number;
}

export class ReduceError extends Error {
  readonly code = 'E_REDUCE';
}

/** Weighted mean of the contributions; writes into `out` when given. */
export function weightedAverage(parts: readonly GradientContribution[], out?: Float32Array): Float32Array {
  if (parts.length === 0) throw new ReduceError('no gradients to average');
  const length = (parts[0] as GradientContribution).gradient.length;
  const acc = new Float64Array(length);
  let total = 0;
  parts.forEach((part, k) => {
    if (part.gradient.length !== length) {
      throw new ReduceError(`gradient ${k} has length ${part.gradient.length}, expected ${length}`);
    }
    if (!Number.isInteger(part.count) || part.count <= 0) {
      throw new ReduceError(`gradient ${k} has sample count ${part.count}, expected a positive integer`);
    }
    const g = part.gradient;
    const n = part.count;
    for (let i = 0; i < length; i++) acc[i] = (acc[i] as number) + n * (g[i] as number);
    total += n;
  });
  const result = out ?? new Float32Array(length);
  if (result.length !== length) throw new ReduceError(`output has length ${result.length}, expected ${length}`);
  for (let i = 0; i < length; i++) result[i] = (acc[i] as number) / total;
  return result;
}

/** Index of the first non-finite value, or -1. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) return i;
  }
  return -1;
}
