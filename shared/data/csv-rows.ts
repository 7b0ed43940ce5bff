/**
 * CSV rows left in their files (data.inMemory false for CSV): each usable row is known by its
 * file and the span of its bytes, and read, parsed and encoded again with the fitted
 * preprocessing every time a batch takes it, the way .npy rows are read in place. The
 * coordinator then holds the labels, weights and spans (20 bytes a row), not the features.
 */
import { DataError } from '../errors.js';
import { CsvParser } from './csv-parser.js';
import type { CsvFileRows, CsvPart } from './csv.js';
import { readSpan, withFiles } from './file-reads.js';
import { RowEncoder, type Encoded, type Preprocessor, type RejectedRow } from './preprocess.js';
import { applyScaler, type Scaler } from './scaler.js';

/** CSV rows on disk: data set row r is encoded row order[r]. Plain data: it travels to threads (the arrays in SharedArrayBuffers). */
export interface CsvOnDisk {
  readonly kind: 'csv';
  readonly files: readonly CsvPart[];
  readonly header: readonly string[];
  /** What encodes a row's features (the fitted preprocessing; its scaler is `standardize`). */
  readonly encoding: Pick<Preprocessor, 'columns' | 'features' | 'label'>;
  /** Per encoded row: its file, and its bytes' span [start, end) there. */
  readonly part: Int32Array;
  readonly start: Float64Array;
  readonly end: Float64Array;
  /** The encoded row of each data set row ([train | validation | test] order). */
  readonly order: Int32Array;
  /** Training-set statistics applied to each row read (data.standardize). */
  readonly standardize?: Scaler;
}

/**
 * The encoding pass over CSV rows on disk: which rows encode (the others in `rejected`, with
 * their line and reason), their labels and weights in memory, and where each is.
 */
export function encodeOnDisk(rows: CsvFileRows, pre: Preprocessor): { enc: Encoded; onDisk: Omit<CsvOnDisk, 'order'>; read: number } {
  const encoder = new RowEncoder(rows, pre);
  const { features, outputs } = encoder;
  const scratch = new Float32Array(features);
  // sized by the records of the fit's passes (more only if the file grew since), in the shared
  // memory the spans travel to threads in
  const table = new RowIndex(Math.max(1, rows.records ?? 1024), outputs, encoder.weightColumn >= 0);
  const rejected: RejectedRow[] = [];
  const lines: number[] = [];
  let read = 0;
  rows.forEachRecord((cell, line, part, start, end) => {
    read++;
    const reason = encoder.encodeFeatures(cell, scratch, 0) ?? encoder.encodeLabel(cell, table.label(), 0);
    if (reason !== undefined) {
      rejected.push({ line, reason });
      return;
    }
    table.add(part, start, end, encoder.weightColumn >= 0 ? encoder.weight(cell) : 1);
    lines.push(line);
  });
  const n = lines.length;
  return {
    enc: { x: new Float32Array(0), y: table.y.subarray(0, n * outputs), rows: n, features, outputs, lines, rejected, ...(encoder.weightColumn >= 0 ? { w: table.w.subarray(0, n) } : {}) },
    onDisk: { kind: 'csv', files: [...rows.files], header: [...rows.header], encoding: { columns: pre.columns, features: pre.features, label: pre.label }, part: table.part.subarray(0, n), start: table.start.subarray(0, n), end: table.end.subarray(0, n) },
    read,
  };
}

/** Spans of `n` rows in SharedArrayBuffers (they travel to threads). */
function sharedSpans(n: number): { part: Int32Array; start: Float64Array; end: Float64Array } {
  return {
    part: new Int32Array(new SharedArrayBuffer(Math.max(1, n) * 4), 0, n),
    start: new Float64Array(new SharedArrayBuffer(Math.max(1, n) * 8), 0, n),
    end: new Float64Array(new SharedArrayBuffer(Math.max(1, n) * 8), 0, n),
  };
}

/**
 * The rows that encode, as they are found: label, weight, and file and span (those in shared
 * memory), growing only past the capacity they are made with.
 */
class RowIndex {
  y: Float32Array;
  w: Float32Array;
  part: Int32Array;
  start: Float64Array;
  end: Float64Array;
  private rows = 0;

  constructor(
    private capacity: number,
    private readonly outputs: number,
    private readonly weights: boolean,
  ) {
    this.y = new Float32Array(capacity * outputs);
    this.w = new Float32Array(weights ? capacity : 0);
    const spans = sharedSpans(capacity);
    this.part = spans.part;
    this.start = spans.start;
    this.end = spans.end;
  }

  /** Where the next row's label goes (a view of its slot). */
  label(): Float32Array {
    if (this.rows === this.capacity) this.grow();
    return this.y.subarray(this.rows * this.outputs, (this.rows + 1) * this.outputs);
  }

  add(part: number, start: number, end: number, weight: number): void {
    if (this.rows === this.capacity) this.grow();
    this.part[this.rows] = part;
    this.start[this.rows] = start;
    this.end[this.rows] = end;
    if (this.weights) this.w[this.rows] = weight;
    this.rows++;
  }

  private grow(): void {
    const capacity = 2 * this.capacity;
    const copy = <T extends Float32Array | Float64Array | Int32Array>(values: T, into: T): T => {
      into.set(values);
      return into;
    };
    const spans = sharedSpans(capacity);
    this.y = copy(this.y, new Float32Array(capacity * this.outputs));
    this.w = copy(this.w, new Float32Array(this.weights ? capacity : 0));
    this.part = copy(this.part, spans.part);
    this.start = copy(this.start, spans.start);
    this.end = copy(this.end, spans.end);
    this.capacity = capacity;
  }
}

/**
 * The rows of `b` (the validation set's files) after those of `a`, read through a's header: each
 * of b's files maps a's columns onto its own (a column b lacks is never read: the encoder checked
 * b's header for every column it reads).
 */
export function joinCsvOnDisk(a: Omit<CsvOnDisk, 'order'>, b: Omit<CsvOnDisk, 'order'>): Omit<CsvOnDisk, 'order'> {
  const files = [
    ...a.files,
    ...b.files.map((file) => ({
      ...file,
      columns: a.header.map((name) => {
        const c = b.header.indexOf(name);
        return c < 0 ? -1 : (file.columns?.[c] ?? c);
      }),
    })),
  ];
  const { part, start, end } = sharedSpans(a.part.length + b.part.length);
  part.set(a.part);
  part.set(b.part.map((p) => p + a.files.length), a.part.length);
  start.set(a.start);
  start.set(b.start, a.start.length);
  end.set(a.end);
  end.set(b.end, a.end.length);
  return { ...a, files, part, start, end };
}

/** Encoders of the files read by threads, made once per data set. */
const encoders = new WeakMap<CsvSource, RowEncoder>();

/**
 * Rows whose spans lie this close in a file are read in one call, up to READ_BYTES: 64 KB of
 * text is a string that dies young (past V8's large-object size it would sit in the old
 * generation until a full collection).
 */
const GAP_BYTES = 4096;
const READ_BYTES = 1 << 16;
/** The bytes of one read, reused call after call (one per thread). */
let readBuffer = Buffer.alloc(READ_BYTES);

/** What reads rows of CSV files on disk: the files, their header, the encoding and the statistics. */
export type CsvSource = Pick<CsvOnDisk, 'files' | 'header' | 'encoding' | 'standardize'>;

/** Each row's file and byte span [start, end). */
export type CsvSpans = Pick<CsvOnDisk, 'part' | 'start' | 'end'>;

/** One read: bytes [from, to) of file `part`, holding the rows `rows` (indexes into the rows asked for). */
export interface CsvRead {
  readonly part: number;
  readonly from: number;
  readonly to: number;
  readonly rows: readonly number[];
}

/** The reads that fetch `rows` (indexes into `spans`): rows near each other in one file in one read, up to READ_BYTES. */
export function csvReads(spans: CsvSpans, rows: ArrayLike<number>): CsvRead[] {
  const { part, start, end } = spans;
  const byPlace = Int32Array.from({ length: rows.length }, (_, i) => i).sort((i, j) => part[rows[i]!]! - part[rows[j]!]! || start[rows[i]!]! - start[rows[j]!]!);
  const reads: CsvRead[] = [];
  for (let k = 0; k < byPlace.length; ) {
    const first = rows[byPlace[k]!]!;
    const p = part[first]!;
    const from = start[first]!;
    let to = end[first]!;
    const held = [byPlace[k++]!];
    for (; k < byPlace.length; k++) {
      const r = rows[byPlace[k]!]!;
      if (part[r] !== p || start[r]! - to > GAP_BYTES || end[r]! - from > READ_BYTES) break;
      to = Math.max(to, end[r]!);
      held.push(byPlace[k]!);
    }
    reads.push({ part: p, from, to, rows: held });
  }
  return reads;
}

/** The encoder of a source, made once (threads and nodes read with one source object throughout). */
function encoderOf(source: CsvSource): RowEncoder {
  let encoder = encoders.get(source);
  if (!encoder) {
    encoder = new RowEncoder({ header: source.header, source: source.files[0]?.path ?? 'CSV' }, source.encoding, false);
    encoders.set(source, encoder);
  }
  return encoder;
}

/**
 * Encodes the rows of `read` from its bytes (`text`, latin1) into `out`, row i (an index into the
 * rows asked for, `rows`) at i x features. A row that no longer encodes (the file changed after it
 * was indexed) is an error naming the file.
 */
export function encodeRead(source: CsvSource, spans: CsvSpans, rows: ArrayLike<number>, read: CsvRead, text: string, features: number, out: Float32Array): void {
  const { path, columns } = source.files[read.part]!;
  const encoder = encoderOf(source);
  for (const i of read.rows) {
    const r = rows[i]!;
    const cells = oneRecord(path, text.slice(spans.start[r]! - read.from, spans.end[r]! - read.from));
    const reason = cells === undefined || cells.length !== source.header.length ? 'not one record of the file' : encoder.encodeFeatures(columns ? (c) => cells[columns[c]!] ?? '' : (c) => cells[c]!, out, i * features);
    if (reason !== undefined) throw new DataError(`${path}: the row at bytes ${spans.start[r]}-${spans.end[r]} no longer encodes (${reason}): the file changed while training?`);
  }
}

/**
 * The features of encoded rows `rows` (indexes into the spans) into `out`, row i at i x
 * features: the rows' bytes read from their files (rows near each other in one read, so rows
 * asked for in file order read the file front to back), parsed and encoded, then standardized.
 */
export function readCsvRows(file: Omit<CsvOnDisk, 'order'>, features: number, rows: ArrayLike<number>, out: Float32Array): Float32Array {
  withFiles(
    file.files.map((p) => p.path),
    (fdOf) => {
      for (const read of csvReads(file, rows)) {
        const length = read.to - read.from;
        if (length > readBuffer.length) readBuffer = Buffer.alloc(length);
        const got = readSpan(fdOf(read.part), readBuffer.subarray(0, length), read.from);
        if (got < length) throw new DataError(`${file.files[read.part]!.path}: ended before byte ${read.to} (the file shrank while training?)`);
        encodeRead(file, file, rows, read, readBuffer.toString('latin1', 0, length), features, out);
      }
    },
  );
  if (file.standardize) applyScaler(out.subarray(0, rows.length * features), file.standardize);
  return out;
}

/** The one record `text` holds (bytes as latin1), or undefined if it holds none, several or malformed ones. */
function oneRecord(path: string, text: string): string[] | undefined {
  const records: string[][] = [];
  try {
    const parser = new CsvParser(path, (cells) => records.push(cells), { bytes: true });
    parser.write(text);
    parser.end();
  } catch {
    return undefined;
  }
  return records.length === 1 ? records[0] : undefined;
}
