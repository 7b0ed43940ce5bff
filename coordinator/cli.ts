/**
 * `coordinator` command line.
 *
 *   coordinator start --config job.yaml [--data file.csv] [--epochs N] [--threads N]
 *                     [--batch-size N] [--seed N] [--out DIR] [--backend B] [--verbose]
 *   coordinator start --demo          (generated Telco-schema data, the seed's model)
 *   coordinator demo-data --out FILE  (write that generated data as a CSV)
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BACKENDS } from '../shared/backend-choice.js';
import { loadConfig, validateConfig } from '../shared/config/load.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { DptrainError, UsageError } from '../shared/errors.js';
import { DEMO_CONFIG_SOURCE, demoConfigRaw } from './demo.js';
import { runJob } from './job.js';

const USAGE = `usage: coordinator start (--config FILE | --demo) [options]
       coordinator demo-data --out FILE [--rows N] [--seed N]

start: trains a model with synchronous data parallelism over worker threads and worker nodes.

options:
  --config FILE        job config (YAML or JSON)
  --demo               use generated Telco-schema data (and the demo config if --config is absent)
  --data FILE          CSV file (overrides data.path)
  --epochs N           overrides fit.epochs
  --batch-size N       overrides fit.batchSize (the global batch)
  --threads N          overrides cluster.threads
  --backend B          ${BACKENDS.join(' | ')} (overrides cluster.backend)
  --seed N             overrides seed
  --listen HOST:PORT   accept worker nodes here (overrides cluster.listen; port 0: any free port)
  --token-file FILE    shared token for worker nodes (or set DPTRAIN_TOKEN)
  --min-workers N      worker nodes to wait for before training (overrides cluster.minWorkers)
  --balance B          proportional | equal (overrides cluster.balance)
  --tls-cert FILE      serve wss:// with this certificate (PEM; needs --tls-key)
  --tls-key FILE       private key for --tls-cert
  --metrics-listen A   HOST:PORT for /metrics, /healthz, /readyz (overrides metrics.listen; "off": none)
  --out DIR            run directory (overrides output.dir; default runs/<time>)
  --verbose            show stack traces on errors
  -h, --help           this text

demo-data: writes the generated Telco-schema CSV that --demo trains on (columns of the IBM
Telco Customer Churn data, 7043 rows by default), e.g. for deploy/data/data.csv.`;

function integerFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got "${value}"`);
  return n;
}

async function start(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
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
      balance: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'metrics-listen': { type: 'string' },
      out: { type: 'string' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const overrides: Record<string, unknown> = {
    'data.path': values.data,
    'fit.epochs': integerFlag('epochs', values.epochs),
    'fit.batchSize': integerFlag('batch-size', values['batch-size']),
    'cluster.threads': integerFlag('threads', values.threads),
    'cluster.backend': values.backend,
    seed: integerFlag('seed', values.seed),
    'output.dir': values.out,
    'cluster.listen': values.listen,
    'cluster.tokenFile': values['token-file'],
    'cluster.minWorkers': integerFlag('min-workers', values['min-workers']),
    'cluster.balance': values.balance,
    'metrics.listen': values['metrics-listen'] === 'off' ? false : values['metrics-listen'],
  };
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  overrides['cluster.tls.cert'] = values['tls-cert'];
  overrides['cluster.tls.key'] = values['tls-key'];
  if (!values.config && !values.demo) throw new UsageError('give --config FILE or --demo (see --help)');
  if (values.demo && values.data) throw new UsageError('--demo makes its own data; drop --data or --demo');
  const config = values.config ? loadConfig(values.config, overrides) : validateConfig(demoConfigRaw(), DEMO_CONFIG_SOURCE, overrides);
  await runJob(config, { demo: values.demo === true });
}

function demoData(argv: string[]): void {
  const { values } = parseArgs({ args: argv, options: { out: { type: 'string' }, rows: { type: 'string' }, seed: { type: 'string' } }, strict: true });
  if (!values.out) throw new UsageError('demo-data needs --out FILE');
  const rows = integerFlag('rows', values.rows) ?? 7043;
  if (rows < 10) throw new UsageError(`--rows must be at least 10, got ${rows}`);
  writeFileSync(values.out, telcoDemoCsv(rows, integerFlag('seed', values.seed) ?? 7));
  console.log(`wrote ${rows} generated Telco-schema rows to ${values.out}`);
}

const help = (): void => console.log(USAGE);

/** Every command, by name. */
const COMMANDS: Record<string, (argv: string[]) => void | Promise<void>> = {
  start,
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
    if (!run) throw new UsageError(`unknown command "${command}"; expected one of: start, demo-data`);
    await run(rest);
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
