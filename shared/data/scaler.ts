/** Standardisation as scikit-learn's StandardScaler: fitted on the training rows, applied to every row. */

export interface Scaler {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** Mean and population std (ddof 0, like scikit-learn's StandardScaler) of the given rows. */
export function fitScaler(x: Float32Array, features: number, rows: Int32Array): Scaler {
  const mean = new Float64Array(features);
  const sq = new Float64Array(features);
  for (const r of rows) {
    for (let j = 0; j < features; j++) mean[j]! += x[r * features + j]!;
  }
  for (let j = 0; j < features; j++) mean[j]! /= rows.length;
  for (const r of rows) {
    for (let j = 0; j < features; j++) {
      const d = x[r * features + j]! - mean[j]!;
      sq[j]! += d * d;
    }
  }
  const std = Array.from(sq, (s) => {
    const sd = Math.sqrt(s / rows.length);
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
