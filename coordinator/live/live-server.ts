/**
 * The live page's routes: GET / (the page and its files), /events (server-sent events:
 * event-stream.ts) and /run.json (the state as one JSON document). They are served next to
 * /metrics by the coordinator's metrics server (same host and port), or on their own by
 * `dptrain view` (serveLive). Only GET and HEAD; anything else is 405, unknown paths 404.
 *
 * Bound to a loopback address, the page answers only requests that name the host as localhost
 * or an IP address: a web page elsewhere that points its own domain name at 127.0.0.1 (DNS
 * rebinding) gets 403, not the run.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { DEFAULT_STREAM_LIMITS, EventStreams, type LiveSource, type StreamLimits } from './event-stream.js';
import { pageAssets } from './page-assets.js';

/** The page runs only its own scripts, talks only to this server, and may not be framed. */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export interface LiveRoutes {
  /** Answers the request if it is one of the page's paths; false for any other path. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Open event streams. */
  readonly streams: number;
  /** Ends the event streams (before the server closes: open streams would keep it waiting). */
  close(): void;
}

export interface LiveRouteOptions {
  readonly limits?: StreamLimits;
  /** The address the server listens on (a loopback one turns on the Host check). */
  readonly host?: string;
}

/** A loopback listen address: 127.0.0.0/8, ::1, localhost. */
const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

/** Whether a Host header names localhost or an IP address (no DNS name a stranger controls). */
function localName(header: string | undefined): boolean {
  const name = (header ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return name === 'localhost' || name.endsWith('.localhost') || isIP(name) !== 0;
}

export function liveRoutes(source: LiveSource, options: LiveRouteOptions = {}): LiveRoutes {
  const assets = pageAssets();
  const streams = new EventStreams(source, options.limits ?? DEFAULT_STREAM_LIMITS);
  const checkHost = options.host !== undefined && isLoopback(options.host);
  const paths = new Set([...assets.keys(), '/events', '/run.json']);
  return {
    handle(req, res) {
      const path = (req.url ?? '/').split('?')[0]!;
      if (!paths.has(path)) return false;
      const asset = assets.get(path);
      if (checkHost && !localName(req.headers.host)) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end('the run page answers to localhost or an IP address only (it listens on a loopback address)\n');
      } else if (asset) {
        res.writeHead(200, { ...PAGE_HEADERS, 'content-type': asset.type, 'content-length': asset.body.length }).end(asset.body);
      } else if (path === '/events') {
        streams.open(req, res);
      } else {
        const body = Buffer.from(JSON.stringify(source.snapshot()));
        res.writeHead(200, { ...PAGE_HEADERS, 'content-type': 'application/json', 'content-length': body.length }).end(body);
      }
      return true;
    },
    get streams() {
      return streams.size;
    },
    close: () => streams.close(),
  };
}

export interface LiveServer {
  /** The page's address, e.g. http://127.0.0.1:9464/. */
  readonly url: string;
  close(): Promise<void>;
}

/** The routes on a server of their own (`dptrain view`). */
export async function serveLive(routes: LiveRoutes, host: string, port: number): Promise<LiveServer> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') res.writeHead(405, { allow: 'GET, HEAD' }).end();
    else if (!routes.handle(req, res)) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the run page is at /\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        routes.close();
        server.close(() => resolve());
        // a client holding its connection open delays the end by at most this grace
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      }),
  };
}
