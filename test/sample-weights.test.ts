/**
 * Keras's sample_weight (data.sampleWeight, a CSV column): each engine's gradient is the
 * weighted sum of the rows' own gradients over the rows, in float64, with class weights on top;
 * weights of 1 give the bits of no weights; two threads and a worker node give one lane's model;
 * the weights reach the checkpoint's fingerprint; bad weights are errors naming the key and line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { BatchEngine } from '../compute/engine.js';
import { DenseGradientEngine } from '../compute/dense-gradient.js';
import { TapeGradientEngine } from '../compute/gradient.js';
import { evaluateCsv, loadSavedModel, train, type JobConfigInput } from '../index.js';
import { MicroBatchEngine } from '../compute/micro-batches.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { parseCsv } from '../shared/data/csv.js';
import { prepareData } from '../shared/data/dataset.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { Rng } from '../shared/math/rng.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { decodeMessage, encodeMessage } from '../shared/protocol/codec.js';
import type { Message, ShardMessage, StepMessage } from '../shared/protocol/schemas.js';
import { ShardStore } from '../worker/shard-store.js';
import { jobFolder, maxAbsDiff, readRunWeights, runWithOneNode, trackProcesses } from './cluster-helpers.js';

const track = trackProcesses();

beforeAll(async () => {
  await initBackend('cpu');
});

const spec: ModelSpec = {
  inputDim: 5,
  layers: [
    { units: 4, activation: 'tanh', useBias: true },
    { units: 1, activation: 'sigmoid', useBias: true },
  ],
  loss: 'binaryCrossentropy',
  metrics: ['accuracy'],
};

/** sum_i w_i c_i g_i / n in float64, g_i each row's own gradient through the same engine without weights (c_i: its class weight). */
async function reference(make: (s: ModelSpec) => BatchEngine, s: ModelSpec, w: Float32Array, x: Float32Array, y: Float32Array, weights: Float32Array): Promise<Float64Array> {
  const n = weights.length;
  const { classWeights, ...plain } = s;
  const engine = make(plain);
  engine.setWeights(w);
  const sum = new Float64Array(w.length);
  for (let r = 0; r < n; r++) {
    const g = (await engine.gradient(x.subarray(r * 5, (r + 1) * 5), y.subarray(r, r + 1), 1)).gradient;
    const c = classWeights ? classWeights[y[r]!]! : 1;
    for (let i = 0; i < g.length; i++) sum[i]! += (weights[r]! * c * g[i]!) / n;
  }
  engine.dispose();
  return sum;
}

describe('sample weights in the engines', () => {
  const rng = new Rng(9);
  const n = 24;
  const x = Float32Array.from({ length: n * 5 }, () => rng.next() * 2 - 1);
  const y = Float32Array.from({ length: n }, () => (rng.next() < 0.4 ? 1 : 0));
  const weights = Float32Array.from({ length: n }, (_, i) => [0, 0.5, 1, 3][i % 4]!);
  const rows = { step: 0, rows: Int32Array.from({ length: n }, (_, i) => i), weights };

  for (const [name, make] of [
    ['dense', (s: ModelSpec) => new DenseGradientEngine(s)],
    ['tape', (s: ModelSpec) => new TapeGradientEngine(s)],
  ] as const) {
    for (const withClasses of [false, true]) {
      it(`${name}${withClasses ? ', with class weights' : ''}: the weighted mean of the rows' own gradients`, async () => {
        const s: ModelSpec = withClasses ? { ...spec, classWeights: [0.7, 2] } : spec;
        const w = initialWeights(weightLayout(s), new Rng(2));
        const engine = make(s);
        engine.setWeights(w);
        const got = (await engine.gradient(x, y, n, undefined, undefined, rows)).gradient;
        engine.dispose();
        const want = await reference(make, s, w, x, y, weights);
        let worst = 0;
        let scale = 0;
        got.forEach((v, i) => {
          worst = Math.max(worst, Math.abs(v - want[i]!));
          scale = Math.max(scale, Math.abs(want[i]!));
        });
        expect(worst / scale).toBeLessThan(1e-5);
      });
    }

    it(`${name}: an evaluation's loss sum is the weighted sum of the rows' own losses; metrics stay unweighted`, async () => {
      const s: ModelSpec = { ...spec, classWeights: [0.7, 2] };
      const engine = make(s);
      engine.setWeights(initialWeights(weightLayout(s), new Rng(2)));
      const weighted = await engine.evaluate(x, y, n, weights);
      const plain = await engine.evaluate(x, y, n);
      let want = 0;
      for (let r = 0; r < n; r++) want += weights[r]! * (await engine.evaluate(x.subarray(r * 5, (r + 1) * 5), y.subarray(r, r + 1), 1)).lossSum;
      engine.dispose();
      // class weights are training's only, as in Keras
      expect(Math.abs(weighted.lossSum - want) / want).toBeLessThan(1e-5);
      expect(weighted.metricSums).toEqual(plain.metricSums);
      expect(weighted.count).toBe(n);
    });
  }

  for (const [name, make] of [
    ['dense', (s: ModelSpec) => new DenseGradientEngine(s)],
    ['tape', (s: ModelSpec) => new TapeGradientEngine(s)],
    ['micro-batches', (s: ModelSpec) => new MicroBatchEngine(new DenseGradientEngine(s), 5)],
  ] as const) {
    it(`${name}: weighted metrics weigh each row by its sample weight, times its class weight in training only`, async () => {
      const s: ModelSpec = { ...spec, classWeights: [0.7, 2], weightedMetrics: ['accuracy'] };
      const engine = make(s);
      engine.setWeights(initialWeights(weightLayout(s), new Rng(2)));
      // each row's own accuracy (0 or 1), from the same engine one row at a time
      const right: number[] = [];
      for (let r = 0; r < n; r++) right.push((await engine.evaluate(x.subarray(r * 5, (r + 1) * 5), y.subarray(r, r + 1), 1)).metricSums[0]!);
      const mean = (w: (r: number) => number): [number, number] => [right.reduce((a, v, r) => a + w(r) * v, 0), right.reduce((a, _v, r) => a + w(r), 0)];
      const trained = await engine.gradient(x, y, n, undefined, undefined, rows);
      const evaluated = await engine.evaluate(x, y, n, weights);
      engine.dispose();
      const plain = right.reduce((a, v) => a + v, 0);
      // [accuracy sum, weighted: sum of w x accuracy, sum of w] (micro-batches add in another order)
      const close = (got: readonly number[], want: number[]): void => want.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 12));
      close(trained.metricSums, [plain, ...mean((r) => weights[r]! * [0.7, 2][y[r]!]!)]);
      close(evaluated.metricSums, [plain, ...mean((r) => weights[r]!)]);
      expect(trained.metricSums[1]).not.toBeCloseTo(evaluated.metricSums[1]!, 3);
      expect(plain).toBeGreaterThan(0);
    });
  }

  it('micro-batches: an evaluation in micro-batches takes each one its own weights', async () => {
    const w = initialWeights(weightLayout(spec), new Rng(2));
    const whole = new DenseGradientEngine(spec);
    whole.setWeights(w);
    const parts = new MicroBatchEngine(new DenseGradientEngine(spec), 5);
    parts.setWeights(w);
    const a = await whole.evaluate(x, y, n, weights);
    const b = await parts.evaluate(x, y, n, weights);
    expect(Math.abs(a.lossSum - b.lossSum) / a.lossSum).toBeLessThan(1e-6);
    whole.dispose();
    parts.dispose();
  });
});

/** Beside the job's demo CSV, `${name}.csv` with a weight column for each entry: all `constant`, or (undefined) 1 + (tenure mod 3); their paths by name. */
function weightedCsvs<K extends string>(job: { dir: string; dataFile: string }, files: Record<K, number | undefined>): Record<K, string> {
  const csv = readFileSync(job.dataFile, 'utf8');
  const paths = {} as Record<K, string>;
  for (const name of Object.keys(files) as K[]) {
    paths[name] = `${job.dir}/${name}.csv`;
    writeFileSync(paths[name], withWeights(csv, files[name]));
  }
  return paths;
}

/** The demo-schema CSV with a weight column: 1 + (tenure mod 3), or all `constant`. */
function withWeights(csv: string, constant?: number): string {
  const [head, ...rows] = csv.trim().split('\n');
  const tenure = head!.split(',').indexOf('tenure');
  return [`${head},w`, ...rows.map((r) => `${r},${constant ?? 1 + (Number(r.split(',')[tenure]) % 3)}`)].join('\n') + '\n';
}

describe('sample weights on the wire and in a node\'s shard', () => {
  it('shard and step messages carry them (absent without them); a step\'s held rows take theirs, inline rows bring theirs', async () => {
    const shard: Message = { type: 'shard', firstRow: 10, rows: 2, chunk: 0, chunks: 1, pixels: new Uint8Array(0), w: Float32Array.from([0.5, 2]), y: Float32Array.from([1, 0]), x: Float32Array.from([1, 2, 3, 4]) };
    const back = decodeMessage(encodeMessage(shard)) as ShardMessage;
    expect(Array.from(back.w!)).toEqual([0.5, 2]);
    expect((decodeMessage(encodeMessage({ ...shard, w: undefined } as Message)) as ShardMessage).w).toBeUndefined();
    const store = new ShardStore(2, 1);
    store.add(back.firstRow, back.rows, back.x, back.y, back.w);
    const step: Message = { type: 'step', step: 1, version: 0, groups: new Int32Array(0), inline: Int32Array.from([40]), rows: Int32Array.from([11, 10]), pixels: new Uint8Array(0), w: Float32Array.from([3]), y: Float32Array.from([1]), x: Float32Array.from([9, 9]) };
    const got = decodeMessage(encodeMessage(step)) as StepMessage;
    const { ws, count } = await store.batch(got.rows, got.x, got.y, got.w);
    expect(count).toBe(3);
    expect(Array.from(ws!)).toEqual([2, 0.5, 3]);
    await expect(store.batch(got.rows, got.x, got.y, undefined)).rejects.toThrow(/0 sample weights for 1 rows/);
    expect(() => new ShardStore(2, 1).add(0, 1, Float32Array.from([1, 2]), Float32Array.from([1]), Float32Array.from([-1]))).toThrow(/negative sample weight/);
  });
});

describe('data.sampleWeight through train()', { timeout: 300_000 }, () => {
  const config = (path: string, out: string, cluster: Record<string, unknown>, sampleWeight?: string): JobConfigInput => ({
    seed: 7,
    data: { path, drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true, ...(sampleWeight ? { sampleWeight } : {}) },
    model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
    compile: { optimizer: { name: 'adam', learningRate: 0.01 }, loss: 'binaryCrossentropy' },
    fit: { epochs: 2, batchSize: 64 },
    cluster: { backend: 'cpu', balance: 'equal', ...cluster },
    metrics: { listen: false },
    output: { dir: out },
  });

  it('weights of 1 give the bits of no weights; other weights train another model; the column is not a feature', async () => {
    const job = jobFolder(600, {});
    const { ones, varied } = weightedCsvs(job, { ones: 1, varied: undefined });
    const plain = await train(config(job.dataFile, `${job.dir}/plain`, { threads: 1 }), { log: () => {} });
    await train(config(ones, `${job.dir}/ones`, { threads: 1 }, 'w'), { log: () => {} });
    await train(config(varied, `${job.dir}/varied`, { threads: 1 }, 'w'), { log: () => {} });
    expect(readRunWeights(`${job.dir}/ones`)).toEqual(readRunWeights(`${job.dir}/plain`));
    expect(maxAbsDiff(readRunWeights(`${job.dir}/varied`), readRunWeights(`${job.dir}/plain`))).toBeGreaterThan(1e-3);
    const pre = JSON.parse(readFileSync(`${job.dir}/varied/preprocessing.json`, 'utf8')) as { features: string[]; sampleWeight: string };
    expect(pre.features).not.toContain('w');
    expect(pre.sampleWeight).toBe('w');
    expect(plain.summary.features).toBe(pre.features.length);
  });

  it('validation and test losses are weighted as in Keras: weights of 2 double them (Adam barely notices the scale), on a thread and on a node; coordinator evaluate weighs its rows too', async () => {
    const job = jobFolder(600, {});
    const { ones, twos } = weightedCsvs(job, { ones: 1, twos: 2 });
    const split = (c: JobConfigInput): JobConfigInput => ({ ...c, data: { ...c.data, testSize: 0.2 }, fit: { ...c.fit, validationSplit: 0.2 } }) as JobConfigInput;
    const one = await train(split(config(ones, `${job.dir}/ones`, { threads: 1 }, 'w')), { log: () => {} });
    const two = await train(split(config(twos, `${job.dir}/twos`, { threads: 1 }, 'w')), { log: () => {} });
    const valLoss = (r: typeof one): number => r.fit.history.at(-1)!.values.val_loss!;
    expect(valLoss(two) / valLoss(one)).toBeCloseTo(2, 3);
    expect(two.summary.test!.loss / one.summary.test!.loss).toBeCloseTo(2, 3);
    expect(two.summary.test!.accuracy).toBe(one.summary.test!.accuracy);
    // evaluated by a worker node (cluster.evaluateOn all, no thread): the same figures as a thread's
    writeFileSync(job.configFile, JSON.stringify(split(config(twos, job.out, { threads: 0, minWorkers: 1, evaluateOn: 'all', backend: 'cpu' }, 'w'))));
    const onNode = await runWithOneNode(job, track, ['--backend', 'cpu']);
    expect(onNode.test!.loss / two.summary.test!.loss).toBeCloseTo(1, 5);
    // a saved model trained with data.sampleWeight weighs a file's rows by that column, where the file has it
    const model = await loadSavedModel(`${job.dir}/twos/model`, 'cpu');
    const weighted = await evaluateCsv(model, twos);
    const plain = await evaluateCsv(model, job.dataFile);
    expect(weighted.values.loss).toBe(2 * plain.values.loss!);
    expect(weighted.values.accuracy).toBe(plain.values.accuracy);
    const bad = `${job.dir}/bad.csv`;
    writeFileSync(bad, readFileSync(twos, 'utf8').replace(/,2\n/, ',-1\n'));
    const refused = await evaluateCsv(model, bad);
    expect(refused.rejected).toEqual([{ line: 2, reason: 'sample weight in column "w" is not a number >= 0: "-1"' }, ...weighted.rejected]);
  });

  it('1 thread and a worker node (held and inline rows) give the model of one lane', async () => {
    const job = jobFolder(600, {});
    writeFileSync(job.dataFile, withWeights(readFileSync(job.dataFile, 'utf8')));
    const cluster = { threads: 1, minWorkers: 1, balance: 'equal', backend: 'wasm' };
    const weighted = (c: JobConfigInput): JobConfigInput => ({ ...c, compile: { ...c.compile, metrics: ['accuracy', 'auc'], weightedMetrics: ['accuracy', { name: 'auc', numThresholds: 100 }] }, fit: { ...c.fit, classWeight: { 0: 1, 1: 2 } } }) as JobConfigInput;
    writeFileSync(job.configFile, JSON.stringify(weighted(config(job.dataFile, job.out, cluster, 'w'))));
    const summary = await runWithOneNode(job, track);
    expect(summary.participants.find((p) => p.kind === 'node')!.samples).toBeGreaterThan(0);
    const one = `${job.dir}/one`;
    const lane = await train(weighted(config(job.dataFile, one, { threads: 1, backend: 'wasm' }, 'w')), { log: () => {} });
    expect(maxAbsDiff(readRunWeights(job.out), readRunWeights(one))).toBeLessThan(1e-5);
    // weighted metrics (sample weights, and class weights on the training rows; an AUC of 100 thresholds) sum across the node and the thread as one lane's
    const last = lane.fit.history.at(-1)!.values;
    const lines = readFileSync(`${job.out}/history.csv`, 'utf8').trim().split('\n');
    const columns = lines[0]!.split(',');
    const nodeLast = lines.at(-1)!.split(',');
    for (const key of ['accuracy', 'weighted_accuracy', 'weighted_auc']) expect(Number(nodeLast[columns.indexOf(key)]), key).toBeCloseTo(last[key]!, 5);
    expect(Math.abs(last['weighted_accuracy']! - last['accuracy']!)).toBeGreaterThan(1e-3);
    expect(summary.test!['weighted_auc']).toBeCloseTo(lane.summary.test!['weighted_auc']!, 5);
    expect(summary.test!['weighted_auc']).not.toBe(summary.test!['auc']);
    // the same job as YAML reads the key the same way
    expect(validateConfig(parseYaml(JSON.stringify(config(job.dataFile, job.out, cluster, 'w'))), 'job.yaml').data.sampleWeight).toBe('w');
  });

  it('text, a blank or a negative weight, a missing column and a .npy data set are errors naming data.sampleWeight', () => {
    const csv = 'a,b,y,w\n1,2,1,1\n3,4,0,heavy\n';
    const options = (w: string) => ({ drop: [], numeric: [], categorical: [], label: { column: 'y', type: 'binary' as const, positive: '1' }, sampleWeight: w });
    const split = { testSize: 0, validationSplit: 0, stratify: false, standardize: false };
    expect(() => prepareData(parseCsv(csv, 'f.csv'), options('w'), split, 1)).toThrow('f.csv: data.sampleWeight: column "w" at line 3 holds "heavy"; a sample weight is a number >= 0');
    expect(() => prepareData(parseCsv('a,b,y,w\n1,2,1,-1\n', 'f.csv'), options('w'), split, 1)).toThrow(/line 2 holds "-1"/);
    expect(() => prepareData(parseCsv('a,b,y,w\n1,2,1,\n', 'f.csv'), options('w'), split, 1)).toThrow(/line 2 holds ""/);
    expect(() => prepareData(parseCsv(csv, 'f.csv'), options('weight'), split, 1)).toThrow(/data\.sampleWeight/);
    const good = prepareData(parseCsv('a,b,y,w\n1,2,1,2.5\n3,4,0,0\n', 'f.csv'), options('w'), split, 1);
    expect(good.dataset.features).toBe(2);
    expect(Array.from(good.dataset.sampleWeights!).sort()).toEqual([0, 2.5]);
  });
});
