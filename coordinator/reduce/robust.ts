/**
 * Robust aggregation for pools of participants that are not all trusted (cluster.aggregation):
 * every participant's gradient is first clipped to at most `clip` times the median of their L2
 * norms (so one huge gradient cannot dominate), then combined coordinate by coordinate:
 * `trimmedMean` drops the `trim` largest and smallest values at each coordinate and averages
 * the rest, `median` takes the middle value. Each participant is one vote, whatever its sample
 * count: these are not equal to one process (only the weighted mean of reduce.ts is), they
 * trade that for a bound on what a few bad participants can do. Float64 inside, fixed order:
 * bit-reproducible. Returns whether the result is finite. Ranges `unclipped` (batch norm's
 * moving-statistic targets, which travel in the gradient's place) are left out of the norms and
 * never scaled: clipping is for gradients, a scaled statistic would be a wrong one.
 */
import type { GradientContribution } from './reduce.js';

export type Aggregation = 'mean' | 'trimmedMean' | 'median';

export interface RobustOptions {
  readonly aggregation: Exclude<Aggregation, 'mean'>;
  /** Fraction of participants trimmed at each end for trimmedMean (at least one each when there are 3 or more). */
  readonly trimFraction: number;
  /** Norm clip, as a multiple of the median norm (0: no clipping). */
  readonly clip: number;
  /** Ranges neither counted in the norms nor scaled (ascending, not overlapping). */
  readonly unclipped?: readonly Range[];
}

export interface Range {
  readonly offset: number;
  readonly size: number;
}

/** Whether index i lies in one of `ranges`, as a mask over the vector (undefined: none do). */
function rangeMask(length: number, ranges: readonly Range[] | undefined): Uint8Array | undefined {
  if (!ranges || ranges.length === 0) return undefined;
  const mask = new Uint8Array(length);
  for (const r of ranges) mask.fill(1, r.offset, r.offset + r.size);
  return mask;
}

function norm(g: Float32Array, skip: Uint8Array | undefined): number {
  let s = 0;
  for (let i = 0; i < g.length; i++) if (!skip?.[i]) s += g[i]! * g[i]!;
  return Math.sqrt(s);
}

function medianOf(sorted: readonly number[]): number {
  const m = sorted.length >> 1;
  return sorted.length % 2 ? sorted[m]! : (sorted[m - 1]! + sorted[m]!) / 2;
}

/** How many values are trimmed at each end for k participants. */
export function trimCount(k: number, fraction: number): number {
  if (k < 3) return 0;
  return Math.min(Math.floor((k - 1) / 2), Math.max(1, Math.floor(k * fraction)));
}

/** The scale each participant's gradient gets from the norm clip (1: unchanged). */
export function clipScales(parts: readonly GradientContribution[], clip: number, unclipped?: readonly Range[]): number[] {
  const skip = rangeMask(parts[0]?.gradient.length ?? 0, unclipped);
  const norms = parts.map((p) => norm(p.gradient, skip));
  if (!(clip > 0) || parts.length < 2) return norms.map(() => 1);
  const limit = clip * medianOf([...norms].sort((a, b) => a - b));
  return norms.map((n) => (n > limit && n > 0 ? limit / n : 1));
}

export function robustAggregate(parts: readonly GradientContribution[], out: Float32Array, options: RobustOptions): boolean {
  const k = parts.length;
  if (k === 0) throw new RangeError('no gradients to aggregate');
  const scales = clipScales(parts, options.clip, options.unclipped);
  const skip = rangeMask(out.length, options.unclipped);
  const trim = options.aggregation === 'trimmedMean' ? trimCount(k, options.trimFraction) : 0;
  const column = new Float64Array(k);
  let finite = true;
  for (let i = 0; i < out.length; i++) {
    for (let p = 0; p < k; p++) column[p] = skip?.[i] ? parts[p]!.gradient[i]! : parts[p]!.gradient[i]! * scales[p]!;
    column.sort();
    let v: number;
    if (options.aggregation === 'median') v = medianOf(column as unknown as number[]);
    else {
      let s = 0;
      for (let p = trim; p < k - trim; p++) s += column[p]!;
      v = s / (k - 2 * trim);
    }
    out[i] = v;
    if (!Number.isFinite(out[i]!)) finite = false;
  }
  return finite;
}
