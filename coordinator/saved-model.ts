/**
 * Saving a run's model (`exportModel`) and using a saved model directory (`<run dir>/model`):
 * model.json + weights.bin (TensorFlow.js layers format, read back with tf.loadLayersModel),
 * preprocessing.json and dptrain-model.json.
 * `predictCsv` and `evaluateCsv` take raw CSV rows, transform them with the saved preprocessing
 * and run them through the same engine the workers train with. Rows that cannot be transformed
 * (missing value, unknown category, bad label) and images that do not decode are reported with
 * their line numbers (images: their files).
 */
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { columnIndex, csvBatches, csvCell, type RowSource } from '../shared/data/csv.js';
import { featureCount, RowEncoder, type Preprocessor, type RejectedRow } from '../shared/data/preprocess.js';
import { labelOutputs } from '../shared/data/label.js';
import { chunkRows } from '../shared/data/row-chunks.js';
import { applyScaler } from '../shared/data/scaler.js';
import { PartSums } from '../compute/part-sums.js';
import { ModelError } from '../shared/errors.js';
import type { BackendChoice } from '../shared/backend-choice.js';
import type { ModelSpec } from '../shared/model/spec.js';
import type { BatchEngine, BatchSums } from '../compute/engine.js';
import type { RunDir } from './run-dir.js';
import { modelInputChunks } from './model-inputs.js';
import { fsOps, storageError } from './storage.js';
import { metricLayoutOf } from '../shared/model/metric-sums.js';

export interface SavedModel {
  readonly dir: string;
  readonly spec: ModelSpec;
  readonly preprocessor: Preprocessor;
  readonly weights: Float32Array;
  readonly backend: string;
  readonly engine: BatchEngine;
}

function readJson<T>(file: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    throw new ModelError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (is this a dptrain model directory, <run dir>/model?)' : (err as Error).message}`);
  }
}

/** A run directory stands for its model/ folder. */
function modelDir(dir: string, specFile: string): string {
  return !existsSync(join(dir, specFile)) && existsSync(join(dir, 'model', specFile)) ? join(dir, 'model') : dir;
}

/** Loads a model directory (or a run directory's model/): weights through tf.loadLayersModel, checked against the spec. */
export async function loadSavedModel(given: string, backend: BackendChoice = 'auto'): Promise<SavedModel> {
  const [{ initBackend }, { loadModel, SAVED_MODEL_FILES }, { readFlatWeights }, { weightLayout }, { createEngine }] = await Promise.all([
    import('../shared/backend.js'),
    import('../shared/model/io.js'),
    import('../shared/model/build.js'),
    import('../shared/model/layout.js'),
    import('../compute/gradient.js'),
  ]);
  const dir = modelDir(given, SAVED_MODEL_FILES.spec);
  const spec = readJson<ModelSpec>(join(dir, SAVED_MODEL_FILES.spec));
  const preprocessor = readJson<Preprocessor>(join(dir, SAVED_MODEL_FILES.preprocessing));
  const used = await initBackend(backend);
  const model = await loadModel(dir);
  const weights = await readFlatWeights(model);
  model.dispose();
  const expected = weightLayout(spec).size;
  if (weights.length !== expected) throw new ModelError(`${dir}: model.json has ${weights.length} weights, ${SAVED_MODEL_FILES.spec} describes ${expected}`);
  if (featureCount(preprocessor) !== spec.inputDim) throw new ModelError(`${dir}: the preprocessing makes ${featureCount(preprocessor)} features, the model takes ${spec.inputDim}`);
  const engine = createEngine(spec);
  engine.setWeights(weights);
  return { dir, spec, preprocessor, weights, backend: used, engine };
}

/** Column names of a prediction: one probability per class, or the value. */
function outputColumns(pre: Preprocessor): string[] {
  if (pre.label.type === 'binary') return [`probability_${pre.label.positive}`, 'predicted'];
  if (pre.label.type === 'categorical') return [...pre.label.classes.map((c) => `probability_${c}`), 'predicted'];
  return ['predicted'];
}

export interface PredictResult {
  readonly rows: number;
  readonly rejected: RejectedRow[];
  /** Model outputs, row-major (rows x outputs), in file order of the predicted rows. */
  readonly outputs: Float32Array;
  readonly lines: number[];
}

/**
 * Predicts every row of `dataFile` (label column optional), or every image of a file or folder,
 * or every sample of a .npy array, as the model was trained on; writes a CSV with `line`, the
 * columns to copy (`keep`: default, the columns the model dropped, such as an id, that the file
 * has, so predictions join back to their rows; `file` for images) and the outputs.
 */
export async function predictCsv(model: SavedModel, dataFile: string, outFile?: string, options: { keep?: readonly string[] } = {}): Promise<PredictResult> {
  if (!model.preprocessor.input) return predictRows(model, dataFile, outFile, options.keep);
  const pre = model.preprocessor;
  const k = labelOutputs(pre.label);
  const inputs = modelInputChunks(pre, dataFile, { requireLabel: false });
  // images: the file of each line; .npy samples: the line alone
  const leading = (file: string): string[] => (inputs.images ? [csvCell(file)] : []);
  const out = outFile === undefined ? undefined : openOutput(outFile);
  const outputs = new GrowingOutputs(k);
  const lines: number[] = [];
  try {
    out?.write(`${['line', ...(inputs.images ? ['file'] : []), ...outputColumns(pre), 'error'].join(',')}\n`);
    for (const chunk of inputs.chunks) {
      const predicted = await model.engine.predict(chunk.x, chunk.rows);
      outputs.add(predicted);
      const text: string[] = [];
      for (let r = 0; r < chunk.rows; r++) {
        lines.push(lines.length + 1);
        text.push([lines.length, ...leading(chunk.files?.[r] ?? ''), ...predictionCells(pre, predicted.subarray(r * k, (r + 1) * k)), ''].join(','));
      }
      if (text.length > 0) out?.write(`${text.join('\n')}\n`);
    }
    // the files that do not decode after the decoded ones: each is a line of the listing
    const rejected = inputs.skipped().map((s, i) => ({ line: lines.length + i + 1, reason: s.reason, file: s.file }));
    if (rejected.length > 0) out?.write(`${rejected.map((r) => [r.line, ...leading(r.file), ...outputColumns(pre).map(() => ''), csvCell(r.reason)].join(',')).join('\n')}\n`);
    return { rows: lines.length, rejected: rejected.map(({ line, reason }) => ({ line, reason })), outputs: outputs.values(), lines };
  } finally {
    out?.close();
  }
}

/** Model outputs collected chunk after chunk. */
class GrowingOutputs {
  private all: Float32Array;
  private length = 0;

  constructor(width: number) {
    this.all = new Float32Array(1024 * width);
  }

  add(values: Float32Array): void {
    if (this.length + values.length > this.all.length) {
      const grown = new Float32Array(Math.max(2 * this.all.length, this.length + values.length));
      grown.set(this.all.subarray(0, this.length));
      this.all = grown;
    }
    this.all.set(values, this.length);
    this.length += values.length;
  }

  values(): Float32Array {
    return this.all.slice(0, this.length);
  }
}

/** A prediction's output cells: each output (not for a numeric label), then the predicted value. */
function predictionCells(pre: Preprocessor, output: Float32Array): string[] {
  const values = Array.from(output);
  let predicted: string;
  if (pre.label.type === 'binary') predicted = values[0]! > 0.5 ? pre.label.positive : pre.label.negative;
  else if (pre.label.type === 'categorical') predicted = pre.label.classes[values.indexOf(Math.max(...values))]!;
  else predicted = String(values[0]);
  return [...(pre.label.type === 'numeric' ? [] : values.map(String)), csvCell(predicted)];
}

/** A chunk of CSV rows encoded: the rows that encode, and every record in file order with its line, cells and rejection. */
interface CsvChunk {
  readonly x: Float32Array;
  readonly y: Float32Array;
  /** Each row's sample weight, where the model was trained with data.sampleWeight and the file has that column. */
  readonly w: Float32Array | undefined;
  readonly rows: number;
  readonly records: readonly { readonly line: number; readonly cells: readonly string[]; readonly rejected?: string }[];
}

/**
 * CSV rows of `dataFile` a chunk at a time (8 MB of features), as they are asked for: each chunk
 * encoded as training encoded its rows (`label`: the label too, a row without one rejected) and
 * standardized. A file of any size is read in bounded memory.
 */
function csvChunks(pre: Preprocessor, dataFile: string, label: boolean): Pick<RowSource, 'source' | 'header'> & { readonly chunks: Generator<CsvChunk> } {
  const features = featureCount(pre);
  const size = chunkRows(features);
  const { source, header, batches } = csvBatches(dataFile, size);
  const encoder = new RowEncoder({ source, header }, pre, label);
  const x = new Float32Array(size * features);
  const y = new Float32Array(size * encoder.outputs);
  const w = label && encoder.weightColumn >= 0 ? new Float32Array(size) : undefined;
  /** The row's sample weight into w, or why it has none that can be. */
  const weigh = (cell: (c: number) => string, row: number): string | undefined => {
    if (!w) return undefined;
    const weight = encoder.weight(cell);
    if (!(weight >= 0 && Number.isFinite(weight))) return `sample weight in column "${pre.sampleWeight}" is not a number >= 0: ${JSON.stringify(cell(encoder.weightColumn))}`;
    w[row] = weight;
    return undefined;
  };
  function* chunks(): Generator<CsvChunk> {
    for (const batch of batches) {
      let rows = 0;
      const records = batch.records.map((cells, i) => {
        const cell = (c: number): string => cells[c]!;
        const rejected = encoder.encodeFeatures(cell, x, rows * features) ?? encoder.encodeLabel(cell, y, rows * encoder.outputs) ?? weigh(cell, rows);
        if (rejected === undefined) rows++;
        return { line: batch.lines[i]!, cells, ...(rejected !== undefined ? { rejected } : {}) };
      });
      if (pre.scaler) applyScaler(x.subarray(0, rows * features), pre.scaler);
      yield { x: x.subarray(0, rows * features), y: y.subarray(0, rows * encoder.outputs), w: w?.subarray(0, rows), rows, records };
    }
  }
  return { source, header, chunks: chunks() };
}

/** predictCsv of CSV rows, a chunk at a time, the prediction file written as it goes (in line order). */
async function predictRows(model: SavedModel, dataFile: string, outFile: string | undefined, keep: readonly string[] | undefined): Promise<PredictResult> {
  const pre = model.preprocessor;
  const k = labelOutputs(pre.label);
  const reader = csvChunks(pre, dataFile, false);
  const copied = copiedColumns(reader, pre, keep);
  const outputs = new GrowingOutputs(k);
  let rows = 0;
  const lines: number[] = [];
  const rejected: RejectedRow[] = [];
  const out = outFile === undefined ? undefined : openOutput(outFile);
  try {
    out?.write(`${['line', ...copied.map((ci) => csvCell(reader.header[ci]!)), ...outputColumns(pre), 'error'].join(',')}\n`);
    for (const chunk of reader.chunks) {
      const predicted = chunk.rows > 0 ? await model.engine.predict(chunk.x, chunk.rows) : new Float32Array(0);
      outputs.add(predicted);
      let r = 0;
      const text = chunk.records.map((record) => {
        const leading = copied.map((ci) => csvCell(record.cells[ci] ?? ''));
        if (record.rejected !== undefined) {
          rejected.push({ line: record.line, reason: record.rejected });
          return [record.line, ...leading, ...outputColumns(pre).map(() => ''), csvCell(record.rejected)].join(',');
        }
        lines.push(record.line);
        return [record.line, ...leading, ...predictionCells(pre, predicted.subarray(r * k, ++r * k)), ''].join(',');
      });
      rows += chunk.rows;
      if (text.length > 0) out?.write(`${text.join('\n')}\n`);
    }
  } finally {
    out?.close();
  }
  return { rows, rejected, outputs: outputs.values(), lines };
}

/** A file written as it goes (synchronous writes; errors name the file). */
function openOutput(path: string): { write(text: string): void; close(): void } {
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (err) {
    throw storageError(err, 'write', path);
  }
  return {
    write: (text) => {
      try {
        writeSync(fd, text);
      } catch (err) {
        throw storageError(err, 'write', path);
      }
    },
    close: () => closeSync(fd),
  };
}

/** Indexes of the columns a prediction file copies: `keep` (each must exist), else the dropped columns the file has. */
function copiedColumns(rows: Pick<RowSource, 'source' | 'header'>, pre: Preprocessor, keep: readonly string[] | undefined): number[] {
  if (keep) return keep.map((name) => columnIndex(rows, name, '--keep'));
  return pre.drop.map((name) => rows.header.indexOf(name)).filter((ci) => ci >= 0);
}

export interface EvaluateCsvResult {
  readonly rows: number;
  readonly rejected: RejectedRow[];
  /** loss and each metric of the spec, means over the rows. */
  readonly values: Record<string, number>;
}

/**
 * Loss and metrics on the labelled rows of `dataFile` (a CSV, a class-folder tree of images, or a
 * .npy array with `labels`), as training computes them.
 */
export async function evaluateCsv(model: SavedModel, dataFile: string, options: { labels?: string } = {}): Promise<EvaluateCsvResult> {
  let sums: BatchSums;
  let rejected: RejectedRow[];
  if (model.preprocessor.input) {
    // images and arrays: tar shards a chunk at a time
    const inputs = modelInputChunks(model.preprocessor, dataFile, { requireLabel: true, labels: options.labels });
    const total = new PartSums();
    for (const chunk of inputs.chunks) if (chunk.rows > 0) total.add(await model.engine.evaluate(chunk.x, chunk.y, chunk.rows));
    sums = total.sums();
    rejected = inputs.skipped().map((s, i) => ({ line: sums.count + i + 1, reason: s.reason }));
  } else {
    // CSV rows a chunk at a time: a file of any size
    const total = new PartSums();
    rejected = [];
    for (const chunk of csvChunks(model.preprocessor, dataFile, true).chunks) {
      for (const record of chunk.records) if (record.rejected !== undefined) rejected.push({ line: record.line, reason: record.rejected });
      if (chunk.rows > 0) total.add(await model.engine.evaluate(chunk.x, chunk.y, chunk.rows, chunk.w));
    }
    sums = total.sums();
  }
  if (sums.count === 0) throw new ModelError(`${dataFile}: no row could be transformed (${rejected.length} rejected)`);
  const values: Record<string, number> = { loss: sums.lossSum / sums.count };
  Object.assign(values, metricLayoutOf(model.spec).values(sums.metricSums, sums.count));
  return { rows: sums.count, rejected, values };
}

/**
 * Saves the trained model in the TensorFlow.js layers format plus what `coordinator predict`
 * needs to take raw CSV rows: the fitted preprocessing and the model spec (tfjs is loaded only
 * here, on cpu), into `folder` of the run. The files are written into a fresh folder beside it
 * that then takes its place, so a crash mid-save leaves the previous model whole. Returns the
 * folder's path.
 */
export async function exportModel(spec: ModelSpec, weights: Float32Array, preprocessor: Preprocessor, runDir: RunDir, folder = 'model'): Promise<string> {
  const [{ initBackend }, { modelWithWeights }, { saveModel, SAVED_MODEL_FILES }] = await Promise.all([
    import('../shared/backend.js'),
    import('../shared/model/build.js'),
    import('../shared/model/io.js'),
  ]);
  await initBackend('cpu');
  const model = modelWithWeights(spec, weights);
  const target = runDir.file(folder);
  const fresh = `${folder}.partial`;
  try {
    fsOps.rmSync(runDir.file(fresh), { recursive: true, force: true });
    fsOps.mkdirSync(dirname(target), { recursive: true });
    await saveModel(model, runDir.file(fresh));
    runDir.writeJson(`${fresh}/${SAVED_MODEL_FILES.preprocessing}`, preprocessor);
    runDir.writeJson(`${fresh}/${SAVED_MODEL_FILES.spec}`, spec);
    fsOps.rmSync(target, { recursive: true, force: true });
    fsOps.renameSync(runDir.file(fresh), target);
  } catch (err) {
    throw storageError(err, 'save the model in', target);
  } finally {
    model.dispose();
  }
  return target;
}
