/**
 * The features of a data set's rows, wherever they are: in shared memory (Dataset.x), in a .npy
 * file read row by row, as CSV rows parsed and encoded per batch, or as images in tar shards
 * decoded per batch (Dataset.onDisk,
 * data.inMemory), so a data set larger than memory trains with only its labels, row order and
 * each batch in memory. Both give the same
 * float32 values for a row: value x scale, rounded once to float32.
 */
import { DataError } from '../errors.js';
import { readSpan, withFiles } from './file-reads.js';
import { npyRuns, scaleRun, type NpyFiles } from './npy-parts.js';
import { applyScaler } from './scaler.js';
import { readTarRows, type TarOnDisk } from './tar-rows.js';
import { readCsvRows, type CsvOnDisk } from './csv-rows.js';

/** Features of .npy files on disk: data set row r is row order[r] over the parts in order. Plain data: it travels to threads (order in a SharedArrayBuffer). */
export interface NpyOnDisk extends NpyFiles {
  readonly kind: 'npy';
  /** The file row of each data set row ([train | validation | test] order). */
  readonly order: Int32Array;
}

/** Features that stay on disk: a .npy file's rows, images in tar shards, or CSV rows encoded as they are read. */
export type OnDisk = NpyOnDisk | TarOnDisk | CsvOnDisk;

export interface FeatureRows {
  /** Features per row. */
  readonly features: number;
  /** The features of `rows`, row-major, in that order, as float32 (into `out` if given). */
  gather(rows: ArrayLike<number>, out?: Float32Array): Float32Array;
  /** The features of rows start..start+count-1 (into `out` if given). */
  range(start: number, count: number, out?: Float32Array): Float32Array;
}

/** What a FeatureRows is made from: the data set's x, or a file on disk. */
export interface FeatureSource {
  readonly x: Float32Array;
  readonly features: number;
  readonly onDisk?: OnDisk | undefined;
}

export function featureRows(source: FeatureSource): FeatureRows {
  const { onDisk, features } = source;
  if (onDisk?.kind === 'tar') return new TarRows(onDisk, features);
  if (onDisk?.kind === 'csv') return new OrderedRows(onDisk.order, features, (rows, out) => readCsvRows(onDisk, features, rows, out));
  return onDisk ? new NpyFileRows(onDisk, features) : new MemoryRows(source.x, features);
}

/** Rows read by file row (`read`), data set row r being file row order[r]. */
class OrderedRows implements FeatureRows {
  constructor(
    private readonly order: Int32Array,
    readonly features: number,
    private readonly read: (fileRows: ArrayLike<number>, out: Float32Array) => Float32Array,
  ) {}

  gather(rows: ArrayLike<number>, out = new Float32Array(rows.length * this.features)): Float32Array {
    return this.read(Int32Array.from(rows as ArrayLike<number>, (r) => this.order[r]!), out);
  }

  range(start: number, count: number, out = new Float32Array(count * this.features)): Float32Array {
    return this.read(this.order.subarray(start, start + count), out);
  }
}

class TarRows implements FeatureRows {
  constructor(private readonly file: TarOnDisk, readonly features: number) {}

  gather(rows: ArrayLike<number>, out = new Float32Array(rows.length * this.features)): Float32Array {
    return readTarRows(this.file, Array.from(rows, (r) => this.file.order[r]!), out);
  }

  range(start: number, count: number, out = new Float32Array(count * this.features)): Float32Array {
    return readTarRows(this.file, this.file.order.subarray(start, start + count), out);
  }
}

class MemoryRows implements FeatureRows {
  constructor(private readonly x: Float32Array, readonly features: number) {}

  gather(rows: ArrayLike<number>, out = new Float32Array(rows.length * this.features)): Float32Array {
    const f = this.features;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      out.set(this.x.subarray(r * f, (r + 1) * f), i * f);
    }
    return out;
  }

  range(start: number, count: number, out?: Float32Array): Float32Array {
    const values = this.x.subarray(start * this.features, (start + count) * this.features);
    if (!out) return values.slice();
    out.set(values);
    return out;
  }
}

/** Consecutive file rows are read in one call, up to this many bytes. */
const MAX_READ_BYTES = 1 << 22;

class NpyFileRows implements FeatureRows {
  constructor(private readonly file: NpyOnDisk, readonly features: number) {}

  gather(rows: ArrayLike<number>, out = new Float32Array(rows.length * this.features)): Float32Array {
    const fileRows = new Int32Array(rows.length);
    for (let i = 0; i < rows.length; i++) fileRows[i] = this.file.order[rows[i]!]!;
    return readNpyRows(this.file, this.features, fileRows, out);
  }

  range(start: number, count: number, out = new Float32Array(count * this.features)): Float32Array {
    return readNpyRows(this.file, this.features, this.file.order.subarray(start, start + count), out);
  }
}

/**
 * Rows of .npy files (global over the parts) into out (row i at i x features) as float32 value
 * x scale; runs of consecutive rows in one read. The files are opened per call, so nothing holds
 * a descriptor between steps.
 */
export function readNpyRows(files: NpyFiles, features: number, rows: ArrayLike<number>, out: Float32Array): Float32Array {
  const rowBytes = features * files.width;
  const runs = npyRuns(files, features, rows, MAX_READ_BYTES);
  const buffer = new Uint8Array(Math.min(rows.length, Math.max(1, Math.floor(MAX_READ_BYTES / rowBytes))) * rowBytes);
  return withFiles(files.parts.map((p) => p.path), (fdOf) => {
    for (const run of runs) {
      const part = files.parts[run.part]!;
      const bytes = buffer.subarray(0, run.count * rowBytes);
      const got = readSpan(fdOf(run.part), bytes, part.dataOffset + run.first * rowBytes);
      if (got < bytes.length) throw new DataError(`${part.path}: ended before row ${run.first + Math.floor(got / rowBytes)} (the file shrank while training?)`);
      scaleRun(files, features, run, bytes, out);
    }
    if (files.standardize) applyScaler(out.subarray(0, rows.length * features), files.standardize);
    return out;
  });
}
