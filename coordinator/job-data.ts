/**
 * A job's data: what it brings itself (--demo, or rows from a caller) written to the run
 * directory, the CSV read, and the prepared data set (split, encoded, standardized) with the
 * warnings it raised.
 */
import type { JobConfig } from '../shared/config/schema.js';
import { readCsv, recordsToCsv, type CellValue, type Table } from '../shared/data/csv.js';
import { prepareData, type PreparedData } from '../shared/data/dataset.js';
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

export function loadTable(config: JobConfig): Table {
  if (!config.data.path) throw new ConfigError('no data: set data.path in the config, pass --data FILE, or use --demo');
  return readCsv(config.data.path);
}

export function prepareJobData(config: JobConfig, table: Table): PreparedData {
  const { data, fit } = config;
  return prepareData(
    table,
    { drop: data.drop, numeric: data.numeric, categorical: data.categorical, label: data.label, maxCategories: data.maxCategories },
    { testSize: data.testSize, stratify: data.stratify, standardize: data.standardize, validationSplit: fit.validationSplit },
    config.seed,
  );
}

