/**
 * Bad data must not pass silently, nor change the features silently: a column of numbers with a
 * stray value, a column that loses many rows to missing values, and an id column about to be
 * one-hot encoded. Generated Telco-schema
 * rows (the real file's columns), so these run everywhere.
 */
import { describe, expect, it } from 'vitest';
import { parseCsv } from '../shared/data/csv.js';
import { prepareData } from '../shared/data/dataset.js';
import { fitPreprocessor, type PreprocessOptions } from '../shared/data/preprocess.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { TELCO_PREPROCESS } from './helpers.js';

const SPLIT = { testSize: 0.2, stratify: true, standardize: false, validationSplit: 0.2 };

/** The demo rows with `edit` applied to the cells of `column` (row index from 0). */
function telcoWith(column: string, edit: (value: string, row: number) => string): string {
  const [header, ...rows] = telcoDemoCsv(2000, 5).trim().split('\n');
  const ci = header!.split(',').indexOf(column);
  return [header, ...rows.map((line, r) => line.split(',').map((v, i) => (i === ci ? edit(v, r) : v)).join(','))].join('\n');
}

function fit(csv: string, options: PreprocessOptions = TELCO_PREPROCESS): { warnings: string[]; features: number } {
  const warnings: string[] = [];
  const pre = fitPreprocessor(parseCsv(csv, 'churn.csv'), options, (w) => warnings.push(w));
  return { warnings, features: pre.features.length };
}

describe('data checks', () => {
  it('clean data: 45 features, no warning', () => {
    expect(fit(telcoDemoCsv(2000, 5))).toEqual({ warnings: [], features: 45 });
  });

  it('a stray value in a column of numbers: the column stays numeric (45 features), the row is dropped and reported with its line and value', () => {
    const { warnings, features } = fit(telcoWith('tenure', (v, r) => (r === 3 ? 'abc' : v)));
    expect(features).toBe(45);
    expect(warnings).toEqual([
      'churn.csv: column "tenure" holds numbers in 1999 of 2000 rows but not in 1 (line 5: "abc"): that row is dropped (data.strayValues: error refuses such a file; data.categorical: [tenure] encodes the column as text)',
    ]);
    const prepared = prepareData(parseCsv(telcoWith('tenure', (v, r) => (r === 3 ? 'abc' : v)), 'churn.csv'), TELCO_PREPROCESS, SPLIT, 1);
    expect(prepared.rowsDropped).toBe(prepareData(parseCsv(telcoDemoCsv(2000, 5), 'churn.csv'), TELCO_PREPROCESS, SPLIT, 1).rowsDropped + 1);
    expect(prepared.dataset.features).toBe(45);
  });

  it('"n/a" in MonthlyCharges is a stray value with its line, not an id column; data.strayValues: error refuses the file', () => {
    const csv = telcoWith('MonthlyCharges', (v, r) => (r === 10 || r === 20 ? 'n/a' : v));
    const { warnings, features } = fit(csv);
    expect(features).toBe(45);
    expect(warnings).toEqual([expect.stringContaining('column "MonthlyCharges" holds numbers in 1998 of 2000 rows but not in 2 (line 12: "n/a", line 22: "n/a"): those rows are dropped')]);
    expect(() => fit(csv, { ...TELCO_PREPROCESS, strayValues: 'error' })).toThrow(
      'churn.csv: column "MonthlyCharges" holds numbers in 1998 of 2000 rows but not in 2 (line 12: "n/a", line 22: "n/a"); fix those rows, set data.strayValues: drop to train without them, or list the column in data.categorical to encode it as text',
    );
  });

  it('data.categorical keeps a column of numbers with a stray value as text, as asked', () => {
    const { warnings, features } = fit(telcoWith('tenure', (v, r) => (r === 3 ? 'abc' : v)), { ...TELCO_PREPROCESS, categorical: ['tenure'] });
    expect(warnings).toEqual([]);
    expect(features).toBeGreaterThan(45);
  });

  it('listed in data.numeric, a column that loses many rows is named with its share and first lines', () => {
    const csv = telcoWith('tenure', (v, r) => (r % 2 === 0 ? 'abc' : v));
    const { warnings } = fit(csv, { ...TELCO_PREPROCESS, numeric: ['TotalCharges', 'tenure'] });
    expect(warnings).toEqual([expect.stringMatching(/^churn\.csv: 1000 of 2000 rows \(50%\) are dropped for a missing or non-numeric value in column "tenure" \(lines 2, 4, 6, \.\.\.\)/)]);
    // and the prepared data carries it for the job to print
    expect(prepareData(parseCsv(csv, 'churn.csv'), { ...TELCO_PREPROCESS, numeric: ['TotalCharges', 'tenure'] }, SPLIT, 1).warnings).toHaveLength(1);
  });

  it('a few blanks (under 5% of rows) are dropped without a warning', () => {
    expect(fit(telcoWith('TotalCharges', (v, r) => (r % 50 === 0 ? ' ' : v))).warnings).toEqual([]);
  });

  it('refuses to one-hot an id column, saying how to drop it or raise the limit', () => {
    expect(() => fit(telcoDemoCsv(2000, 5), { ...TELCO_PREPROCESS, drop: [] })).toThrow(
      /churn\.csv: column "customerID" has 199\d distinct values; one-hot encoding it would add 199\d features \(data\.maxCategories is 100\)\. An id or free-text column: add it to data\.drop.*raise data\.maxCategories/,
    );
    expect(fit(telcoDemoCsv(2000, 5), { ...TELCO_PREPROCESS, drop: [], maxCategories: 5000 }).features).toBeGreaterThan(2000);
  });
});
