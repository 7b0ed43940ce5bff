/**
 * Preprocessing, fitted once and saved with the run so new data gets the same transform:
 * drop columns, coerce numeric columns (unparseable -> missing), drop rows with missing values,
 * one-hot encode text columns the way `pandas.get_dummies` does, and map the label.
 *
 * get_dummies' rules, kept here: columns that are not encoded come first in their original
 * order, then for each encoded column (in column order) one column per category, categories
 * sorted, named `<column>_<category>`.
 */
import { DataError } from '../errors.js';
import { columnIndex, linePlace, type Table } from './csv.js';
import { fitLabel, labelOutputs, sortStrings, type LabelOptions, type LabelTransform } from './label.js';
import { applyScaler, type Scaler } from './scaler.js';

export type { LabelOptions, LabelTransform };

export interface PreprocessOptions {
  readonly drop: readonly string[];
  readonly numeric: readonly string[];
  readonly categorical: readonly string[];
  readonly label: LabelOptions;
  /** Most distinct values a column may have to be one-hot encoded (default DEFAULT_MAX_CATEGORIES). */
  readonly maxCategories?: number;
  /**
   * Values that are not numbers in a column of mostly numbers: 'drop' their rows, each reported
   * with its line and value (default), or 'error': refuse the file.
   */
  readonly strayValues?: 'drop' | 'error';
  /** The column of each row's weight in the training loss (data.sampleWeight): numbers >= 0, not a feature. */
  readonly sampleWeight?: string;
}

/** More categories than this is an id or a free-text column, not a category (data.maxCategories). */
export const DEFAULT_MAX_CATEGORIES = 100;
/** A text column whose non-blank values parse as numbers this often is "mostly numbers". */
const MOSTLY_NUMBERS = 0.9;
/** Dropping more than this share of the rows for one column's missing values is worth a warning. */
const DROP_WARNING = 0.05;

/** How many rows something holds for, and the first three of them: all a message shows. */
interface RowSample {
  length: number;
  readonly first: number[];
}

function noteRow(sample: RowSample, r: number): void {
  if (sample.length++ < 3) sample.first.push(r);
}

/** Up to three source lines with the column's value on each, for messages. */
function someValues(table: Table, rows: RowSample, ci: number): string {
  const shown = rows.first.map((r) => `${linePlace(table, table.lines[r]!)}: ${JSON.stringify(table.cell(r, ci))}`);
  return `${shown.join(', ')}${rows.length > 3 ? `, and ${rows.length - 3} more` : ''}`;
}

/** Up to three source lines, for messages. */
function someLines(table: Table, rows: RowSample): string {
  const more = rows.length > 3 ? ', ...' : '';
  if (table.parts) return `${rows.first.map((r) => linePlace(table, table.lines[r]!)).join(', ')}${more}`;
  return `line${rows.length > 1 ? 's' : ''} ${rows.first.map((r) => table.lines[r]).join(', ')}${more}`;
}

export type FeatureColumn =
  | { readonly name: string; readonly kind: 'numeric' }
  | { readonly name: string; readonly kind: 'onehot'; readonly categories: readonly string[] };

/** The fitted transform, as saved in a run's preprocessing.json. */
export interface Preprocessor {
  readonly version: 1;
  readonly drop: readonly string[];
  /** Encoded-feature order: numeric columns first, then one-hot blocks (get_dummies order). */
  readonly columns: readonly FeatureColumn[];
  readonly features: readonly string[];
  readonly label: LabelTransform;
  readonly scaler?: Scaler;
  /** Images or arrays instead of CSV columns (then `columns` and `features` are empty). */
  readonly input?: ArrayInput;
  /** The column of the rows' sample weights in training (data.sampleWeight); not a feature, not needed to predict. */
  readonly sampleWeight?: string;
}

/**
 * Inputs that are not CSV columns: images from a class-folder tree, or .npy arrays; each sample
 * has `shape` values, features = values * scale (in float32).
 */
export type ArrayInput =
  | { readonly kind: 'images'; readonly shape: readonly [number, number, number]; readonly colorMode: 'grayscale' | 'rgb'; readonly scale: number }
  | { readonly kind: 'arrays'; readonly shape: readonly number[]; readonly scale: number };

/** Values per sample the preprocessing makes. */
export function featureCount(pre: Preprocessor): number {
  return pre.input ? pre.input.shape.reduce((a, n) => a * n, 1) : pre.features.length;
}

/** Rows that could not be used, with why. */
export interface RejectedRow {
  readonly line: number;
  readonly reason: string;
}

export interface Encoded {
  readonly x: Float32Array;
  readonly y: Float32Array;
  readonly rows: number;
  readonly features: number;
  readonly outputs: number;
  /** Source line of each encoded row. */
  readonly lines: number[];
  readonly rejected: RejectedRow[];
  /** Each encoded row's sample weight, where the preprocessing has a weight column and the table holds it. */
  readonly w?: Float32Array;
}

function isMissing(value: string | undefined): boolean {
  return value === undefined || value.trim() === '';
}

function parseNumber(value: string): number {
  const t = value.trim();
  if (t === '') return NaN;
  const n = Number(t);
  return Number.isFinite(n) ? n : NaN;
}


/**
 * Fits the transform on `table`: which columns are numeric, the categories of the others, and the
 * label mapping. Rows with a missing value are left out of the fit (and of `encode`).
 */
export function fitPreprocessor(table: Table, options: PreprocessOptions, warn: (message: string) => void = () => {}): Preprocessor {
  for (const c of options.drop) columnIndex(table, c, 'data.drop');
  for (const c of options.numeric) columnIndex(table, c, 'data.numeric');
  for (const c of options.categorical) columnIndex(table, c, 'data.categorical');
  columnIndex(table, options.label.column, 'data.label.column');
  if (options.sampleWeight !== undefined) checkSampleWeights(table, options.sampleWeight, options.label.column);
  const excluded = new Set([...options.drop, options.label.column, ...(options.sampleWeight !== undefined ? [options.sampleWeight] : [])]);
  const featureNames = table.header.filter((h) => !excluded.has(h));
  if (featureNames.length === 0) throw new DataError(`no feature columns left in ${table.source} after dropping ${[...excluded].join(', ')}`);

  // Which columns are numbers: listed in `numeric` (coerced), or (nearly) every non-blank value
  // parses. A column of mostly numbers stays numeric: its stray values lose their rows, reported,
  // rather than turning the column into one-hot text and changing the feature count.
  const kinds = new Map<string, 'numeric' | 'text'>();
  const notNumbersIn = new Map<string, { filled: number; rows: RowSample }>();
  const strays: { name: string; ci: number; filled: number; rows: RowSample }[] = [];
  for (const name of featureNames) {
    const ci = table.header.indexOf(name);
    if (options.numeric.includes(name)) kinds.set(name, 'numeric');
    else if (options.categorical.includes(name)) kinds.set(name, 'text');
    else {
      let filled = 0;
      const notNumbers: RowSample = { length: 0, first: [] };
      for (let r = 0; r < table.rowCount; r++) {
        const v = table.cell(r, ci);
        if (isMissing(v)) continue;
        filled++;
        if (Number.isNaN(parseNumber(v))) noteRow(notNumbers, r);
      }
      const mostlyNumbers = notNumbers.length > 0 && filled - notNumbers.length >= MOSTLY_NUMBERS * filled;
      kinds.set(name, notNumbers.length === 0 || mostlyNumbers ? 'numeric' : 'text');
      notNumbersIn.set(name, { filled, rows: notNumbers });
      if (mostlyNumbers) strays.push({ name, ci, filled, rows: notNumbers });
    }
  }
  for (const { name, ci, filled, rows } of strays) {
    const what = `${table.source}: column "${name}" holds numbers in ${filled - rows.length} of ${filled} rows but not in ${rows.length} (${someValues(table, rows, ci)})`;
    if (options.strayValues === 'error') {
      throw new DataError(`${what}; fix those rows, set data.strayValues: drop to train without them, or list the column in data.categorical to encode it as text`);
    }
    warn(`${what}: ${rows.length === 1 ? 'that row is' : 'those rows are'} dropped (data.strayValues: error refuses such a file; data.categorical: [${name}] encodes the column as text)`);
  }

  const reported = new Set(strays.map((c) => c.name));
  const usable = usableRows(table, featureNames, kinds, options.label.column, options.label.type === 'numeric', (name, message) => reported.has(name) || warn(message));
  if (usable.length === 0) {
    throw new DataError(`no rows left in ${table.source} after dropping rows with missing values (${table.rowCount} rows read)`);
  }

  const numericCols: FeatureColumn[] = [];
  const onehotCols: FeatureColumn[] = [];
  for (const name of featureNames) {
    if (kinds.get(name) === 'numeric') {
      numericCols.push({ name, kind: 'numeric' });
    } else {
      const ci = table.header.indexOf(name);
      const cats = new Set<string>();
      for (const r of usable) cats.add(table.cell(r, ci));
      const limit = options.maxCategories ?? DEFAULT_MAX_CATEGORIES;
      if (cats.size > limit) {
        const notNumbers = notNumbersIn.get(name);
        const numbers = notNumbers && notNumbers.rows.length < notNumbers.filled ? ` ${notNumbers.filled - notNumbers.rows.length} of its ${notNumbers.filled} values are numbers; not: ${someValues(table, notNumbers.rows, ci)}.` : '';
        throw new DataError(
          `${table.source}: column "${name}" has ${cats.size} distinct values; one-hot encoding it would add ${cats.size} features ` +
            `(data.maxCategories is ${limit}).${numbers} An id or free-text column: add it to data.drop; numbers: add it to data.numeric; real categories: raise data.maxCategories`,
        );
      }
      onehotCols.push({ name, kind: 'onehot', categories: sortStrings(cats) });
    }
  }
  const columns = [...numericCols, ...onehotCols];
  const features = columns.flatMap((c) => (c.kind === 'numeric' ? [c.name] : c.categories.map((cat) => `${c.name}_${cat}`)));
  const label = fitLabel(table, options.label, usable);
  return { version: 1, drop: [...options.drop], columns, features, label, ...(options.sampleWeight !== undefined ? { sampleWeight: options.sampleWeight } : {}) };
}

/** Every row's weight a number >= 0: anything else is an error naming the key, the line and the value (a weight is not guessed). */
function checkSampleWeights(table: Table, column: string, labelColumn: string): void {
  const ci = columnIndex(table, column, 'data.sampleWeight');
  if (column === labelColumn) throw new DataError(`${table.source}: data.sampleWeight names the label column "${column}"`);
  for (let r = 0; r < table.rowCount; r++) {
    const v = table.cell(r, ci);
    const w = isMissing(v) ? Number.NaN : parseNumber(v);
    if (!(w >= 0) || !Number.isFinite(w)) {
      throw new DataError(`${table.source}: data.sampleWeight: column "${column}" at ${linePlace(table, table.lines[r]!)} holds ${JSON.stringify(v)}; a sample weight is a number >= 0`);
    }
  }
}

function usableRows(
  table: Table,
  featureNames: readonly string[],
  kinds: Map<string, 'numeric' | 'text'>,
  labelColumn: string,
  numericLabel: boolean,
  warn: (column: string, message: string) => void,
): number[] {
  const checks = featureNames.map((name) => ({ name, ci: table.header.indexOf(name), numeric: kinds.get(name) === 'numeric', dropped: { length: 0, first: [] } as RowSample }));
  const li = table.header.indexOf(labelColumn);
  const labelDropped: RowSample = { length: 0, first: [] };
  const out: number[] = [];
  for (let r = 0; r < table.rowCount; r++) {
    let usable = true;
    const label = table.cell(r, li);
    if (isMissing(label) || (numericLabel && Number.isNaN(parseNumber(label)))) {
      noteRow(labelDropped, r);
      usable = false;
    }
    for (const check of checks) {
      const v = table.cell(r, check.ci);
      if (isMissing(v) || (check.numeric && Number.isNaN(parseNumber(v)))) {
        noteRow(check.dropped, r);
        usable = false;
      }
    }
    if (usable) out.push(r);
  }
  // Per column: a share of dropped rows worth knowing about (a few blanks are expected).
  const n = table.rowCount;
  for (const { name, dropped } of [...checks, { name: labelColumn, dropped: labelDropped }]) {
    if (dropped.length > DROP_WARNING * n) {
      warn(
        name,
        `${table.source}: ${dropped.length} of ${n} rows (${((100 * dropped.length) / n).toFixed(0)}%) are dropped for a missing or non-numeric value in column "${name}" ` +
          `(${someLines(table, dropped)}); fix the file, or drop the column (data.drop)`,
      );
    }
  }
  return out;
}

/**
 * Applies a fitted transform to a table (the training table or new data). Rows with missing
 * values, unknown categories or unknown labels are not encoded; they are listed in `rejected`
 * with their line and reason. With `requireLabel: false` the label column may be absent.
 */
export function encode(table: Table, pre: Preprocessor, options: { requireLabel?: boolean } = {}): Encoded {
  if (pre.input) throw new DataError(`${table.source}: this model takes ${pre.input.kind === 'images' ? 'images (give a folder of PNG/JPEG files)' : '.npy arrays'}, not CSV rows`);
  const requireLabel = options.requireLabel ?? true;
  const cols = pre.columns.map((c) => ({ col: c, ci: columnIndex(table, c.name, 'the saved preprocessing') }));
  const li = requireLabel ? columnIndex(table, pre.label.column, 'data.label.column') : table.header.indexOf(pre.label.column);
  const features = pre.features.length;
  const outputs = labelOutputs(pre.label);
  const categoryIndex = pre.columns.map((c) => (c.kind === 'onehot' ? new Map(c.categories.map((cat, k) => [cat, k])) : undefined));
  const classIndex = pre.label.type === 'categorical' ? new Map(pre.label.classes.map((c, k) => [c, k])) : undefined;

  // x in shared memory: the training set is laid out in place, and threads read it there
  const rows = table.rowCount;
  const x = new Float32Array(new SharedArrayBuffer(Math.max(1, rows * features) * Float32Array.BYTES_PER_ELEMENT), 0, rows * features);
  const y = new Float32Array(rows * outputs);
  const lines: number[] = [];
  const rejected: RejectedRow[] = [];
  // sample weights, for training: checked when the preprocessing was fitted on this table
  const wi = pre.sampleWeight === undefined ? -1 : table.header.indexOf(pre.sampleWeight);
  const w = wi >= 0 ? new Float32Array(rows) : undefined;
  let n = 0;
  rowLoop: for (let r = 0; r < rows; r++) {
    const line = table.lines[r]!;
    const xo = n * features;
    let f = 0;
    for (let k = 0; k < cols.length; k++) {
      const { col, ci } = cols[k]!;
      const v = table.cell(r, ci);
      if (isMissing(v)) {
        rejected.push({ line, reason: `missing value in column "${col.name}"` });
        continue rowLoop;
      }
      if (col.kind === 'numeric') {
        const num = parseNumber(v);
        if (Number.isNaN(num)) {
          rejected.push({ line, reason: `column "${col.name}" is not a number: ${JSON.stringify(v)}` });
          continue rowLoop;
        }
        x[xo + f++] = num;
      } else {
        const idx = categoryIndex[k]!.get(v);
        if (idx === undefined) {
          rejected.push({ line, reason: `column "${col.name}" has unknown category ${JSON.stringify(v)}` });
          continue rowLoop;
        }
        x.fill(0, xo + f, xo + f + col.categories.length);
        x[xo + f + idx] = 1;
        f += col.categories.length;
      }
    }
    if (li >= 0) {
      const v = table.cell(r, li);
      const yo = n * outputs;
      if (isMissing(v)) {
        if (requireLabel) {
          rejected.push({ line, reason: `missing label in column "${pre.label.column}"` });
          continue;
        }
      } else if (pre.label.type === 'binary') {
        if (v !== pre.label.positive && v !== pre.label.negative) {
          rejected.push({ line, reason: `label ${JSON.stringify(v)} is neither "${pre.label.positive}" nor "${pre.label.negative}"` });
          continue;
        }
        y[yo] = v === pre.label.positive ? 1 : 0;
      } else if (pre.label.type === 'categorical') {
        const idx = classIndex!.get(v);
        if (idx === undefined) {
          rejected.push({ line, reason: `label ${JSON.stringify(v)} is not one of the trained classes` });
          continue;
        }
        y.fill(0, yo, yo + outputs);
        y[yo + idx] = 1;
      } else {
        const num = parseNumber(v);
        if (Number.isNaN(num)) {
          rejected.push({ line, reason: `label is not a number: ${JSON.stringify(v)}` });
          continue;
        }
        y[yo] = num;
      }
    }
    if (w) w[n] = parseNumber(table.cell(r, wi));
    lines.push(line);
    n++;
  }
  const xs = x.subarray(0, n * features);
  if (pre.scaler) applyScaler(xs, pre.scaler);
  return { x: xs, y: y.subarray(0, n * outputs), rows: n, features, outputs, lines, rejected, ...(w ? { w: w.subarray(0, n) } : {}) };
}
