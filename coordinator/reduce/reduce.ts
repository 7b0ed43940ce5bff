/**
 * Gradient reduction: the weighted mean of the participants' mean gradients, weighted by the
 * number of samples each computed. sum_i(n_i * g_i) / sum_i(n_i) equals the gradient of the mean
 * loss over the whole global batch, which is what makes N participants equal to one process.
 * Accumulates in float64 in a fixed participant order, so a run is bit-reproducible.
 *
 * The mean is non-finite at an index exactly when some part is there: NaN and infinities
 * propagate through the sum, and a mean of finite float32 values with weights summing to one
 * cannot exceed their largest magnitude (float64 cannot overflow on the way). So one check of the
 * mean stands for a check of every part.
 *
 * `weightedAverage` is the reference; `GradientReducer` is what the trainer runs each step: the
 * same bits from a WebAssembly SIMD kernel (wasm/reduce.wat) with the check folded in (timings in
 * BENCHMARKS.md).
 */
import { ReduceError } from '../../shared/errors.js';

import { MeanKernel } from '../../shared/wasm/reduce-kernel.js';
import { firstNonFinite } from '../../shared/math/finite.js';

export { firstNonFinite };

/** One participant's contribution to a step. */
export interface GradientContribution {
  /** Mean gradient over this participant's samples, flat (see shared/model/layout.ts). */
  readonly gradient: Float32Array;
  /** Samples it was computed on (> 0). */
  readonly count: number;
}


/** Checks the parts (and the output's length) and returns their total sample count. */
function totalCount(parts: readonly GradientContribution[], length: number): number {
  if (parts.length === 0) throw new ReduceError('no gradients to average');
  let total = 0;
  parts.forEach((part, k) => {
    if (part.gradient.length !== length) {
      throw new ReduceError(`gradient ${k} has length ${part.gradient.length}, expected ${length}`);
    }
    if (!Number.isInteger(part.count) || part.count <= 0) {
      throw new ReduceError(`gradient ${k} has sample count ${part.count}, expected a positive integer`);
    }
    total += part.count;
  });
  return total;
}

/** Weighted mean of the contributions; writes into `out` when given. */
export function weightedAverage(parts: readonly GradientContribution[], out?: Float32Array): Float32Array {
  const length = parts[0]?.gradient.length ?? 0;
  const total = totalCount(parts, length);
  const result = out ?? new Float32Array(length);
  if (result.length !== length) throw new ReduceError(`output has length ${result.length}, expected ${length}`);
  const gradients = parts.map((p) => p.gradient);
  const counts = parts.map((p) => p.count);
  // One pass, no scratch array: per element, a float64 sum in participant order, then the division.
  if (parts.length === 2) {
    const [g0, g1] = gradients as [Float32Array, Float32Array];
    const [n0, n1] = counts as [number, number];
    for (let i = 0; i < length; i++) result[i] = (0 + n0 * (g0[i] as number) + n1 * (g1[i] as number)) / total;
    return result;
  }
  for (let i = 0; i < length; i++) {
    let sum = 0;
    for (let k = 0; k < gradients.length; k++) sum += (counts[k] as number) * ((gradients[k] as Float32Array)[i] as number);
    result[i] = sum / total;
  }
  return result;
}

/** 'wasm': the SIMD kernel (the default where it runs); 'js': the reference loops. */
export type ReduceImplementation = 'wasm' | 'js';

/**
 * The per-step reduction: the weighted mean of the parts into the caller's array, and whether it
 * is finite (see above: then every part is). Bit for bit `weightedAverage`.
 */
export class GradientReducer {
  private readonly kernel: MeanKernel | null;

  constructor(
    readonly length: number,
    implementation: ReduceImplementation = 'wasm',
  ) {
    this.kernel = implementation === 'wasm' && length > 0 ? MeanKernel.create(length) : null;
  }

  get implementation(): ReduceImplementation {
    return this.kernel ? 'wasm' : 'js';
  }

  /** Writes the weighted mean into `out` (of `length` floats); true when all of it is finite. */
  mean(parts: readonly GradientContribution[], out: Float32Array): boolean {
    if (out.length !== this.length) throw new ReduceError(`output has length ${out.length}, expected ${this.length}`);
    const total = totalCount(parts, this.length);
    const finite = this.kernel?.mean(parts.map((p) => p.gradient), parts.map((p) => p.count), total, out);
    if (finite !== undefined) return finite;
    return firstNonFinite(weightedAverage(parts, out)) < 0;
  }
}
