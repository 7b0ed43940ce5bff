/**
 * `worker` command line.
 *
 *   worker start --connect ws://HOST:PORT [--token-file F] [--backend B] [--devices N|LIST]
 *                [--name N] [--ca PEM] [--retries N] [--max-parameters N] [--max-step-memory MIB] [--verbose]
 *                [--peer-listen HOST:PORT|off] [--peer-host HOST] [--peer-cert PEM --peer-key PEM]
 *                [--data-dir DIR | --data-url URL]
 *                                               join a coordinator and compute its steps
 *   worker backends [--backend B]                which TensorFlow.js backends load here
 *
 * The token comes from --token-file or the DPTRAIN_TOKEN environment variable, never from the
 * command line (it would show in `ps` and shell history).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { BACKENDS, type BackendChoice } from '../shared/backend-choice.js';
import { joinNegativeValues, wantsHelp } from '../shared/cli-args.js';
import { readToken } from '../shared/token.js';
import { DptrainError, UsageError } from '../shared/errors.js';
import { parseHostPort, serveMetrics, type MetricsServer } from '../shared/metrics-server.js';
import type { ModelSpec } from '../shared/model/spec.js';
import type { BatchEngine } from '../compute/engine.js';
import { WorkerMetrics } from './metrics.js';

const USAGE = `usage: dptrain worker <command>   (alias: worker <command>)

commands:
  start --connect URL      join a coordinator (ws://host:port or wss://host:port) and train
      --token-file FILE    file holding the shared token (or set DPTRAIN_TOKEN)
      --backend B          ${BACKENDS.join(' | ')} (default auto: tensorflow on an NVIDIA GPU
                           with @tensorflow/tfjs-node-gpu, else webgpu on a hardware GPU, else
                           native (onnxruntime-node's CPU kernels), else wasm; webgpu takes a
                           software adapter such as llvmpipe only when asked for)
      --devices N|LIST     one compute process per device: N (devices 0..N-1) or ids "0,2"
                           (CUDA_VISIBLE_DEVICES for tensorflow, Dawn's adapters for webgpu, cores
                           on wasm); the node splits its part among them and sends one gradient
      --name NAME          name shown in the coordinator's logs (default: host name)
      --ca FILE            PEM certificate to trust for wss:// (self-signed coordinators, and
                           peers' --peer-cert)
      --retries N          failed connection attempts in a row before giving up (default 8;
                           the wait doubles each time, from 0.5 s to at most 30 s); a connection
                           counts as failed unless a step was computed on it
      --max-parameters N   refuse a job whose model has more parameters (default: 100000000, or
                           fewer where memory is short: total memory / 32 bytes)
      --max-step-memory M  MiB of activations a step may need at once (rows x the model's
                           values a row, input and outputs and their gradients, x 4 bytes):
                           a job with a row over it is refused, a step over it fails (default:
                           half the memory)
      --peer-listen A      HOST:PORT of this node's peer endpoint, where other nodes send their
                           shares of each step in jobs with cluster.reduction: peers (default
                           0.0.0.0:0, any free port; "off": take part through the coordinator)
      --peer-host H        the host other nodes reach the peer endpoint at (default: the address
                           the coordinator sees this node connect from; set it behind NAT or in
                           Kubernetes, e.g. the pod IP)
      --peer-cert FILE     PEM certificate of the peer endpoint: it serves wss://, and this node
                           checks its peers' certificates against --ca (needed when the job uses
                           cluster.tls; a node without one then reduces through the coordinator)
      --peer-key FILE      PEM private key of --peer-cert
      --data-dir DIR       a folder holding the job's data files (a shared volume): where the
                           coordinator keeps .npy samples or tar shards on disk (data.inMemory),
                           this node reads its rows there itself (by the files' names) and is
                           sent row numbers only
      --data-url URL       the same from an HTTP(S) server that answers byte-range requests
                           (an object store, a static server): URL/<file name>
      --metrics-listen A   HOST:PORT for this node's /metrics (default 127.0.0.1:9465; "off": none)
      --metrics-linger S   after the job, keep /metrics up S seconds so Prometheus scrapes the
                           final counters (default 0; a short job can end between two scrapes)
      --verbose            log every step; stack traces on errors
  backends [--backend B]   start a backend (default: each in turn) and report it
  help [COMMAND]           this text, or one command's (also: dptrain worker COMMAND --help)`;

/** Each command's own --help. */
const COMMAND_USAGE: Readonly<Record<string, string>> = {
  start: `usage: dptrain worker start --connect URL [options]

Joins a coordinator and computes its steps until the job ends.

${USAGE.slice(USAGE.indexOf('      --token-file'), USAGE.indexOf('  backends')).trimEnd()}`,
  backends: `usage: dptrain worker backends [--backend B]

Starts a TensorFlow.js backend (${BACKENDS.join(' | ')}; default: auto) and reports which one runs here.`,
};

function checkBackend(value: string | undefined): BackendChoice | undefined {
  if (value !== undefined && !BACKENDS.includes(value as BackendChoice)) throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}, got "${value}"`);
  return value as BackendChoice | undefined;
}

async function backends(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { backend: { type: 'string' } }, strict: true });
  const choice = checkBackend(values.backend);
  const { initBackend } = await import('../shared/backend.js');
  const { backendReport } = await import('../shared/backend.js');
  const name = await initBackend(choice ?? 'auto', (msg) => console.error(`note: ${msg}`));
  const report = backendReport();
  console.log(`backend ${choice ?? 'auto'}: running on "${name}"${report.adapter ? ` (adapter: ${report.adapter})` : ''}${report.reason ? ` (${report.reason})` : ''}`);
}

export const DEFAULT_WORKER_METRICS = '127.0.0.1:9465';

/**
 * The node's /metrics server. On the default address a busy port (a second worker on this host)
 * falls back to a free port, said in the log; an address given with --metrics-listen is used or
 * warned about.
 */
export async function startMetrics(
  given: string | undefined,
  metrics: WorkerMetrics,
  log: (line: string) => void,
  defaultAddress = DEFAULT_WORKER_METRICS,
): Promise<MetricsServer | undefined> {
  const listen = given ?? defaultAddress;
  if (listen === 'off') return undefined;
  let address;
  try {
    address = parseHostPort(listen, '--metrics-listen');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  try {
    const server = await serveMetrics(metrics.registry, address.host, address.port, undefined, undefined, { log });
    log(`metrics on ${server.url}`);
    return server;
  } catch (err) {
    if (given === undefined && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      try {
        const server = await serveMetrics(metrics.registry, address.host, 0, undefined, undefined, { log });
        log(`metrics on ${server.url} (${listen} is taken, another worker on this host?; set one with --metrics-listen HOST:PORT)`);
        return server;
      } catch {
        // fall through to the warning
      }
    }
    log(`warning: no metrics server: cannot listen on ${listen} (${(err as Error).message}); use --metrics-listen HOST:PORT`);
    return undefined;
  }
}

/** Where this node reads the jobs' data files itself: --data-dir (a folder) or --data-url (http/https), not both. */
function dataSource(dir: string | undefined, url: string | undefined): { dir: string } | { url: string } | undefined {
  if (dir !== undefined && url !== undefined) throw new UsageError('give --data-dir or --data-url, not both');
  if (dir !== undefined) {
    if (!(existsSync(dir) && statSync(dir).isDirectory())) throw new UsageError(`--data-dir ${dir}: not a folder`);
    return { dir };
  }
  if (url === undefined) return undefined;
  if (!/^https?:\/\/[^/]/.test(url) || !URL.canParse(url)) throw new UsageError(`--data-url must be an http:// or https:// URL, got "${url}"`);
  return { url };
}

async function start(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: joinNegativeValues(argv, ['connect', 'token-file', 'backend', 'devices', 'name', 'ca', 'retries', 'max-parameters', 'max-step-memory', 'max-payload', 'metrics-listen', 'metrics-linger', 'peer-listen', 'peer-host', 'peer-cert', 'peer-key', 'data-dir', 'data-url']),
    options: {
      connect: { type: 'string' },
      'token-file': { type: 'string' },
      backend: { type: 'string' },
      devices: { type: 'string' },
      name: { type: 'string' },
      ca: { type: 'string' },
      retries: { type: 'string' },
      'max-parameters': { type: 'string' },
      'max-step-memory': { type: 'string' },
      'max-payload': { type: 'string' },
      'metrics-listen': { type: 'string' },
      'metrics-linger': { type: 'string' },
      'peer-listen': { type: 'string' },
      'peer-host': { type: 'string' },
      'peer-cert': { type: 'string' },
      'peer-key': { type: 'string' },
      'data-dir': { type: 'string' },
      'data-url': { type: 'string' },
      verbose: { type: 'boolean' },
    },
    strict: true,
  });
  if (!values.connect) throw new UsageError('worker start needs --connect ws://HOST:PORT');
  if (!/^wss?:\/\//.test(values.connect)) throw new UsageError(`--connect must be a ws:// or wss:// URL, got "${values.connect}"`);
  const retries = Number(values.retries ?? 8);
  if (!Number.isInteger(retries) || retries < 0) throw new UsageError(`--retries must be a non-negative integer, got "${values.retries}"`);
  const maxParameters = values['max-parameters'] === undefined ? undefined : Number(values['max-parameters']);
  if (maxParameters !== undefined && !(Number.isSafeInteger(maxParameters) && maxParameters > 0)) {
    throw new UsageError(`--max-parameters must be a positive integer, got "${values['max-parameters']}"`);
  }
  const maxStepMiB = values['max-step-memory'] === undefined ? undefined : Number(values['max-step-memory']);
  if (maxStepMiB !== undefined && !(Number.isSafeInteger(maxStepMiB) && maxStepMiB > 0)) {
    throw new UsageError(`--max-step-memory must be a positive number of MiB, got "${values['max-step-memory']}"`);
  }
  const linger = Number(values['metrics-linger'] ?? 0);
  if (!Number.isFinite(linger) || linger < 0) throw new UsageError(`--metrics-linger must be a non-negative number of seconds, got "${values['metrics-linger']}"`);
  const endpoint = peerEndpoint(values['peer-listen'], values['peer-host']);
  const peerTls = peerCertificate(values['peer-cert'], values['peer-key'], endpoint !== undefined);
  const peer = endpoint && { ...endpoint, ...(peerTls ? { tls: peerTls } : {}) };
  const data = dataSource(values['data-dir'], values['data-url']);
  const token = readToken(values['token-file']);
  const choice = checkBackend(values.backend) ?? 'auto';
  const devices = values.devices === undefined ? undefined : parseDevices(values.devices);
  const log = (line: string): void => console.log(`[worker] ${line}`);
  // TensorFlow.js loads only now (seconds on a small machine), after the arguments are checked.
  const { NodeClient } = await import('./node-client.js');
  const compute = devices ? await startDevices(choice, devices, log) : await startBackend(choice, log);
  let ca: Buffer | undefined;
  if (values.ca) {
    try {
      ca = readFileSync(values.ca);
    } catch (err) {
      throw new UsageError(`--ca ${values.ca}: ${(err as Error).message}`);
    }
  }
  const { backend } = compute;
  const metrics = new WorkerMetrics(backend);
  const metricsServer = await startMetrics(values['metrics-listen'], metrics, log);
  const client = new NodeClient({
    metrics,
    url: values.connect,
    token,
    name: values.name ?? hostname(),
    backend,
    ...(compute.adapter ? { adapter: compute.adapter } : {}),
    ...(compute.devices ? { devices: compute.devices } : {}),
    ...(ca ? { ca } : {}),
    retries,
    backoffMs: 500,
    ...(maxParameters !== undefined ? { maxParameters } : {}),
    ...(maxStepMiB !== undefined ? { maxStepBytes: maxStepMiB * 2 ** 20 } : {}),
    maxPayload: Number(values['max-payload'] ?? 256 * 2 ** 20),
    log,
    verbose: values.verbose === true,
    peer,
    data,
  });
  let reason: string;
  try {
    reason = await client.run();
    if (metricsServer && linger > 0) {
      log(`serving the final metrics for ${linger} s (--metrics-linger)`);
      await new Promise((resolve) => setTimeout(resolve, linger * 1000));
    }
  } finally {
    client.close();
    compute.close();
    await metricsServer?.close();
  }
  const { rowsReadAhead, rowsReadInStep } = client.stats;
  const reads = rowsReadAhead + rowsReadInStep > 0 ? `, rows read: ${rowsReadAhead} a step ahead, ${rowsReadInStep} in their step` : '';
  log(`done: ${reason} (${client.stats.steps} steps, ${client.stats.samples} samples, ${client.stats.computeSeconds.toFixed(2)} s computing${reads})`);
}

/** `--peer-listen` and `--peer-host`: where the peer endpoint listens and is reached (undefined: off). */
function peerEndpoint(listen: string | undefined, host: string | undefined): { port: number; listenHost: string; host: string | undefined } | undefined {
  if (listen === 'off') {
    if (host !== undefined) throw new UsageError('--peer-host needs a peer endpoint: leave out --peer-listen off');
    return undefined;
  }
  let address: { host: string; port: number };
  try {
    address = listen === undefined ? { host: '0.0.0.0', port: 0 } : parseHostPort(listen, '--peer-listen');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (host !== undefined && !/^[A-Za-z0-9.:[\]-]{1,253}$/.test(host)) throw new UsageError(`--peer-host must be a host name or address, got "${host}"`);
  return { port: address.port, listenHost: address.host, host };
}

/** `--peer-cert` and `--peer-key`: the peer endpoint's certificate and key, read (undefined: plain ws://). */
function peerCertificate(certFile: string | undefined, keyFile: string | undefined, endpoint: boolean): { cert: Buffer; key: Buffer } | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) throw new UsageError(`--peer-cert and --peer-key go together: ${certFile === undefined ? '--peer-key' : '--peer-cert'} was given alone`);
  if (!endpoint) throw new UsageError('--peer-cert needs a peer endpoint: leave out --peer-listen off');
  const read = (file: string, flag: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new UsageError(`${flag} ${file}: ${(err as Error).message}`);
    }
  };
  return { cert: read(certFile, '--peer-cert'), key: read(keyFile, '--peer-key') };
}

/** `--devices`: a count N (devices 0..N-1) or a comma-separated list of device ids. */
export function parseDevices(value: string): number[] {
  const bad = (): never => {
    throw new UsageError(`--devices must be a count (2) or a list of device ids (0,2), got "${value}"`);
  };
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    if (n < 1 || n > 64) bad();
    return Array.from({ length: n }, (_, i) => i);
  }
  const ids = value.split(',').map((s) => (/^\d+$/.test(s.trim()) ? Number(s.trim()) : bad()));
  if (ids.length === 0 || ids.length > 64 || new Set(ids).size !== ids.length) bad();
  return ids;
}

interface Compute {
  readonly backend: string;
  readonly adapter?: string | undefined;
  readonly devices?: { readonly count: number; readonly engine: (spec: ModelSpec) => BatchEngine };
  close(): void;
}

/** The backend in this process; the start line says which and, for auto or webgpu, on what and why. */
async function startBackend(choice: BackendChoice, log: (line: string) => void): Promise<Compute> {
  const { backendReport, initBackend } = await import('../shared/backend.js');
  const backend = await initBackend(choice, (msg) => log(`note: ${msg}`));
  const report = backendReport();
  if (report.adapter) log(`backend ${choice}: ${backend} on ${report.adapter}`);
  if (choice === 'auto') log(`backend auto: running on ${backend} (${report.reason?.replace(/^auto: /, '') ?? 'default'})`);
  if (report.adapter?.endsWith(', software')) log('note: a software adapter computes on the CPU, slower than wasm; it is for checking the WebGPU path where no GPU is at hand');
  const adapter = report.adapter ?? (choice === 'auto' ? report.reason : undefined);
  return { backend, ...(adapter ? { adapter } : {}), close: () => undefined };
}

/** One compute process per device; the node's engine is their group. */
async function startDevices(choice: BackendChoice, devices: readonly number[], log: (line: string) => void): Promise<Compute> {
  const { DeviceGroup } = await import('./device-group.js');
  let adapterNames: string[] | undefined;
  if (choice === 'webgpu') {
    const { listAdapters } = await import('../shared/webgpu.js');
    adapterNames = (await listAdapters()).map((a) => a.name);
    const names = devices.map((d) => adapterNames![d]);
    if (names.some((n) => n === undefined)) log(`warning: Dawn offers ${adapterNames.length} adapter(s) (${adapterNames.join(', ') || 'none'}); devices beyond them take the default adapter`);
    else if (new Set(names).size < names.length) log(`warning: adapters share a name (${names.join(', ')}): Dawn picks adapters by name, so these devices may share one GPU; run one worker per GPU (e.g. one container each) instead`);
  }
  const group = await DeviceGroup.start({ backend: choice, devices, log, ...(adapterNames ? { adapterNames } : {}) });
  log(`${devices.length} device process(es) (${group.pids().map((p) => `device ${p.device}: pid ${p.pid}`).join(', ')}) on ${group.backend}${group.adapter ? ` (${group.adapter})` : ''}`);
  return {
    backend: group.backend,
    ...(group.adapter ? { adapter: group.adapter } : {}),
    devices: { count: devices.length, engine: (spec) => group.engine(spec) },
    close: () => group.close(),
  };
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    const usage = command === undefined ? undefined : COMMAND_USAGE[command];
    if (usage !== undefined && wantsHelp(rest)) console.log(usage);
    else if (command === 'backends') await backends(rest);
    else if (command === 'start') await start(rest);
    else if (command === undefined || command === '--help' || command === '-h' || command === 'help') console.log((rest[0] !== undefined && COMMAND_USAGE[rest[0]]) || USAGE);
    else throw new UsageError(`unknown command "${command}"; expected: start, backends, help`);
    return 0;
  } catch (err) {
    const known = err instanceof DptrainError;
    const isArgError = (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    const code = known ? err.code : isArgError ? 'E_USAGE' : 'E_INTERNAL';
    console.error(`error [${code}]: ${(err as Error).message}`);
    if (argv.includes('--verbose')) console.error((err as Error).stack);
    return known || isArgError ? 1 : 70;
  }
}
