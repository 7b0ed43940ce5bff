/**
 * A small HTTP server for Prometheus and health checks, used by the coordinator and by worker
 * nodes: GET /metrics (the registry in the text format), /healthz (200 while the process
 * serves), /readyz (200 while `ready()` is true, else 503); and, given `extra`, its routes too (the
 * coordinator's live run page at /).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { collectDefaultMetrics, type Registry } from 'prom-client';
import { Admission, RefusalLog } from './admission.js';

/** Histogram buckets for step and compute times: 1 ms to 10 s. */
export const STEP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * prom-client's default Node process metrics, less three gauges named `*_total`
 * (nodejs_active_{handles,requests,resources}_total), which break the naming convention
 * (promtool rejects them); the same numbers remain, by type, in the gauges without `_total`.
 */
export function defaultProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
}

export interface MetricsServer {
  readonly url: string;
  close(): Promise<void>;
}

/** More routes on the same server: `handle` answers a GET or HEAD it knows and returns true. */
export interface ExtraRoutes {
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Ends what keeps connections open (event streams) before the server closes. */
  close?(): void;
}

/** Parses "host:port" for metrics.listen / --metrics-listen. */
export function parseHostPort(value: string, what: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || port > 65535) throw new Error(`${what} must be HOST:PORT (e.g. 127.0.0.1:9464), got "${value}"`);
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port };
}

/**
 * Limits of the metrics port, where nobody authenticates: it must not let a stranger use up the
 * process's file descriptors, memory or CPU (the coordinator writes checkpoints and talks to its
 * nodes from the same process).
 */
export interface MetricsServerLimits {
  /** Connections held at once, in all and from one address (Admission: shared fairly). */
  readonly connections: number;
  readonly connectionsPerAddress: number;
  /** Time for a request's headers, and for the whole request, from its first byte (or the connect). */
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** An idle connection is kept this long between requests (longer than a scraper's interval). */
  readonly keepAliveTimeoutMs: number;
  /** Requests on one connection (pipelined or not) before it is closed. */
  readonly requestsPerSocket: number;
  /**
   * A connection's whole life: past it, the response in flight is its last (Connection: close),
   * and an idle connection is closed. Without it a client asking within the keep-alive would hold
   * its slot for good, and 64 such clients every slot.
   */
  readonly connectionLifetimeMs: number;
  /** At most this many /metrics renders a second; more requests get the last render. */
  readonly rendersPerSecond: number;
}

export const METRICS_SERVER_LIMITS: MetricsServerLimits = {
  connections: 64,
  connectionsPerAddress: 16,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 65_000,
  requestsPerSocket: 100,
  connectionLifetimeMs: 300_000,
  rendersPerSecond: 5,
};

export interface MetricsServerOptions {
  /** Where refusals are logged (rate-limited); none: not logged. */
  readonly log?: (line: string) => void;
  /** A connection was refused: reason metrics_busy, metrics_evicted or metrics_timeout. */
  readonly onRejected?: (reason: string) => void;
  /** Tests lower them; defaults METRICS_SERVER_LIMITS. */
  readonly limits?: Partial<MetricsServerLimits>;
}

/**
 * The registry's text, rendered at most `perSecond` times a second: requests that come while a
 * render is under way share it, and beyond the budget get the last one (at most a second old). A
 * scraper or a test asking a few times a second always gets a fresh render; a flood of requests
 * costs the writing of the same string, not a render each.
 */
function metricsRenderer(registry: Registry, perSecond: number): () => Promise<string> {
  let inFlight: Promise<string> | undefined;
  let last: Promise<string> | undefined;
  let windowStart = -Infinity;
  let renders = 0;
  return () => {
    if (inFlight) return inFlight;
    const now = performance.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      renders = 0;
    }
    if (last && renders >= perSecond) return last;
    renders++;
    const render = registry.metrics();
    inFlight = render;
    last = render;
    const done = (): void => {
      if (inFlight === render) inFlight = undefined;
    };
    render.then(done, done);
    return render;
  };
}

/** What the server keeps of a connection it admitted. */
interface Connection {
  /** Requests answered or being answered. */
  requests: number;
  /** Responses begun and not yet finished (several when requests are pipelined). */
  readonly inFlight: Set<ServerResponse>;
  /** Its lifetime is over. */
  expired: boolean;
  /** Its last response is chosen: later requests are not answered. */
  closing: boolean;
}

export async function serveMetrics(
  registry: Registry,
  host: string,
  port: number,
  ready: () => boolean = () => true,
  extra?: ExtraRoutes,
  options: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const limits = { ...METRICS_SERVER_LIMITS, ...options.limits };
  const metricsText = metricsRenderer(registry, limits.rendersPerSecond);
  const refusals = new RefusalLog(options.log ?? (() => undefined), 'connections to the metrics port');
  const refuse = (reason: string, line: string): void => {
    options.onRejected?.(`metrics_${reason}`);
    refusals.note(reason, line);
  };
  // headersTimeout and requestTimeout are checked every connectionsCheckingInterval; they count
  // from a request's first byte, or from the connect for the first request
  const connections = new WeakMap<Socket, Connection>();
  /** Makes `res` its connection's last response: Connection: close, and the connection ends after it. */
  const last = (conn: Connection, res: ServerResponse, socket: Socket): void => {
    conn.closing = true;
    res.shouldKeepAlive = false;
    res.setHeader('connection', 'close');
    res.once('finish', () => socket.destroySoon());
  };
  const server: Server = createServer({ headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs) }, (req, res) => {
    // The last request a connection may make (by count or by its lifetime) is answered with
    // Connection: close and the connection ends after it; requests pipelined behind it are left
    // unanswered. (Node's own maxRequestsPerSocket answers each of them 503 and keeps the
    // connection open.)
    const conn = connections.get(req.socket);
    if (!conn || conn.closing) return;
    conn.requests++;
    if (conn.requests >= limits.requestsPerSocket || conn.expired) last(conn, res, req.socket);
    conn.inFlight.add(res);
    res.once('close', () => {
      conn.inFlight.delete(res);
      // answered while its lifetime ran out: it ends once nothing is in flight
      if (conn.expired && conn.inFlight.size === 0) req.socket.destroySoon();
    });
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
    } else if (path === '/metrics') {
      metricsText().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
    } else if (!extra?.handle(req, res)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`try ${extra ? '/ (the run page), ' : ''}/metrics, /healthz or /readyz\n`);
    }
  });
  // Scrapers and probes reuse connections; a keep-alive longer than their intervals avoids the
  // race where the server closes an idle socket just as a client sends on it. Such connections
  // are capped in all and per address (below), so keeping them costs a bounded number of file
  // descriptors; requestsPerSocket bounds what one connection's pipelined requests can ask for.
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  const admission = new Admission({ total: limits.connections, perAddress: limits.connectionsPerAddress });
  server.on('connection', (socket: Socket) => {
    socket.on('error', () => undefined);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const leave = admission.admit(socket.remoteAddress ?? '?', () => {
      refuse('evicted', `metrics port: cut ${peer}: its connection went to a client from an address with fewer`);
      socket.destroy();
    });
    if (!leave) {
      refuse('busy', `metrics port: refused ${peer}: over ${limits.connections} connections in all or ${limits.connectionsPerAddress} from one address`);
      if (socket.writable) socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
      return;
    }
    socket.once('close', leave);
    const conn: Connection = { requests: 0, inFlight: new Set(), expired: false, closing: false };
    connections.set(socket, conn);
    // Not counted as a refusal: every connection kept that long reaches it, a scraper's too (as
    // the end after requestsPerSocket).
    const lifetime = setTimeout(() => {
      conn.expired = true;
      if (conn.inFlight.size === 0) {
        socket.destroy();
        return;
      }
      // the first response not yet begun is the last; one already sending ends the connection when done
      const next = [...conn.inFlight].find((res) => !res.headersSent);
      if (next && !conn.closing) last(conn, next, socket);
    }, limits.connectionLifetimeMs);
    lifetime.unref();
    socket.once('close', () => clearTimeout(lifetime));
  });
  // With a 'clientError' listener Node leaves the answer to it: a timeout is counted, the rest
  // (malformed requests) answered 400 as Node would.
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if (timedOut) refuse('timeout', `metrics port: cut ${socket.remoteAddress}:${socket.remotePort}: no complete request within ${limits.headersTimeoutMs} ms`);
    if (socket.writable && !(err.code === 'ECONNRESET')) socket.end(`HTTP/1.1 ${timedOut ? '408 Request Timeout' : '400 Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${address.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        extra?.close?.();
        refusals.flush();
        server.close(() => resolve());
        // a client holding its connection open delays the end by at most this grace
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      }),
  };
}
