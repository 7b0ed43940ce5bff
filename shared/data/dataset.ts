/**
 * From a table (or CSV rows left in their files) to the training set the participants share: fit the preprocessing, encode, split
 * train/test (stratified, seeded), cut validation off train, standardise with train statistics,
 * and lay the rows out as [train | validation | test] in SharedArrayBuffers, so threads read
 * them in place and nothing is copied per step.
 */
import { scalePixels } from './pixels.js';
import { DataError } from '../errors.js';
import { Rng } from '../math/rng.js';
import type { Table } from './csv.js';
import { readNpyRows, type NpyOnDisk, type OnDisk } from './feature-rows.js';
import type { CsvFileRows } from './csv.js';
import { encodeOnDisk, joinCsvOnDisk, readCsvRows, type CsvOnDisk } from './csv-rows.js';
import { encode, fitPreprocessor, type Encoded, type PreprocessOptions, type Preprocessor } from './preprocess.js';
import { applyScaler, fitScaler, fitScalerOver, type Scaler } from './scaler.js';
import { stratifiedSplit, validationSplit } from './split.js';

/** An OnDisk before its row order is laid out. */
type WithoutOrder<T> = T extends unknown ? Omit<T, 'order'> : never;

export interface SplitOptions {
  readonly testSize: number;
  readonly stratify: boolean;
  readonly standardize: boolean;
  readonly validationSplit: number;
  /** Rows from this one on are the validation set as given (data.validation), outside the train/test split. */
  readonly validationFrom?: number | undefined;
}

/** A contiguous range of rows in the dataset matrix. */
export interface RowRange {
  readonly start: number;
  readonly count: number;
}

export interface Dataset {
  /** Features, row-major [rows, features], backed by a SharedArrayBuffer. */
  readonly x: Float32Array;
  /** Targets, row-major [rows, outputs], backed by a SharedArrayBuffer. */
  readonly y: Float32Array;
  readonly features: number;
  readonly outputs: number;
  readonly train: RowRange;
  readonly val: RowRange;
  readonly test: RowRange;
  /**
   * Images (and uint8 arrays): x as the uint8 values it was made from, x = values * scale in
   * float32, in the same layout; worker nodes get these (4x fewer bytes) and scale on arrival.
   */
  readonly pixels?: { readonly values: Uint8Array; readonly scale: number };
  /** A sample's shape where the data has one (images [h, w, c], .npy arrays); absent: [features]. */
  readonly sampleShape?: readonly number[];
  /** Each row's weight in the training loss (data.sampleWeight, Keras's sample_weight), backed by a SharedArrayBuffer; absent: all 1. */
  readonly sampleWeights?: Float32Array;
  /**
   * The features stay in a .npy file or tar shards, read per batch (data.inMemory); x is then
   * empty. Read rows through featureRows(dataset), which serves both.
   */
  readonly onDisk?: OnDisk;
  /**
   * Where reading every training feature to fingerprint them would cost a pass over a data set
   * that may be far larger than memory (tar shards), what stands for them in the checkpoint's
   * fingerprint instead: a hash of where each training sample is (its shard's name and size, its
   * member's offset and size), the same in memory and on disk.
   */
  readonly identity?: string;
}

export interface PreparedData {
  readonly dataset: Dataset;
  readonly preprocessor: Preprocessor;
  /** Rows read from the file and rows dropped for missing values. */
  readonly rowsRead: number;
  readonly rowsDropped: number;
  /** What the user should know about the data (a column one-hot encoded because of a few stray values, many rows dropped). */
  readonly warnings: readonly string[];
  /** File line of every row of each split, in data set order. */
  readonly lines: { readonly train: number[]; readonly val: number[]; readonly test: number[] };
}

function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(Math.max(1, length) * Float32Array.BYTES_PER_ELEMENT), 0, length);
}

function classesOf(y: Float32Array, outputs: number, rows: number, stratify: boolean, numeric: boolean): Int32Array {
  const classes = new Int32Array(rows);
  if (!stratify || numeric) return classes;
  for (let r = 0; r < rows; r++) {
    if (outputs === 1) classes[r] = y[r]! > 0.5 ? 1 : 0;
    else {
      let best = 0;
      for (let k = 1; k < outputs; k++) if (y[r * outputs + k]! > y[r * outputs + best]!) best = k;
      classes[r] = best;
    }
  }
  return classes;
}

/** `validation`: a table of its own for the validation set (data.validation), encoded with the preprocessing fitted on `table`. */
export function prepareData(table: Table, pre: PreprocessOptions, split: SplitOptions, seed: number, validation?: Table): PreparedData {
  const warnings: string[] = [];
  const preprocessor = fitPreprocessor(table, pre, (message) => warnings.push(message));
  const enc = encode(table, preprocessor);
  if (!validation) return layoutData(enc, preprocessor, split, seed, { source: table.source, rowsRead: table.rowCount, warnings });
  const val = encode(validation, preprocessor);
  if (val.rows === 0) throw new DataError(`${validation.source}: no validation rows left (${validation.rowCount} read, ${val.rejected.length} dropped)`);
  const both = concatEncoded(enc, val);
  return layoutData(both, preprocessor, { ...split, validationFrom: enc.rows }, seed, { source: table.source, rowsRead: table.rowCount + validation.rowCount, warnings });
}

/**
 * CSV rows left in their files (data.inMemory false): the preprocessing fitted in two passes over
 * them, a third finds the rows that encode, their labels and where they are; features are read
 * per batch (csv-rows.ts). The same data set, bit for bit, as prepareData makes from the table.
 */
export function prepareCsvOnDisk(rows: CsvFileRows, pre: PreprocessOptions, split: SplitOptions, seed: number, validation?: CsvFileRows): PreparedData {
  const warnings: string[] = [];
  const preprocessor = fitPreprocessor(rows, pre, (message) => warnings.push(message));
  const main = encodeOnDisk(rows, preprocessor);
  if (!validation) return layoutData(main.enc, preprocessor, split, seed, { source: rows.source, rowsRead: main.read, warnings, onDisk: main.onDisk });
  const val = encodeOnDisk(validation, preprocessor);
  if (val.enc.rows === 0) throw new DataError(`${validation.source}: no validation rows left (${val.read} read, ${val.enc.rejected.length} dropped)`);
  const both = concatEncoded(main.enc, val.enc);
  return layoutData(both, preprocessor, { ...split, validationFrom: main.enc.rows }, seed, { source: rows.source, rowsRead: main.read + val.read, warnings, onDisk: joinCsvOnDisk(main.onDisk, val.onDisk) });
}

/** Encoded rows of two sources, one after the other. */
function concatEncoded(a: Encoded, b: Encoded): Encoded {
  const join = (p: Float32Array, q: Float32Array): Float32Array => {
    const out = p.buffer instanceof SharedArrayBuffer ? sharedFloat32(p.length + q.length) : new Float32Array(p.length + q.length);
    out.set(p);
    out.set(q, p.length);
    return out;
  };
  return {
    x: join(a.x, b.x),
    y: join(a.y, b.y),
    rows: a.rows + b.rows,
    features: a.features,
    outputs: a.outputs,
    lines: [...a.lines, ...b.lines],
    rejected: [...a.rejected, ...b.rejected],
    ...(a.w && b.w ? { w: join(a.w, b.w) } : {}),
  };
}

/**
 * From encoded rows to the data set: split train/test (stratified, seeded), cut validation off
 * train, standardise with train statistics, lay the rows out as [train | validation | test] in
 * shared memory. `pixels`: the same features as uint8 (images), laid out alongside, for the wire.
 */
export function layoutData(
  enc: Encoded,
  preprocessor: Preprocessor,
  split: SplitOptions,
  seed: number,
  from: {
    readonly source: string;
    readonly rowsRead: number;
    readonly warnings: readonly string[];
    readonly pixels?: Uint8Array | undefined;
    /** The features are in this file, not in enc.x or pixels: only the row order is laid out. */
    readonly onDisk?: WithoutOrder<OnDisk> | undefined;
  },
): PreparedData {
  const warnings = [...from.warnings];
  const rng = new Rng(seed);
  const splitRows = split.validationFrom ?? enc.rows;
  const classes = classesOf(enc.y, enc.outputs, splitRows, split.stratify, preprocessor.label.type === 'numeric');
  const { train: trainAll, test } = stratifiedSplit(classes, split.testSize, rng);
  const { train, test: val } =
    split.validationFrom === undefined ? validationSplit(trainAll, split.validationSplit) : { train: trainAll, test: Int32Array.from({ length: enc.rows - splitRows }, (_, i) => splitRows + i) };
  if (train.length === 0) {
    throw new DataError(`${from.source}: no training rows left (${enc.rows} usable rows, testSize ${split.testSize}, validationSplit ${split.validationSplit})`);
  }
  let onDisk = from.onDisk;
  const order = new Int32Array(train.length + val.length + test.length);
  order.set(train);
  order.set(val, train.length);
  order.set(test, train.length + val.length);
  if (split.standardize) {
    // uint8 samples are pixels, in memory (from.pixels) or on disk
    if (from.pixels || onDisk?.kind === 'tar' || (onDisk?.kind === 'npy' && onDisk.dtype === 'u1')) throw new DataError(`${from.source}: data.standardize does not apply to images (they are scaled by data.rescale)`);
    // The statistics of the training rows taken in file order: the same sums, so the same bits,
    // in memory and on disk, where that order reads the file front to back.
    const fitRows = Int32Array.from(trainAll).sort();
    const scaler = onDisk ? fitScalerOnDisk(onDisk as WithoutOrder<NpyOnDisk | CsvOnDisk>, enc.features, fitRows) : fitScaler(enc.x, enc.features, fitRows);
    if (onDisk) onDisk = { ...onDisk, standardize: scaler };
    else applyScaler(enc.x, scaler);
    preprocessor = { ...preprocessor, scaler };
  }
  // Encoded rows in shared memory (CSV) are moved into the data set's order where they are, and
  // that memory becomes the data set's: no second copy of the features.
  const inPlace = !onDisk && !from.pixels && enc.x.buffer instanceof SharedArrayBuffer && order.length === enc.rows;
  if (inPlace) permuteRows(enc.x, enc.features, order);
  if (onDisk) {
    const fileOrder = new Int32Array(new SharedArrayBuffer(Math.max(1, order.length) * 4), 0, order.length);
    fileOrder.set(order);
    return layoutRows(enc, preprocessor, { train, val, test }, from, warnings, { ...onDisk, order: fileOrder });
  }
  const x = inPlace ? enc.x : sharedFloat32(order.length * enc.features);
  const y = sharedFloat32(order.length * enc.outputs);
  const pixels = from.pixels ? new Uint8Array(new SharedArrayBuffer(Math.max(1, order.length * enc.features)), 0, order.length * enc.features) : undefined;
  const sampleWeights = enc.w ? sharedFloat32(order.length) : undefined;
  const scale = preprocessor.input?.scale;
  order.forEach((src, dst) => {
    const f = enc.features;
    // uint8 samples: x from the pixels directly (enc.x is empty), no float copy in between
    if (from.pixels) scalePixels(from.pixels.subarray(src * f, (src + 1) * f), scale ?? 1, x.subarray(dst * f, (dst + 1) * f));
    else if (!inPlace) x.set(enc.x.subarray(src * f, (src + 1) * f), dst * f);
    y.set(enc.y.subarray(src * enc.outputs, (src + 1) * enc.outputs), dst * enc.outputs);
    pixels?.set(from.pixels!.subarray(src * f, (src + 1) * f), dst * f);
    if (sampleWeights) sampleWeights[dst] = enc.w![src]!;
  });
  return {
    dataset: {
      x,
      y,
      features: enc.features,
      outputs: enc.outputs,
      train: { start: 0, count: train.length },
      val: { start: train.length, count: val.length },
      test: { start: train.length + val.length, count: test.length },
      ...(pixels && scale !== undefined ? { pixels: { values: pixels, scale } } : {}),
      ...(preprocessor.input && preprocessor.input.shape.length > 1 ? { sampleShape: preprocessor.input.shape } : {}),
      ...(sampleWeights ? { sampleWeights } : {}),
    },
    preprocessor,
    rowsRead: from.rowsRead,
    rowsDropped: enc.rejected.length,
    warnings,
    lines: { train: Array.from(train, (r) => enc.lines[r]!), val: Array.from(val, (r) => enc.lines[r]!), test: Array.from(test, (r) => enc.lines[r]!) },
  };
}

/** Row `dst` of `x` becomes the row `order[dst]` was, for a permutation `order`, in place (one row of scratch). */
export function permuteRows(x: Float32Array, features: number, order: ArrayLike<number>): void {
  const f = features;
  const done = new Uint8Array(order.length);
  const held = new Float32Array(f);
  for (let start = 0; start < order.length; start++) {
    if (done[start]) continue;
    held.set(x.subarray(start * f, (start + 1) * f));
    for (let dst = start; ; ) {
      done[dst] = 1;
      const src = order[dst]!;
      if (src === start) {
        x.set(held, dst * f);
        break;
      }
      x.copyWithin(dst * f, src * f, (src + 1) * f);
      dst = src;
    }
  }
}

/** fitScaler over the training rows of .npy or CSV files on disk. */
function fitScalerOnDisk(files: WithoutOrder<NpyOnDisk | CsvOnDisk>, features: number, rows: Int32Array): Scaler {
  return fitScalerOver(features, rows, (part, out) => (files.kind === 'csv' ? readCsvRows(files, features, part, out) : readNpyRows(files, features, part, out)));
}

/** The data set of features on disk: labels and weights laid out in memory, the features' file rows in `onDisk.order`. */
function layoutRows(
  enc: Encoded,
  preprocessor: Preprocessor,
  splits: { readonly train: Int32Array; readonly val: Int32Array; readonly test: Int32Array },
  from: { readonly rowsRead: number },
  warnings: string[],
  onDisk: OnDisk,
): PreparedData {
  const { train, val, test } = splits;
  const { order } = onDisk;
  const y = sharedFloat32(order.length * enc.outputs);
  const sampleWeights = enc.w ? sharedFloat32(order.length) : undefined;
  order.forEach((src, dst) => {
    y.set(enc.y.subarray(src * enc.outputs, (src + 1) * enc.outputs), dst * enc.outputs);
    if (sampleWeights) sampleWeights[dst] = enc.w![src]!;
  });
  return {
    dataset: {
      x: new Float32Array(0),
      y,
      features: enc.features,
      outputs: enc.outputs,
      train: { start: 0, count: train.length },
      val: { start: train.length, count: val.length },
      test: { start: train.length + val.length, count: test.length },
      ...(preprocessor.input && preprocessor.input.shape.length > 1 ? { sampleShape: preprocessor.input.shape } : {}),
      ...(sampleWeights ? { sampleWeights } : {}),
      onDisk,
    },
    preprocessor,
    rowsRead: from.rowsRead,
    rowsDropped: enc.rejected.length,
    warnings,
    lines: { train: Array.from(train, (r) => enc.lines[r]!), val: Array.from(val, (r) => enc.lines[r]!), test: Array.from(test, (r) => enc.lines[r]!) },
  };
}
