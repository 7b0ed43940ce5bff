/**
 * A node's peer endpoint for cluster.reduction: peers: a WebSocket server other nodes send their
 * blocks and reduced shards to, and one outgoing connection per peer this node sends to (opened on
 * first use, kept across steps). Each connection carries one direction: a peer's frames arrive on
 * the connection it opened.
 *
 * A connection opens with peer_hello (protocol version, the run's token, the job, the sender's
 * node id and its proof of that id, shared/peer/peer-proof.ts) within helloTimeoutMs; anything
 * else, a wrong token, another job or an id not proven is refused and closed. After it only `block`, `reduced` and `heartbeat` frames of the job's model size are
 * taken (frame-limits.ts checks them before decoding); a frame that fails to decode, or that the
 * receiver refuses (onFrame throws), closes that peer's connection. Nothing a peer sends throws
 * out of here.
 *
 * With `tls` (worker start --peer-cert, --peer-key) the endpoint is wss:// and this node's own
 * connections to peers check their certificates against `ca` (--ca), as gloo's TCP_TLS does: the
 * token and every gradient then travel encrypted between nodes.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';
import { closeReason, printable } from '../shared/protocol/printable.js';
import { decodeFrame, encodeMessage } from '../shared/protocol/codec.js';
import { peerFrameLimits } from '../shared/protocol/frame-limits.js';
import { PROTOCOL_VERSION, type BlockMessage, type Message, type ReducedMessage } from '../shared/protocol/schemas.js';
import { tokenChecker } from '../shared/token.js';
import { zeroMask } from '../shared/protocol/zero-mask.js';
import { Admission } from '../shared/admission.js';
import { newPeerKey, provesPeer } from '../shared/peer/peer-proof.js';

/** Sockets a TLS peer endpoint holds at once, handshakes included (each peer holds one). */
const MAX_CONNECTIONS = 512;

export interface PeerMeshOptions {
  /** Port to listen on (0: any free one). */
  readonly port: number;
  /** Address to listen on (default: every interface). */
  readonly host?: string;
  readonly token: string;
  readonly maxPayload: number;
  /** How long a new connection has to say peer_hello. */
  readonly helloTimeoutMs?: number;
  /** Connections that have not said hello yet, at most, in all and from one address (shared fairly: shared/admission.ts). */
  readonly pending?: { readonly total: number; readonly perAddress: number };
  readonly log: (line: string) => void;
  /** The endpoint's certificate and key (PEM): it serves wss://. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** Certificates to trust for peers' wss:// endpoints (default: the system's). */
  readonly ca?: Buffer;
}

/** The job a mesh serves: frames of another job are refused. */
export interface MeshJob {
  readonly jobId: string;
  /** This node's id (the coordinator's welcome). */
  readonly self: string;
  readonly parameters: number;
}

export type PeerFrame = BlockMessage | ReducedMessage;

export interface PeerAddress {
  readonly id: string;
  readonly url: string;
  /** What this node shows that peer to prove its own id (from the coordinator's peers message). */
  readonly proof: string;
}

interface Outgoing {
  readonly url: string;
  readonly socket: WebSocket;
  readonly queue: Uint8Array[];
  /** Frames given to it (queued or written) whose write has not finished. */
  unsent: number;
}

export class PeerMesh {
  private job: MeshJob | undefined;
  private readonly outgoing = new Map<string, Outgoing>();
  /** The connection each proven peer sends on: one per id, so a token holder cannot fill the endpoint's sockets with its own. */
  private readonly incoming = new Map<string, WebSocket>();
  private readonly admission: Admission;
  private readonly checkToken: (candidate: string) => boolean;
  /** Frames from authenticated peers; throwing refuses the frame and closes its connection. */
  onFrame: (from: string, frame: PeerFrame) => void = () => undefined;
  /** What waits for the frames given to some peers' connections to be written (the latest round's only). */
  private waiter: { readonly ids: readonly string[]; readonly send: () => void } | undefined;
  /** Bytes sent to and received from peers (metrics, benchmarks). */
  readonly bytes = { sent: 0, received: 0 };
  /** This node's peer key: told to the coordinator only, which makes from it the proofs peers show here. */
  readonly key = newPeerKey();

  private constructor(
    private readonly server: WebSocketServer,
    private readonly options: PeerMeshOptions,
    private readonly https?: Server,
  ) {
    this.checkToken = tokenChecker(options.token);
    this.admission = new Admission(options.pending ?? { total: 64, perAddress: 16 });
    server.on('connection', (socket, request) => this.accept(socket, request.socket.remoteAddress ?? '', request.socket.remotePort ?? 0));
  }

  static listen(options: PeerMeshOptions): Promise<PeerMesh> {
    return new Promise((resolve, reject) => {
      const host = options.host ?? '0.0.0.0';
      if (options.tls) {
        // a stranger's unfinished TLS handshake holds a socket for the hello's deadline at most, and
        // connections beyond MAX_CONNECTIONS (handshakes, then peers) are refused at accept
        const https = createServer({ cert: options.tls.cert, key: options.tls.key, handshakeTimeout: options.helloTimeoutMs ?? 5000 });
        https.maxConnections = MAX_CONNECTIONS;
        const server = new WebSocketServer({ server: https, maxPayload: options.maxPayload, perMessageDeflate: false });
        https.once('error', reject);
        https.listen(options.port, host, () => {
          https.off('error', reject);
          https.on('error', (err) => options.log(`peer endpoint: ${err.message}`));
          // a failed TLS handshake is one peer's problem, not the endpoint's
          https.on('tlsClientError', () => undefined);
          resolve(new PeerMesh(server, options, https));
        });
        return;
      }
      const server = new WebSocketServer({ port: options.port, host, maxPayload: options.maxPayload, perMessageDeflate: false });
      server.once('error', reject);
      server.once('listening', () => {
        server.off('error', reject);
        server.on('error', (err) => options.log(`peer endpoint: ${err.message}`));
        resolve(new PeerMesh(server, options));
      });
    });
  }

  get port(): number {
    return ((this.https ?? this.server).address() as AddressInfo).port;
  }

  /** Whether the endpoint serves wss://. */
  get tls(): boolean {
    return this.https !== undefined;
  }

  /**
   * Serve `job` from now on: connections of an earlier job are closed; so are this node's own
   * connections to its peers when it rejoined the job under a new id (they introduced it by the old one).
   */
  join(job: MeshJob): void {
    if (this.job && this.job.jobId !== job.jobId) this.closeConnections('the job ended');
    else if (this.job && this.job.self !== job.self) this.closeOutgoing(`this node is ${job.self} now`);
    this.job = job;
  }

  /** Sends `message` to peer `to`, opening a connection to it first if there is none. */
  send(to: PeerAddress, message: Message): void {
    const job = this.job;
    if (!job) return;
    let out = this.outgoing.get(to.id);
    if (out && out.url !== to.url) {
      out.socket.terminate();
      out = undefined;
    }
    if (!out) out = this.dial(to, job);
    const frame = encodeMessage(message);
    this.bytes.sent += frame.byteLength;
    const sending = out;
    if (sending.socket.readyState === WebSocket.OPEN) {
      this.counted(sending);
      sending.socket.send(frame, () => this.written(sending, 1));
    } else if (sending.socket.readyState === WebSocket.CONNECTING) {
      this.counted(sending);
      sending.queue.push(frame);
    }
  }

  /**
   * Runs `send` once every frame given so far to the connections to `to` has been written to its
   * socket (or the connection is gone). Only the latest call waits: an earlier one still waiting
   * is dropped (its round is past). A peer left out of `to` (one no longer in the round) that
   * stops reading holds nothing up.
   */
  whenSent(to: readonly PeerAddress[], send: () => void): void {
    const ids = to.map((p) => p.id);
    this.waiter = undefined;
    if (this.allWritten(ids)) send();
    else this.waiter = { ids, send };
  }

  private allWritten(ids: readonly string[]): boolean {
    return ids.every((id) => (this.outgoing.get(id)?.unsent ?? 0) === 0);
  }

  private counted(out: Outgoing): void {
    out.unsent++;
  }

  /** `count` of `out`'s frames were written, or will never be (its connection is gone). */
  private written(out: Outgoing, count: number): void {
    const n = Math.min(count, out.unsent);
    out.unsent -= n;
    const waiter = this.waiter;
    if (n > 0 && waiter && this.allWritten(waiter.ids)) {
      this.waiter = undefined;
      waiter.send();
    }
  }

  private dial(to: PeerAddress, job: MeshJob): Outgoing {
    // zero masking keys: no XOR pass over every shard on either side (zero-mask.ts)
    const socket = new WebSocket(to.url, { maxPayload: this.options.maxPayload, perMessageDeflate: false, generateMask: zeroMask, ...(this.options.ca ? { ca: this.options.ca } : {}) });
    const out: Outgoing = { url: to.url, socket, queue: [], unsent: 0 };
    this.outgoing.set(to.id, out);
    socket.on('open', () => {
      socket.send(encodeMessage({ type: 'peer_hello', version: PROTOCOL_VERSION, token: this.options.token, jobId: job.jobId, from: job.self, proof: to.proof }));
      for (const frame of out.queue.splice(0)) socket.send(frame, () => this.written(out, 1));
    });
    const forget = (why: string): void => {
      if (this.outgoing.get(to.id) === out) this.outgoing.delete(to.id);
      out.queue.length = 0;
      this.written(out, out.unsent);
      this.options.log(`peer ${printable(to.id, 64)} (${printable(to.url, 300)}): ${why}`);
    };
    socket.on('error', (err) => forget(printable(err.message, 300)));
    socket.on('close', (code, reason) => forget(`connection closed (${code}${reason.length ? `: ${printable(reason.toString(), 200)}` : ''})`));
    // answers on an outgoing connection are not part of the protocol
    socket.on('message', () => socket.terminate());
    return out;
  }

  private accept(socket: WebSocket, address: string, port: number): void {
    const release = this.admission.admit(address, () => socket.terminate());
    if (!release) {
      socket.close(1013, 'too many peer connections waiting for hello');
      return;
    }
    let from: string | undefined;
    let limits = peerFrameLimits();
    let refused = false;
    const refuse = (why: string): void => {
      if (refused) return;
      refused = true;
      this.options.log(`peer ${from ? printable(from, 64) : `${address}:${port}`}: refused: ${why}`);
      socket.close(1008, closeReason(why));
      setTimeout(() => socket.terminate(), 2000).unref();
    };
    const helloTimer = setTimeout(() => refuse('no peer_hello in time'), this.options.helloTimeoutMs ?? 5000);
    const settleHello = (): void => {
      clearTimeout(helloTimer);
      release();
    };
    socket.on('close', settleHello);
    socket.on('error', () => socket.terminate());
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      this.bytes.received += data.byteLength;
      if (refused) return;
      let message: Message;
      try {
        message = decodeFrame(data, isBinary, limits);
      } catch (err) {
        return refuse(printable((err as Error).message, 300));
      }
      if (from === undefined) {
        const job = this.job;
        if (message.type !== 'peer_hello') return refuse(`sent "${message.type}" before peer_hello`);
        if (message.version !== PROTOCOL_VERSION) return refuse(`protocol version ${message.version} (this node speaks ${PROTOCOL_VERSION})`);
        if (!this.checkToken(message.token)) return refuse('bad token');
        if (!job || message.jobId !== job.jobId) return refuse('not this node\'s job');
        if (!provesPeer(this.key, job.jobId, message.from, message.proof)) return refuse(`cannot prove it is ${printable(message.from, 64)}`);
        settleHello();
        from = message.from;
        limits = peerFrameLimits(job.parameters);
        // a newer connection from the same peer (it reconnected, or opens many) replaces the older
        const older = this.incoming.get(from);
        if (older) older.close(1000, 'replaced by a newer connection from the same peer');
        this.incoming.set(from, socket);
        const id = from;
        socket.on('close', () => void (this.incoming.get(id) === socket && this.incoming.delete(id)));
        return;
      }
      if (message.type === 'heartbeat') return;
      if (message.type !== 'block' && message.type !== 'reduced') return refuse(`sent an unexpected "${message.type}" message`);
      try {
        this.onFrame(from, message);
      } catch (err) {
        refuse(printable((err as Error).message, 300));
      }
    });
  }

  private closeConnections(why: string): void {
    this.closeOutgoing(why);
    for (const client of this.server.clients) client.close(1000, why);
  }

  private closeOutgoing(why: string): void {
    for (const out of this.outgoing.values()) out.socket.close(1000, why);
    this.outgoing.clear();
  }

  close(): Promise<void> {
    this.closeConnections('the node is closing');
    for (const client of this.server.clients) client.terminate();
    return new Promise((resolve) => this.server.close(() => (this.https ? this.https.close(() => resolve()) : resolve())));
  }
}
