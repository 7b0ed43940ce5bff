/**
 * Reads a CSV file into a table of strings with csv-parse (RFC 4180: quotes, embedded commas
 * and newlines). Keeps each record's line number so errors can point at it.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { DataError } from '../errors.js';

export interface Table {
  /** Where the table came from (a path, or a name like "demo data"), for messages. */
  readonly source: string;
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** 1-based line number in the source of each row. */
  readonly lines: readonly number[];
}

export function parseCsv(text: string, source: string): Table {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, { info: true, bom: true, skip_empty_lines: true, relax_column_count: false }) as unknown as typeof records;
  } catch (err) {
    throw new DataError(`${source}: cannot parse CSV: ${(err as Error).message}`);
  }
  const [head, ...body] = records;
  if (!head) throw new DataError(`${source}: the file is empty (no header row)`);
  const header = head.record.map((h) => h.trim());
  const seen = new Set<string>();
  for (const name of header) {
    if (seen.has(name)) throw new DataError(`${source}: column "${name}" appears twice in the header`);
    seen.add(name);
  }
  return {
    source,
    header,
    rows: body.map((r) => r.record),
    lines: body.map((r) => r.info.lines),
  };
}

export function readCsv(path: string): Table {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new DataError(`cannot read data file ${path}: ${why}`);
  }
  return parseCsv(text, path);
}

/** Index of `name` in the header, or a DataError naming the column, the setting and the file. */
export function columnIndex(table: Table, name: string, setting: string): number {
  const i = table.header.indexOf(name);
  if (i < 0) {
    throw new DataError(`unknown column "${name}" in ${setting}; ${table.source} has columns: ${table.header.join(', ')}`);
  }
  return i;
}
