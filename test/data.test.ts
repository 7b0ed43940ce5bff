import { beforeAll, describe, expect, it } from 'vitest';
import { parseCsv, readCsv, recordsToCsv, tableRow } from '../shared/data/csv.js';
import { permuteRows, prepareData } from '../shared/data/dataset.js';
import { encode, fitPreprocessor } from '../shared/data/preprocess.js';
import { telcoDemoCsv, TELCO_COLUMNS } from '../shared/data/synthetic.js';
import { Rng } from '../shared/math/rng.js';
import { HAVE_TELCO, TELCO_CSV, TELCO_PREPROCESS } from './helpers.js';

/** The 45 columns pandas.get_dummies gives for the Telco features (numeric first, then dummies). */
const PANDAS_COLUMNS = [
  'SeniorCitizen', 'tenure', 'MonthlyCharges', 'TotalCharges',
  'gender_Female', 'gender_Male', 'Partner_No', 'Partner_Yes', 'Dependents_No', 'Dependents_Yes',
  'PhoneService_No', 'PhoneService_Yes', 'MultipleLines_No', 'MultipleLines_No phone service', 'MultipleLines_Yes',
  'InternetService_DSL', 'InternetService_Fiber optic', 'InternetService_No',
  'OnlineSecurity_No', 'OnlineSecurity_No internet service', 'OnlineSecurity_Yes',
  'OnlineBackup_No', 'OnlineBackup_No internet service', 'OnlineBackup_Yes',
  'DeviceProtection_No', 'DeviceProtection_No internet service', 'DeviceProtection_Yes',
  'TechSupport_No', 'TechSupport_No internet service', 'TechSupport_Yes',
  'StreamingTV_No', 'StreamingTV_No internet service', 'StreamingTV_Yes',
  'StreamingMovies_No', 'StreamingMovies_No internet service', 'StreamingMovies_Yes',
  'Contract_Month-to-month', 'Contract_One year', 'Contract_Two year',
  'PaperlessBilling_No', 'PaperlessBilling_Yes',
  'PaymentMethod_Bank transfer (automatic)', 'PaymentMethod_Credit card (automatic)',
  'PaymentMethod_Electronic check', 'PaymentMethod_Mailed check',
];

function churnRate(y: Float32Array, start: number, count: number): number {
  let s = 0;
  for (let i = start; i < start + count; i++) s += y[i]!;
  return s / count;
}

describe.skipIf(!HAVE_TELCO)('Telco Customer Churn file', () => {
  // read when the tests run, not when the file is collected (it may be absent: then they skip)
  let table: ReturnType<typeof readCsv>;
  beforeAll(() => {
    table = readCsv(TELCO_CSV);
  });

  it('gives 7032 rows x 45 features with the column names of pandas.get_dummies', () => {
    const pre = fitPreprocessor(table, TELCO_PREPROCESS);
    const enc = encode(table, pre);
    expect(table.rowCount).toBe(7043);
    expect(enc.rows).toBe(7032);
    expect(enc.features).toBe(45);
    expect(pre.features).toEqual(PANDAS_COLUMNS);
    expect(enc.rejected).toHaveLength(11);
    expect(enc.rejected.every((r) => /TotalCharges/.test(r.reason))).toBe(true);
    // first row: 7590-VHVEG, Female, 0, Yes, No, 1, No, No phone service, DSL, No, Yes, No, No, No, No, Month-to-month, Yes, Electronic check, 29.85, 29.85, No
    const row0 = Array.from(enc.x.subarray(0, 45));
    const named = Object.fromEntries(PANDAS_COLUMNS.map((c, i) => [c, row0[i]]));
    expect(named).toMatchObject({ SeniorCitizen: 0, tenure: 1, gender_Female: 1, gender_Male: 0, 'MultipleLines_No phone service': 1, 'PaymentMethod_Electronic check': 1 });
    expect(named['MonthlyCharges']).toBeCloseTo(29.85, 5);
    expect(row0.reduce((a, b) => a + b, 0)).toBeCloseTo(1 + 29.85 + 29.85 + 15, 3); // tenure + charges + 15 one-hot ones
    expect(enc.y[0]).toBe(0);
  });

  it('keeps the churn rate (26.6%) within 0.5 points in train and test with a stratified split', () => {
    const prepared = prepareData(table, TELCO_PREPROCESS, { testSize: 0.2, stratify: true, standardize: false, validationSplit: 0 }, 42);
    const { dataset } = prepared;
    const overall = churnRate(dataset.y, 0, dataset.train.count + dataset.test.count);
    expect(overall).toBeCloseTo(1869 / 7032, 6);
    expect(Math.abs(churnRate(dataset.y, dataset.train.start, dataset.train.count) - overall)).toBeLessThan(0.005);
    expect(Math.abs(churnRate(dataset.y, dataset.test.start, dataset.test.count) - overall)).toBeLessThan(0.005);
    expect(dataset.test.count).toBe(1407);
    expect(dataset.x.buffer).toBeInstanceOf(SharedArrayBuffer);
  });
});

describe('preprocessing', () => {
  const csv = 'id,color,size,amount,label\n1,red,1,2.5,yes\n2,blue,2, ,no\n3,"green, light",3,4,yes\n4,red,,5,no\n5,blue,5,6,no\n';

  it('coerces numeric columns, drops rows with missing values and one-hot encodes text like get_dummies', () => {
    const table = parseCsv(csv, 'inline.csv');
    const pre = fitPreprocessor(table, { drop: ['id'], numeric: ['amount'], categorical: [], label: { column: 'label', type: 'binary', positive: 'yes' } });
    expect(pre.features).toEqual(['size', 'amount', 'color_blue', 'color_green, light', 'color_red']);
    const enc = encode(table, pre);
    expect(enc.rows).toBe(3);
    expect(enc.lines).toEqual([2, 4, 6]);
    expect(Array.from(enc.x)).toEqual([1, 2.5, 0, 0, 1, 3, 4, 0, 1, 0, 5, 6, 1, 0, 0]);
    expect(Array.from(enc.y)).toEqual([1, 1, 0]);
    expect(enc.rejected.map((r) => r.line)).toEqual([3, 5]);
  });

  it('one-hot encodes a multi-class label over sorted classes', () => {
    const table = parseCsv('a,k\n1,cat\n2,dog\n3,ant\n', 'k.csv');
    const pre = fitPreprocessor(table, { drop: [], numeric: [], categorical: [], label: { column: 'k', type: 'categorical' } });
    expect(pre.label).toEqual({ column: 'k', type: 'categorical', classes: ['ant', 'cat', 'dog'] });
    expect(Array.from(encode(table, pre).y)).toEqual([0, 1, 0, 0, 0, 1, 1, 0, 0]);
  });

  it('reports unknown categories in new data by line instead of dropping them silently', () => {
    const train = parseCsv('c,y\na,1\nb,0\n', 't.csv');
    const pre = fitPreprocessor(train, { drop: [], numeric: [], categorical: [], label: { column: 'y', type: 'binary', positive: '1' } });
    const enc = encode(parseCsv('c,y\na,1\nz,0\n', 'new.csv'), pre);
    expect(enc.rows).toBe(1);
    expect(enc.rejected).toEqual([{ line: 3, reason: 'column "c" has unknown category "z"' }]);
  });

  it('standardises with train-set statistics only', () => {
    const rows = Array.from({ length: 100 }, (_, i) => `${i},${i % 2 ? 'a' : 'b'}`).join('\n');
    const table = parseCsv(`v,y\n${rows}\n`, 's.csv');
    const { dataset, preprocessor } = prepareData(
      table,
      { drop: [], numeric: [], categorical: [], label: { column: 'y', type: 'binary', positive: 'a' } },
      { testSize: 0.3, stratify: true, standardize: true, validationSplit: 0 },
      1,
    );
    const train = Array.from(dataset.x.subarray(0, dataset.train.count));
    const mean = train.reduce((a, b) => a + b, 0) / train.length;
    const sd = Math.sqrt(train.reduce((a, b) => a + (b - mean) ** 2, 0) / train.length);
    expect(mean).toBeCloseTo(0, 5);
    expect(sd).toBeCloseTo(1, 5);
    expect(preprocessor.scaler?.mean).toHaveLength(1);
  });
});

describe('bad data', () => {
  const opts = { drop: [], numeric: [], categorical: [], label: { column: 'y', type: 'binary' as const, positive: 'yes', negative: 'no' } };
  it('names an unknown column, the setting and the file', () => {
    const table = parseCsv('a,y\n1,yes\n', 'f.csv');
    expect(() => fitPreprocessor(table, { ...opts, drop: ['nope'] })).toThrow('unknown column "nope" in data.drop; f.csv has columns: a, y');
    expect(() => fitPreprocessor(table, { ...opts, label: { ...opts.label, column: 'Churn' } })).toThrow('unknown column "Churn" in data.label.column');
  });
  it('names an unexpected label value and its line', () => {
    const table = parseCsv('a,y\n1,yes\n2,no\n3,maybe\n', 'f.csv');
    expect(() => fitPreprocessor(table, opts)).toThrow('label column "y" has unexpected value "maybe" on line 4 of f.csv (expected "yes" or "no")');
  });
  it('says when no rows are left after dropping missing values', () => {
    const table = parseCsv('a,y\n,yes\n ,no\n', 'f.csv');
    expect(() => fitPreprocessor(table, opts)).toThrow('no rows left in f.csv after dropping rows with missing values (2 rows read)');
  });
  it('names a missing file', () => {
    expect(() => readCsv('/nonexistent/data.csv')).toThrow('cannot read data file /nonexistent/data.csv: no such file');
  });
  it('names a malformed CSV', () => {
    expect(() => parseCsv('a,b\n1,2,3\n', 'bad.csv')).toThrow(/^bad\.csv: cannot parse CSV/);
  });
});

describe('laying the rows out in place', () => {
  it('permuteRows moves row order[i] to row i for any permutation', () => {
    const rng = new Rng(5);
    for (const rows of [1, 2, 7, 100]) {
      const features = 3;
      const x = Float32Array.from({ length: rows * features }, (_, i) => i);
      const order = Int32Array.from({ length: rows }, (_, i) => i);
      for (let i = rows - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const want = Float32Array.from({ length: rows * features }, (_, i) => order[Math.floor(i / features)]! * features + (i % features));
      permuteRows(x, features, order);
      expect(x).toEqual(want);
    }
  });

  it("every CSV row of the data set is its line's encoded row, standardized with the training rows' statistics", () => {
    const table = parseCsv(telcoDemoCsv(3000, 9), 'demo');
    const options = { testSize: 0.2, stratify: true, validationSplit: 0.1 };
    const plain = prepareData(table, TELCO_PREPROCESS, { ...options, standardize: false }, 3);
    const scaled = prepareData(table, TELCO_PREPROCESS, { ...options, standardize: true }, 3);
    const enc = encode(table, fitPreprocessor(table, TELCO_PREPROCESS));
    const rowOfLine = new Map(enc.lines.map((line, r) => [line, r]));
    const { features } = enc;
    const lines = [...plain.lines.train, ...plain.lines.val, ...plain.lines.test];
    expect(lines.length).toBe(enc.rows);
    lines.forEach((line, i) => {
      const r = rowOfLine.get(line)!;
      expect(plain.dataset.x.subarray(i * features, (i + 1) * features)).toEqual(enc.x.subarray(r * features, (r + 1) * features));
      expect(plain.dataset.y[i]).toBe(enc.y[r]);
    });
    // the scaler's statistics are those of the training and validation rows (the split before validation is cut)
    const { mean, std } = scaled.preprocessor.scaler!;
    const trainRows = plain.dataset.train.count + plain.dataset.val.count;
    for (const j of [0, 1, 2]) {
      let sum = 0;
      for (let i = 0; i < trainRows; i++) sum += plain.dataset.x[i * features + j]!;
      expect(mean[j]).toBeCloseTo(sum / trainRows, 4);
      expect(scaled.dataset.x[j]).toBeCloseTo((plain.dataset.x[j]! - mean[j]!) / std[j]!, 4);
    }
  });
});

describe('demo data', () => {
  it('has the Telco schema, is seeded, and about a quarter churn', () => {
    const text = telcoDemoCsv(2000, 7);
    expect(text).toBe(telcoDemoCsv(2000, 7));
    const table = parseCsv(text, 'demo');
    expect(table.header).toEqual([...TELCO_COLUMNS]);
    const pre = fitPreprocessor(table, TELCO_PREPROCESS);
    expect(pre.features).toEqual(PANDAS_COLUMNS);
    const enc = encode(table, pre);
    const rate = enc.y.reduce((a, b) => a + b, 0) / enc.rows;
    expect(rate).toBeGreaterThan(0.18);
    expect(rate).toBeLessThan(0.35);
  });
});

describe('rows given as objects', () => {
  it('become CSV that reads back cell for cell: columns in first-seen order, missing ones blank, quoting', () => {
    const csv = recordsToCsv(
      [
        { id: 'a', text: 'plain', n: 1.5, flag: true },
        { id: 'b', text: 'with, comma and "quotes"\nand a newline', n: null, extra: 'x' },
        { id: 'c', n: Number.NaN, flag: false, text: undefined },
      ],
      'rows',
    );
    const table = parseCsv(csv, 'rows');
    expect(table.header).toEqual(['id', 'text', 'n', 'flag', 'extra']);
    expect(Array.from({ length: table.rowCount }, (_, r) => tableRow(table, r))).toEqual([
      ['a', 'plain', '1.5', 'true', ''],
      ['b', 'with, comma and "quotes"\nand a newline', '', '', 'x'],
      ['c', '', '', 'false', ''],
    ]);
  });

  it('refuse what is not a row or a cell value, naming the row and column', () => {
    expect(() => recordsToCsv([], 'rows')).toThrow('rows: no rows (an array of objects, one per row, is expected)');
    expect(() => recordsToCsv([{ a: 1 }, [1, 2] as never], 'rows')).toThrow('rows[1]: not an object (column name -> value)');
    expect(() => recordsToCsv([{ a: 1 }, { a: { nested: 1 } as never }], 'rows')).toThrow('rows[1].a: a object is not a cell value');
    expect(() => recordsToCsv([{ a: Infinity }], 'rows')).toThrow('rows[0].a: Infinity is not a value a model can take');
  });
});
