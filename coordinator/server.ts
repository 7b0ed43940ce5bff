/**
 * NodeServer: the coordinator's WebSocket endpoint for worker nodes (ws://, or wss:// with a
 * certificate and key). A connection must open with a valid hello (protocol version, token
 * compared in constant time) within a deadline; anything else is rejected with a logged reason
 * before any job data is sent. Accepted connections are handed to `onNode`.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { ConfigError } from '../shared/errors.js';
import { ProtocolError, decodeMessage, encodeMessage, expectHello, type HelloMessage, type ProtocolFault } from '../shared/protocol/messages.js';
import { parseHostPort } from '../shared/metrics-server.js';
import { tokenChecker } from '../shared/token.js';

export interface NodeServerOptions {
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly tls?: { readonly cert: string; readonly key: string } | undefined;
  /** Largest frame accepted, in bytes (bigger ones close the connection). */
  readonly maxPayload: number;
  readonly helloTimeoutMs: number;
  readonly log: (line: string) => void;
  /** A connection was refused (metrics). */
  readonly onRejected?: (reason: string) => void;
  /** A peer passed the handshake. */
  readonly onNode: (socket: WebSocket, hello: HelloMessage, address: string) => void;
}

/** Error codes sent to a rejected peer; E_AUTH and E_VERSION tell a worker not to retry. */
const REJECT_CODES: Partial<Record<ProtocolFault, string>> = { auth: 'E_AUTH', version: 'E_VERSION' };

/** Parses cluster.listen "host:port" (port 0 picks a free one). */
export function parseListen(value: string): { host: string; port: number } {
  try {
    return parseHostPort(value, 'cluster.listen');
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

export class NodeServer {
  /** Rejected connections by reason (auth, version, malformed, timeout, ...). */
  readonly rejections = new Map<string, number>();

  private constructor(
    private readonly http: HttpServer,
    private readonly wss: WebSocketServer,
    readonly url: string,
  ) {}

  static async start(options: NodeServerOptions): Promise<NodeServer> {
    const { tls } = options;
    let http: HttpServer;
    if (tls) {
      const read = (what: string, file: string): Buffer => {
        try {
          return readFileSync(file);
        } catch (err) {
          throw new ConfigError(`cluster.tls.${what} ${file}: ${(err as Error).message}`);
        }
      };
      http = createHttpsServer({ cert: read('cert', tls.cert), key: read('key', tls.key) });
    } else {
      http = createHttpServer();
    }
    http.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('dptrain coordinator: connect with `worker start --connect ws://...`\n');
    });
    const wss = new WebSocketServer({ server: http, maxPayload: options.maxPayload });
    await new Promise<void>((resolve, reject) => {
      http.once('error', (err) => reject(new ConfigError(`cannot listen on ${options.host}:${options.port}: ${err.message}`)));
      http.listen(options.port, options.host, resolve);
    });
    const { port } = http.address() as AddressInfo;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    const server = new NodeServer(http, wss, `${tls ? 'wss' : 'ws'}://${host}:${port}`);
    const checkToken = tokenChecker(options.token);

    wss.on('connection', (socket, request) => {
      const address = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
      const reject = (reason: string, code: string, message: string): void => {
        server.rejections.set(reason, (server.rejections.get(reason) ?? 0) + 1);
        options.onRejected?.(reason);
        options.log(`rejected peer ${address}: ${message}`);
        if (socket.readyState === socket.OPEN) {
          socket.send(encodeMessage({ type: 'error', code, message }));
          socket.close(1008, message.slice(0, 120));
        }
        setTimeout(() => socket.terminate(), 1000).unref();
      };
      const timer = setTimeout(() => reject('timeout', 'E_PROTOCOL', `no hello within ${options.helloTimeoutMs} ms`), options.helloTimeoutMs);
      socket.on('error', (err: Error & { code?: string }) => {
        clearTimeout(timer);
        const reason = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'oversize' : 'malformed';
        server.rejections.set(reason, (server.rejections.get(reason) ?? 0) + 1);
        options.onRejected?.(reason);
        options.log(`rejected peer ${address}: ${err.message}${err.code ? ` (${err.code})` : ''}`);
      });
      socket.once('message', (data: Buffer, isBinary: boolean) => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        try {
          if (!isBinary) throw new ProtocolError('text frame; the protocol is binary msgpack');
          const hello = expectHello(decodeMessage(data), checkToken);
          options.onNode(socket, hello, address);
        } catch (err) {
          const fault = err instanceof ProtocolError ? err.fault : 'malformed';
          reject(fault, REJECT_CODES[fault] ?? 'E_PROTOCOL', (err as Error).message);
        }
      });
    });
    return server;
  }

  /**
   * Stops listening. Connections already closing (a node that was just sent `bye`) get `graceMs`
   * to finish the close handshake, so their last frames reach the peer (over TLS they may still
   * sit in the socket's buffer); the rest, and whatever is left after that, are cut.
   */
  async close(graceMs = 5000): Promise<void> {
    const closing = [...this.wss.clients].filter((c) => c.readyState === c.CLOSING);
    await Promise.race([
      Promise.all(closing.map((c) => new Promise<void>((resolve) => c.once('close', () => resolve())))),
      new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref()),
    ]);
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}
