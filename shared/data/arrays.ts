/**
 * Image folders and .npy arrays as prepared data: the samples as features (values x scale, in
 * float32), the label one-hot (class folders; integer labels) or as given (one-hot arrays,
 * numeric), then the same seeded stratified split and layout as CSV data (dataset.ts). uint8
 * inputs (every image; uint8 arrays) keep their bytes for the wire.
 */
export { scalePixels } from './pixels.js';
import { DataError } from '../errors.js';
import { layoutData, type PreparedData, type SplitOptions } from './dataset.js';
import type { ImageSet } from './images.js';
import type { LabelTransform } from './label.js';
import { npyValues, type NpyArray, type NpyHeader } from './npy.js';
import { readSpan, withFile } from './file-reads.js';
import type { Encoded, Preprocessor } from './preprocess.js';

function oneHot(labels: ArrayLike<number>, classes: number): Float32Array {
  const y = new Float32Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) y[i * classes + labels[i]!] = 1;
  return y;
}

const indexLines = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

export function prepareImages(set: ImageSet, source: string, scale: number, split: SplitOptions, seed: number): PreparedData {
  const features = set.height * set.width * set.channels;
  const rows = set.labels.length;
  // x stays empty: layoutData scales the pixels straight into the data set's shared memory
  const enc: Encoded = { x: new Float32Array(0), y: oneHot(set.labels, set.classes.length), rows, features, outputs: set.classes.length, lines: indexLines(rows), rejected: [] };
  const preprocessor: Preprocessor = {
    version: 1,
    drop: [],
    columns: [],
    features: [],
    label: { column: 'class folder', type: 'categorical', classes: set.classes },
    input: { kind: 'images', shape: [set.height, set.width, set.channels], colorMode: set.channels === 1 ? 'grayscale' : 'rgb', scale },
  };
  return layoutData(enc, preprocessor, split, seed, { source, rowsRead: rows, warnings: set.warnings, pixels: set.pixels });
}

export type ArrayLabel = 'auto' | 'binary' | 'categorical' | 'numeric';

/** The label of .npy targets: one-hot as given ([n, k]), classes from integer values ([n]), or numbers. */
function arrayLabel(y: NpyArray, rows: number, kind: ArrayLabel, source: string): { label: LabelTransform; values: Float32Array; outputs: number } {
  const width = y.shape.length === 1 ? 1 : y.shape.slice(1).reduce((a, n) => a * n, 1);
  if (y.shape[0] !== rows) throw new DataError(`${source}: ${y.shape[0]} labels for ${rows} samples`);
  const values = Float32Array.from(y.values as ArrayLike<number>);
  if (width > 1) {
    if (kind === 'numeric' || kind === 'binary') throw new DataError(`${source}: labels of shape [${y.shape.join(', ')}] are one-hot (categorical), data.label.type is ${kind}`);
    return { label: { column: 'y', type: 'categorical', classes: Array.from({ length: width }, (_, k) => String(k)) }, values, outputs: width };
  }
  const integral = values.every((v) => Number.isInteger(v));
  if (kind === 'numeric' || (kind === 'auto' && !integral)) return { label: { column: 'y', type: 'numeric' }, values, outputs: 1 };
  if (!integral) throw new DataError(`${source}: a ${kind} label needs integer class values; found ${values.find((v) => !Number.isInteger(v))}`);
  const classes = [...new Set(values)].sort((a, b) => a - b);
  if (classes.length < 2) throw new DataError(`${source}: ${classes.length} distinct label value(s); need at least 2 classes`);
  if (kind === 'binary') {
    if (classes.length !== 2 || classes[0] !== 0 || classes[1] !== 1) throw new DataError(`${source}: a binary label needs the values 0 and 1; found ${classes.slice(0, 5).join(', ')}`);
    return { label: { column: 'y', type: 'binary', positive: '1', negative: '0' }, values, outputs: 1 };
  }
  const index = new Map(classes.map((c, k) => [c, k]));
  return { label: { column: 'y', type: 'categorical', classes: classes.map(String) }, values: oneHot(Array.from(values, (v) => index.get(v)!), classes.length), outputs: classes.length };
}

export function prepareArrays(x: NpyArray, y: NpyArray, sources: { x: string; y: string }, options: { scale: number; label: ArrayLabel }, split: SplitOptions, seed: number): PreparedData {
  if (x.shape.length < 2) throw new DataError(`${sources.x}: samples along the first axis, so at least 2 axes; the array has shape [${x.shape.join(', ')}]`);
  const rows = x.shape[0]!;
  const shape = x.shape.slice(1);
  const features = shape.reduce((a, n) => a * n, 1);
  const pixels = x.values instanceof Uint8Array ? x.values : undefined;
  // float32 at scale 1 is used as read; other numbers are converted in one pass; uint8 values are
  // scaled by layoutData straight into the data set's shared memory
  const xs = pixels ? new Float32Array(0) : x.values instanceof Float32Array && options.scale === 1 ? x.values : scaledFloats(x.values, options.scale);
  const bad = xs.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new DataError(`${sources.x}: sample ${Math.floor(bad / features)} has a non-finite value (${xs[bad]}) at feature ${bad % features}`);
  const { label, values, outputs } = arrayLabel(y, rows, options.label, sources.y);
  const enc: Encoded = { x: xs, y: values, rows, features, outputs, lines: indexLines(rows), rejected: [] };
  const preprocessor: Preprocessor = { version: 1, drop: [], columns: [], features: [], label, input: { kind: 'arrays', shape, scale: options.scale } };
  return layoutData(enc, preprocessor, split, seed, { source: sources.x, rowsRead: rows, warnings: [], pixels });
}

/** A .npy file of samples: its path and header. */
export interface NpyFileHeader {
  readonly path: string;
  readonly header: NpyHeader & { readonly fileBytes: number };
}

/**
 * .npy samples that stay on disk (data.inMemory false), in one file or several of one dtype and
 * sample shape: the headers and the labels are read, the samples once in chunks to refuse
 * non-finite values, then read per batch (feature-rows.ts).
 */
export function prepareArraysOnDisk(files: readonly NpyFileHeader[], y: NpyArray, sources: { x: string; y: string }, options: { scale: number; label: ArrayLabel }, split: SplitOptions, seed: number): PreparedData {
  const [first] = files;
  const shapeOf = (h: NpyHeader): number[] => {
    if (h.shape.length < 2) throw new DataError(`${first!.path}: samples along the first axis, so at least 2 axes; the array has shape [${h.shape.join(', ')}]`);
    return h.shape.slice(1);
  };
  const shape = shapeOf(first!.header);
  for (const f of files.slice(1)) {
    const other = f.header.shape.length < 2 ? f.header.shape : f.header.shape.slice(1);
    if (f.header.dtype !== first!.header.dtype || other.join() !== shape.join()) {
      throw new DataError(`${f.path}: ${f.header.dtype} [${f.header.shape.join(', ')}], and ${first!.path} has ${first!.header.dtype} [${first!.header.shape.join(', ')}]: the files of one data set share a dtype and a sample shape`);
    }
  }
  const features = shape.reduce((a, n) => a * n, 1);
  const parts = files.map(({ path, header }) => ({ path, dataOffset: header.dataOffset, bytes: header.fileBytes, rows: header.shape[0]! }));
  const rows = parts.reduce((a, p) => a + p.rows, 0);
  if (first!.header.dtype === 'f4' || first!.header.dtype === 'f8') for (const f of files) checkFiniteOnDisk(f.header, f.path, features, options.scale);
  const { label, values, outputs } = arrayLabel(y, rows, options.label, sources.y);
  const enc: Encoded = { x: new Float32Array(0), y: values, rows, features, outputs, lines: indexLines(rows), rejected: [] };
  const preprocessor: Preprocessor = { version: 1, drop: [], columns: [], features: [], label, input: { kind: 'arrays', shape, scale: options.scale } };
  const onDisk = { kind: 'npy' as const, dtype: first!.header.dtype, width: first!.header.width, scale: options.scale, parts };
  return layoutData(enc, preprocessor, split, seed, { source: sources.x, rowsRead: rows, warnings: [], onDisk });
}

/** .npy arrays (the parts of one data set, or its labels) as one: their values in order; one dtype and trailing shape. */
export function concatNpy(arrays: readonly { readonly path: string; readonly array: NpyArray }[]): NpyArray {
  const [first] = arrays;
  if (arrays.length === 1) return first!.array;
  const tail = first!.array.shape.slice(1);
  for (const { path, array } of arrays.slice(1)) {
    if (array.dtype !== first!.array.dtype || array.shape.slice(1).join() !== tail.join()) {
      throw new DataError(`${path}: ${array.dtype} [${array.shape.join(', ')}], and ${first!.path} has ${first!.array.dtype} [${first!.array.shape.join(', ')}]: the files of one data set share a dtype and a sample shape`);
    }
  }
  const total = arrays.reduce((a, { array }) => a + array.values.length, 0);
  const Kind = first!.array.values.constructor as new (n: number) => NpyArray['values'];
  const values = new Kind(total);
  let at = 0;
  for (const { array } of arrays) {
    values.set(array.values as never, at);
    at += array.values.length;
  }
  return { dtype: first!.array.dtype, shape: [arrays.reduce((a, { array }) => a + array.shape[0]!, 0), ...tail], values };
}

/** One pass over the file in 16 MB chunks: the first sample with a non-finite feature (value x scale in float32) is refused. */
function checkFiniteOnDisk(x: NpyHeader, source: string, features: number, scale: number): void {
  const count = x.shape.reduce((a, n) => a * n, 1);
  const perChunk = Math.max(1, Math.floor((1 << 24) / x.width));
  const buffer = new Uint8Array(Math.min(count, perChunk) * x.width);
  withFile(source, (fd) => {
    for (let first = 0; first < count; first += perChunk) {
      const n = Math.min(perChunk, count - first);
      const got = readSpan(fd, buffer.subarray(0, n * x.width), x.dataOffset + first * x.width);
      if (got < n * x.width) throw new DataError(`${source}: ended at value ${first + Math.floor(got / x.width)} of ${count} (truncated?)`);
      const values = npyValues(x.dtype, buffer.buffer, 0, n);
      for (let i = 0; i < n; i++) {
        const v = Math.fround(values[i]! * scale);
        if (!Number.isFinite(v)) throw new DataError(`${source}: sample ${Math.floor((first + i) / features)} has a non-finite value (${v}) at feature ${(first + i) % features}`);
      }
    }
  });
}

/** values x scale as float32, in one pass (Float32Array.from with a mapping function would first collect every value in a JS array). */

export function scaledFloats(values: ArrayLike<number>, scale: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i]! * scale;
  return out;
}
