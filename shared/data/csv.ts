/**
 * CSV data as a table kept by column: each column's distinct values once, and per row a code
 * into them (1, 2 or 4 bytes as the column needs), so a table costs about a byte a cell for
 * categories and labels instead of a string pointer and a string per cell. Files are parsed as
 * they are read (CsvParser, 64 KB at a time), never held whole. Several files (a pattern or brace
 * range, as for shards) are read as one table: the same columns in each (in any order), rows in
 * file order, a row's line counted through the files in order.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { DataError } from '../errors.js';
import { CsvParser } from './csv-parser.js';
import { expandPaths } from './paths.js';

/** Rows read in order, as often as asked: a table in memory, or a CSV file read as it streams. */
export interface RowSource {
  /** Where the rows come from (a path, or a name like "demo data"), for messages. */
  readonly source: string;
  readonly header: readonly string[];
  /** Where the rows are several files: each file, and how many lines come before its first (linePlace). */
  readonly parts?: readonly { readonly path: string; readonly lineOffset: number }[];
  /** Calls `each` with every row in order: its cell in column c (header order), and its line. */
  forEachRow(each: (cell: (c: number) => string, line: number) => void): void;
}

export interface Table extends RowSource {
  /** Data rows (the header is not one). */
  readonly rowCount: number;
  /** The cell of row `r` in column `c` (header order). */
  cell(r: number, c: number): string;
  /** 1-based line number in the source of each row (several files: counted through them in order, headers included). */
  readonly lines: ArrayLike<number>;
}

export interface ReadCsvOptions {
  /** Columns whose values are not kept (data.drop in training): their cells read as ''. */
  readonly skip?: readonly string[];
}

/** Where line `line` of a table is, for messages: "line 12", or "part-002.csv line 12" where the table is several files. */
export function linePlace(table: Pick<Table, 'parts'>, line: number): string {
  const parts = table.parts;
  if (!parts) return `line ${line}`;
  let part = parts[0]!;
  for (const p of parts) if (p.lineOffset < line) part = p;
  return `${part.path} line ${line - part.lineOffset}`;
}

/** Row `r` of a table as its cells, in header order. */
export function tableRow(table: Table, r: number): string[] {
  return table.header.map((_, c) => table.cell(r, c));
}

/** A column with more distinct values than this that are (nearly all) numbers keeps numbers, not a dictionary. */
const NUMBERS_AFTER = 4096;
/** `decimals` of a row whose text is not the number written with that many decimals: the text is in `others`. */
const AS_TEXT = 255;

/**
 * One column: its distinct values once and each row's code into them (categories, labels); or,
 * for a column of many distinct numbers (charges, measurements), each row's number and the
 * decimals it was written with, which give back its text exactly (any other text, such as "1e3"
 * or " 7", is kept as it is).
 */
class Column {
  private values: string[] = [];
  private index: Map<string, number> | undefined = new Map();
  private codes: Codes;
  private numbers: Float64Array | undefined;
  private decimals: Uint8Array | undefined;
  private others: Map<number, string> | undefined;

  constructor(capacity: number) {
    this.codes = new Uint8Array(capacity);
  }

  add(r: number, cell: string): void {
    if (this.numbers) {
      this.addNumber(r, cell);
      return;
    }
    let code = this.index!.get(cell);
    if (code === undefined) {
      code = this.values.length;
      const kept = own(cell);
      this.values.push(kept);
      this.index!.set(kept, code);
      if (code === 256 || code === 65536) this.codes = resized(this.codes, this.codes.length, code === 256 ? 2 : 4);
    }
    if (r >= this.codes.length) this.codes = resized(this.codes, 2 * this.codes.length, this.codes.BYTES_PER_ELEMENT as 1 | 2 | 4);
    this.codes[r] = code;
    if (code === NUMBERS_AFTER && this.values.filter((v) => asNumber(v) !== undefined).length >= 0.9 * this.values.length) this.toNumbers(r + 1);
  }

  cell(r: number): string {
    if (!this.numbers) return this.values[this.codes[r]!]!;
    const d = this.decimals![r]!;
    return d === AS_TEXT ? this.others!.get(r)! : this.numbers[r]!.toFixed(d);
  }

  /** Done adding: the lookup map goes, the arrays are cut to `rows`. */
  seal(rows: number): void {
    this.index = undefined;
    if (this.codes.length > rows) this.codes = this.codes.slice(0, rows);
    if (this.numbers && this.numbers.length > rows) {
      this.numbers = this.numbers.slice(0, rows);
      this.decimals = this.decimals!.slice(0, rows);
    }
  }

  private toNumbers(rows: number): void {
    this.numbers = new Float64Array(this.codes.length);
    this.decimals = new Uint8Array(this.codes.length);
    this.others = new Map();
    const values = this.values;
    const codes = this.codes;
    this.values = [];
    this.index = undefined;
    this.codes = new Uint8Array(0);
    for (let r = 0; r < rows; r++) this.addNumber(r, values[codes[r]!]!);
  }

  private addNumber(r: number, cell: string): void {
    if (r >= this.numbers!.length) {
      const numbers = new Float64Array(2 * this.numbers!.length);
      numbers.set(this.numbers!);
      this.numbers = numbers;
      const decimals = new Uint8Array(numbers.length);
      decimals.set(this.decimals!);
      this.decimals = decimals;
    }
    const number = asNumber(cell);
    if (number === undefined) {
      this.decimals![r] = AS_TEXT;
      this.others!.set(r, own(cell));
    } else {
      this.numbers![r] = number.value;
      this.decimals![r] = number.decimals;
    }
  }
}

/** `text` as a number and the decimals that write it back exactly (`value.toFixed(decimals) === text`), if any. */
function asNumber(text: string): { value: number; decimals: number } | undefined {
  const value = Number(text);
  const dot = text.indexOf('.');
  const decimals = dot < 0 ? 0 : text.length - dot - 1;
  if (text.length === 0 || decimals > 20 || Number.isNaN(value) || Math.abs(value) >= 1e21) return undefined;
  return value.toFixed(decimals) === text ? { value, decimals } : undefined;
}

/** A copy of its own of a cell: a slice of the chunk it was read from would keep the whole chunk. */
function own(cell: string): string {
  return cell.length > 12 ? Buffer.from(cell, 'utf8').toString('utf8') : cell;
}

type Codes = Uint8Array | Uint16Array | Uint32Array;

/** `codes` in an array of `length` codes of `bytes` bytes each. */
function resized(codes: Codes, length: number, bytes: 1 | 2 | 4): Codes {
  const out = bytes === 1 ? new Uint8Array(length) : bytes === 2 ? new Uint16Array(length) : new Uint32Array(length);
  out.set(codes);
  return out;
}

/** Collects records into columns, then makes the Table. */
class TableBuilder {
  header: string[] | undefined;
  private columns: (Column | undefined)[] = [];
  private lines: Int32Array;
  rows = 0;

  /** `capacity`: the rows expected (the line ends in the text: more rows than that only cost a regrowth). */
  constructor(
    private readonly source: string,
    private readonly skip: readonly string[] = [],
    private readonly capacity = 1024,
  ) {
    this.lines = new Int32Array(Math.max(1, capacity));
  }

  setHeader(header: string[]): void {
    this.header = header;
    this.columns = header.map((name) => (this.skip.includes(name) ? undefined : new Column(Math.max(1, this.capacity))));
  }

  add(record: readonly string[], line: number): void {
    const r = this.rows++;
    for (let c = 0; c < record.length; c++) this.columns[c]?.add(r, record[c]!);
    if (r >= this.lines.length) {
      const lines = new Int32Array(2 * this.lines.length);
      lines.set(this.lines);
      this.lines = lines;
    }
    this.lines[r] = line;
  }

  build(parts?: Table['parts']): Table {
    if (!this.header) throw new DataError(`${this.source}: the file is empty (no header row)`);
    for (const column of this.columns) column?.seal(this.rows);
    const columns = this.columns;
    const rowCount = this.rows;
    const lines = this.lines.slice(0, rowCount);
    const cell = (r: number, c: number): string => columns[c]?.cell(r) ?? '';
    return {
      source: this.source,
      header: this.header,
      rowCount,
      cell,
      lines,
      forEachRow: (each) => {
        let r = 0;
        const rowCell = (c: number): string => cell(r, c);
        for (; r < rowCount; r++) each(rowCell, lines[r]!);
      },
      ...(parts ? { parts } : {}),
    };
  }
}

export function parseCsv(text: string, source: string, options: ReadCsvOptions = {}): Table {
  let lineEnds = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lineEnds++;
  const builder = new TableBuilder(source, options.skip, lineEnds + 1);
  const parser = new CsvParser(source, (record, line) => (builder.header ? builder.add(record, line) : builder.setHeader(checkedHeader(record, source))));
  parser.write(text);
  parser.end();
  return builder.build();
}

/** A header's names, trimmed; a name given twice is an error naming `source`. */
function checkedHeader(record: readonly string[], source: string): string[] {
  const header = record.map((h) => h.trim());
  const seen = new Set<string>();
  for (const name of header) {
    if (seen.has(name)) throw new DataError(`${source}: column "${name}" appears twice in the header`);
    seen.add(name);
  }
  return header;
}

/** Whether `path` names several files (a pattern or a brace range, even one that matches one file), given what it expands to. */
function severalFiles(path: string, paths: readonly string[]): boolean {
  return !(paths.length === 1 && paths[0] === path);
}

/** The CSV data of `path`: one file, or (a `*` pattern or a brace range) several read as one table. */
export function readCsvPath(path: string, options: ReadCsvOptions = {}): Table {
  const paths = expandPaths(path);
  return severalFiles(path, paths) ? readCsvFiles(paths, path, options) : readCsv(path, options);
}

export function readCsv(path: string, options: ReadCsvOptions = {}): Table {
  const builder = new TableBuilder(path, options.skip, lineEnds(path) + 1);
  streamCsvFiles([path], path, (header) => builder.setHeader(header), (record, line) => builder.add(record, line));
  return builder.build();
}

/**
 * Several CSV files as one table. Each must have the first file's columns (in any order: its
 * cells are put in the first file's order); another set is an error naming the file and the
 * columns that differ.
 */
export function readCsvFiles(paths: readonly string[], source: string, options: ReadCsvOptions = {}): Table {
  const builder = new TableBuilder(`${source} (${paths.length} files)`, options.skip, paths.reduce((n, path) => n + lineEnds(path) + 1, 0));
  const parts = streamCsvFiles(paths, source, (header) => builder.setHeader(header), (record, line) => builder.add(record, line));
  return builder.build(parts.map(({ path, lineOffset }) => ({ path, lineOffset })));
}

/** A file of a CSV data set: the lines before its first (through the files), its size once read, and its column of each header column where its order differs. */
export interface CsvPart {
  readonly path: string;
  readonly lineOffset: number;
  readonly bytes?: number;
  readonly columns?: readonly number[];
}

/** What reading CSV files gives: the header, then each record in the first file's column order. */
type CsvItem = { readonly kind: 'header'; readonly header: string[] } | { readonly kind: 'record'; readonly record: string[]; readonly line: number; readonly part: number; readonly start: number; readonly end: number };

/**
 * The files `paths` read as they are asked for: the header (the first file's), then every record
 * in order, its cells in the first file's column order, with its line (counted through the
 * files), its file and its span [start, end) in that file (bytes, with `bytes`; else
 * characters). Checks the header and each file's columns against the first's. `parts` gets each
 * file as its reading starts (messages name the file of a line before the end). Stopping early
 * (return()) closes the file being read.
 */
function* csvItems(paths: readonly string[], source: string, bytes = false, parts: CsvPart[] = []): Generator<CsvItem> {
  let header: string[] | undefined;
  let lineOffset = 0;
  for (let part = 0; part < paths.length; part++) {
    const path = paths[part]!;
    const offset = lineOffset;
    const entry: { path: string; lineOffset: number; bytes?: number; columns?: number[] } = { path, lineOffset: offset };
    parts.push(entry);
    let order: number[] | undefined;
    const queue: CsvItem[] = [];
    const parser = new CsvParser(
      path,
      (record, line, start, end) => {
        if (order) {
          queue.push({ kind: 'record', record: order.length === 0 ? record : order.map((i) => record[i]!), line: line + offset, part, start, end });
          return;
        }
        if (!header) {
          header = checkedHeader(record, path);
          queue.push({ kind: 'header', header });
          order = [];
          return;
        }
        order = columnOrder(header, record, path, paths[0]!, source);
        if (order.length > 0) entry.columns = order;
      },
      { bytes },
    );
    const decoder = new StringDecoder(bytes ? 'latin1' : 'utf8');
    let read = 0;
    for (const chunk of fileChunks(path)) {
      read += chunk.length;
      parser.write(decoder.write(chunk));
      yield* queue.splice(0);
    }
    parser.write(decoder.end());
    parser.end();
    entry.bytes = read;
    yield* queue.splice(0);
    lineOffset += parser.linesRead;
  }
  if (!header) throw new DataError(`${paths.length > 1 ? `${source} (${paths.length} files)` : source}: the file is empty (no header row)`);
}

/** Where a file's columns (`record`, its header) are for each of `header`'s ([] where the same order); other columns are an error naming the file. */
function columnOrder(header: readonly string[], record: readonly string[], path: string, first: string, source: string): number[] {
  const own = record.map((h) => h.trim());
  const missing = header.filter((name) => !own.includes(name));
  const extra = own.filter((name) => !header.includes(name));
  if (missing.length > 0 || extra.length > 0) {
    const list = (names: string[]): string => names.map((n) => `"${n}"`).join(', ');
    throw new DataError(`${path}: its columns differ from ${first}'s (${[missing.length > 0 ? `without ${list(missing)}` : '', extra.length > 0 ? `with ${list(extra)} besides` : ''].filter(Boolean).join('; ')}): every file of ${source} needs the same columns`);
  }
  const indexes = header.map((name) => own.indexOf(name));
  return indexes.every((i, k) => i === k) ? [] : indexes;
}

/** csvItems with a callback for the header and one for each record; the files read. */
function streamCsvFiles(
  paths: readonly string[],
  source: string,
  onHeader: (header: string[]) => void,
  onRecord: (record: string[], line: number, part: number, start: number, end: number) => void,
  bytes = false,
  parts: CsvPart[] = [],
): CsvPart[] {
  for (const item of csvItems(paths, source, bytes, parts)) {
    if (item.kind === 'header') onHeader(item.header);
    else onRecord(item.record, item.line, item.part, item.start, item.end);
  }
  return parts;
}

/** A batch of CSV records and the line of each. */
export interface CsvBatch {
  readonly records: string[][];
  readonly lines: number[];
}

/**
 * The CSV data of `path` (one file, a pattern or a brace range) read a batch of `size` records at
 * a time, as they are asked for: for predictions and evaluation on a file of any size.
 */
export function csvBatches(path: string, size: number): Pick<RowSource, 'source' | 'header' | 'parts'> & { readonly batches: Generator<CsvBatch> } {
  const paths = expandPaths(path);
  const several = severalFiles(path, paths);
  const source = several ? `${path} (${paths.length} files)` : path;
  const parts: CsvPart[] = [];
  const items = csvItems(paths, path, false, parts);
  const first = items.next();
  const header = first.done ? [] : (first.value as Extract<CsvItem, { kind: 'header' }>).header;
  function* batches(): Generator<CsvBatch> {
    let batch: CsvBatch = { records: [], lines: [] };
    for (const item of items) {
      if (item.kind !== 'record') continue;
      batch.records.push(item.record);
      batch.lines.push(item.line);
      if (batch.records.length === size) {
        yield batch;
        batch = { records: [], lines: [] };
      }
    }
    if (batch.records.length > 0) yield batch;
  }
  return { source, header, ...(several ? { parts } : {}), batches: batches() };
}

/** CSV rows read from their files at every pass, never held (data.inMemory: false). */
export interface CsvFileRows extends RowSource {
  readonly files: readonly CsvPart[];
  /** Records the last whole pass read (undefined before one). */
  readonly records: number | undefined;
  /** Every record with its file (an index into `files`) and its bytes' span [start, end) there. */
  forEachRecord(each: (cell: (c: number) => string, line: number, part: number, start: number, end: number) => void): void;
}

/** The CSV data of `path` (one file, a pattern or a brace range) as rows read from the files at each pass. */
export function csvFileRows(path: string): CsvFileRows {
  const paths = expandPaths(path);
  const several = severalFiles(path, paths);
  const source = several ? `${path} (${paths.length} files)` : path;
  // the header, from the first file's first record; the files' layout (their lines and column
  // orders) from each pass over all of them
  const items = csvItems(paths.slice(0, 1), path, true);
  const first = items.next();
  items.return(undefined);
  const header = first.done ? [] : (first.value as Extract<CsvItem, { kind: 'header' }>).header;
  const files: CsvPart[] = [];
  let records: number | undefined;
  const forEachRecord: CsvFileRows['forEachRecord'] = (each) => {
    let record: string[] = [];
    let count = 0;
    const cell = (c: number): string => record[c]!;
    files.length = 0;
    streamCsvFiles(paths, path, () => undefined, (r, line, part, start, end) => {
      record = r;
      count++;
      each(cell, line, part, start, end);
    }, true, files);
    records = count;
  };
  return {
    source,
    header,
    files,
    get records(): number | undefined {
      return records;
    },
    // filled as each pass reaches each file (the same array)
    ...(several ? { parts: files } : {}),
    forEachRecord,
    forEachRow: (each) => forEachRecord((cell, line) => each(cell, line)),
  };
}

/** The \n bytes in the file at `path` (one pass over it): an upper bound of its records, to size the columns once. */
function lineEnds(path: string): number {
  let n = 0;
  for (const chunk of fileChunks(path)) for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) n++;
  return n;
}

/**
 * The file at `path`, 64 KB at a time (one buffer, reused: each chunk is gone when the next is
 * asked for): its text is then a young-generation string that dies young (a chunk past V8's
 * large-object size would sit in the old generation until a full collection). Errors name the
 * file; stopping early closes it.
 */
function* fileChunks(path: string): Generator<Buffer> {
  const why = (err: unknown): string => {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
  };
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new DataError(`cannot read data file ${path}: ${why(err)}`);
  }
  try {
    const buffer = Buffer.alloc(1 << 16);
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buffer, 0, buffer.length, null);
      } catch (err) {
        throw new DataError(`cannot read data file ${path}: ${why(err)}`);
      }
      if (n === 0) return;
      yield buffer.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

/** A value of a row given as an object: null, undefined and NaN are missing (a blank cell). */
export type CellValue = string | number | boolean | null | undefined;

/** A CSV field: quoted (with doubled quotes) when it holds a quote, a comma or a line break. */
export function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * Rows given as objects (column name -> value) as CSV text: the columns in the order they first
 * appear, a column a row lacks left blank. `source` names the rows in errors.
 */
export function recordsToCsv(records: readonly Readonly<Record<string, CellValue>>[], source: string): string {
  if (!Array.isArray(records) || records.length === 0) throw new DataError(`${source}: no rows (an array of objects, one per row, is expected)`);
  const columns = new Map<string, number>();
  records.forEach((record, i) => {
    if (record === null || typeof record !== 'object' || Array.isArray(record)) throw new DataError(`${source}[${i}]: not an object (column name -> value)`);
    for (const key of Object.keys(record)) if (!columns.has(key)) columns.set(key, columns.size);
  });
  const header = [...columns.keys()];
  const lines = records.map((record, i) =>
    header
      .map((key) => {
        const value: unknown = record[key];
        if (value === null || value === undefined || (typeof value === 'number' && Number.isNaN(value))) return '';
        if (value === Infinity || value === -Infinity) throw new DataError(`${source}[${i}].${key}: ${value} is not a value a model can take`);
        if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return csvCell(String(value));
        throw new DataError(`${source}[${i}].${key}: a ${typeof value} is not a cell value (string, number, boolean or null)`);
      })
      .join(','),
  );
  return `${[header.map(csvCell).join(','), ...lines].join('\n')}\n`;
}

/** Index of `name` in the header, or a DataError naming the column, the setting and the file. */
export function columnIndex(table: Pick<RowSource, 'header' | 'source'>, name: string, setting: string): number {
  const i = table.header.indexOf(name);
  if (i < 0) {
    throw new DataError(`unknown column "${name}" in ${setting}; ${table.source} has columns: ${table.header.join(', ')}`);
  }
  return i;
}
