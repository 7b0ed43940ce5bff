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
import { columnIndex, linePlace, type RowSource, type Table } from './csv.js';
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

/** How many rows something holds for, and the first three of them (line, value): all a message shows. */
interface RowSample {
  length: number;
  readonly first: { readonly line: number; readonly value: string }[];
}

function rowSample(): RowSample {
  return { length: 0, first: [] };
}

function noteRow(sample: RowSample, line: number, value = ''): void {
  if (sample.length++ < 3) sample.first.push({ line, value });
}

/** Up to three source lines with the column's value on each, for messages. */
function someValues(rows: RowSource, sample: RowSample): string {
  const shown = sample.first.map((f) => `${linePlace(rows, f.line)}: ${JSON.stringify(f.value)}`);
  return `${shown.join(', ')}${sample.length > 3 ? `, and ${sample.length - 3} more` : ''}`;
}

/** Up to three source lines, for messages. */
function someLines(rows: RowSource, sample: RowSample): string {
  const more = sample.length > 3 ? ', ...' : '';
  if (rows.parts) return `${sample.first.map((f) => linePlace(rows, f.line)).join(', ')}${more}`;
  return `line${sample.length > 1 ? 's' : ''} ${sample.first.map((f) => f.line).join(', ')}${more}`;
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


/** Distinct values of a column kept while fitting, at most: past it the column is no category (data.maxCategories is far below). */
const DISTINCT_KEPT = 1 << 16;

/**
 * Fits the transform on the rows of `rows` (a table in memory, or a CSV file read as it
 * streams) in two passes: which columns are numeric, then, over the rows with every value, the
 * categories of the others and the label mapping. Rows with a missing value are left out of the
 * fit (and of `encode`).
 */
export function fitPreprocessor(rows: RowSource, options: PreprocessOptions, warn: (message: string) => void = () => {}): Preprocessor {
  for (const c of options.drop) columnIndex(rows, c, 'data.drop');
  for (const c of options.numeric) columnIndex(rows, c, 'data.numeric');
  for (const c of options.categorical) columnIndex(rows, c, 'data.categorical');
  const li = columnIndex(rows, options.label.column, 'data.label.column');
  const wi = options.sampleWeight === undefined ? -1 : columnIndex(rows, options.sampleWeight, 'data.sampleWeight');
  if (options.sampleWeight === options.label.column) throw new DataError(`${rows.source}: data.sampleWeight names the label column "${options.label.column}"`);
  const excluded = new Set([...options.drop, options.label.column, ...(options.sampleWeight !== undefined ? [options.sampleWeight] : [])]);
  const featureNames = rows.header.filter((h) => !excluded.has(h));
  if (featureNames.length === 0) throw new DataError(`no feature columns left in ${rows.source} after dropping ${[...excluded].join(', ')}`);

  // Pass 1: every sample weight a number >= 0 (a weight is not guessed), and which columns are
  // numbers: listed in `numeric` (coerced), or (nearly) every non-blank value parses. A column of
  // mostly numbers stays numeric: its stray values lose their rows, reported, rather than turning
  // the column into one-hot text and changing the feature count.
  const open = featureNames.filter((name) => !options.numeric.includes(name) && !options.categorical.includes(name)).map((name) => ({ name, ci: rows.header.indexOf(name), filled: 0, notNumbers: rowSample() }));
  rows.forEachRow((cell, line) => {
    if (wi >= 0) {
      const v = cell(wi);
      const w = isMissing(v) ? Number.NaN : parseNumber(v);
      if (!(w >= 0) || !Number.isFinite(w)) {
        throw new DataError(`${rows.source}: data.sampleWeight: column "${options.sampleWeight}" at ${linePlace(rows, line)} holds ${JSON.stringify(v)}; a sample weight is a number >= 0`);
      }
    }
    for (const column of open) {
      const v = cell(column.ci);
      if (isMissing(v)) continue;
      column.filled++;
      if (Number.isNaN(parseNumber(v))) noteRow(column.notNumbers, line, v);
    }
  });
  const kinds = new Map<string, 'numeric' | 'text'>();
  for (const name of featureNames) if (options.numeric.includes(name) || options.categorical.includes(name)) kinds.set(name, options.numeric.includes(name) ? 'numeric' : 'text');
  const strays: typeof open = [];
  for (const column of open) {
    const { filled, notNumbers } = column;
    const mostlyNumbers = notNumbers.length > 0 && filled - notNumbers.length >= MOSTLY_NUMBERS * filled;
    kinds.set(column.name, notNumbers.length === 0 || mostlyNumbers ? 'numeric' : 'text');
    if (mostlyNumbers) strays.push(column);
  }
  for (const { name, filled, notNumbers } of strays) {
    const what = `${rows.source}: column "${name}" holds numbers in ${filled - notNumbers.length} of ${filled} rows but not in ${notNumbers.length} (${someValues(rows, notNumbers)})`;
    if (options.strayValues === 'error') {
      throw new DataError(`${what}; fix those rows, set data.strayValues: drop to train without them, or list the column in data.categorical to encode it as text`);
    }
    warn(`${what}: ${notNumbers.length === 1 ? 'that row is' : 'those rows are'} dropped (data.strayValues: error refuses such a file; data.categorical: [${name}] encodes the column as text)`);
  }

  // Pass 2: the rows with every value (a number where the column is numeric); over them, each
  // text column's categories and the label's values.
  const numericLabel = options.label.type === 'numeric';
  const checks = featureNames.map((name) => ({ name, ci: rows.header.indexOf(name), numeric: kinds.get(name) === 'numeric', dropped: rowSample() }));
  const labelDropped = rowSample();
  const texts = featureNames.filter((name) => kinds.get(name) === 'text').map((name) => ({ name, ci: rows.header.indexOf(name), categories: new Set<string>() }));
  const labels = new Set<string>();
  const binary = options.label.type === 'binary' && options.label.negative !== undefined ? { positive: options.label.positive, negative: options.label.negative } : undefined;
  let other: { line: number; value: string } | undefined;
  let read = 0;
  let usable = 0;
  rows.forEachRow((cell, line) => {
    read++;
    let ok = true;
    const label = cell(li);
    if (isMissing(label) || (numericLabel && Number.isNaN(parseNumber(label)))) {
      noteRow(labelDropped, line);
      ok = false;
    }
    for (const check of checks) {
      const v = cell(check.ci);
      if (isMissing(v) || (check.numeric && Number.isNaN(parseNumber(v)))) {
        noteRow(check.dropped, line);
        ok = false;
      }
    }
    if (!ok) return;
    usable++;
    for (const text of texts) if (text.categories.size <= DISTINCT_KEPT) text.categories.add(cell(text.ci));
    if (!numericLabel && labels.size <= DISTINCT_KEPT) labels.add(label);
    if (binary && other === undefined && label !== binary.positive && label !== binary.negative) other = { line, value: label };
  });
  // Per column: a share of dropped rows worth knowing about (a few blanks are expected).
  const reported = new Set(strays.map((c) => c.name));
  for (const { name, dropped } of [...checks, { name: options.label.column, dropped: labelDropped }]) {
    if (dropped.length > DROP_WARNING * read && !reported.has(name)) {
      warn(
        `${rows.source}: ${dropped.length} of ${read} rows (${((100 * dropped.length) / read).toFixed(0)}%) are dropped for a missing or non-numeric value in column "${name}" ` +
          `(${someLines(rows, dropped)}); fix the file, or drop the column (data.drop)`,
      );
    }
  }
  if (usable === 0) {
    throw new DataError(`no rows left in ${rows.source} after dropping rows with missing values (${read} rows read)`);
  }

  const numericCols: FeatureColumn[] = [];
  const onehotCols: FeatureColumn[] = [];
  const notNumbersIn = new Map(open.map((c) => [c.name, c]));
  for (const name of featureNames) {
    if (kinds.get(name) === 'numeric') {
      numericCols.push({ name, kind: 'numeric' });
      continue;
    }
    const cats = texts.find((t) => t.name === name)!.categories;
    const limit = options.maxCategories ?? DEFAULT_MAX_CATEGORIES;
    if (cats.size > limit) {
      const counted = notNumbersIn.get(name);
      const numbers = counted && counted.notNumbers.length < counted.filled ? ` ${counted.filled - counted.notNumbers.length} of its ${counted.filled} values are numbers; not: ${someValues(rows, counted.notNumbers)}.` : '';
      const distinct = cats.size > DISTINCT_KEPT ? `more than ${DISTINCT_KEPT}` : String(cats.size);
      throw new DataError(
        `${rows.source}: column "${name}" has ${distinct} distinct values; one-hot encoding it would add ${distinct} features ` +
          `(data.maxCategories is ${limit}).${numbers} An id or free-text column: add it to data.drop; numbers: add it to data.numeric; real categories: raise data.maxCategories`,
      );
    }
    onehotCols.push({ name, kind: 'onehot', categories: sortStrings(cats) });
  }
  const columns = [...numericCols, ...onehotCols];
  const features = columns.flatMap((c) => (c.kind === 'numeric' ? [c.name] : c.categories.map((cat) => `${c.name}_${cat}`)));
  const label = fitLabel(rows, options.label, labels, other);
  return { version: 1, drop: [...options.drop], columns, features, label, ...(options.sampleWeight !== undefined ? { sampleWeight: options.sampleWeight } : {}) };
}

/**
 * One row's encoding under a fitted transform: its features (numbers as they are, one-hot blocks),
 * label and weight, or why the row cannot be encoded. For a table in memory (encode) and for rows
 * read from a CSV file per batch (csv-rows.ts).
 */
export class RowEncoder {
  readonly features: number;
  readonly outputs: number;
  private readonly cols: { readonly col: FeatureColumn; readonly ci: number; readonly index?: ReadonlyMap<string, number> }[];
  /** The label's column (-1: absent, allowed with requireLabel false). */
  readonly labelColumn: number;
  private readonly classIndex: ReadonlyMap<string, number> | undefined;
  /** The sample weights' column (-1: none). */
  readonly weightColumn: number;

  constructor(
    rows: Pick<RowSource, 'header' | 'source'>,
    private readonly pre: Pick<Preprocessor, 'columns' | 'features' | 'label' | 'sampleWeight'>,
    private readonly requireLabel = true,
  ) {
    this.cols = pre.columns.map((col) => ({ col, ci: columnIndex(rows, col.name, 'the saved preprocessing'), ...(col.kind === 'onehot' ? { index: new Map(col.categories.map((cat, k) => [cat, k])) } : {}) }));
    this.labelColumn = requireLabel ? columnIndex(rows, pre.label.column, 'data.label.column') : rows.header.indexOf(pre.label.column);
    this.features = pre.features.length;
    this.outputs = labelOutputs(pre.label);
    this.classIndex = pre.label.type === 'categorical' ? new Map(pre.label.classes.map((c, k) => [c, k])) : undefined;
    this.weightColumn = pre.sampleWeight === undefined ? -1 : rows.header.indexOf(pre.sampleWeight);
  }

  /** The row's features into x from xo; why not, if it cannot be encoded. */
  encodeFeatures(cell: (c: number) => string, x: Float32Array, xo: number): string | undefined {
    let f = xo;
    for (const { col, ci, index } of this.cols) {
      const v = cell(ci);
      if (isMissing(v)) return `missing value in column "${col.name}"`;
      if (col.kind === 'numeric') {
        const num = parseNumber(v);
        if (Number.isNaN(num)) return `column "${col.name}" is not a number: ${JSON.stringify(v)}`;
        x[f++] = num;
      } else {
        const k = index!.get(v);
        if (k === undefined) return `column "${col.name}" has unknown category ${JSON.stringify(v)}`;
        x.fill(0, f, f + col.categories.length);
        x[f + k] = 1;
        f += col.categories.length;
      }
    }
    return undefined;
  }

  /** The row's label into y from yo; why not, if it has none that fits (a missing label is fine with requireLabel false). */
  encodeLabel(cell: (c: number) => string, y: Float32Array, yo: number): string | undefined {
    if (this.labelColumn < 0) return undefined;
    const label = this.pre.label;
    const v = cell(this.labelColumn);
    if (isMissing(v)) return this.requireLabel ? `missing label in column "${label.column}"` : undefined;
    if (label.type === 'binary') {
      if (v !== label.positive && v !== label.negative) return `label ${JSON.stringify(v)} is neither "${label.positive}" nor "${label.negative}"`;
      y[yo] = v === label.positive ? 1 : 0;
    } else if (label.type === 'categorical') {
      const k = this.classIndex!.get(v);
      if (k === undefined) return `label ${JSON.stringify(v)} is not one of the trained classes`;
      y.fill(0, yo, yo + this.outputs);
      y[yo + k] = 1;
    } else {
      const num = parseNumber(v);
      if (Number.isNaN(num)) return `label is not a number: ${JSON.stringify(v)}`;
      y[yo] = num;
    }
    return undefined;
  }

  /** The row's sample weight (checked when the preprocessing was fitted). */
  weight(cell: (c: number) => string): number {
    return parseNumber(cell(this.weightColumn));
  }
}

/**
 * Applies a fitted transform to a table (the training table or new data). Rows with missing
 * values, unknown categories or unknown labels are not encoded; they are listed in `rejected`
 * with their line and reason. With `requireLabel: false` the label column may be absent.
 */
export function encode(table: Table, pre: Preprocessor, options: { requireLabel?: boolean } = {}): Encoded {
  if (pre.input) throw new DataError(`${table.source}: this model takes ${pre.input.kind === 'images' ? 'images (give a folder of PNG/JPEG files)' : '.npy arrays'}, not CSV rows`);
  const encoder = new RowEncoder(table, pre, options.requireLabel ?? true);
  const { features, outputs } = encoder;
  // x in shared memory: the training set is laid out in place, and threads read it there
  const rows = table.rowCount;
  const x = new Float32Array(new SharedArrayBuffer(Math.max(1, rows * features) * Float32Array.BYTES_PER_ELEMENT), 0, rows * features);
  const y = new Float32Array(rows * outputs);
  const lines: number[] = [];
  const rejected: RejectedRow[] = [];
  const w = encoder.weightColumn >= 0 ? new Float32Array(rows) : undefined;
  let n = 0;
  let r = 0;
  const cell = (c: number): string => table.cell(r, c);
  for (; r < rows; r++) {
    const line = table.lines[r]!;
    const reason = encoder.encodeFeatures(cell, x, n * features) ?? encoder.encodeLabel(cell, y, n * outputs);
    if (reason !== undefined) {
      rejected.push({ line, reason });
      continue;
    }
    if (w) w[n] = encoder.weight(cell);
    lines.push(line);
    n++;
  }
  const xs = x.subarray(0, n * features);
  if (pre.scaler) applyScaler(xs, pre.scaler);
  return { x: xs, y: y.subarray(0, n * outputs), rows: n, features, outputs, lines, rejected, ...(w ? { w: w.subarray(0, n) } : {}) };
}
