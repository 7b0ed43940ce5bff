/**
 * Passes over many rows take them 8 MB of float32 features at a time (scaler fits, the
 * checkpoint's fingerprint, evaluation), so no pass holds a large data set, or one on disk,
 * whole.
 */
const CHUNK_BYTES = 1 << 23;

/** Rows of `features` float32 values in one chunk (at least one). */
export function chunkRows(features: number): number {
  return Math.max(1, Math.floor(CHUNK_BYTES / (4 * features)));
}

/** Rows 0..count-1 in chunks: each chunk's first row and row count. */
export function* rowChunks(count: number, features: number): Generator<{ readonly first: number; readonly count: number }> {
  const size = chunkRows(features);
  for (let first = 0; first < count; first += size) yield { first, count: Math.min(size, count - first) };
}
