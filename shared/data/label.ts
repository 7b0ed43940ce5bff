/** The label column: what it may say (data.label) and the mapping fitted on the data. */
import { DataError } from '../errors.js';
import { columnIndex, linePlace, type Table } from './csv.js';

export interface LabelOptions {
  readonly column: string;
  /** binary: positive -> 1, negative -> 0; categorical: one-hot over sorted classes; numeric: as is. */
  readonly type: 'binary' | 'categorical' | 'numeric';
  readonly positive?: string | undefined;
  readonly negative?: string | undefined;
}

export type LabelTransform =
  | { readonly column: string; readonly type: 'binary'; readonly positive: string; readonly negative: string }
  | { readonly column: string; readonly type: 'categorical'; readonly classes: readonly string[] }
  | { readonly column: string; readonly type: 'numeric' };

export function sortStrings(values: Iterable<string>): string[] {
  // Python sorts str by code point; for the BMP this equals JS's default UTF-16 order.
  return [...values].sort();
}

export function labelOutputs(label: LabelTransform): number {
  return label.type === 'categorical' ? label.classes.length : 1;
}

/** The label's mapping, fitted on the rows used: binary (positive / negative), categorical (sorted classes) or numeric. */
export function fitLabel(table: Table, options: LabelOptions, rowsUsed: number[]): LabelTransform {
  const li = columnIndex(table, options.column, 'data.label.column');
  const values = new Set<string>();
  for (const r of rowsUsed) values.add(table.cell(r, li));
  if (options.type === 'numeric') return { column: options.column, type: 'numeric' };
  if (options.type === 'categorical') {
    if (values.size < 2) throw new DataError(`label column "${options.column}" has ${values.size} class(es) in ${table.source}; need at least 2`);
    return { column: options.column, type: 'categorical', classes: sortStrings(values) };
  }
  if (options.positive === undefined) throw new DataError('data.label.positive is required for a binary label');
  const positive = options.positive;
  let negative = options.negative;
  if (negative === undefined) {
    const others = [...values].filter((v) => v !== positive);
    if (others.length !== 1) {
      throw new DataError(
        `label column "${options.column}" in ${table.source} has values ${sortStrings(values).map((v) => JSON.stringify(v)).join(', ')}; ` +
          `a binary label needs exactly "${positive}" and one other value (set data.label.negative)`,
      );
    }
    negative = others[0]!;
  }
  for (const r of rowsUsed) {
    const v = table.cell(r, li);
    if (v !== positive && v !== negative) {
      throw new DataError(
        `label column "${options.column}" has unexpected value ${JSON.stringify(v)} on ${linePlace(table, table.lines[r]!)} of ${table.source} (expected "${positive}" or "${negative}")`,
      );
    }
  }
  if (!values.has(positive)) throw new DataError(`label column "${options.column}" in ${table.source} never has the positive value "${positive}"`);
  return { column: options.column, type: 'binary', positive, negative };
}
