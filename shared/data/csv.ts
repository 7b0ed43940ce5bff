/**
 * Reads a CSV file into a table of strings with csv-parse (RFC 4180: quotes, embedded commas
 * and newlines). Keeps each record's line number so errors can point at it. Several files (a
 * pattern or brace range, as for shards) are read as one table: the same columns in each (in
 * any order), rows in file order, a row's line counted through the files in order.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { DataError } from '../errors.js';
import { expandPaths } from './paths.js';

export interface Table {
  /** Where the table came from (a path, or a name like "demo data"), for messages. */
  readonly source: string;
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** 1-based line number in the source of each row (several files: counted through them in order, headers included). */
  readonly lines: readonly number[];
  /** Where the table is several files: each file, and how many lines come before its first (linePlace). */
  readonly parts?: readonly { readonly path: string; readonly lineOffset: number }[];
}

/** Where line `line` of a table is, for messages: "line 12", or "part-002.csv line 12" where the table is several files. */
export function linePlace(table: Pick<Table, 'parts'>, line: number): string {
  const parts = table.parts;
  if (!parts) return `line ${line}`;
  let part = parts[0]!;
  for (const p of parts) if (p.lineOffset < line) part = p;
  return `${part.path} line ${line - part.lineOffset}`;
}

export function parseCsv(text: string, source: string): Table {
  // Each record's cells, and its line number. Repeated cell values (categories, labels) share one
  // string, and no per-record info object is kept: the table costs a few bytes of pointers per cell
  // instead of a string and an object per cell and row (bench/data-memory.ts).
  const rows: string[][] = [];
  const lines: number[] = [];
  const shared = new Map<string, string>();
  const intern = (cell: string): string => {
    const known = shared.get(cell);
    if (known !== undefined) return known;
    if (shared.size < INTERNED_MAX && cell.length <= INTERNED_LENGTH) shared.set(cell, cell);
    return cell;
  };
  try {
    parse(text, {
      bom: true,
      skip_empty_lines: true,
      relax_column_count: false,
      on_record: (record: string[], context: { lines: number }) => {
        for (let i = 0; i < record.length; i++) record[i] = intern(record[i]!);
        rows.push(record);
        lines.push(context.lines);
        return null;
      },
    });
  } catch (err) {
    throw new DataError(`${source}: cannot parse CSV: ${(err as Error).message}`);
  }
  const head = rows.shift();
  lines.shift();
  if (!head) throw new DataError(`${source}: the file is empty (no header row)`);
  const header = head.map((h) => h.trim());
  const seen = new Set<string>();
  for (const name of header) {
    if (seen.has(name)) throw new DataError(`${source}: column "${name}" appears twice in the header`);
    seen.add(name);
  }
  return { source, header, rows, lines };
}

/** Cell values shared across rows: at most this many distinct ones, each at most this long. */
const INTERNED_MAX = 1 << 16;
const INTERNED_LENGTH = 64;

/** The CSV data of `path`: one file, or (a `*` pattern or a brace range) several read as one table. */
export function readCsvPath(path: string): Table {
  const paths = expandPaths(path);
  return paths.length === 1 && paths[0] === path ? readCsv(path) : readCsvFiles(paths, path);
}

/**
 * Several CSV files as one table. Each must have the first file's columns (in any order: its
 * cells are put in the first file's order); another set is an error naming the file and the
 * columns that differ.
 */
export function readCsvFiles(paths: readonly string[], source: string): Table {
  const rows: (readonly string[])[] = [];
  const lines: number[] = [];
  const parts: { path: string; lineOffset: number }[] = [];
  let header: readonly string[] | undefined;
  let lineOffset = 0;
  for (const path of paths) {
    const { text, table } = readOne(path);
    parts.push({ path, lineOffset });
    header ??= table.header;
    const order = header.map((name) => table.header.indexOf(name));
    const missing = header.filter((_, k) => order[k]! < 0);
    const extra = table.header.filter((name) => !header!.includes(name));
    if (missing.length > 0 || extra.length > 0) {
      const list = (names: string[]): string => names.map((n) => `"${n}"`).join(', ');
      throw new DataError(`${path}: its columns differ from ${paths[0]}'s (${[missing.length > 0 ? `without ${list(missing)}` : '', extra.length > 0 ? `with ${list(extra)} besides` : ''].filter(Boolean).join('; ')}): every file of ${source} needs the same columns`);
    }
    const same = order.every((i, k) => i === k);
    for (let r = 0; r < table.rows.length; r++) {
      const row = table.rows[r]!;
      rows.push(same ? row : order.map((i) => row[i]!));
      lines.push(table.lines[r]! + lineOffset);
    }
    lineOffset += lineCount(text);
  }
  return { source: `${source} (${paths.length} files)`, header: header!, rows, lines, parts };
}

/** Lines in a file's text (a last line without a newline counts). */
function lineCount(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return text.length > 0 && !text.endsWith('\n') ? n + 1 : n;
}

export function readCsv(path: string): Table {
  return readOne(path).table;
}

function readOne(path: string): { text: string; table: Table } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new DataError(`cannot read data file ${path}: ${why}`);
  }
  return { text, table: parseCsv(text, path) };
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
export function columnIndex(table: Table, name: string, setting: string): number {
  const i = table.header.indexOf(name);
  if (i < 0) {
    throw new DataError(`unknown column "${name}" in ${setting}; ${table.source} has columns: ${table.header.join(', ')}`);
  }
  return i;
}
