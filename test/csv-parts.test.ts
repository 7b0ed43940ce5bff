/**
 * A CSV data set in several files (`data.path: parts/data-*.csv` or a brace range): read as one
 * table in file order, columns matched by name (a file may order them otherwise), the same
 * prepared data and weights as the one file they were cut from; a file with another column set
 * is refused naming it and the columns; a bad row is named by its file and line there.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readJobData } from '../coordinator/job-data.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { linePlace, readCsvPath, tableRow, type Table } from '../shared/data/csv.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { trainOnLanes } from './thread-runs.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const config = (path: string) =>
  validateConfig(
    {
      seed: 4,
      data: { path, drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, testSize: 0.2, standardize: true },
      model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
      compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'binaryCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 2, batchSize: 32 },
      cluster: { backend: 'wasm', threads: 1 },
    },
    'test',
  );

/** The demo data as one file and as three parts (the second with its columns in reverse order); the folder. */
function parts(): { dir: string; whole: string; lines: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-csv-parts-'));
  const text = telcoDemoCsv(600, 3);
  const whole = join(dir, 'whole.csv');
  writeFileSync(whole, text);
  const [header, ...rows] = text.trim().split('\n');
  mkdirSync(join(dir, 'parts'));
  const cuts = [0, 150, 420, rows.length];
  for (let k = 0; k < 3; k++) {
    const slice = rows.slice(cuts[k], cuts[k + 1]);
    const reverse = (line: string): string => line.split(',').reverse().join(',');
    writeFileSync(join(dir, 'parts', `data-${k}.csv`), `${[k === 1 ? reverse(header!) : header!, ...(k === 1 ? slice.map(reverse) : slice)].join('\n')}\n`);
  }
  return { dir, whole, lines: rows };
}

describe('CSV data in several files', () => {
  it('reads as the one file they were cut from: the same prepared rows and weights; lines counted through the files', async () => {
    const { dir, whole } = parts();
    const table = readCsvPath(join(dir, 'parts', 'data-*.csv'));
    expect(table.source).toBe(`${join(dir, 'parts', 'data-*.csv')} (3 files)`);
    expect(tableRows(table)).toEqual(tableRows(readCsvPath(whole)));
    // part 1 has 150 rows after its header (lines 2-151); part 2 starts after line 151
    expect(linePlace(table, table.lines[150]!)).toBe(`${join(dir, 'parts', 'data-1.csv')} line 2`);
    expect(linePlace(readCsvPath(whole), 7)).toBe('line 7');
    const fromParts = readJobData(config(join(dir, 'parts', 'data-{0..2}.csv')));
    const fromWhole = readJobData(config(whole));
    expect(fromParts.dataset.x).toEqual(fromWhole.dataset.x);
    expect(fromParts.dataset.y).toEqual(fromWhole.dataset.y);
    const [a, b] = [await trainOnLanes(config(join(dir, 'parts', 'data-*.csv')), fromParts.dataset, 'in-process'), await trainOnLanes(config(whole), fromWhole.dataset, 'in-process')];
    expect(a.weights).toEqual(b.weights);
  }, 120_000);

  it('refuses a file with another column set, naming it and the columns; names a bad row by its file and line', () => {
    const { dir, lines } = parts();
    const header = 'customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,StreamingMovies,Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn';
    const third = join(dir, 'parts', 'data-2.csv');
    writeFileSync(third, `${header.replace(',gender', ',sex')}\n${lines.slice(420).join('\n')}\n`);
    expect(() => readJobData(config(join(dir, 'parts', 'data-*.csv')))).toThrow(`${third}: its columns differ from ${join(dir, 'parts', 'data-0.csv')}'s (without "gender"; with "sex" besides): every file of ${join(dir, 'parts', 'data-*.csv')} needs the same columns`);
    const bad = lines.slice(420);
    // a stray text in a column of numbers (MonthlyCharges): the row is dropped, and the warning says where it was
    bad[4] = bad[4]!.replace(/,[\d.]+,([\d.]+),(Yes|No)$/, ',abc,$1,$2');
    writeFileSync(third, `${header}\n${bad.join('\n')}\n`);
    expect(readJobData(config(join(dir, 'parts', 'data-*.csv'))).warnings.join('\n')).toContain(`${third} line 6: "abc"`);
  });
});

function tableRows(table: Table): string[][] {
  return Array.from({ length: table.rowCount }, (_, r) => tableRow(table, r));
}
