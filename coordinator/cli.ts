/**
 * The coordinator's commands, run as `dptrain <command>` (or under the alias `coordinator`):
 *
 *   dptrain start --config job.yaml [--data PATH] [--epochs N] [--threads N] [--batch-size N]
 *                 [--seed N] [--out DIR] [--backend B] [--verbose]
 *   dptrain start --demo              (generated Telco-schema data, the demo model)
 *   dptrain start --resume RUN_DIR
 *   dptrain evaluate --model DIR --data PATH
 *   dptrain predict --model DIR --data PATH --out FILE
 *   dptrain plot history RUN_DIR | plot activations --out DIR
 *   dptrain view RUN_DIR [--listen HOST:PORT]   (the live run page of a run's files)
 *   dptrain demo-data --out FILE      (write that generated data as a CSV)
 *   dptrain <command> --help          (that command's options)
 *
 * One short function per command and the flag tables they share; what a command does lives in
 * job.ts, saved-model.ts and plot.ts.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BACKENDS, type BackendChoice } from '../shared/backend-choice.js';
import { joinNegativeValues, wantsHelp } from '../shared/cli-args.js';
import { loadConfig, validateConfig } from '../shared/config/load.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { DptrainError, UsageError } from '../shared/errors.js';
import { parseHostPort } from '../shared/metrics-server.js';
import { DEMO_CONFIG_SOURCE, demoConfigRaw } from './demo.js';
import { runJob } from './job.js';
import { evaluationLine } from './progress.js';
import { evaluateCsv, loadSavedModel, predictCsv } from './saved-model.js';

const USAGE = `usage: dptrain start (--config FILE | --demo) [options]
       dptrain start --resume RUN_DIR [--threads N] [--listen ...]
       dptrain evaluate --model DIR --data PATH [--labels Y.npy] [--backend B]
       dptrain predict --model DIR --data PATH --out FILE [--keep COLUMNS] [--backend B]
       dptrain plot history RUN_DIR [--out DIR]
       dptrain plot activations --out DIR
       dptrain view RUN_DIR [--listen HOST:PORT]
       dptrain demo-data --out FILE [--rows N] [--seed N]
       dptrain worker start --connect URL [options]   (a worker node: dptrain worker --help)
       dptrain <command> --help      (one command's options)

start: trains a model with synchronous data parallelism over worker threads and worker nodes.

options:
  --config FILE        job config (YAML or JSON)
  --demo               use generated Telco-schema data (and the demo config if --config is absent)
  --data PATH          CSV file, image folder (a subfolder per class) or X.npy (overrides data.path)
  --epochs N           overrides fit.epochs
  --batch-size N       overrides fit.batchSize (the global batch)
  --threads N|auto     overrides cluster.threads (auto: one per core for a big enough model)
  --backend B          ${BACKENDS.join(' | ')} (overrides cluster.backend)
  --seed N             overrides seed
  --listen HOST:PORT   accept worker nodes here (overrides cluster.listen; port 0: any free port)
  --token-file FILE    shared token for worker nodes (or set DPTRAIN_TOKEN)
  --min-workers N      worker nodes needed to start and go on (overrides cluster.minWorkers)
  --start-workers N    worker nodes to wait for before the first step (overrides cluster.startWorkers)
  --balance B          auto | proportional | equal (overrides cluster.balance)
  --reduction R        coordinator | peers | auto (overrides cluster.reduction): peers: worker nodes
                       all-reduce among themselves; auto (default): where nodes x gradient bytes >= 16 MiB
  --tls-cert FILE      serve wss:// with this certificate (PEM; needs --tls-key)
  --tls-key FILE       private key for --tls-cert
  --metrics-listen A   HOST:PORT for the run page (/), /metrics, /healthz, /readyz (overrides metrics.listen; "off": none)
  --out DIR            run directory (overrides output.dir; default runs/<time>); a folder that
                       holds another run is refused unless --resume or --overwrite
  --overwrite          replace the run in --out (its checkpoints, summary and model)
  --resume RUN_DIR     continue that run from its newest checkpoint (its config.json and data;
                       cluster and metrics flags may change, and --data points at the data if it
                       moved: it must hold the same training rows); SIGINT/SIGTERM stop a run
                       after the current step with a checkpoint
  --verbose            show stack traces on errors
  -h, --help           this text

evaluate: loss and metrics of a saved model (RUN_DIR or RUN_DIR/model) on a labelled CSV with raw rows,
  transformed by the saved preprocessing.
predict: one line per CSV row: probabilities / value and the predicted label; rows that cannot
  be transformed are listed with their line and reason.
plot history: loss and metrics per epoch, train vs validation (history.svg and .png).
plot activations: sigmoid, tanh, swish, relu, leakyRelu over [-10, 10] (activations.svg, .png).
view: the live run page of RUN_DIR from its files (a finished run, or one running elsewhere);
  a running coordinator serves the same page at its --metrics-listen address.

demo-data: writes the generated Telco-schema CSV that --demo trains on (columns of the IBM
Telco Customer Churn data, 7043 rows by default), e.g. for deploy/data/data.csv.`;

/** Each command's own --help. */
const COMMAND_USAGE: Readonly<Record<string, string>> = {
  start: USAGE.slice(0, USAGE.indexOf('\n\nevaluate:')),
  evaluate: `usage: dptrain evaluate --model DIR --data PATH [--labels Y.npy] [--backend B] [--verbose]

Loss and metrics of a saved model on a labelled CSV of raw rows (transformed by the saved
preprocessing); rows that cannot be transformed are listed with their line and reason.

options:
  --model DIR          a run directory, or its model/ folder
  --data PATH          labelled data of the kind the model was trained on: a CSV with its
                       columns, an image folder (a subfolder per class) or X.npy
  --labels Y.npy       the labels for an X.npy --data
  --backend B          ${BACKENDS.join(' | ')} (default auto)
  --verbose            show stack traces on errors`,
  predict: `usage: dptrain predict --model DIR --data PATH --out FILE [--keep COLUMNS] [--backend B] [--verbose]

One output line per CSV row: its line, the columns the model dropped (such as an id column), the
probability of each class (binary: of the positive class) or the value, and the predicted label.
Rows that cannot be transformed are listed with their line and the reason (images: their file).

options:
  --model DIR          a run directory, or its model/ folder
  --data PATH          raw rows: a CSV (a label column, if present, is ignored), an image
                       folder or X.npy
  --out FILE           where to write the predictions (CSV)
  --keep COLUMNS       comma-separated CSV columns to copy into each prediction line (default:
                       the columns the model dropped, e.g. customerID, so results join back)
  --backend B          ${BACKENDS.join(' | ')} (default auto)
  --verbose            show stack traces on errors`,
  plot: `usage: dptrain plot history RUN_DIR [--out DIR]
       dptrain plot activations --out DIR

history: loss and metrics per epoch, train vs validation (history.svg and history.png, in
  RUN_DIR or --out DIR).
activations: sigmoid, tanh, swish, relu, leakyRelu over [-10, 10] (activations.svg, .png).`,
  view: `usage: dptrain view RUN_DIR [--listen HOST:PORT]

Serves the live run page for a run directory from its files (events.jsonl): loss and metric
curves, throughput, step phases, participants and events. A run still going elsewhere is
followed as its files grow. Prints the page's URL; Ctrl-C stops.

options:
  --listen HOST:PORT   where to serve it (default 127.0.0.1:9464; port 0: any free port); the
                       page shows whoever reaches it the run's curves, participant names and
                       addresses (docs/live-page.md)
  --verbose            show stack traces on errors`,
  'demo-data': `usage: dptrain demo-data --out FILE [--rows N] [--seed N]

Writes the generated Telco-schema CSV that --demo trains on (the columns of the IBM Telco
Customer Churn data).

options:
  --out FILE           where to write it
  --rows N             rows (default 7043, at least 10)
  --seed N             generator seed (default 7)`,
};

/** The start flags that take a value, and the config key each overrides (for error messages). */
const START_VALUE_FLAGS = ['config', 'data', 'epochs', 'batch-size', 'threads', 'backend', 'seed', 'listen', 'token-file', 'min-workers', 'start-workers', 'balance', 'reduction', 'tls-cert', 'tls-key', 'metrics-listen', 'out', 'resume'];
const FLAG_OF_KEY: Readonly<Record<string, string>> = {
  'data.path': '--data',
  'fit.epochs': '--epochs',
  'fit.batchSize': '--batch-size',
  'cluster.threads': '--threads',
  'cluster.backend': '--backend',
  seed: '--seed',
  'output.dir': '--out',
  'cluster.listen': '--listen',
  'cluster.tokenFile': '--token-file',
  'cluster.minWorkers': '--min-workers',
  'cluster.startWorkers': '--start-workers',
  'cluster.balance': '--balance',
  'cluster.reduction': '--reduction',
  'metrics.listen': '--metrics-listen',
  'cluster.tls.cert': '--tls-cert',
  'cluster.tls.key': '--tls-key',
};

function integerFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got "${value}"`);
  return n;
}

function threadsFlag(value: string | undefined): number | 'auto' | undefined {
  if (value === 'auto') return value;
  if (value !== undefined && !Number.isInteger(Number(value))) throw new UsageError(`--threads must be an integer or auto, got "${value}"`);
  return integerFlag('threads', value);
}

async function start(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: joinNegativeValues(argv, START_VALUE_FLAGS),
    options: {
      config: { type: 'string' },
      demo: { type: 'boolean' },
      data: { type: 'string' },
      epochs: { type: 'string' },
      'batch-size': { type: 'string' },
      threads: { type: 'string' },
      backend: { type: 'string' },
      seed: { type: 'string' },
      listen: { type: 'string' },
      'token-file': { type: 'string' },
      'min-workers': { type: 'string' },
      'start-workers': { type: 'string' },
      balance: { type: 'string' },
      reduction: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'metrics-listen': { type: 'string' },
      out: { type: 'string' },
      resume: { type: 'string' },
      overwrite: { type: 'boolean' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.resume !== undefined) {
    const fixed = (['config', 'demo', 'epochs', 'batch-size', 'seed', 'out', 'overwrite'] as const).filter((k) => values[k] !== undefined);
    if (fixed.length > 0) throw new UsageError(`--resume continues a run with its own config and data; drop ${fixed.map((k) => `--${k}`).join(', ')}`);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const overrides: Record<string, unknown> = {
    'data.path': values.data,
    'fit.epochs': integerFlag('epochs', values.epochs),
    'fit.batchSize': integerFlag('batch-size', values['batch-size']),
    'cluster.threads': threadsFlag(values.threads),
    'cluster.backend': values.backend,
    seed: integerFlag('seed', values.seed),
    'output.dir': values.out,
    'cluster.listen': values.listen,
    'cluster.tokenFile': values['token-file'],
    'cluster.minWorkers': integerFlag('min-workers', values['min-workers']),
    'cluster.startWorkers': integerFlag('start-workers', values['start-workers']),
    'cluster.balance': values.balance,
    'cluster.reduction': values.reduction,
    'metrics.listen': values['metrics-listen'] === 'off' ? false : values['metrics-listen'],
    'output.overwrite': values.overwrite === true ? true : undefined,
  };
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  overrides['cluster.tls.cert'] = values['tls-cert'];
  overrides['cluster.tls.key'] = values['tls-key'];
  if (values.resume !== undefined) {
    const configFile = join(values.resume, 'config.json');
    if (!existsSync(configFile)) throw new UsageError(`--resume ${values.resume}: no config.json there; give the run directory of an earlier run`);
    await runJob(loadConfig(configFile, { ...overrides, 'output.dir': values.resume }, { ...FLAG_OF_KEY, 'output.dir': '--resume' }), { resume: true });
    return;
  }
  if (!values.config && !values.demo) throw new UsageError('give --config FILE or --demo (see --help)');
  if (values.demo && values.data) throw new UsageError('--demo makes its own data; drop --data or --demo');
  const config = values.config ? loadConfig(values.config, overrides, FLAG_OF_KEY) : validateConfig(demoConfigRaw(), DEMO_CONFIG_SOURCE, overrides, FLAG_OF_KEY);
  await runJob(config, { demo: values.demo === true });
}

function backendFlag(value: string | undefined): BackendChoice {
  if (value === undefined) return 'auto';
  if (!(BACKENDS as readonly string[]).includes(value)) throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}, got "${value}"`);
  return value as BackendChoice;
}

function reportRejected(rejected: readonly { line: number; reason: string }[], dataFile: string): void {
  if (rejected.length === 0) return;
  console.error(`${dataFile}: ${rejected.length} row(s) could not be transformed (images: read):`);
  for (const r of rejected.slice(0, 20)) console.error(`  line ${r.line}: ${r.reason}`);
  if (rejected.length > 20) console.error(`  ... and ${rejected.length - 20} more`);
}

async function evaluate(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: 'string' }, data: { type: 'string' }, labels: { type: 'string' }, backend: { type: 'string' }, verbose: { type: 'boolean' } }, strict: true });
  if (!values.model || !values.data) throw new UsageError('evaluate needs --model DIR and --data CSV|IMAGE_FOLDER|X.npy (with --labels Y.npy)');
  const model = await loadSavedModel(values.model, backendFlag(values.backend));
  const result = await evaluateCsv(model, values.data, values.labels ? { labels: values.labels } : {});
  reportRejected(result.rejected, values.data);
  console.log(`${evaluationLine('Evaluate', result.values)} (${result.rows} rows, ${model.backend})`);
  console.log(JSON.stringify({ rows: result.rows, rejected: result.rejected.length, ...result.values }));
}

async function predict(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, keep: { type: 'string' }, backend: { type: 'string' }, verbose: { type: 'boolean' } }, strict: true });
  if (!values.model || !values.data || !values.out) throw new UsageError('predict needs --model DIR, --data CSV|IMAGES|X.npy and --out FILE');
  const model = await loadSavedModel(values.model, backendFlag(values.backend));
  const keep = values.keep === undefined ? undefined : values.keep.split(',').map((c) => c.trim()).filter((c) => c !== '');
  const result = await predictCsv(model, values.data, values.out, keep ? { keep } : {});
  reportRejected(result.rejected, values.data);
  console.log(`wrote ${result.rows} predictions${result.rejected.length ? ` and ${result.rejected.length} rejected rows` : ''} to ${values.out}`);
}

async function plot(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, options: { out: { type: 'string' }, verbose: { type: 'boolean' } }, strict: true, allowPositionals: true });
  const [what, runDir] = positionals;
  const { plotActivations, plotHistory } = await import('./plot.js'); // vega and resvg only load here
  let files: string[];
  if (what === 'history' && runDir) files = await plotHistory(runDir, values.out ?? runDir);
  else if (what === 'activations' && values.out) files = await plotActivations(values.out);
  else throw new UsageError('plot history RUN_DIR [--out DIR] | plot activations --out DIR');
  console.log(`wrote ${files.join(', ')}`);
}

function demoData(argv: string[]): void {
  const { values } = parseArgs({ args: joinNegativeValues(argv, ['out', 'rows', 'seed']), options: { out: { type: 'string' }, rows: { type: 'string' }, seed: { type: 'string' } }, strict: true });
  if (!values.out) throw new UsageError('demo-data needs --out FILE');
  const rows = integerFlag('rows', values.rows) ?? 7043;
  if (rows < 10) throw new UsageError(`--rows must be at least 10, got ${rows}`);
  writeFileSync(values.out, telcoDemoCsv(rows, integerFlag('seed', values.seed) ?? 7));
  console.log(`wrote ${rows} generated Telco-schema rows to ${values.out}`);
}

async function view(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, options: { listen: { type: 'string' }, verbose: { type: 'boolean' } }, strict: true, allowPositionals: true });
  const [runDir, ...more] = positionals;
  if (runDir === undefined || more.length > 0) throw new UsageError('view needs one RUN_DIR: dptrain view RUN_DIR [--listen HOST:PORT]');
  let address: { host: string; port: number };
  try {
    address = parseHostPort(values.listen ?? '127.0.0.1:9464', '--listen');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { viewRun } = await import('./live/view.js');
  const page = await viewRun(runDir, address);
  console.log(`the run page of ${runDir}: ${page.url} (Ctrl-C to stop)`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await page.close();
}

const help = (): void => console.log(USAGE);

/** Every command, by name. */
const COMMANDS: Record<string, (argv: string[]) => void | Promise<void>> = {
  start,
  evaluate,
  predict,
  plot,
  view,
  'demo-data': demoData,
  help,
  '--help': help,
  '-h': help,
};

export async function main(argv: string[]): Promise<number> {
  const verbose = argv.includes('--verbose');
  const [command = 'help', ...rest] = argv;
  try {
    const run = COMMANDS[command];
    if (!run) throw new UsageError(`unknown command "${command}"; expected one of: start, evaluate, predict, plot, view, demo-data, worker (dptrain --help lists them)`);
    const usage = COMMAND_USAGE[command];
    if (usage !== undefined && wantsHelp(rest)) console.log(usage);
    else if (command === 'help' && rest[0] !== undefined && COMMAND_USAGE[rest[0]] !== undefined) console.log(COMMAND_USAGE[rest[0]]);
    else await run(rest);
    return 0;
  } catch (err) {
    const known = err instanceof DptrainError;
    const isArgError = (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    const code = known ? err.code : isArgError ? 'E_USAGE' : 'E_INTERNAL';
    console.error(`error [${code}]: ${(err as Error).message}`);
    if (verbose) console.error((err as Error).stack);
    else if (!known && !isArgError) console.error('(run with --verbose for the stack trace)');
    return known || isArgError ? 1 : 70;
  }
}
