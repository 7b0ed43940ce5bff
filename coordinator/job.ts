/**
 * One training job end to end, in named steps: open the run directory (fresh or resuming), read
 * the data, plan the run (model spec, threads, checks against the data), write its inputs, start
 * the participants, fit with the callbacks (progress, metrics, stop on signal, checkpoints),
 * evaluate on the test rows, then write history, model and summary.
 *
 * Each step is a short function here, and runJob reads as their list; the pieces they call live
 * in job-data.ts, job-cluster.ts, validate.ts, fit/ and callbacks/.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { withAbsolutePaths } from '../shared/config/load.js';
import type { JobConfig } from '../shared/config/schema.js';
import type { CellValue } from '../shared/data/csv.js';
import type { PreparedData } from '../shared/data/dataset.js';
import { ConfigError } from '../shared/errors.js';
import { describeModel } from '../shared/model/layers.js';
import { weightLayout } from '../shared/model/layout.js';
import type { ModelSpec } from '../shared/model/spec.js';
import type { Callback } from './callbacks/callback.js';
import { Checkpointer } from './callbacks/checkpointer.js';
import { MetricsUpdates } from './callbacks/metrics-updates.js';
import { ProgressLines } from './callbacks/progress-lines.js';
import { StopOnRequest, stopOnSignals } from './callbacks/stop-on-signal.js';
import { TrainValidationGap, gapOptions } from './callbacks/train-validation-gap.js';
import { CHECKPOINT_DIR, loadLatestCheckpoint, type TrainingState } from './checkpoint.js';
import { HistoryFile } from './callbacks/history-file.js';
import { folderFor } from './callbacks/model-checkpoint.js';
import { Trainer, modelSpec, resumeTarget, type EvaluateResult, type FitResult } from './fit/trainer.js';
import { startCluster, startMetricsServer, workerCounts } from './job-cluster.js';
import { dataConfig, providedData, readJobData } from './job-data.js';
import type { OnDisk } from '../shared/data/feature-rows.js';
import { TrainingMetrics } from './metrics.js';
import { InProcessLane } from './participants/in-process.js';
import type { LocalLanes } from './participants/participant.js';
import { chooseThreads, withThreads, type RunConfig } from './participants/thread-count.js';
import { ProgressBar, evaluationLine, type ProgressStream } from './progress.js';
import { RunDir, defaultRunDir } from './run-dir.js';
import { endRunFeed, livePage, openRunFeed } from './live/job-feed.js';
import type { RunFeed } from './live/run-feed.js';
import { exportModel } from './saved-model.js';
import type { Summary } from './summary.js';
import { checkAgainstData, checkRunnable } from './validate.js';

export { prepareJobData } from './job-data.js';
export type { Summary } from './summary.js';

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
  /**
   * Your own callbacks (Keras's `callbacks`), called after the metrics and progress lines and
   * before stop-on-signal and the checkpointer; `loop.stop('finished')` ends training as early
   * stopping does, `loop.stop('interrupted')` as a signal does (a checkpoint, then resumable).
   */
  readonly callbacks?: readonly Callback[];
  /** The run's initial weights in flat-layout order (train()'s tfjs-layers model has its own); default: Keras's initialisers, seeded. */
  readonly initialWeights?: Float32Array;
}

export interface JobResult {
  readonly summary: Summary;
  readonly fit: FitResult;
  readonly runDir: string;
}

/** Where the job's lines go: `log` wipes the progress bar (if any) first. */
interface JobConsole {
  readonly log: (line: string) => void;
  readonly bar: ProgressBar | undefined;
}

function jobConsole(options: JobOptions): JobConsole {
  const stream = options.progress ?? (options.log === undefined && process.stdout.isTTY ? process.stdout : false);
  const bar = stream ? new ProgressBar(stream) : undefined;
  const print = options.log ?? ((line: string) => console.log(line));
  return {
    bar,
    log: (line) => {
      bar?.clear();
      print(line);
    },
  };
}

interface OpenRun {
  readonly config: JobConfig;
  readonly runDir: RunDir;
  readonly resumeFrom: { state: TrainingState; file: string } | undefined;
}

/** The run directory (claimed fresh, or the one to resume, its data still there); provided data is written into it. */
function openRun(jobConfig: JobConfig, options: JobOptions): Omit<OpenRun, 'resumeFrom'> {
  const provided = providedData(jobConfig, options);
  const dir = jobConfig.output.dir ?? defaultRunDir();
  const runDir = options.resume ? new RunDir(dir) : RunDir.claim(dir, jobConfig.output.overwrite);
  if (options.resume) checkResumeData(jobConfig, runDir);
  return { config: dataConfig(jobConfig, provided, runDir), runDir };
}

/**
 * The newest checkpoint of a resumed run that verifies and fits its model and data (the model's
 * parameters, the epoch's batches: known once the data is read and the run planned).
 */
function resumeCheckpoint(runDir: RunDir, config: JobConfig, prepared: PreparedData, spec: ModelSpec, log: (line: string) => void): NonNullable<OpenRun['resumeFrom']> {
  const resumeFrom = loadLatestCheckpoint(runDir.file(CHECKPOINT_DIR), log, resumeTarget(config, prepared.dataset, spec));
  const { epoch, batch, step, finished } = resumeFrom.state;
  log(`resuming from ${resumeFrom.file} (${finished ? 'training had finished' : `epoch ${epoch + 1}, batch ${batch + 1}`}, step ${step})`);
  return resumeFrom;
}

/** A resumed run's data files must still be there; a moved one is given with --data. */
function checkResumeData(config: JobConfig, runDir: RunDir): void {
  for (const [key, path] of [['data.path', config.data.path], ['data.labels', config.data.labels]] as const) {
    if (path !== undefined && !existsSync(path)) {
      throw new ConfigError(
        `${runDir.path}: the run's ${key} ${path} is not there any more; if it moved, give its new place: dptrain start --resume ${runDir.path} --data NEW_PATH (it must hold the same training rows)`,
      );
    }
  }
}

/** The data (CSV, image folder or .npy arrays) read and prepared; its warnings logged. */
function readData(config: JobConfig, log: (line: string) => void): PreparedData {
  const prepared = readJobData(config);
  for (const warning of prepared.warnings) log(`warning: ${warning}`);
  return prepared;
}

interface RunPlan {
  readonly spec: ModelSpec;
  /** The config with cluster.threads chosen. */
  readonly run: RunConfig;
  /** Why the thread count is what it is, when it was not simply the cores. */
  readonly threadsReason: string | undefined;
}

/** The model spec and thread count, checked against the data. */
function planRun(config: JobConfig, prepared: PreparedData, log: (line: string) => void): RunPlan {
  const spec = modelSpec(config, prepared.dataset);
  const cores = availableParallelism();
  const choice = chooseThreads(config, spec, cores);
  checkAgainstData(config, spec, prepared.dataset, choice.threads);
  if (typeof config.cluster.threads === 'number' && config.cluster.threads > cores) {
    log(
      `warning: cluster.threads ${config.cluster.threads} is more than this machine's ${cores} core(s): the threads take turns on the cores, ` +
        'every step waits for the slowest, and each thread loads its own TensorFlow.js (memory); threads: auto (the default) picks a count for the model',
    );
  }
  return { spec, run: withThreads(config, choice.threads), threadsReason: choice.reason };
}

/**
 * config.json (threads as given: auto is chosen again on resume, maybe on another machine; paths
 * absolute, so a resume finds the data from any directory), preprocessing.json, split.json.
 */
function writeRunInputs(runDir: RunDir, config: JobConfig, prepared: PreparedData): void {
  runDir.writeJson('config.json', withAbsolutePaths(config));
  runDir.writeJson('preprocessing.json', prepared.preprocessor);
  runDir.writeJson('split.json', prepared.lines);
}

/** The files a data set on disk is read from, for the start line. */
function onDiskName(onDisk: OnDisk): string {
  if (onDisk.kind === 'tar') return `${onDisk.shards.length} tar shard(s)`;
  if (onDisk.kind === 'csv') return onDisk.files.length === 1 ? onDisk.files[0]!.path : `${onDisk.files.length} CSV files`;
  return onDisk.parts.length === 1 ? onDisk.parts[0]!.path : `${onDisk.parts.length} .npy files`;
}

/** The start-up line: rows, model, where it computes. */
function startLine(prepared: PreparedData, plan: RunPlan, local: LocalLanes | undefined, withNodes: boolean): string {
  const { dataset } = prepared;
  const { spec, run, threadsReason } = plan;
  return (
    `dptrain: ${dataset.train.count} train / ${dataset.val.count} validation / ${dataset.test.count} test rows x ${dataset.features} features ` +
    `(${prepared.rowsDropped} of ${prepared.rowsRead} rows dropped for missing values)` +
    (dataset.onDisk ? `, features read per batch from ${onDiskName(dataset.onDisk)}` : '') +
    `; model ${describeModel(spec)} (${weightLayout(spec).size} parameters); ` +
    (local instanceof InProcessLane
      ? `computing in the coordinator's thread on ${local.backend}${local.backendDetail ? ` (${local.backendDetail})` : ''}`
      : `${run.cluster.threads} thread(s)${local ? ` on ${local.backend}${local.backendDetail ? ` (${local.backendDetail})` : ''}` : ''}${threadsReason ? '' : ` (of ${availableParallelism()} cores)`}`) +
    (withNodes ? ` + worker nodes (${workerCounts(run.cluster)}, balance ${run.cluster.balance})` : '') +
    (threadsReason ? ` [${threadsReason}]` : '')
  );
}

/** Whether training runs (a signal then stops it with a checkpoint) and on which cluster (for /readyz). */
interface TrainingStatus {
  training: boolean;
  cluster: { readonly trainingStarted: boolean } | undefined;
}

interface Trained {
  readonly fit: FitResult;
  readonly test: EvaluateResult;
  readonly checkpoints: Checkpointer;
  readonly participants: Summary['participants'];
  readonly departed: Summary['departed'];
  readonly failures: Summary['failures'];
  readonly rejectedPeers: Summary['rejectedPeers'];
  readonly backend: string;
  readonly traffic: Summary['traffic'];
  readonly peerSteps: number;
}

/** Starts the participants, fits, evaluates the test rows; the participants are closed whatever happens. */
async function train(open: OpenRun, prepared: PreparedData, plan: RunPlan, metrics: TrainingMetrics, state: TrainingStatus, out: JobConsole, options: JobOptions, feed: RunFeed): Promise<Trained> {
  const { runDir, resumeFrom, config } = open;
  const { dataset } = prepared;
  const { log, bar } = out;
  const { cluster, server } = await startCluster(plan.run, plan.spec, dataset, log, { onListening: options.onListening, observer: feed }, metrics);
  state.cluster = cluster;
  const signals =
    options.handleSignals === false
      ? undefined
      : stopOnSignals(
          log,
          () => state.training,
          () => {
            if (!cluster.waiting) return false;
            cluster.cancelWait();
            return true;
          },
        );
  const checkpoints = new Checkpointer({ dir: runDir.file(CHECKPOINT_DIR), keep: config.checkpoint.keep, everySteps: config.checkpoint.everySteps, epochEnd: config.checkpoint.epochEnd, log, resumedFrom: resumeFrom?.file });
  feed.attach(cluster, checkpoints);
  let outcome = 'job failed';
  try {
    log(startLine(prepared, plan, cluster.local, server !== undefined));
    const trainer = new Trainer(plan.run, dataset, cluster, plan.spec, log, options.initialWeights);
    state.training = true;
    const fit = await trainer.fit({
      ...(resumeFrom ? { resume: resumeFrom.state } : {}),
      saveModel: (weights, folder) => exportModel(plan.spec, weights, prepared.preprocessor, runDir, folder),
      callbacks: [
        new MetricsUpdates(metrics),
        new ProgressLines(log, bar),
        new TrainValidationGap(log, gapOptions(plan.spec, dataset)),
        ...(options.callbacks ?? []),
        new StopOnRequest(() => signals?.requested() === true || options.stopRequested?.() === true),
        checkpoints,
        new HistoryFile((history) => runDir.writeHistory(history), resumeFrom?.state.history),
        feed,
      ],
    });
    let test: EvaluateResult = { loss: NaN };
    const failed = checkpoints.lastFailed;
    if (fit.interrupted) {
      if (failed) log(`warning: the last checkpoint (step ${failed.step}) failed: ${failed.error}`);
      if (checkpoints.last) log(`Stopped at step ${fit.steps}; checkpoint ${checkpoints.last}. Continue with: dptrain start --resume ${runDir.path}`);
      else log('Stopped before the first step: nothing to checkpoint.');
      outcome = 'job interrupted';
    } else {
      if (failed) log(`warning: the last checkpoint of this run (step ${failed.step}) failed: ${failed.error}; ${checkpoints.last ? `the newest good one is ${checkpoints.last}` : 'it has no good checkpoint'}`);
      if (fit.restoredBestWeights) log(`Restored the weights of epoch ${fit.bestEpoch} (early stopping).`);
      if (dataset.test.count > 0) test = await trainer.evaluate(dataset.test);
      log(evaluationLine('Test', test));
      metrics.test(test);
      outcome = 'job finished';
    }
    return {
      fit,
      test,
      checkpoints,
      participants: [...cluster.stats.values()],
      departed: { ...cluster.departed },
      failures: Object.fromEntries(cluster.failures),
      rejectedPeers: Object.fromEntries(server?.rejections ?? []),
      backend: cluster.local?.backend ?? 'nodes',
      traffic: { thread: { ...metrics.traffic.thread }, node: { ...metrics.traffic.node } },
      peerSteps: trainer.peerSteps,
    };
  } finally {
    state.training = false;
    bar?.clear();
    signals?.remove();
    await cluster.close(outcome);
    await server?.close();
  }
}

function summarize(open: OpenRun, prepared: PreparedData, plan: RunPlan, trained: Trained, wallSeconds: number): Summary {
  const { dataset } = prepared;
  const { fit, checkpoints } = trained;
  return {
    test: trained.test,
    epochs: fit.history.length,
    bestEpoch: fit.bestEpoch,
    stoppedEarly: fit.stoppedEarly,
    restoredBestWeights: fit.restoredBestWeights,
    ...(fit.modelCheckpoint && open.config.fit.modelCheckpoint
      ? { modelCheckpoint: { dir: folderFor(open.config.fit.modelCheckpoint.dir, fit.modelCheckpoint.epoch), epoch: fit.modelCheckpoint.epoch, monitor: open.config.fit.modelCheckpoint.monitor, value: fit.modelCheckpoint.value } }
      : {}),
    trainRows: dataset.train.count,
    valRows: dataset.val.count,
    testRows: dataset.test.count,
    rowsRead: prepared.rowsRead,
    rowsDropped: prepared.rowsDropped,
    features: dataset.features,
    parameters: weightLayout(plan.spec).size,
    steps: fit.steps,
    samples: fit.samples,
    samplesPerSecond: fit.trainSeconds > 0 ? fit.samples / fit.trainSeconds : 0,
    wallSeconds,
    threads: plan.run.cluster.threads,
    backend: trained.backend,
    participants: trained.participants,
    departed: trained.departed,
    failures: trained.failures,
    rejectedPeers: trained.rejectedPeers,
    traffic: trained.traffic,
    peerSteps: trained.peerSteps,
    seed: open.config.seed,
    phaseSeconds: fit.phases,
    interrupted: fit.interrupted,
    ...(open.resumeFrom ? { resumedFrom: open.resumeFrom.file } : {}),
    checkpoint: { last: checkpoints.last ?? null, ...(checkpoints.lastFailed ? { lastFailed: checkpoints.lastFailed } : {}) },
  };
}

export async function runJob(jobConfig: JobConfig, options: JobOptions = {}): Promise<JobResult> {
  const out = jobConsole(options);
  const started = performance.now();
  checkRunnable(jobConfig);
  const opened = openRun(jobConfig, options);
  const prepared = readData(opened.config, out.log);
  const plan = planRun(opened.config, prepared, out.log);
  const open: OpenRun = { ...opened, resumeFrom: options.resume ? resumeCheckpoint(opened.runDir, opened.config, prepared, plan.spec, out.log) : undefined };
  writeRunInputs(open.runDir, open.config, prepared);

  const metrics = new TrainingMetrics();
  const state: TrainingStatus = { training: false, cluster: undefined };
  // the live page's records: events.jsonl as the run goes, and the page at the metrics address
  const feed = openRunFeed({ ...open, dataset: prepared.dataset, spec: plan.spec, resumedFrom: open.resumeFrom && { file: open.resumeFrom.file, step: open.resumeFrom.state.step }, log: out.log });
  const page = livePage(feed, open.config, out.log);
  // ready (/readyz) once a step has had its participants, not while waiting for worker nodes
  const metricsServer = await startMetricsServer(open.config, metrics, () => state.training && state.cluster?.trainingStarted === true, out.log, page).catch(async (err: unknown) => {
    page?.close();
    await feed.close();
    throw err;
  });
  try {
    const trained = await train(open, prepared, plan, metrics, state, out, options, feed);
    const { runDir } = open;
    runDir.writeHistory(trained.fit.history);
    if (!trained.fit.interrupted) await exportModel(plan.spec, trained.fit.weights, prepared.preprocessor, runDir);
    const summary = summarize(open, prepared, plan, trained, (performance.now() - started) / 1000);
    runDir.writeJson('summary.json', summary);
    endRunFeed(feed, summary, runDir.path);
    out.log(`Run files: ${runDir.path}`);
    const linger = open.config.metrics.linger;
    if (metricsServer && linger > 0 && !trained.fit.interrupted) {
      out.log(`serving the final metrics for ${linger} s (metrics.linger)`);
      await new Promise((r) => setTimeout(r, linger * 1000));
    }
    return { summary, fit: trained.fit, runDir: runDir.path };
  } catch (err) {
    feed.end('failed', `run failed: ${(err as Error).message}`);
    throw err;
  } finally {
    await metricsServer?.close();
    page?.close();
    await feed.close();
  }
}
