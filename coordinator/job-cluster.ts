/**
 * The participants of a job and its metrics endpoint: the local lanes (threads, or the
 * coordinator's own thread), the node server for worker nodes, and /metrics, /healthz, /readyz.
 */
import { randomUUID } from 'node:crypto';
import type { JobConfig } from '../shared/config/schema.js';
import type { PreparedData } from '../shared/data/dataset.js';
import { ConfigError } from '../shared/errors.js';
import { parseHostPort, serveMetrics, type ExtraRoutes, type MetricsServer } from '../shared/metrics-server.js';
import { weightLayout } from '../shared/model/layout.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { readToken } from '../shared/token.js';
import type { TrainingMetrics } from './metrics.js';
import { Cluster, type ClusterObserver } from './participants/cluster.js';
import { InProcessLane } from './participants/in-process.js';
import type { LocalLanes } from './participants/participant.js';
import { RemoteNode } from './participants/remote-node.js';
import type { RunConfig } from './participants/thread-count.js';
import { ThreadPool } from './participants/threads.js';
import { ReadAhead } from './participants/read-ahead.js';
import { reductionPolicy } from './fit/reduction-policy.js';
import { NodeServer, parseListen } from './server.js';
import { computesInProcess } from './validate.js';

export interface ClusterEvents {
  /** Called with the node server's URL once it listens. */
  readonly onListening?: ((url: string) => void) | undefined;
  /** Hears joins, departures, failures and parts (the live run page). */
  readonly observer?: ClusterObserver | undefined;
}

/** "min 1, start 2" (start only when it asks for more nodes than min) for the start-up line. */
export function workerCounts({ minWorkers, startWorkers }: RunConfig['cluster']): string {
  return `min ${minWorkers}${startWorkers !== undefined && startWorkers > minWorkers ? `, start ${startWorkers}` : ''}`;
}

/** Starts the local threads (if any) and the node server (if listening) as one Cluster. */
export async function startCluster(
  config: RunConfig,
  spec: ModelSpec,
  dataset: PreparedData['dataset'],
  log: (line: string) => void,
  events: ClusterEvents,
  metrics: TrainingMetrics,
): Promise<{ cluster: Cluster; server: NodeServer | undefined }> {
  const { cluster: c } = config;
  const parameters = weightLayout(spec).size;
  const token = c.listen ? readToken(c.tokenFile) : undefined;
  let local: LocalLanes | undefined;
  const inProcess = computesInProcess(config);
  const readAhead = inProcess || c.threads > 0 ? ReadAhead.start(dataset, config.data.readAhead, config.fit.batchSize, log) : undefined;
  if (inProcess) local = await InProcessLane.start({ backend: c.backend, spec, dataset, parameters, onFallback: log, readAhead });
  else if (c.threads > 0) local = await ThreadPool.start({ threads: c.threads, backend: c.backend, spec, dataset, parameters, onBytes: (direction, n) => metrics.bytes('thread', direction, n), readAhead });
  const cluster = new Cluster(local, {
    minWorkers: c.minWorkers,
    startWorkers: c.startWorkers,
    ...(c.aggregation !== 'mean' ? { minVotes: { votes: c.minVotes, aggregation: c.aggregation } } : {}),
    waitTimeoutMs: c.waitTimeout * 1000,
    balance: c.balance,
    log,
    trainRows: dataset.train.count,
    metrics,
    straggler: c.straggler,
    deadline: { ...c.stepDeadline, stepTimeoutSeconds: c.stepTimeout },
    observer: events.observer,
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
    // nodes prepare their side of a round wherever a step may go among peers
    reduction: reductionPolicy(c) ? 'peers' : 'coordinator',
    optimizer: config.compile.optimizer,
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

/**
 * Serves /metrics, /healthz and /readyz, and `page` (the live run page at /) on the same address;
 * a busy port is reported and training goes on without.
 */
export async function startMetricsServer(config: JobConfig, metrics: TrainingMetrics, ready: () => boolean, log: (line: string) => void, page?: ExtraRoutes): Promise<MetricsServer | undefined> {
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
    const server = await serveMetrics(metrics.registry, host, port, ready, page, { log, onRejected: (reason) => metrics.rejected(reason) });
    log(`metrics on ${server.url}`);
    if (page) log(`live run page on ${server.url.replace(/metrics$/, '')}`);
    return server;
  } catch (err) {
    log(`warning: no metrics server: cannot listen on ${listen} (${(err as Error).message}); set metrics.listen or --metrics-listen`);
    return undefined;
  }
}

