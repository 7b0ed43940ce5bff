/**
 * A small HTTP server for Prometheus and health checks, used by the coordinator and by worker
 * nodes: GET /metrics (the registry in the text format), /healthz (200 while the process
 * serves), /readyz (200 while `ready()` is true, else 503); and, given `extra`, its routes too (the
 * coordinator's live run page at /).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, type Registry } from 'prom-client';

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

export async function serveMetrics(registry: Registry, host: string, port: number, ready: () => boolean = () => true, extra?: ExtraRoutes): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
    } else if (path === '/metrics') {
      registry.metrics().then(
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
  // race where the server closes an idle socket just as a client sends on it.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
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
        server.close(() => resolve());
        // a client holding its connection open delays the end by at most this grace
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      }),
  };
}
