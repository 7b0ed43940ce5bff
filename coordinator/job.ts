/**
 * One training job end to end: config -> data -> shared data set -> threads -> fit -> test
 * evaluation -> run directory (config, preprocessing, history, model, summary).
 */
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { JobConfig } from '../shared/config/schema.js';
import { readCsv, recordsToCsv, type CellValue, type Table } from '../shared/data/csv.js';
import type { Preprocessor } from '../shared/data/preprocess.js';
import { prepareData, type PreparedData } from '../shared/data/dataset.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { BackendError, ConfigError, StorageError } from '../shared/errors.js';
import { weightLayout } from '../shared/model/layout.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { parseHostPort, serveMetrics, type MetricsServer } from '../shared/metrics-server.js';
import { readToken } from '../shared/token.js';
import { CHECKPOINT_DIR, loadLatestCheckpoint, writeCheckpoint, type TrainingState } from './checkpoint.js';
import { storageError } from './storage.js';
import { TrainingMetrics } from './metrics.js';
import { Cluster } from './participants/cluster.js';
import { InProcessLane } from './participants/in-process.js';
import type { LocalLanes, ParticipantStats } from './participants/participant.js';
import { RemoteNode } from './participants/remote-node.js';
import { chooseThreads, threadsWithoutModel, withThreads, type RunConfig } from './participants/thread-count.js';
import { ThreadPool } from './participants/threads.js';
import { NodeServer, parseListen } from './server.js';
import { ProgressBar, epochLine, evaluationLine, type ProgressStream } from './progress.js';
import { RunDir, defaultRunDir } from './run-dir.js';
import { Trainer, checkBatchSize, modelSpec, type EvaluateResult, type FitResult } from './trainer.js';

export interface JobOptions {
  /** Use generated Telco-schema demo data instead of data.path. */
  readonly demo?: boolean;
  /**
   * The data as objects, one per row (column name -> value), instead of data.path: written to
   * `<run dir>/data.csv`, which becomes data.path (so a resume finds it), then read like any CSV.
   */
  readonly rows?: readonly Readonly<Record<string, CellValue>>[];
  /** Continue the run in output.dir from its newest usable checkpoint. */
  readonly resume?: boolean;
  /** Stop on SIGINT/SIGTERM after the current step with a checkpoint (default true). */
  readonly handleSignals?: boolean;
  /** Polled after every step (tests): true stops like a signal does. */
  readonly stopRequested?: () => boolean;
  /** Where progress lines go (default: console.log). */
  readonly log?: (line: string) => void;
  /**
   * A terminal for Keras' progress bar within each epoch (false: none). Default: process.stdout
   * when it is a TTY and `log` is the default; pipes and files get one line per epoch.
   */
  readonly progress?: ProgressStream | false;
  /** Called with the node server's URL once it listens. */
  readonly onListening?: (url: string) => void;
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
  /** Samples, steps and failures of every thread and node that took part. */
  readonly participants: ParticipantStats[];
  /** Participant failures by reason (each failed part was recomputed). */
  readonly failures: Record<string, number>;
  /** Connections refused before joining, by reason (bad token, version, malformed...). */
  readonly rejectedPeers: Record<string, number>;
  /** Stopped by a signal before the end; resume with `coordinator start --resume <run dir>`. */
  readonly interrupted: boolean;
  /** The checkpoint this process resumed from, if it did. */
  readonly resumedFrom?: string;
  /** The newest good checkpoint, and the last write that failed if none succeeded after it. */
  readonly checkpoint: { readonly last: string | null; readonly lastFailed?: { readonly step: number; readonly error: string } };
}

export interface JobResult {
  readonly summary: Summary;
  readonly fit: FitResult;
  readonly runDir: string;
}

/** Data the job brings itself (--demo, or rows from a caller) as a CSV file for the run directory. */
function providedData(config: JobConfig, options: JobOptions): { file: string; csv: string } | undefined {
  if (options.demo && options.rows) throw new ConfigError('give demo data or rows, not both');
  if (options.rows && config.data.path) throw new ConfigError(`rows were given and data.path is set (${config.data.path}): give one of them`);
  if (options.rows) return { file: 'data.csv', csv: recordsToCsv(options.rows, 'rows') };
  return options.demo ? { file: 'demo-data.csv', csv: telcoDemoCsv() } : undefined;
}

/** Provided data is written to the run directory and becomes data.path (so a resume finds it). */
function dataConfig(config: JobConfig, provided: ReturnType<typeof providedData>, runDir: RunDir): JobConfig {
  if (!provided) return config;
  const path = runDir.write(provided.file, provided.csv);
  return { ...config, data: { ...config.data, path } };
}

function loadTable(config: JobConfig): Table {
  if (!config.data.path) throw new ConfigError('no data: set data.path in the config, pass --data FILE, or use --demo');
  return readCsv(config.data.path);
}

export function prepareJobData(config: JobConfig, table: Table): PreparedData {
  const { data, fit } = config;
  return prepareData(
    table,
    { drop: data.drop, numeric: data.numeric, categorical: data.categorical, label: data.label, maxCategories: data.maxCategories },
    { testSize: data.testSize, stratify: data.stratify, standardize: data.standardize, validationSplit: fit.validationSplit },
    config.seed,
  );
}

/**
 * Saves the trained model in the TensorFlow.js layers format plus what `coordinator predict`
 * needs to take raw CSV rows: the fitted preprocessing and the model spec (tfjs is loaded only
 * here, on cpu).
 */
async function exportModel(spec: ModelSpec, weights: Float32Array, preprocessor: Preprocessor, runDir: RunDir): Promise<void> {
  const [{ initBackend }, { modelWithWeights }, { saveModel, SAVED_MODEL_FILES }] = await Promise.all([
    import('../shared/backend.js'),
    import('../shared/model/build.js'),
    import('../shared/model/io.js'),
  ]);
  await initBackend('cpu');
  const model = modelWithWeights(spec, weights);
  try {
    await saveModel(model, runDir.file('model'));
  } catch (err) {
    throw storageError(err, 'save the model in', runDir.file('model'));
  }
  model.dispose();
  runDir.writeJson(`model/${SAVED_MODEL_FILES.preprocessing}`, preprocessor);
  runDir.writeJson(`model/${SAVED_MODEL_FILES.spec}`, spec);
}

/** SIGINT/SIGTERM: the first asks to stop after the current step (with a checkpoint), a second exits at once. */
/**
 * `stopWaiting`: ends a wait for worker nodes, if the run is in one (true), so that a stop asked
 * for then takes effect at once instead of after the next step.
 */
function stopOnSignals(log: (line: string) => void, training: () => boolean, stopWaiting: () => boolean): { requested: () => boolean; remove: () => void } {
  let requested = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (requested || !training()) {
      log(`${signal}: exiting now${training() ? ' (the last checkpoint stays usable)' : ''}`);
      process.exit(signal === 'SIGINT' ? 130 : 143); // 128 + signal number, as a shell reports it
    }
    requested = true;
    if (stopWaiting()) log(`${signal}: stopping now (the run was waiting for worker nodes)`);
    else log(`${signal}: stopping after this step and writing a checkpoint (send it again to exit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    requested: () => requested,
    remove: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** "min 1, start 2" (start only when it asks for more nodes than min) for the start-up line. */
function workerCounts({ minWorkers, startWorkers }: RunConfig['cluster']): string {
  return `min ${minWorkers}${startWorkers !== undefined && startWorkers > minWorkers ? `, start ${startWorkers}` : ''}`;
}

/**
 * Whether the job's one local lane runs in the coordinator's own thread (cluster.inProcess):
 * auto means yes for one lane and no worker nodes. Not with nodes: the coordinator's thread must
 * stay free for their messages and heartbeats while a step computes.
 */
export function computesInProcess(config: RunConfig): boolean {
  const { inProcess, threads, listen } = config.cluster;
  if (inProcess === 'auto') return threads === 1 && !listen;
  if (inProcess && (threads !== 1 || listen)) {
    throw new ConfigError(
      `cluster.inProcess is true but ${threads !== 1 ? `cluster.threads is ${threads}` : 'cluster.listen is set'}: the coordinator computes in its own thread only as the one lane (threads: 1) of a job without worker nodes`,
    );
  }
  return inProcess;
}

/**
 * Refuses impossible lane settings before anything is written. Where threads: auto still depends
 * on the model, no setting checked here can be impossible, so 1 stands in for it.
 */
function checkLocalLanes(config: JobConfig): void {
  const inProcess = computesInProcess(withThreads(config, threadsWithoutModel(config) ?? 1));
  if (config.cluster.backend === 'tensorflow' && !inProcess) {
    throw new BackendError(
      'cluster.backend "tensorflow" cannot run in coordinator threads (tfjs-node is not safe in worker_threads); use it in the coordinator\'s own thread (cluster.threads: 1 without worker nodes), or wasm or cpu here and `worker start --backend tensorflow` on GPU nodes',
    );
  }
}

/** Refuses settings that need worker nodes without a place for them to connect, before anything is written. */
function checkWorkerNodes({ cluster: c }: JobConfig): void {
  if (c.listen) return;
  if (c.threads === 0) throw new ConfigError('cluster.threads is 0 and cluster.listen is unset: nobody would train; use threads, worker nodes, or both');
  const [key, count] = c.minWorkers > 0 ? ['minWorkers', c.minWorkers] : ['startWorkers', c.startWorkers ?? 0];
  if (count > 0) {
    throw new ConfigError(`cluster.${key} is ${count} but cluster.listen is unset: no worker node can connect; set cluster.listen (--listen HOST:PORT) or drop ${key}`);
  }
}

/** Starts the local threads (if any) and the node server (if listening) as one Cluster. */
export async function startCluster(
  config: RunConfig,
  spec: ModelSpec,
  dataset: PreparedData['dataset'],
  log: (line: string) => void,
  events: JobOptions,
  metrics: TrainingMetrics,
): Promise<{ cluster: Cluster; server: NodeServer | undefined }> {
  const { cluster: c } = config;
  const parameters = weightLayout(spec).size;
  const token = c.listen ? readToken(c.tokenFile) : undefined;
  let local: LocalLanes | undefined;
  if (computesInProcess(config)) local = await InProcessLane.start({ backend: c.backend, spec, dataset, parameters, onFallback: log });
  else if (c.threads > 0) local = await ThreadPool.start({ threads: c.threads, backend: c.backend, spec, dataset, parameters, onBytes: (direction, n) => metrics.bytes('thread', direction, n) });
  const cluster = new Cluster(local, {
    minWorkers: c.minWorkers,
    startWorkers: c.startWorkers,
    waitTimeoutMs: c.waitTimeout * 1000,
    balance: c.balance,
    log,
    trainRows: dataset.train.count,
    metrics,
    straggler: c.straggler,
    deadline: { ...c.stepDeadline, stepTimeoutSeconds: c.stepTimeout },
  });
  if (!c.listen || token === undefined) return { cluster, server: undefined };
  const context = cluster.nodeContext({
    jobId: randomUUID(),
    spec,
    dataset,
    parameters,
    heartbeatMs: Math.round(c.heartbeatInterval * 1000),
    heartbeatTimeoutMs: Math.round(c.heartbeatTimeout * 1000),
    gradientDtype: c.gradientDtype,
    bucketBytes: c.gradientBucketBytes,
    stepTimeoutMs: Math.round(c.stepTimeout * 1000),
    chunkBytes: Math.min(c.chunkBytes, c.maxMessageBytes - 4096),
    onBytes: (direction, n) => metrics.bytes('node', direction, n),
  });
  try {
    const server = await NodeServer.start({
      ...parseListen(c.listen),
      token,
      tls: c.tls,
      maxPayload: c.maxMessageBytes,
      helloTimeoutMs: Math.min(5000, Math.round(c.heartbeatTimeout * 1000)),
      log,
      onRejected: (reason) => metrics.rejected(reason),
      onNode: (socket, hello, address) => cluster.addNode(new RemoteNode(cluster.newNodeId(), socket, hello, address, context)),
    });
    log(`listening for worker nodes on ${server.url}`);
    events.onListening?.(server.url);
    return { cluster, server };
  } catch (err) {
    await cluster.close();
    throw err;
  }
}

/** Serves /metrics, /healthz and /readyz; a busy port is reported and training goes on without. */
async function startMetricsServer(config: JobConfig, metrics: TrainingMetrics, ready: () => boolean, log: (line: string) => void): Promise<MetricsServer | undefined> {
  const listen = config.metrics.listen;
  if (listen === false) return undefined;
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseHostPort(listen, 'metrics.listen'));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  try {
    const server = await serveMetrics(metrics.registry, host, port, ready);
    log(`metrics on ${server.url}`);
    return server;
  } catch (err) {
    log(`warning: no metrics server: cannot listen on ${listen} (${(err as Error).message}); set metrics.listen or --metrics-listen`);
    return undefined;
  }
}

export async function runJob(jobConfig: JobConfig, options: JobOptions = {}): Promise<JobResult> {
  let config = jobConfig;
  const stream = options.progress ?? (options.log === undefined && process.stdout.isTTY ? process.stdout : false);
  const bar = stream ? new ProgressBar(stream) : undefined;
  const print = options.log ?? ((line: string) => console.log(line));
  const log = (line: string): void => {
    bar?.clear();
    print(line);
  };
  const started = performance.now();
  // Checked before anything is written: impossible lane or node settings are config errors.
  checkLocalLanes(jobConfig);
  checkWorkerNodes(jobConfig);
  const provided = providedData(jobConfig, options);
  const runDir = options.resume ? new RunDir(config.output.dir ?? defaultRunDir()) : RunDir.claim(config.output.dir ?? defaultRunDir(), config.output.overwrite);
  let resumeFrom: { state: TrainingState; file: string } | undefined;
  if (options.resume) {
    resumeFrom = loadLatestCheckpoint(runDir.file(CHECKPOINT_DIR), log);
    const { epoch, batch, step, finished } = resumeFrom.state;
    log(`resuming from ${resumeFrom.file} (${finished ? 'training had finished' : `epoch ${epoch + 1}, batch ${batch + 1}`}, step ${step})`);
  }
  config = dataConfig(config, provided, runDir);
  const table = loadTable(config);
  const prepared = prepareJobData(config, table);
  for (const warning of prepared.warnings) log(`warning: ${warning}`);
  const { dataset, preprocessor } = prepared;
  const spec = modelSpec(config, dataset);
  const parameters = weightLayout(spec).size;
  const threadChoice = chooseThreads(config, spec, availableParallelism());
  checkBatchSize(config.fit.batchSize, threadChoice.threads);
  const cores = availableParallelism();
  if (typeof config.cluster.threads === 'number' && config.cluster.threads > cores) {
    log(
      `warning: cluster.threads ${config.cluster.threads} is more than this machine's ${cores} core(s): the threads take turns on the cores, ` +
        'every step waits for the slowest, and each thread loads its own TensorFlow.js (memory); threads: auto (the default) picks a count for the model',
    );
  }
  // config.json keeps threads as given (auto is chosen again on resume, maybe on another machine).
  runDir.writeJson('config.json', config);
  runDir.writeJson('preprocessing.json', preprocessor);
  runDir.writeJson('split.json', prepared.lines);

  const run = withThreads(config, threadChoice.threads);
  const metrics = new TrainingMetrics();
  let training = false;
  // ready (/readyz) once a step has had its participants, not while waiting for worker nodes
  let trainingStarted = (): boolean => false;
  const metricsServer = await startMetricsServer(config, metrics, () => training && trainingStarted(), log);
  let cluster: Cluster;
  let server: NodeServer | undefined;
  try {
    ({ cluster, server } = await startCluster(run, spec, dataset, log, options, metrics));
  } catch (err) {
    await metricsServer?.close();
    throw err;
  }
  let fit: FitResult;
  let test: EvaluateResult;
  /** The newest checkpoint write that failed, while no later one succeeded. */
  let checkpointFailure: { step: number; error: string } | undefined;
  let lastCheckpoint: string | undefined;
  let outcome = 'job failed';
  trainingStarted = () => cluster.trainingStarted;
  const signals =
    options.handleSignals === false
      ? undefined
      : stopOnSignals(
          log,
          () => training,
          () => {
            if (!cluster.waiting) return false;
            cluster.cancelWait();
            return true;
          },
        );
  try {
    const local = cluster.local;
    log(
      `dptrain: ${dataset.train.count} train / ${dataset.val.count} validation / ${dataset.test.count} test rows x ${dataset.features} features ` +
        `(${prepared.rowsDropped} of ${prepared.rowsRead} rows dropped for missing values); ` +
        `model ${[spec.inputDim, ...spec.layers.map((l) => l.units)].join('-')} (${parameters} parameters); ` +
        (local instanceof InProcessLane
          ? `computing in the coordinator's thread on ${local.backend}`
          : `${run.cluster.threads} thread(s)${local ? ` on ${local.backend}` : ''}${threadChoice.reason ? '' : ` (of ${availableParallelism()} cores)`}`) +
        (server ? ` + worker nodes (${workerCounts(run.cluster)}, balance ${run.cluster.balance})` : '') +
        (threadChoice.reason ? ` [${threadChoice.reason}]` : ''),
    );
    const trainer = new Trainer(run, dataset, cluster, spec, metrics, log);
    training = true;
    const checkpoints = runDir.file(CHECKPOINT_DIR);
    lastCheckpoint = resumeFrom?.file;
    const writeOne = (state: TrainingState): void => {
      try {
        lastCheckpoint = writeCheckpoint(checkpoints, state, config.checkpoint.keep);
        checkpointFailure = undefined;
      } catch (err) {
        if (!(err instanceof StorageError)) throw err;
        // Training goes on (the state is in memory); the last good checkpoint stays in place.
        checkpointFailure = { step: state.step, error: err.message };
        log(`warning: the checkpoint of step ${state.step} failed: ${err.message}; ${lastCheckpoint ? `the last good one is ${lastCheckpoint}` : 'there is no good one yet'}`);
      }
    };
    fit = await trainer.fit({
      ...(resumeFrom ? { resume: resumeFrom.state } : {}),
      onEpochEnd: (e, epochs) => log(epochLine(e, epochs)),
      ...(bar ? { onEpochStart: () => bar.epochStarted(), onBatchEnd: (b: number, n: number, running: Readonly<Record<string, number>>) => bar.batchEnded(b, n, running) } : {}),
      onCheckpoint: writeOne,
      stopRequested: () => signals?.requested() === true || options.stopRequested?.() === true,
    });
    if (fit.interrupted) {
      if (checkpointFailure) log(`warning: the last checkpoint (step ${checkpointFailure.step}) failed: ${checkpointFailure.error}`);
      if (lastCheckpoint) log(`Stopped at step ${fit.steps}; checkpoint ${lastCheckpoint}. Continue with: coordinator start --resume ${runDir.path}`);
      else log('Stopped before the first step: nothing to checkpoint.');
      test = { loss: NaN };
      outcome = 'job interrupted';
    } else {
      if (checkpointFailure) log(`warning: the last checkpoint of this run (step ${checkpointFailure.step}) failed: ${checkpointFailure.error}; ${lastCheckpoint ? `the newest good one is ${lastCheckpoint}` : 'it has no good checkpoint'}`);
      if (fit.restoredBestWeights) log(`Restored the weights of epoch ${fit.bestEpoch} (early stopping).`);
      test = dataset.test.count > 0 ? await trainer.evaluate(dataset.test) : { loss: NaN };
      log(evaluationLine('Test', test));
      metrics.test(test);
      outcome = 'job finished';
    }
  } finally {
    training = false;
    bar?.clear();
    signals?.remove();
    await cluster.close(outcome);
    await server?.close();
    if (outcome !== 'job finished') await metricsServer?.close();
  }

  let summary: Summary;
  try {
    runDir.writeHistory(fit.history);
    if (!fit.interrupted) await exportModel(spec, fit.weights, preprocessor, runDir);
    summary = {
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
      samplesPerSecond: fit.trainSeconds > 0 ? fit.samples / fit.trainSeconds : 0,
      wallSeconds: (performance.now() - started) / 1000,
      threads: run.cluster.threads,
      backend: cluster.local?.backend ?? 'nodes',
      participants: [...cluster.stats.values()],
      failures: Object.fromEntries(cluster.failures),
      rejectedPeers: Object.fromEntries(server?.rejections ?? []),
      seed: config.seed,
      phaseSeconds: fit.phases,
      interrupted: fit.interrupted,
      ...(resumeFrom ? { resumedFrom: resumeFrom.file } : {}),
      checkpoint: { last: lastCheckpoint ?? null, ...(checkpointFailure ? { lastFailed: checkpointFailure } : {}) },
    };
    runDir.writeJson('summary.json', summary);
    log(`Run files: ${runDir.path}`);
    if (metricsServer && config.metrics.linger > 0 && !fit.interrupted) {
      log(`serving the final metrics for ${config.metrics.linger} s (metrics.linger)`);
      await new Promise((r) => setTimeout(r, config.metrics.linger * 1000));
    }
  } finally {
    await metricsServer?.close();
  }
  return { summary, fit, runDir: runDir.path };
}
