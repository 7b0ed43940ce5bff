/**
 * A job's data: what it brings itself (--demo, or rows from a caller) written to the run
 * directory, the CSV read, and the prepared data set (split, encoded, standardized) with the
 * warnings it raised.
 */
import type { JobConfig } from '../shared/config/schema.js';
import { readCsv, recordsToCsv, type CellValue, type Table } from '../shared/data/csv.js';
import { existsSync, statSync } from 'node:fs';
import { concatNpy, prepareArrays, prepareArraysOnDisk, prepareImages } from '../shared/data/arrays.js';
import { prepareData, type PreparedData, type SplitOptions } from '../shared/data/dataset.js';
import { readImageFolder } from '../shared/data/images.js';
import { prepareShards } from '../shared/data/shard-data.js';
import { isShardPath } from '../shared/data/shards.js';
import { expandPaths } from '../shared/data/paths.js';
import { readNpy, readNpyHeader } from '../shared/data/npy.js';
import { totalmem } from 'node:os';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { ConfigError } from '../shared/errors.js';
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

export function loadTable(config: JobConfig): Table {
  if (!config.data.path) throw new ConfigError('no data: set data.path in the config, pass --data FILE, or use --demo');
  return readCsv(config.data.path);
}

function splitOptions(config: JobConfig): SplitOptions {
  const { data, fit } = config;
  return { testSize: data.testSize, stratify: data.stratify, standardize: data.standardize, validationSplit: fit.validationSplit };
}

export function prepareJobData(config: JobConfig, table: Table): PreparedData {
  const { data } = config;
  if (!data.label?.column) throw new ConfigError(`data.label.column is required for CSV data (${table.source}): name the column to predict`);
  const label = { ...data.label, column: data.label.column, type: data.label.type ?? 'binary' };
  return prepareData(table, { drop: data.drop, numeric: data.numeric, categorical: data.categorical, label, maxCategories: data.maxCategories, strayValues: data.strayValues, ...(data.sampleWeight ? { sampleWeight: data.sampleWeight } : {}) }, splitOptions(config), config.seed);
}

/** Keys of data that only CSV data reads. */
const CSV_ONLY = ['drop', 'numeric', 'categorical'] as const;

/** The job's data read and prepared, whichever kind data.path holds. */
export function readJobData(config: JobConfig): PreparedData {
  const { data } = config;
  if (!data.path) throw new ConfigError('no data: set data.path in the config, pass --data FILE, or use --demo');
  const kind = dataKind(data.path);
  if (data.inMemory === false && kind !== 'arrays' && kind !== 'shards') throw new ConfigError(`data.inMemory: false applies to .npy samples and tar shards; ${data.path} holds ${kind}, which are read into memory`);
  if (kind === 'csv') {
    if (data.labels) throw new ConfigError(`data.labels (${data.labels}) goes with a .npy data.path; ${data.path} is read as CSV`);
    return prepareJobData(config, readCsv(data.path));
  }
  for (const key of CSV_ONLY) if (data[key].length > 0) throw new ConfigError(`data.${key} applies to CSV columns; ${data.path} holds ${kind}`);
  if (data.sampleWeight) throw new ConfigError(`data.sampleWeight (${data.sampleWeight}) names a CSV column; ${data.path} holds ${kind}`);
  if (kind === 'shards') {
    if (data.labels) throw new ConfigError(`data.labels: the classes of tar shards are their samples' .cls members; remove data.labels`);
    if (data.label?.type !== undefined && data.label.type !== 'categorical') throw new ConfigError(`data.label.type: the classes of tar shards are categorical, not ${data.label.type}`);
    const paths = expandPaths(data.path);
    const bytes = paths.reduce((sum, p) => sum + (existsSync(p) ? statSync(p).size : 0), 0);
    return prepareShards(paths, { imageSize: data.imageSize, colorMode: data.colorMode, scale: data.rescale ?? 1 / 255, inMemory: !keepOnDisk(data.inMemory, bytes) }, splitOptions(config), config.seed);
  }
  if (kind === 'images') {
    if (data.labels) throw new ConfigError(`data.labels: an image folder's labels are its class folders; remove data.labels`);
    if (data.label?.type !== undefined && data.label.type !== 'categorical') throw new ConfigError(`data.label.type: image classes are categorical (one output per class folder), not ${data.label.type}`);
    const set = readImageFolder(data.path, { imageSize: data.imageSize, colorMode: data.colorMode });
    return prepareImages(set, data.path, data.rescale ?? 1 / 255, splitOptions(config), config.seed);
  }
  if (!data.labels) throw new ConfigError(`data.labels is required with a .npy data.path (${data.path}): the .npy file of targets, one per sample`);
  // one .npy file, or several (a pattern or a brace range) read as one array in order
  const xPaths = expandPaths(data.path);
  const yPaths = expandPaths(data.labels);
  if (xPaths.length !== yPaths.length) throw new ConfigError(`data.path names ${xPaths.length} .npy file(s) (${data.path}) and data.labels ${yPaths.length} (${data.labels}): one file of labels per file of samples`);
  const headers = xPaths.map((path) => ({ path, header: readNpyHeader(path) }));
  const y = concatNpy(yPaths.map((path) => ({ path, array: readNpy(path) })));
  const options = { scale: data.rescale ?? 1, label: data.label?.type ?? 'auto' } as const;
  const sources = { x: data.path, y: data.labels };
  if (keepOnDisk(data.inMemory, headers.reduce((a, h) => a + h.header.fileBytes, 0))) return prepareArraysOnDisk(headers, y, sources, options, splitOptions(config), config.seed);
  return prepareArrays(concatNpy(xPaths.map((path) => ({ path, array: readNpy(path) }))), y, sources, options, splitOptions(config), config.seed);
}


/** Whether samples stay on disk (.npy, tar shards): as data.inMemory says, or (auto) when the files are over a quarter of the memory this process may use. */
export function keepOnDisk(inMemory: boolean | 'auto', fileBytes: number): boolean {
  if (inMemory !== 'auto') return !inMemory;
  const limit = process.constrainedMemory?.() ?? 0;
  const memory = limit > 0 ? Math.min(limit, totalmem()) : totalmem();
  return fileBytes > memory / 4;
}
