/**
 * Saving a run's model (`exportModel`) and using a saved model directory (`<run dir>/model`):
 * model.json + weights.bin (TensorFlow.js layers format, read back with tf.loadLayersModel),
 * preprocessing.json and dptrain-model.json.
 * `predictCsv` and `evaluateCsv` take raw CSV rows, transform them with the saved preprocessing
 * and run them through the same engine the workers train with. Rows that cannot be transformed
 * (missing value, unknown category, bad label) and images that do not decode are reported with
 * their line numbers (images: their files).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { columnIndex, csvCell, type Table } from '../shared/data/csv.js';
import { featureCount, type Preprocessor, type RejectedRow } from '../shared/data/preprocess.js';
import { ModelError } from '../shared/errors.js';
import type { BackendChoice } from '../shared/backend-choice.js';
import type { ModelSpec } from '../shared/model/spec.js';
import type { BatchEngine } from '../compute/engine.js';
import type { RunDir } from './run-dir.js';
import { readModelInputs } from './model-inputs.js';
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
  const { enc, files, table } = readModelInputs(model.preprocessor, dataFile, { requireLabel: false });
  const outputs = await model.engine.predict(enc.x, enc.rows);
  if (outFile !== undefined) {
    const pre = model.preprocessor;
    const k = enc.outputs;
    const copied = table ? copiedColumns(table, pre, options.keep) : [];
    const rowOfLine = new Map(table ? Array.from(table.lines, (line, r) => [line, r]) : []);
    const leading = (line: number): string[] => {
      if (files) return [csvCell(files[line - 1] ?? '')];
      const r = rowOfLine.get(line);
      return copied.map((ci) => csvCell(r === undefined ? '' : table!.cell(r, ci)));
    };
    const cells = new Map<number, string>();
    enc.lines.forEach((line, r) => {
      const values = Array.from(outputs.subarray(r * k, (r + 1) * k));
      let predicted: string;
      if (pre.label.type === 'binary') predicted = values[0]! > 0.5 ? pre.label.positive : pre.label.negative;
      else if (pre.label.type === 'categorical') predicted = pre.label.classes[values.indexOf(Math.max(...values))]!;
      else predicted = String(values[0]);
      const probabilities = pre.label.type === 'numeric' ? [] : values.map(String);
      cells.set(line, [...leading(line), ...probabilities, csvCell(predicted), ''].join(','));
    });
    for (const r of enc.rejected) cells.set(r.line, [...leading(r.line), ...outputColumns(pre).map(() => ''), csvCell(r.reason)].join(','));
    const header = ['line', ...(files ? ['file'] : copied.map((ci) => csvCell(table!.header[ci]!))), ...outputColumns(pre), 'error'].join(',');
    const body = [...cells].sort((a, b) => a[0] - b[0]).map(([line, rest]) => `${line},${rest}`);
    writeFileSync(outFile, `${[header, ...body].join('\n')}\n`);
  }
  return { rows: enc.rows, rejected: enc.rejected, outputs, lines: enc.lines };
}

/** Indexes of the columns a prediction file copies: `keep` (each must exist), else the dropped columns the file has. */
function copiedColumns(table: Table, pre: Preprocessor, keep: readonly string[] | undefined): number[] {
  if (keep) return keep.map((name) => columnIndex(table, name, '--keep'));
  return pre.drop.map((name) => table.header.indexOf(name)).filter((ci) => ci >= 0);
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
  const { enc } = readModelInputs(model.preprocessor, dataFile, { requireLabel: true, labels: options.labels });
  if (enc.rows === 0) throw new ModelError(`${dataFile}: no row could be transformed (${enc.rejected.length} rejected)`);
  const sums = await model.engine.evaluate(enc.x, enc.y, enc.rows);
  const values: Record<string, number> = { loss: sums.lossSum / enc.rows };
  Object.assign(values, metricLayoutOf(model.spec).values(sums.metricSums, enc.rows));
  return { rows: enc.rows, rejected: enc.rejected, values };
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
