/** Standardisation as scikit-learn's StandardScaler: fitted on the training rows, applied to every row. */
import { chunkRows, rowChunks } from './row-chunks.js';

export interface Scaler {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** Mean and population std (ddof 0, like scikit-learn's StandardScaler) of the given rows. */
export function fitScaler(x: Float32Array, features: number, rows: Int32Array): Scaler {
  return fitScalerOver(features, rows, (part, out) => {
    part.forEach((r, i) => out.set(x.subarray(r * features, (r + 1) * features), i * features));
    return out;
  });
}

/** fitScaler over `rows` as `read` gives their features (into the buffer it is handed), a chunk of rows at a time. */
export function fitScalerOver(features: number, rows: Int32Array, read: (part: Int32Array, out: Float32Array) => Float32Array): Scaler {
  const buffer = new Float32Array(Math.min(chunkRows(features), rows.length) * features);
  return fitScalerInPasses(features, rows.length, (each) => {
    for (const { first, count } of rowChunks(rows.length, features)) each(read(rows.subarray(first, first + count), buffer.subarray(0, count * features)));
  });
}

/**
 * fitScaler over rows that `pass` hands over in order, whole rows at a time, as often as asked
 * (twice: the mean, then the squared deviations), so rows on disk give the bits of rows in memory.
 */
function fitScalerInPasses(features: number, count: number, pass: (each: (values: Float32Array) => void) => void): Scaler {
  const mean = new Float64Array(features);
  const sq = new Float64Array(features);
  pass((values) => {
    for (let i = 0; i < values.length; i += features) {
      for (let j = 0; j < features; j++) mean[j]! += values[i + j]!;
    }
  });
  for (let j = 0; j < features; j++) mean[j]! /= count;
  pass((values) => {
    for (let i = 0; i < values.length; i += features) {
      for (let j = 0; j < features; j++) {
        const d = values[i + j]! - mean[j]!;
        sq[j]! += d * d;
      }
    }
  });
  const std = Array.from(sq, (s) => {
    const sd = Math.sqrt(s / count);
    return sd > 0 ? sd : 1;
  });
  return { mean: Array.from(mean), std };
}

/** Standardises `x` in place: (x - mean) / std per feature. */
export function applyScaler(x: Float32Array, scaler: Scaler): void {
  const features = scaler.mean.length;
  for (let i = 0; i < x.length; i++) {
    const j = i % features;
    x[i] = (x[i]! - scaler.mean[j]!) / scaler.std[j]!;
  }
}
