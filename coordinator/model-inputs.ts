/**
 * What `predict` and `evaluate` read for a saved model trained on images or arrays, in the form
 * it was trained on: images (a file, a folder, or a class-folder tree for labels; or tar shards,
 * labelled by their .cls; decoded and resized as in training) or a .npy array (with a .npy of
 * labels to evaluate). Features are made exactly as training made them (values x scale in
 * float32). CSV rows are read a chunk at a time where they are used (saved-model.ts).
 */
import { scaledFloats, scalePixels } from '../shared/data/arrays.js';
import { readImagesFor } from '../shared/data/images.js';
import { expandPaths } from '../shared/data/paths.js';
import { shardChunks } from '../shared/data/shard-data.js';
import { chunkRows } from '../shared/data/row-chunks.js';
import { isShardPath } from '../shared/data/shards.js';
import { readNpy } from '../shared/data/npy.js';
import { featureCount, type Encoded, type Preprocessor } from '../shared/data/preprocess.js';
import { labelOutputs } from '../shared/data/label.js';
import { applyScaler } from '../shared/data/scaler.js';
import { DataError } from '../shared/errors.js';

export interface ModelInputs {
  readonly enc: Encoded;
  /**
   * Image files (relative to the folder given) by line (`files[line - 1]`) where the inputs are
   * images: each file is a line; files that do not decode are rejected lines.
   */
  readonly files?: readonly string[];
}

/** A chunk of a model's inputs: features, labels, rows and (images) each row's file. */
export interface InputChunk {
  readonly x: Float32Array;
  readonly y: Float32Array;
  readonly rows: number;
  readonly files?: readonly string[];
}

/**
 * The inputs of `path` for a model trained on images or arrays, as chunks: tar shards 8 MB of
 * features at a time as they are asked for (a set of any size), an image folder or a .npy array
 * in one. `skipped()`, once the chunks are read: the images that do not decode, each with its
 * file and the reason (which names it).
 */
export function modelInputChunks(pre: Preprocessor, path: string, options: { requireLabel: boolean; labels?: string | undefined }): { chunks: Iterable<InputChunk>; skipped: () => { file: string; reason: string }[]; images: boolean } {
  const input = pre.input;
  if (input?.kind === 'images' && isShardPath(path)) {
    const classes = pre.label.type === 'categorical' ? pre.label.classes : [];
    const outputs = labelOutputs(pre.label);
    const { chunks, skipped } = shardChunks(expandPaths(path), input.shape, classes, options.requireLabel, chunkRows(featureCount(pre)));
    function* inputs(): Generator<InputChunk> {
      for (const chunk of chunks) {
        const rows = chunk.files.length;
        const y = new Float32Array(rows * outputs);
        chunk.labels?.forEach((label, i) => (y[i * outputs + label] = 1));
        yield { x: scalePixels(chunk.pixels, input!.scale), y, rows, files: chunk.files };
      }
    }
    return { chunks: inputs(), skipped: () => skipped.map((s) => ({ file: s.file, reason: `${s.file}: ${s.reason}` })), images: true };
  }
  const { enc, files } = readModelInputs(pre, path, options);
  const decoded = files?.slice(0, enc.rows);
  return { chunks: [{ x: enc.x, y: enc.y, rows: enc.rows, ...(decoded ? { files: decoded } : {}) }], skipped: () => enc.rejected.map((r) => ({ file: files?.[r.line - 1] ?? '', reason: r.reason })), images: files !== undefined };
}

export function readModelInputs(pre: Preprocessor, path: string, options: { requireLabel: boolean; labels?: string | undefined }): ModelInputs {
  const input = pre.input;
  if (!input) throw new DataError(`${path}: a model trained on CSV rows reads them a chunk at a time (predictCsv, evaluateCsv)`);
  const features = featureCount(pre);
  const outputs = labelOutputs(pre.label);
  if (input.kind === 'images') {
    const classes = pre.label.type === 'categorical' ? pre.label.classes : [];
    const { pixels, labels, files, skipped } = readImagesFor(path, input.shape, classes, options.requireLabel);
    const rows = files.length;
    const y = new Float32Array(rows * outputs);
    labels?.forEach((label, i) => (y[i * outputs + label] = 1));
    // decoded files first, then the skipped ones: each file is a line of the listing
    const all = [...files, ...skipped.map((s) => s.file)];
    const rejected = skipped.map((s, i) => ({ line: rows + i + 1, reason: `${s.file}: ${s.reason}` }));
    return { enc: { x: scalePixels(pixels, input.scale), y, rows, features, outputs, lines: files.map((_, i) => i + 1), rejected }, files: all };
  }
  const x = readNpy(path);
  const shape = x.shape.slice(1);
  if (shape.join(',') !== input.shape.join(',')) throw new DataError(`${path}: samples of shape [${shape.join(', ')}]; the model was trained on [${input.shape.join(', ')}]`);
  const rows = x.shape[0]!;
  const xs = x.values instanceof Uint8Array ? scalePixels(x.values, input.scale) : scaledFloats(x.values, input.scale);
  // standardized as training standardized them (data.standardize)
  if (pre.scaler) applyScaler(xs, pre.scaler);
  const y = new Float32Array(rows * outputs);
  if (options.requireLabel) {
    if (!options.labels) throw new DataError(`${path}: evaluating .npy samples needs their labels (--labels FILE.npy)`);
    const labels = readNpy(options.labels);
    if (labels.shape[0] !== rows) throw new DataError(`${options.labels}: ${labels.shape[0]} labels for ${rows} samples`);
    const values = Array.from(labels.values as ArrayLike<number>);
    if (pre.label.type === 'categorical' && labels.shape.length === 1) {
      const { classes } = pre.label;
      values.forEach((v, i) => {
        const k = classes.indexOf(String(v));
        if (k < 0) throw new DataError(`${options.labels}: label ${v} of sample ${i} is not one of the model's classes (${classes.join(', ')})`);
        y[i * outputs + k] = 1;
      });
    } else if (values.length === rows * outputs) y.set(values);
    else throw new DataError(`${options.labels}: ${values.length} values for ${rows} samples of ${outputs} output(s)`);
  }
  return { enc: { x: xs, y, rows, features, outputs, lines: Array.from({ length: rows }, (_, i) => i + 1), rejected: [] } };
}
