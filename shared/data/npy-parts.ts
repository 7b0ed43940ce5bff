/**
 * A data set's .npy samples in one file or several (x-000.npy, x-001.npy, ...: one dtype and
 * sample shape, rows in file order): which part holds a row, and a batch's rows as runs of
 * consecutive rows within one part, each read in one go (from disk or in one HTTP range).
 */
import type { Scaler } from './scaler.js';
import { npyValues } from './npy.js';

export interface NpyPart {
  readonly path: string;
  /** Byte offset of the first value, the file's size and its rows. */
  readonly dataOffset: number;
  readonly bytes: number;
  readonly rows: number;
}

/** .npy files read as one array of samples. Plain data: it travels to threads. */
export interface NpyFiles {
  /** The .npy dtype (f4, u1, ...) and its width in bytes. */
  readonly dtype: string;
  readonly width: number;
  /** features = value x scale, */
  readonly scale: number;
  /** then standardized with the training rows' statistics (data.standardize; absent: not). */
  readonly standardize?: Scaler | undefined;
  readonly parts: readonly NpyPart[];
}

/** Rows first..first+count-1 of part `part` go to out from row `at` on. */
export interface NpyRun {
  readonly at: number;
  readonly part: number;
  readonly first: number;
  readonly count: number;
}

/** Global rows (over the parts in order) as runs of at most `maxBytes`. */
export function npyRuns(files: NpyFiles, features: number, rows: ArrayLike<number>, maxBytes: number): NpyRun[] {
  const starts = [0];
  for (const p of files.parts) starts.push(starts.at(-1)! + p.rows);
  const partOf = (row: number): number => {
    let lo = 0;
    let hi = files.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= row) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const perRun = Math.max(1, Math.floor(maxBytes / (features * files.width)));
  const runs: NpyRun[] = [];
  for (let i = 0; i < rows.length; ) {
    const part = partOf(rows[i]!);
    const end = starts[part + 1]!;
    let count = 1;
    while (i + count < rows.length && count < perRun && rows[i + count] === rows[i]! + count && rows[i]! + count < end) count++;
    runs.push({ at: i, part, first: rows[i]! - starts[part]!, count });
    i += count;
  }
  return runs;
}

/** A run's bytes (aligned for the dtype) as float32 value x scale into out. */
export function scaleRun(files: NpyFiles, features: number, run: NpyRun, bytes: Uint8Array, out: Float32Array): void {
  const aligned = bytes.byteOffset % files.width === 0 ? bytes : bytes.slice();
  const values = npyValues(files.dtype, aligned.buffer, aligned.byteOffset, run.count * features);
  const at = run.at * features;
  for (let k = 0; k < run.count * features; k++) out[at + k] = values[k]! * files.scale;
}
