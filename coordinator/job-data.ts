/**
 * A job's data: what it brings itself (--demo, or rows from a caller) written to the run
 * directory, the CSV read, and the prepared data set (split, encoded, standardized) with the
 * warnings it raised.
 */
import type { JobConfig } from '../shared/config/schema.js';
import { csvFileRows, readCsvPath, recordsToCsv, type CellValue, type Table } from '../shared/data/csv.js';
import type { PreprocessOptions } from '../shared/data/preprocess.js';
import { existsSync, statSync } from 'node:fs';
import { concatNpy, prepareArrays, prepareArraysOnDisk, prepareImages } from '../shared/data/arrays.js';
import { prepareCsvOnDisk, prepareData, type PreparedData, type SplitOptions } from '../shared/data/dataset.js';
import { readImageFolder, type ImageSet } from '../shared/data/images.js';
import { prepareShards } from '../shared/data/shard-data.js';
import { isShardPath } from '../shared/data/shards.js';
import { expandPaths } from '../shared/data/paths.js';
import { readNpy, readNpyHeader } from '../shared/data/npy.js';
import { totalmem } from 'node:os';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { ConfigError, DataError } from '../shared/errors.js';
import type { RunDir } from './run-dir.js';

/** Where a job's data comes from besides data.path. */
export interface DataSource {
  /** Use generated Telco-schema demo data instead of data.path. */
  readonly demo?: boolean | undefined;
  /** The data as objects, one per row (column name -> value), instead of data.path. */
  readonly rows?: readonly Readonly<Record<string, CellValue>>[] | undefined;
}

/** Data the job brings itself (--demo, or rows from a caller) as a CSV file for the run directory. */
export function providedData(config: JobConfig, options: DataSource): { file: string; csv: string } | undefined {
  if (options.demo && options.rows) throw new ConfigError('give demo data or rows, not both');
  if (options.rows && config.data.path) throw new ConfigError(`rows were given and data.path is set (${config.data.path}): give one of them`);
  if (options.rows) return { file: 'data.csv', csv: recordsToCsv(options.rows, 'rows') };
  return options.demo ? { file: 'demo-data.csv', csv: telcoDemoCsv() } : undefined;
}

/** Provided data is written to the run directory and becomes data.path (so a resume finds it). */
export function dataConfig(config: JobConfig, provided: ReturnType<typeof providedData>, runDir: RunDir): JobConfig {
  if (!provided) return config;
  const path = runDir.write(provided.file, provided.csv);
  return { ...config, data: { ...config.data, path } };
}

export type DataKind = 'csv' | 'images' | 'arrays' | 'shards';

/** What data.path holds: a folder is an image data set, a .npy file arrays, .tar files (or a pattern of them) image shards, anything else CSV. */
export function dataKind(path: string): DataKind {
  if (path.toLowerCase().endsWith('.npy')) return 'arrays';
  if (isShardPath(path)) return 'shards';
  return existsSync(path) && statSync(path).isDirectory() ? 'images' : 'csv';
}

function splitOptions(config: JobConfig): SplitOptions {
  const { data, fit } = config;
  return { testSize: data.testSize, stratify: data.stratify, standardize: data.standardize, validationSplit: fit.validationSplit };
}

/** `validation`: the validation set's own table (data.validation). */
export function prepareJobData(config: JobConfig, table: Table, validation?: Table): PreparedData {
  return prepareData(table, preprocessOptions(config, table.source), splitOptions(config), config.seed, validation);
}

/** The CSV preprocessing the job's data keys ask for. */
function preprocessOptions(config: JobConfig, source: string): PreprocessOptions {
  const { data } = config;
  if (!data.label?.column) throw new ConfigError(`data.label.column is required for CSV data (${source}): name the column to predict`);
  const label = { ...data.label, column: data.label.column, type: data.label.type ?? 'binary' };
  return { drop: data.drop, numeric: data.numeric, categorical: data.categorical, label, maxCategories: data.maxCategories, strayValues: data.strayValues, ...(data.sampleWeight ? { sampleWeight: data.sampleWeight } : {}) };
}

/** data.validation, checked against data.path's kind and fit.validationSplit; undefined without one. */
function validationOf(config: JobConfig, kind: DataKind): { readonly path: string; readonly labels?: string | undefined } | undefined {
  const { validation } = config.data;
  if (!validation) return undefined;
  if (config.fit.validationSplit > 0) throw new ConfigError(`fit.validationSplit (${config.fit.validationSplit}) and data.validation (${validation.path}) both make a validation set; keep one`);
  const own = dataKind(validation.path);
  if (own !== kind) throw new ConfigError(`data.validation.path (${validation.path}) holds ${own}, and data.path holds ${kind}: the validation set is data of the same kind`);
  if (kind === 'arrays' && !validation.labels) throw new ConfigError(`data.validation.labels is required with .npy data (${validation.path}): the .npy file of the validation targets`);
  if (kind !== 'arrays' && validation.labels) throw new ConfigError(`data.validation.labels goes with .npy data; ${validation.path} holds ${kind}`);
  return validation;
}

/** Keys of data that only CSV data reads. */
const CSV_ONLY = ['drop', 'numeric', 'categorical'] as const;

/** The job's data read and prepared, whichever kind data.path holds. */
export function readJobData(config: JobConfig): PreparedData {
  const { data } = config;
  if (!data.path) throw new ConfigError('no data: set data.path in the config, pass --data FILE, or use --demo');
  const kind = dataKind(data.path);
  if (data.inMemory === false && kind === 'images') throw new ConfigError(`data.inMemory: false applies to CSV, .npy samples and tar shards; ${data.path} is an image folder, which is read into memory (tar shards of it are not)`);
  const validation = validationOf(config, kind);
  if (kind === 'csv') {
    if (data.labels) throw new ConfigError(`data.labels (${data.labels}) goes with a .npy data.path; ${data.path} is read as CSV`);
    const paths = [...expandPaths(data.path), ...(validation ? expandPaths(validation.path) : [])];
    if (keepOnDisk(data.inMemory, paths.reduce((sum, p) => sum + (existsSync(p) ? statSync(p).size : 0), 0))) {
      return prepareCsvOnDisk(csvFileRows(data.path), preprocessOptions(config, data.path), splitOptions(config), config.seed, validation && csvFileRows(validation.path));
    }
    // dropped columns' values are not kept (an id column would cost a string a row)
    const skip = { skip: data.drop.filter((name) => name !== data.label?.column && name !== data.sampleWeight) };
    return prepareJobData(config, readCsvPath(data.path, skip), validation && readCsvPath(validation.path, skip));
  }
  for (const key of CSV_ONLY) if (data[key].length > 0) throw new ConfigError(`data.${key} applies to CSV columns; ${data.path} holds ${kind}`);
  if (data.sampleWeight) throw new ConfigError(`data.sampleWeight (${data.sampleWeight}) names a CSV column; ${data.path} holds ${kind}`);
  if (kind === 'arrays') return readArrayData(config, data.path, validation);
  if (data.labels) throw new ConfigError(`data.labels: the classes of ${kind === 'shards' ? "tar shards are their samples' .cls members" : "an image folder are its class folders"}; remove data.labels`);
  if (data.label?.type !== undefined && data.label.type !== 'categorical') throw new ConfigError(`data.label.type: the classes of ${kind === 'shards' ? 'tar shards' : 'image folders'} are categorical, not ${data.label.type}`);
  return kind === 'shards' ? readShardData(config, data.path, validation) : readImageData(config, data.path, validation);
}

type Validation = ReturnType<typeof validationOf>;

/** Tar shards of images (and the validation set's shards, last). */
function readShardData(config: JobConfig, path: string, validation: Validation): PreparedData {
  const { data } = config;
  const paths = expandPaths(path);
  const validationShards = validation ? expandPaths(validation.path) : [];
  const bytes = [...paths, ...validationShards].reduce((sum, p) => sum + (existsSync(p) ? statSync(p).size : 0), 0);
  const options = { imageSize: data.imageSize, colorMode: data.colorMode, scale: data.rescale ?? 1 / 255, inMemory: !keepOnDisk(data.inMemory, bytes), validationShards: validationShards.length };
  return prepareShards([...paths, ...validationShards], options, splitOptions(config), config.seed);
}

/** An image folder (and the validation set's folder, its images last). */
function readImageData(config: JobConfig, path: string, validation: Validation): PreparedData {
  const { data } = config;
  const set = readImageFolder(path, { imageSize: data.imageSize, colorMode: data.colorMode });
  if (!validation) return prepareImages(set, path, data.rescale ?? 1 / 255, splitOptions(config), config.seed);
  const both = withValidationImages(set, readImageFolder(validation.path, { imageSize: data.imageSize, colorMode: data.colorMode }), validation.path);
  return prepareImages(both, path, data.rescale ?? 1 / 255, { ...splitOptions(config), validationFrom: set.labels.length }, config.seed);
}

/** .npy samples and labels: one file each, or several (a pattern or a brace range) read as one array in order; the validation set's files last. */
function readArrayData(config: JobConfig, path: string, validation: Validation): PreparedData {
  const { data } = config;
  if (!data.labels) throw new ConfigError(`data.labels is required with a .npy data.path (${path}): the .npy file of targets, one per sample`);
  const main = { x: expandPaths(path), y: expandPaths(data.labels) };
  if (main.x.length !== main.y.length) throw new ConfigError(`data.path names ${main.x.length} .npy file(s) (${path}) and data.labels ${main.y.length} (${data.labels}): one file of labels per file of samples`);
  const extra = validation ? { x: expandPaths(validation.path), y: expandPaths(validation.labels!) } : { x: [], y: [] };
  if (extra.x.length !== extra.y.length) throw new ConfigError(`data.validation.path names ${extra.x.length} .npy file(s) (${validation!.path}) and data.validation.labels ${extra.y.length}: one file of labels per file of samples`);
  const xPaths = [...main.x, ...extra.x];
  const headers = xPaths.map((p) => ({ path: p, header: readNpyHeader(p) }));
  const y = concatNpy([...main.y, ...extra.y].map((p) => ({ path: p, array: readNpy(p) })));
  const options = { scale: data.rescale ?? 1, label: data.label?.type ?? 'auto' } as const;
  const sources = { x: path, y: data.labels };
  const split = { ...splitOptions(config), ...(validation ? { validationFrom: headers.slice(0, main.x.length).reduce((a, h) => a + h.header.shape[0]!, 0) } : {}) };
  if (keepOnDisk(data.inMemory, headers.reduce((a, h) => a + h.header.fileBytes, 0))) return prepareArraysOnDisk(headers, y, sources, options, split, config.seed);
  return prepareArrays(concatNpy(xPaths.map((p) => ({ path: p, array: readNpy(p) }))), y, sources, options, split, config.seed);
}


/** Whether samples stay on disk (.npy, tar shards): as data.inMemory says, or (auto) when the files are over a quarter of the memory this process may use. */
export function keepOnDisk(inMemory: boolean | 'auto', fileBytes: number): boolean {
  if (inMemory !== 'auto') return !inMemory;
  const limit = process.constrainedMemory?.() ?? 0;
  const memory = limit > 0 ? Math.min(limit, totalmem()) : totalmem();
  return fileBytes > memory / 4;
}

/** An image folder and its validation folder as one set, the validation images last, their classes mapped by name onto the training folder's. */
function withValidationImages(set: ImageSet, validation: ImageSet, path: string): ImageSet {
  const index = new Map(set.classes.map((c, k) => [c, k]));
  const unknown = validation.classes.filter((c) => !index.has(c));
  if (unknown.length > 0) throw new DataError(`${path}: class folder(s) ${unknown.slice(0, 5).join(', ')} are not classes of data.path (${set.classes.join(', ')})`);
  if (validation.height !== set.height || validation.width !== set.width || validation.channels !== set.channels) {
    throw new DataError(`${path}: images of ${validation.height}x${validation.width}x${validation.channels}, and data.path's are ${set.height}x${set.width}x${set.channels}: set data.imageSize to resize both`);
  }
  const pixels = new Uint8Array(set.pixels.length + validation.pixels.length);
  pixels.set(set.pixels);
  pixels.set(validation.pixels, set.pixels.length);
  const labels = Int32Array.from([...set.labels, ...Array.from(validation.labels, (k) => index.get(validation.classes[k]!)!)]);
  return { ...set, pixels, labels, files: [...set.files, ...validation.files], warnings: [...set.warnings, ...validation.warnings] };
}
