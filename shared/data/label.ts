/** The label column: what it may say (data.label) and the mapping fitted on the data. */
import { DataError } from '../errors.js';
import { linePlace, type RowSource } from './csv.js';

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

/**
 * The label's mapping from the values of the rows used: binary (positive / negative), categorical
 * (sorted classes) or numeric. `other`: the first used row whose label is neither of a binary
 * label's values, where both are given (data.label.negative).
 */
export function fitLabel(rows: Pick<RowSource, 'source' | 'parts'>, options: LabelOptions, values: ReadonlySet<string>, other?: { readonly line: number; readonly value: string }): LabelTransform {
  if (options.type === 'numeric') return { column: options.column, type: 'numeric' };
  if (options.type === 'categorical') {
    if (values.size < 2) throw new DataError(`label column "${options.column}" has ${values.size} class(es) in ${rows.source}; need at least 2`);
    return { column: options.column, type: 'categorical', classes: sortStrings(values) };
  }
  if (options.positive === undefined) throw new DataError('data.label.positive is required for a binary label');
  const positive = options.positive;
  let negative = options.negative;
  if (negative === undefined) {
    const others = [...values].filter((v) => v !== positive);
    if (others.length !== 1) {
      throw new DataError(
        `label column "${options.column}" in ${rows.source} has values ${sortStrings(values).map((v) => JSON.stringify(v)).join(', ')}; ` +
          `a binary label needs exactly "${positive}" and one other value (set data.label.negative)`,
      );
    }
    negative = others[0]!;
  }
  if (other) {
    throw new DataError(
      `label column "${options.column}" has unexpected value ${JSON.stringify(other.value)} on ${linePlace(rows, other.line)} of ${rows.source} (expected "${positive}" or "${negative}")`,
    );
  }
  if (!values.has(positive)) throw new DataError(`label column "${options.column}" in ${rows.source} never has the positive value "${positive}"`);
  return { column: options.column, type: 'binary', positive, negative };
}
