/**
 * NodeServer: the coordinator's WebSocket endpoint for worker nodes (ws://, or wss:// with a
 * certificate and key). A connection must open with a valid hello (protocol version, token
 * compared in constant time) within a deadline; anything else is rejected with a logged reason
 * before any job data is sent. Accepted connections are handed to `onNode`.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { ConfigError } from '../shared/errors.js';
import { ProtocolError, type ProtocolFault } from '../shared/errors.js';
import { decodeFrame, encodeMessage } from '../shared/protocol/codec.js';
import { HELLO_FRAME } from '../shared/protocol/frame-limits.js';
import { expectHello } from '../shared/protocol/context-checks.js';
import { type HelloMessage } from '../shared/protocol/schemas.js';
import { parseHostPort } from '../shared/metrics-server.js';
import { closeReason, printable } from '../shared/protocol/printable.js';
import { tokenChecker } from '../shared/token.js';
import { Admission, RefusalLog } from '../shared/admission.js';

export interface NodeServerOptions {
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly tls?: { readonly cert: string; readonly key: string } | undefined;
  /** Largest frame accepted, in bytes (bigger ones close the connection). */
  readonly maxPayload: number;
  /** Time for the hello, from the TCP connect. */
  readonly helloTimeoutMs: number;
  readonly log: (line: string) => void;
  /** A connection was refused (metrics). */
  readonly onRejected?: (reason: string) => void;
  /** A peer passed the handshake. */
  readonly onNode: (socket: WebSocket, hello: HelloMessage, address: string) => void;
  /** Limits for peers not yet accepted (tests lower them); defaults PRE_AUTH_LIMITS. */
  readonly preAuth?: Partial<PreAuthLimits>;
}

export interface PreAuthLimits {
  /** Largest frame before the hello is accepted (a hello is a few hundred bytes). */
  readonly helloBytes: number;
  /** Time for a TCP connection to finish its HTTP upgrade, from its connect (the hello's is helloTimeoutMs, also from the connect). */
  readonly upgradeTimeoutMs: number;
  /**
   * TCP connections not yet accepted (from connect until the hello passes), in all and from one
   * address; when all are taken, a lighter address takes the oldest slot of the heaviest (Admission).
   */
  readonly pending: number;
  readonly pendingPerAddress: number;
  /** TCP connections in all (accepted nodes included), below the process's descriptor limit. */
  readonly maxConnections: number;
}

export const PRE_AUTH_LIMITS: PreAuthLimits = { helloBytes: 16 * 1024, upgradeTimeoutMs: 5000, pending: 64, pendingPerAddress: 16, maxConnections: 512 };

/**
 * Raises an accepted socket's frame limit to the node limit. ws takes maxPayload per server only;
 * its receiver reads `_maxPayload` for every frame header, so this applies from the next frame.
 */
function setMaxPayload(socket: WebSocket, bytes: number): void {
  const receiver = (socket as unknown as { _receiver?: { _maxPayload: number } })._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number') throw new Error('ws internals changed: cannot raise the frame limit of an accepted node');
  receiver._maxPayload = bytes;
}

/** A connection not yet accepted (see NodeServer.start). */
interface Stranger {
  readonly connectedAt: number;
  upgraded: boolean;
  /** Its slot went to a peer from a lighter address, and it was cut. */
  evicted: boolean;
  /** Frees its Admission slot (idempotent). */
  leave: () => void;
  /** The upgrade deadline. */
  timer: NodeJS.Timeout | undefined;
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
    private readonly admission: Admission,
  ) {}

  /** TCP connections not yet accepted (upgrading or waiting for their hello). */
  get pending(): number {
    return this.admission.size;
  }

  static async start(options: NodeServerOptions): Promise<NodeServer> {
    const { tls } = options;
    // Before the hello is accepted a peer gets the limits of a stranger: a small frame limit (a
    // hello is tiny), a few seconds for the HTTP upgrade and for the hello, and a cap on such
    // connections, in all and per address. Accepted nodes get maxPayload.
    const limits = { ...PRE_AUTH_LIMITS, ...options.preAuth };
    let http: HttpServer;
    if (tls) {
      const read = (what: string, file: string): Buffer => {
        try {
          return readFileSync(file);
        } catch (err) {
          throw new ConfigError(`cluster.tls.${what} ${file}: ${(err as Error).message}`);
        }
      };
      http = createHttpsServer({ handshakeTimeout: limits.upgradeTimeoutMs, cert: read('cert', tls.cert), key: read('key', tls.key) });
    } else {
      http = createHttpServer();
    }
    const count = (reason: string): void => {
      server.rejections.set(reason, (server.rejections.get(reason) ?? 0) + 1);
      options.onRejected?.(reason);
    };
    const refusals = new RefusalLog(options.log, 'connections to the node port');
    /**
     * Every TCP connection not yet accepted, from connect until its hello passes: it holds a slot
     * (Admission: a cap in all and per address, shared fairly) and must finish its HTTP upgrade
     * within upgradeTimeoutMs and send its hello within helloTimeoutMs, both counted from the
     * connect (absolute deadlines: a peer that trickles a byte now and then is cut all the same).
     * Keyed by "address:port", which both the TCP socket and, over TLS, the TLS socket on it know.
     */
    const strangers = new Map<string, Stranger>();
    const admission = new Admission({ total: limits.pending, perAddress: limits.pendingPerAddress });
    const peerKey = (socket: Socket): string => `${socket.remoteAddress}:${socket.remotePort}`;
    const refuse = (socket: Socket, reason: string, line: string, upgraded = false): void => {
      count(reason);
      refusals.note(reason, `refused ${printable(peerKey(socket), 60)}: ${line}`);
      // over TLS the TCP socket carries no HTTP yet, after an upgrade WebSocket frames: it is only cut
      if (!tls && !upgraded && socket.writable) socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
    };
    http.on('connection', (socket: Socket) => {
      socket.on('error', () => undefined); // a reset must not become an unhandled 'error'
      const key = peerKey(socket);
      const admitted: Stranger = { connectedAt: performance.now(), upgraded: false, evicted: false, leave: () => undefined, timer: undefined };
      const leave = admission.admit(socket.remoteAddress ?? '?', () => {
        admitted.evicted = true;
        refuse(socket, 'evicted', 'its slot went to a peer from an address with fewer connections', admitted.upgraded);
      });
      if (!leave) {
        refuse(socket, 'busy', `over the cap on connections not yet accepted (${limits.pending} in all, ${limits.pendingPerAddress} per address)`);
        return;
      }
      admitted.leave = leave;
      admitted.timer = setTimeout(() => {
        if (admitted.upgraded) return;
        count('timeout');
        refusals.note('timeout', `refused ${printable(key, 60)}: no WebSocket upgrade within ${limits.upgradeTimeoutMs} ms of connecting`);
        socket.destroy();
      }, limits.upgradeTimeoutMs);
      strangers.set(key, admitted);
      socket.once('close', () => {
        clearTimeout(admitted.timer);
        leave();
        strangers.delete(key);
      });
    });
    // Beyond maxConnections Node closes the socket itself ('drop'); that is counted too.
    http.on('drop', (data?: { remoteAddress?: string; remotePort?: number }) => {
      count('busy');
      refusals.note('busy', `refused ${printable(`${data?.remoteAddress}:${data?.remotePort}`, 60)}: over ${limits.maxConnections} connections in all`);
    });
    // No keep-alive: a request that is not an upgrade gets a short answer and the connection ends,
    // so plain HTTP cannot hold a connection (the slot above is freed on close).
    const answered = new WeakSet<Socket>();
    http.on('request', (req: IncomingMessage, res) => {
      // requests pipelined behind the first are left unanswered: the connection ends after it
      if (answered.has(req.socket)) return;
      answered.add(req.socket);
      count('http');
      refusals.note('http', `refused ${printable(peerKey(req.socket), 60)}: a plain HTTP request, not a WebSocket upgrade`);
      res.shouldKeepAlive = false;
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' }).end('dptrain coordinator: connect with `worker start --connect ws://...`\n', () => req.socket.destroy());
    });
    http.maxConnections = limits.maxConnections;
    const wss = new WebSocketServer({ noServer: true, maxPayload: limits.helloBytes });
    if (tls) http.on('secureConnection', (socket: Socket) => socket.on('error', () => undefined));
    http.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
      const stranger = strangers.get(peerKey(request.socket));
      if (!stranger || stranger.upgraded) {
        // not admitted (cannot happen: every connection is), or a second upgrade on one socket
        socket.destroy();
        return;
      }
      stranger.upgraded = true;
      clearTimeout(stranger.timer);
      wss.handleUpgrade(request, socket, head, (ws) => onConnection(ws, request, stranger));
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', (err) => reject(new ConfigError(`cannot listen on ${options.host}:${options.port}: ${err.message}`)));
      http.listen(options.port, options.host, resolve);
    });
    const { port } = http.address() as AddressInfo;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    const server = new NodeServer(http, wss, `${tls ? 'wss' : 'ws'}://${host}:${port}`, admission);
    const checkToken = tokenChecker(options.token);

    const onConnection = (socket: WebSocket, request: IncomingMessage, stranger: Stranger): void => {
      const address = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
      /** hello: waiting for it; node: handed to onNode (which handles errors from then on); refused. */
      let phase: 'hello' | 'node' | 'refused' = 'hello';
      const reject = (reason: string, code: string, message: string): void => {
        if (phase === 'refused') return;
        phase = 'refused';
        stranger.leave(); // the slot is free at the deadline; the socket only waits for its close
        count(reason);
        refusals.note(reason, `rejected peer ${address}: ${message}`);
        if (socket.readyState === socket.OPEN) {
          socket.send(encodeMessage({ type: 'error', code, message }));
          socket.close(1008, closeReason(message));
        }
        setTimeout(() => socket.terminate(), 1000).unref();
      };
      const timer = setTimeout(
        () => stranger.evicted || reject('timeout', 'E_PROTOCOL', `no hello within ${options.helloTimeoutMs} ms of connecting`),
        Math.max(0, stranger.connectedAt + options.helloTimeoutMs - performance.now()),
      );
      // For the socket's whole life: a protocol error (bad frame, oversize, invalid UTF-8) closes
      // this peer only. While the hello is awaited it is a rejection; later the node's own
      // handler (RemoteNode) reports it.
      socket.on('error', (err: Error & { code?: string }) => {
        clearTimeout(timer);
        if (phase !== 'hello') return;
        phase = 'refused';
        count(err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'oversize' : 'malformed');
        refusals.note('malformed', `rejected peer ${address}: ${printable(err.message, 200)}${err.code ? ` (${err.code})` : ''}`);
        socket.terminate();
      });
      socket.once('message', (data: Buffer, isBinary: boolean) => {
        clearTimeout(timer);
        if (phase !== 'hello') return;
        try {
          const hello = expectHello(decodeFrame(data, isBinary, HELLO_FRAME), checkToken);
          phase = 'node';
          stranger.leave(); // a node now: its slot goes back to strangers
          setMaxPayload(socket, options.maxPayload);
          options.onNode(socket, hello, address);
        } catch (err) {
          const fault = err instanceof ProtocolError ? err.fault : 'malformed';
          reject(fault, REJECT_CODES[fault] ?? 'E_PROTOCOL', printable((err as Error).message, 300));
        }
      });
    };
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
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections(); // peers that never upgraded
    await closed;
  }
}
