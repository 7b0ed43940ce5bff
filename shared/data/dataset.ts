/**
 * From a table to the training set the participants share: fit the preprocessing, encode, split
 * train/test (stratified, seeded), cut validation off train, standardise with train statistics,
 * and lay the rows out as [train | validation | test] in SharedArrayBuffers, so threads read
 * them in place and nothing is copied per step.
 */
import { DataError } from '../errors.js';
import { Rng } from '../math/rng.js';
import type { Table } from './csv.js';
import { encode, fitPreprocessor, type PreprocessOptions, type Preprocessor } from './preprocess.js';
import { applyScaler, fitScaler } from './scaler.js';
import { stratifiedSplit, validationSplit } from './split.js';

export interface SplitOptions {
  readonly testSize: number;
  readonly stratify: boolean;
  readonly standardize: boolean;
  readonly validationSplit: number;
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

export function prepareData(table: Table, pre: PreprocessOptions, split: SplitOptions, seed: number): PreparedData {
  const warnings: string[] = [];
  let preprocessor = fitPreprocessor(table, pre, (message) => warnings.push(message));
  const enc = encode(table, preprocessor);
  const rng = new Rng(seed);
  const classes = classesOf(enc.y, enc.outputs, enc.rows, split.stratify, preprocessor.label.type === 'numeric');
  const { train: trainAll, test } = stratifiedSplit(classes, split.testSize, rng);
  const { train, test: val } = validationSplit(trainAll, split.validationSplit);
  if (train.length === 0) {
    throw new DataError(`${table.source}: no training rows left (${enc.rows} usable rows, testSize ${split.testSize}, validationSplit ${split.validationSplit})`);
  }
  if (split.standardize) {
    const scaler = fitScaler(enc.x, enc.features, trainAll);
    applyScaler(enc.x, scaler);
    preprocessor = { ...preprocessor, scaler };
  }
  const order = [...train, ...val, ...test];
  const x = sharedFloat32(order.length * enc.features);
  const y = sharedFloat32(order.length * enc.outputs);
  order.forEach((src, dst) => {
    x.set(enc.x.subarray(src * enc.features, (src + 1) * enc.features), dst * enc.features);
    y.set(enc.y.subarray(src * enc.outputs, (src + 1) * enc.outputs), dst * enc.outputs);
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
    },
    preprocessor,
    rowsRead: table.rows.length,
    rowsDropped: enc.rejected.length,
    warnings,
    lines: { train: Array.from(train, (r) => enc.lines[r]!), val: Array.from(val, (r) => enc.lines[r]!), test: Array.from(test, (r) => enc.lines[r]!) },
  };
}
