/**
 * The sums of one batch computed in parts (micro-batches, a node's device processes): counts,
 * loss and metric sums add; the gradient, each part's mean, becomes the count-weighted mean of
 * the parts, accumulated in float64 as the parts arrive (one gradient's memory, however many).
 */
import { totalSums } from '../shared/model/metric-sums.js';
import type { BatchSums } from './engine.js';

export class PartSums {
  private count = 0;
  private lossSum = 0;
  private readonly parts: BatchSums[] = [];
  private sum: Float64Array | undefined;

  /** Adds a part's sums, and its mean gradient where it has one. */
  add(part: BatchSums & { readonly gradient?: Float32Array }): void {
    this.count += part.count;
    this.lossSum += part.lossSum;
    this.parts.push({ count: part.count, lossSum: part.lossSum, metricSums: part.metricSums });
    if (!part.gradient) return;
    const sum = (this.sum ??= new Float64Array(part.gradient.length));
    for (let i = 0; i < sum.length; i++) sum[i]! += part.gradient[i]! * part.count;
  }

  /** The whole batch's count, loss sum and metric sums. */
  sums(): BatchSums {
    const width = this.parts[0]?.metricSums.length ?? 0;
    return { count: this.count, lossSum: this.lossSum, metricSums: totalSums(width, this.parts) };
  }

  /** The whole batch's mean gradient, written into `out`. */
  gradientInto(out: Float32Array): Float32Array {
    const sum = this.sum ?? new Float64Array(out.length);
    for (let i = 0; i < out.length; i++) out[i] = sum[i]! / this.count;
    return out;
  }
}
