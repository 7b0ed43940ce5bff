/**
 * Imbalanced data as a churn model is trained on it: the Telco file with Keras's balanced class
 * weights and AUC, precision and recall in compile.metrics. The progress lines and summary.json
 * carry them, and the test AUC the run reports matches scikit-learn's roc_auc_score on the
 * probabilities `coordinator predict` writes for the same test rows, to 1e-3 (Keras's AUC counts
 * at 200 thresholds; scikit-learn ranks exactly). scikit-learn is Debian's python3-sklearn (CI
 * installs it and sets DPTRAIN_REQUIRE_SKLEARN=1); elsewhere, without it, that comparison is skipped.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runJob, type JobResult } from '../coordinator/job.js';
import { validateConfig } from '../shared/config/load.js';
import { COORDINATOR_BIN, HAVE_TELCO, ROOT, TELCO_CSV } from './helpers.js';

/** A Python with scikit-learn, or undefined. */
function sklearnPython(): string | undefined {
  for (const python of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(python, ['-c', 'import sklearn'], { encoding: 'utf8' });
    if (r.status === 0) return python;
  }
  if (process.env['DPTRAIN_REQUIRE_SKLEARN'] === '1') throw new Error('DPTRAIN_REQUIRE_SKLEARN=1 (CI installs python3-sklearn), and no python3 here imports sklearn');
  return undefined;
}
const PYTHON = sklearnPython();

describe.skipIf(!HAVE_TELCO)('Telco with class weights, AUC, precision and recall', { timeout: 600_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-auc-'));
  const out = join(dir, 'run');
  const lines: string[] = [];
  let run: JobResult;

  it('reports them in every epoch line and in summary.json', async () => {
    const config = validateConfig(
      {
        seed: 42,
        data: { path: TELCO_CSV, drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes', negative: 'No' }, testSize: 0.2, stratify: true, standardize: true },
        model: { layers: [{ units: 32, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
        compile: { optimizer: { name: 'adam', learningRate: 0.003 }, loss: 'binaryCrossentropy', metrics: ['accuracy', 'auc', 'precision', 'recall'] },
        // Keras's "balanced" weights for 26.6% churners: n / (2 * rows of the class)
        fit: { epochs: 4, batchSize: 64, validationSplit: 0.2, classWeight: { '0': 0.68, '1': 1.88 } },
        cluster: { threads: 2, backend: 'wasm' },
        metrics: { listen: false },
        output: { dir: out },
      },
      'telco-auc test',
    );
    run = await runJob(config, { handleSignals: false, log: (line) => lines.push(line) });
    const epochLines = lines.filter((l) => l.startsWith('Epoch '));
    expect(epochLines).toHaveLength(4);
    for (const line of epochLines) expect(line).toMatch(/ - loss: \d\.\d{4} - accuracy: \d\.\d{4} - auc: 0\.\d{4} - precision: 0\.\d{4} - recall: 0\.\d{4} - val_loss: .* - val_auc: 0\.\d{4} - val_precision: 0\.\d{4} - val_recall: 0\.\d{4} - /);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { test: Record<string, number> };
    expect(Object.keys(summary.test)).toEqual(['loss', 'accuracy', 'auc', 'precision', 'recall']);
    // a churn model worth the name, and the weights' trade: recall above precision
    expect(summary.test['auc']).toBeGreaterThan(0.8);
    expect(summary.test['recall']).toBeGreaterThan(summary.test['precision']!);
    expect(summary.test).toEqual(run.summary.test);
  });

  it.skipIf(!PYTHON)("the test AUC is scikit-learn's roc_auc_score of the saved model's predictions, to 1e-3", () => {
    const split = JSON.parse(readFileSync(join(out, 'split.json'), 'utf8')) as { test: number[] };
    const raw = readFileSync(TELCO_CSV, 'utf8').split(/\r?\n/);
    const testCsv = join(dir, 'test.csv');
    writeFileSync(testCsv, `${[raw[0], ...split.test.map((line) => raw[line - 1])].join('\n')}\n`);
    const predictions = join(dir, 'predictions.csv');
    const r = spawnSync(process.execPath, [COORDINATOR_BIN, 'predict', '--model', join(out, 'model'), '--data', testCsv, '--out', predictions, '--backend', 'wasm'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const churn = raw[0]!.split(',').indexOf('Churn');
    const labels = split.test.map((line) => (raw[line - 1]!.split(',')[churn] === 'Yes' ? 1 : 0));
    const rows = readFileSync(predictions, 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
    expect(rows).toHaveLength(labels.length);
    const probabilities = rows.map((c) => Number(c[2]));
    const predicted = rows.map((c) => (c[3] === 'Yes' ? 1 : 0));
    const script = [
      'import json, sys',
      'from sklearn.metrics import roc_auc_score, precision_score, recall_score',
      'd = json.load(sys.stdin)',
      "print(json.dumps({'auc': roc_auc_score(d['y'], d['p']), 'precision': precision_score(d['y'], d['c']), 'recall': recall_score(d['y'], d['c'])}))",
    ].join('\n');
    const py = spawnSync(PYTHON!, ['-c', script], { input: JSON.stringify({ y: labels, p: probabilities, c: predicted }), encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const sklearn = JSON.parse(py.stdout) as { auc: number; precision: number; recall: number };
    const test = run.summary.test;
    expect(Math.abs(test['auc']! - sklearn.auc), `dptrain ${test['auc']} vs scikit-learn ${sklearn.auc}`).toBeLessThan(1e-3);
    // the same decisions at 0.5, up to an output within float rounding of it
    expect(Math.abs(test['precision']! - sklearn.precision)).toBeLessThan(2e-3);
    expect(Math.abs(test['recall']! - sklearn.recall)).toBeLessThan(2e-3);
  });
});
