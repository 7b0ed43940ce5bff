/**
 * One training job end to end: config -> data -> shared data set -> threads -> fit -> test
 * evaluation -> run directory (config, preprocessing, history, model, summary).
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { JobConfig } from '../shared/config/schema.js';
import { parseCsv, readCsv, type Table } from '../shared/data/csv.js';
import { prepareData, type PreparedData } from '../shared/data/dataset.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { BackendError, ConfigError } from '../shared/errors.js';
import { weightLayout } from '../shared/model/layout.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { ThreadPool } from './participants/threads.js';
import { epochLine, evaluationLine } from './progress.js';
import { RunDir, defaultRunDir } from './run-dir.js';
import { Trainer, checkBatchSize, modelSpec, type EvaluateResult, type FitResult } from './trainer.js';

export interface JobOptions {
  /** Use generated Telco-schema demo data instead of data.path. */
  readonly demo?: boolean;
  /** Where progress lines go (default: console.log). */
  readonly log?: (line: string) => void;
}

export interface Summary {
  readonly test: EvaluateResult;
  readonly epochs: number;
  readonly bestEpoch: number;
  readonly stoppedEarly: boolean;
  readonly restoredBestWeights: boolean;
  readonly trainRows: number;
  readonly valRows: number;
  readonly testRows: number;
  readonly rowsRead: number;
  readonly rowsDropped: number;
  readonly features: number;
  readonly parameters: number;
  readonly steps: number;
  readonly samples: number;
  readonly samplesPerSecond: number;
  readonly wallSeconds: number;
  readonly threads: number;
  readonly backend: string;
  readonly seed: number;
  readonly phaseSeconds: FitResult['phases'];
}

export interface JobResult {
  readonly summary: Summary;
  readonly fit: FitResult;
  readonly runDir: string;
}

function loadTable(config: JobConfig, options: JobOptions, runDir: RunDir): Table {
  if (options.demo) {
    const text = telcoDemoCsv();
    runDir.write('demo-data.csv', text);
    return parseCsv(text, 'demo data');
  }
  if (!config.data.path) throw new ConfigError('no data: set data.path in the config, pass --data FILE, or use --demo');
  return readCsv(config.data.path);
}

export function prepareJobData(config: JobConfig, table: Table): PreparedData {
  const { data, fit } = config;
  return prepareData(
    table,
    { drop: data.drop, numeric: data.numeric, categorical: data.categorical, label: data.label },
    { testSize: data.testSize, stratify: data.stratify, standardize: data.standardize, validationSplit: fit.validationSplit },
    config.seed,
  );
}

/** Saves the trained model in the TensorFlow.js layers format (tfjs is loaded only here, on cpu). */
async function exportModel(spec: ModelSpec, weights: Float32Array, dir: string): Promise<void> {
  const [{ initBackend }, { modelWithWeights }, { saveModel }] = await Promise.all([
    import('../shared/backend.js'),
    import('../shared/model/build.js'),
    import('../shared/model/io.js'),
  ]);
  await initBackend('cpu');
  const model = modelWithWeights(spec, weights);
  await saveModel(model, dir);
  model.dispose();
}

export async function runJob(config: JobConfig, options: JobOptions = {}): Promise<JobResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const started = performance.now();
  if (config.cluster.backend === 'tensorflow') {
    throw new BackendError(
      'cluster.backend "tensorflow" cannot run in coordinator threads (tfjs-node is not safe in worker_threads); use wasm or cpu here and `worker start --backend tensorflow` on GPU nodes',
    );
  }
  const runDir = new RunDir(config.output.dir ?? defaultRunDir());
  const table = loadTable(config, options, runDir);
  const prepared = prepareJobData(config, table);
  const { dataset, preprocessor } = prepared;
  const spec = modelSpec(config, dataset);
  const parameters = weightLayout(spec).size;
  checkBatchSize(config.fit.batchSize, config.cluster.threads);
  runDir.writeJson('config.json', config);
  runDir.writeJson('preprocessing.json', preprocessor);

  const pool = await ThreadPool.start({ threads: config.cluster.threads, backend: config.cluster.backend, spec, dataset, parameters });
  let fit: FitResult;
  let test: EvaluateResult;
  try {
    log(
      `dptrain: ${dataset.train.count} train / ${dataset.val.count} validation / ${dataset.test.count} test rows x ${dataset.features} features ` +
        `(${prepared.rowsDropped} of ${prepared.rowsRead} rows dropped for missing values); ` +
        `model ${[spec.inputDim, ...spec.layers.map((l) => l.units)].join('-')} (${parameters} parameters); ` +
        `${config.cluster.threads} thread(s) on ${pool.backend} (of ${availableParallelism()} cores)`,
    );
    const trainer = new Trainer(config, dataset, pool, spec);
    fit = await trainer.fit({ onEpochEnd: (e, epochs) => log(epochLine(e, epochs)) });
    if (fit.restoredBestWeights) log(`Restored the weights of epoch ${fit.bestEpoch} (early stopping).`);
    test = dataset.test.count > 0 ? await trainer.evaluate(dataset.test) : { loss: NaN };
    log(evaluationLine('Test', test));
  } finally {
    await pool.close();
  }

  runDir.writeHistory(fit.history);
  await exportModel(spec, fit.weights, runDir.file('model'));
  const summary: Summary = {
    test,
    epochs: fit.history.length,
    bestEpoch: fit.bestEpoch,
    stoppedEarly: fit.stoppedEarly,
    restoredBestWeights: fit.restoredBestWeights,
    trainRows: dataset.train.count,
    valRows: dataset.val.count,
    testRows: dataset.test.count,
    rowsRead: prepared.rowsRead,
    rowsDropped: prepared.rowsDropped,
    features: dataset.features,
    parameters,
    steps: fit.steps,
    samples: fit.samples,
    samplesPerSecond: fit.samples / fit.trainSeconds,
    wallSeconds: (performance.now() - started) / 1000,
    threads: config.cluster.threads,
    backend: pool.backend,
    seed: config.seed,
    phaseSeconds: fit.phases,
  };
  runDir.writeJson('summary.json', summary);
  log(`Run files: ${runDir.path}`);
  return { summary, fit, runDir: runDir.path };
}
