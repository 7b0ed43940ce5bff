/**
 * A worker node: connects to the coordinator over WebSocket, authenticates, receives the job and
 * its shard, then answers steps (gradients) and evaluations until the coordinator says bye.
 * A lost connection is retried with exponential backoff; a rejection (bad token, other protocol
 * version) is final. The wire format lives in shared/protocol/ (schemas, codec); the math in
 * compute/; gradients go out through GradientSender; this file is only the conversation: one
 * named handler per message type.
 */
import { performance } from 'node:perf_hooks';
import { totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import WebSocket from 'ws';
import { JobRefusedError, ProtocolError, WorkerError } from '../shared/errors.js';
import { PROTOCOL_VERSION, type JobMessage, type Message, type StepMessage } from '../shared/protocol/schemas.js';
import { decodeFrame, encodeMessage } from '../shared/protocol/codec.js';
import { coordinatorFrameLimits, type FrameLimits } from '../shared/protocol/frame-limits.js';
import { FramePool } from '../shared/protocol/frame-pool.js';
import { printable } from '../shared/protocol/printable.js';
import { zeroMask } from '../shared/protocol/zero-mask.js';
import { scalePixels } from '../shared/data/arrays.js';
import { activationValuesPerRow, describeModel } from '../shared/model/layers.js';
import { weightLayout } from '../shared/model/layout.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import { MAX_METRIC_SUMS, type ModelSpec } from '../shared/model/spec.js';
import { metricKeys, metricSumsWidth } from '../shared/model/metric-sums.js';
import type { BatchEngine } from '../compute/engine.js';
import { createEngine } from '../compute/gradient.js';
import type { WorkerMetrics } from './metrics.js';
import { GradientSender } from './gradient-sender.js';
import { PeerMesh } from './peer-mesh.js';
import { PeerReplica, type BlockSums, type ReplicaLinks } from './peer-replica.js';
import { faultPointFromEnv, killSelf } from './fault-point.js';
import { OBSERVER } from '../shared/peer/all-reduce-round.js';
import { ShardStore } from './shard-store.js';
import { openDataFile, type DataFileReader, type DataSource } from './data-files.js';

export interface NodeClientOptions {
  /** ws://host:port or wss://host:port */
  readonly url: string;
  readonly token: string;
  readonly name: string;
  /** The backend this process runs (already started), or its devices run. */
  readonly backend: string;
  /** The WebGPU adapter, or why auto chose the backend (sent in the hello). */
  readonly adapter?: string | undefined;
  /** Compute processes (worker start --devices), and the engine of a job over them; in-process when absent. */
  readonly devices?: { readonly count: number; readonly engine: (spec: ModelSpec) => BatchEngine } | undefined;
  /** Extra CA certificate(s) to trust for wss:// (PEM). */
  readonly ca?: Buffer;
  /** Consecutive failed connection attempts before giving up. */
  readonly retries: number;
  /** First backoff delay in ms (doubles per attempt, at most 30 s). */
  readonly backoffMs: number;
  readonly maxPayload: number;
  /** The largest model (in parameters) this worker takes from a coordinator; default defaultMaxParameters(). */
  readonly maxParameters?: number;
  /** Bytes of activations a step may need at once (rows x the model's values a row x 4); default defaultMaxStepBytes(). */
  readonly maxStepBytes?: number;
  readonly log: (line: string) => void;
  /** Log every step (for debugging and tests). */
  readonly verbose?: boolean;
  readonly metrics?: WorkerMetrics | undefined;
  /**
   * The peer endpoint for jobs reduced among peers (cluster.reduction: peers): the port to listen
   * on (0: any free one), the address to listen on, and the host other nodes reach it at (default:
   * the address the coordinator sees this node connect from). Absent: this node takes part in
   * such jobs through the coordinator only.
   */
  readonly peer?: { readonly port: number; readonly listenHost?: string | undefined; readonly host?: string | undefined; readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined } | undefined;
  /**
   * Where this node finds the jobs' data files, to read its rows itself where the features stay
   * on disk: a folder (worker start --data-dir, a shared volume) or a base URL (--data-url, a
   * server answering byte-range requests). The file's name is the coordinator's.
   */
  readonly data?: DataSource | undefined;
}

/**
 * How one connection ended. welcomed: the coordinator accepted this worker; progressed: a step's
 * gradient went out on it (only that resets the count of failed attempts).
 */
type SessionEnd = { kind: 'finished'; reason: string } | { kind: 'lost'; reason: string; welcomed: boolean; progressed: boolean };

/**
 * Worker memory per model parameter, about: the weights as received and as the model holds them,
 * the gradient as computed, as encoded for the wire, and the step's tensors.
 */
export const BYTES_PER_PARAMETER = 32;

/** The default --max-parameters: 100 million, or as many as fit this machine's memory at BYTES_PER_PARAMETER each. */
export function defaultMaxParameters(memoryBytes = totalmem()): number {
  return Math.min(100_000_000, Math.floor(memoryBytes / BYTES_PER_PARAMETER));
}

/** The default --max-step-memory: half of this machine's memory. */
export function defaultMaxStepBytes(memoryBytes = totalmem()): number {
  return Math.floor(memoryBytes / 2);
}

const size = (bytes: number): string => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`);

/** Codes the coordinator sends when it will never accept this worker as it is. */
const FINAL_CODES = new Set(['E_AUTH', 'E_VERSION']);

export interface NodeStats {
  steps: number;
  samples: number;
  computeSeconds: number;
  reconnects: number;
  /** Rows this node read itself (--data-dir, --data-url) a step ahead, and within their step. */
  rowsReadAhead: number;
  rowsReadInStep: number;
}

export class NodeClient {
  readonly stats: NodeStats = { steps: 0, samples: 0, computeSeconds: 0, reconnects: 0, rowsReadAhead: 0, rowsReadInStep: 0 };
  private engine: BatchEngine | undefined;
  private store: ShardStore | undefined;
  private job: JobMessage | undefined;
  private version = -1;
  /** Activation bytes a row of the job's model holds in a step (0: not known, a tfjs-layers model). */
  private rowBytes = 0;
  /** Gradient frames are encoded into reused memory (one pool for every session). */
  private readonly gradientFrames = new FramePool();
  /** Weights of `version` not yet loaded into the engine. */
  private weights: Float32Array | undefined;
  /** Gradients go out through the connection of the moment. */
  private readonly sender = new GradientSender((message) => this.connection?.send(message));
  /** The session (connection) of the moment. */
  private connection: Session | undefined;
  /** The peer endpoint (options.peer), and the job's side of a reduction among peers. */
  private mesh: PeerMesh | undefined;
  private replica: PeerReplica | undefined;
  private workerId = '';
  /** A peer step's gradient is computed into this (its shards are copied out as they go). */
  private scratch: Float32Array | undefined;
  /** A failure test's fault point (fault-point.ts); undefined in real runs. */
  private readonly fault = faultPointFromEnv();

  constructor(private readonly options: NodeClientOptions) {}

  /** Runs until the coordinator ends the job (resolves with its reason) or gives up (throws). */
  async run(): Promise<string> {
    const { peer } = this.options;
    if (peer) {
      this.mesh = await PeerMesh.listen({
        port: peer.port,
        host: peer.listenHost,
        token: this.options.token,
        maxPayload: this.options.maxPayload,
        log: this.options.log,
        ...(peer.tls ? { tls: peer.tls } : {}),
        ...(this.options.ca ? { ca: this.options.ca } : {}),
      });
      this.mesh.onFrame = (from, frame) => {
        this.replica?.receive(from, frame);
        if (this.fault?.kind === 'kill-after-block' && frame.type === 'block' && frame.step === this.fault.step) killSelf();
      };
      const mesh = this.mesh;
      this.options.metrics?.peerBytes(() => mesh.bytes);
      this.options.log(`peer endpoint on port ${this.mesh.port}${this.mesh.tls ? ' (wss://)' : ''}`);
    }
    try {
      return await this.sessions();
    } finally {
      await this.mesh?.close();
    }
  }

  /** The peer endpoint's port, once run() has started it. */
  get peerPort(): number | undefined {
    return this.mesh?.port;
  }

  private async sessions(): Promise<string> {
    const { retries, backoffMs, url, log } = this.options;
    let failures = 0;
    /** Whether any session got as far as the coordinator's welcome (else it never connected). */
    let everConnected = false;
    for (;;) {
      const end = await this.session();
      if (end.kind === 'finished') return end.reason;
      if (end.welcomed) {
        everConnected = true;
        this.stats.reconnects++;
        this.options.metrics?.reconnected();
      }
      // Only a connection that got work done starts the count again: a coordinator that welcomes
      // this worker and then drops it, again and again, is a failed attempt each time, so
      // --retries and the growing backoff hold for it too.
      if (end.progressed) failures = 0;
      failures++;
      if (failures > retries) {
        throw new WorkerError(
          everConnected
            ? `gave up on the coordinator at ${url} after ${failures} failed attempt(s) in a row without a step computed; last error: ${end.reason}`
            : `cannot connect to the coordinator at ${url}: ${failures} attempt(s) failed, the last with: ${end.reason} (is it running with --listen on that address, and reachable from here?)`,
        );
      }
      const delay = Math.min(30_000, backoffMs * 2 ** (failures - 1)) * (0.75 + Math.random() * 0.5);
      log(`${everConnected ? `connection to ${url} lost` : `cannot connect to ${url}`} (${end.reason}); retry ${failures}/${retries} in ${(delay / 1000).toFixed(1)} s`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private session(): Promise<SessionEnd> {
    return new Promise((resolve, reject) => {
      const peer = this.mesh ? { peerPort: this.mesh.port, peerKey: this.mesh.key, ...(this.options.peer?.host ? { peerHost: this.options.peer.host } : {}), ...(this.mesh.tls ? { peerTls: true as const } : {}) } : {};
      const session = new Session(this.options, peer, this.gradientFrames, (message, s) => this.dispatch(message, s), (end) => {
        if (this.connection === session) this.connection = undefined;
        if (end instanceof Error) reject(end);
        else resolve(end);
      });
      this.connection = session;
    });
  }

  /** Gives a message to its type's handler; a type without one is a protocol error. */
  private dispatch(message: Message, session: Session): void | Promise<void> {
    const handler = this.handlers[message.type] as ((m: Message, s: Session) => void | Promise<void>) | undefined;
    if (!handler) throw new ProtocolError(`unexpected "${message.type}" message from the coordinator`);
    return handler(message, session);
  }

  /** The handler of each message type a coordinator may send. */
  private readonly handlers: Handlers = {
    welcome: (message, session) => {
      session.welcomed = true;
      this.workerId = message.workerId;
      this.options.metrics?.connected(true);
      this.options.log(`connected to ${this.options.url} as ${message.workerId}`);
    },
    job: async (message, session) => {
      session.startHeartbeat(message.heartbeatMs, message.heartbeatTimeoutMs);
      const file = message.dataFile && (await this.dataFile(message));
      this.startJob(message, file);
    },
    shard: (message) => {
      const refs = message.fileRows ? Float64Array.from(message.fileRows) : message.members;
      this.need(this.store, 'shard').add(message.firstRow, message.rows, refs ? message.x : this.features(message, 'shard'), message.y, message.w, refs);
    },
    weights: (message) => {
      // loaded into the model by the next step or evaluation, as a thread does
      const { parameters } = this.need(this.job, 'weights');
      if (message.weights.length !== parameters) throw new ProtocolError(`weights have ${message.weights.length} values, the job has ${parameters} parameters`, 'shape');
      this.weights = message.weights;
      this.version = message.version;
      this.replica?.invalidate();
    },
    state: (message) => {
      const replica = this.need(this.replica, 'state');
      replica.state(message);
      this.weights = replica.weights;
      this.version = replica.version;
    },
    peers: (message) => this.need(this.replica, 'peers').peers(message),
    round: (message) => this.need(this.replica, 'round').startRound(message),
    block: (message) => this.need(this.replica, 'block').receive(OBSERVER, message),
    commit: (message) => {
      const replica = this.need(this.replica, 'commit');
      replica.commit(message);
      this.weights = replica.weights;
      this.version = replica.version;
    },
    step: (message) => (this.replica?.reduces(message.step) ? this.peerStep(message, this.replica) : this.step(message)),
    evaluate: async (message, session) => {
      const engine = this.need(this.engine, 'evaluate');
      if (message.version !== this.version) throw new WorkerError(`evaluation wants weights version ${message.version}, this node has ${this.version}`);
      const x = this.features(message, 'evaluate');
      const count = x.length / this.need(this.job, 'evaluate').features;
      if (message.w && message.w.length !== count) throw new ProtocolError(`evaluate ${message.id}: ${message.w.length} weights for ${count} rows`, 'shape');
      this.loadWeights(engine);
      const sums = await engine.evaluate(x, message.y, count, message.w);
      session.send({ type: 'evaluation', id: message.id, count: sums.count, lossSum: sums.lossSum, metricSums: sums.metricSums });
    },
    heartbeat: () => undefined,
    error: (message, session) => {
      this.options.log(`coordinator error [${message.code}]: ${message.message}`);
      if (FINAL_CODES.has(message.code)) session.finish(new WorkerError(`the coordinator at ${this.options.url} refused this worker: ${message.message}`));
    },
    bye: (message, session) => session.finish({ kind: 'finished', reason: message.reason }),
  };

  /** A step: the gradient of the rows it names with the current weights, sent in parts as it is computed (GradientSender). */
  private async step(message: StepMessage): Promise<void> {
    const { gradientDtype, bucketBytes, parameters } = this.need(this.job, 'step');
    const sending = this.sender.begin(message.step, parameters, gradientDtype, bucketBytes);
    // not the sending of parts on the way
    const sums = await this.compute(message, sending.gradient, sending.onReady, () => sending.sendingMs);
    sending.finish(sums);
    if (this.options.verbose) this.options.log(`step ${message.step}: ${sums.count} rows (${message.rows.length} held, ${sums.count - message.rows.length} inline), ${sums.computeMs.toFixed(1)} ms`);
  }

  /** A step reduced among peers: this node's block goes into the round; the sums follow once the round's mean is whole (PeerReplica). */
  private async peerStep(message: StepMessage, replica: PeerReplica): Promise<void> {
    const gradient = (this.scratch ??= new Float32Array(replica.parameters));
    // the shards the backward pass has finished go to their owners while it computes the rest
    const { features } = this.need(this.job, 'step');
    const count = message.rows.length + (message.x.length > 0 ? message.x.length : message.pixels.length) / features;
    let sendingMs = 0;
    const onReady = (start: number): void => {
      const began = performance.now();
      replica.partReady(message.step, count, gradient, start);
      sendingMs += performance.now() - began;
    };
    const sums = await this.compute(message, gradient, onReady, () => sendingMs);
    if (this.fault?.kind === 'stall-block' && this.fault.step === message.step) await new Promise((resolve) => setTimeout(resolve, this.fault!.ms));
    replica.contribute(message.step, gradient, sums);
    if (this.options.verbose) this.options.log(`step ${message.step} (peers): ${sums.count} rows, ${sums.computeMs.toFixed(1)} ms`);
  }

  /**
   * The gradient of a step's rows into `out`, counted in the node's stats. Compute time counts
   * what a thread's does: loading new weights, gathering rows, the gradient, less `notCompute`.
   */
  private async compute(message: StepMessage, out: Float32Array, onReady?: (start: number) => void, notCompute: () => number = () => 0): Promise<BlockSums> {
    const engine = this.need(this.engine, 'step');
    this.checkStepMemory(message);
    if (message.version !== this.version) throw new WorkerError(`step ${message.step} wants weights version ${message.version}, this node has ${this.version}`);
    const started = performance.now();
    this.loadWeights(engine);
    const store = this.need(this.store, 'step');
    const before = { ...store.reads };
    const { xs, ys, ws, count } = await store.batch(message.rows, this.features(message, 'step'), message.y, message.w, message.step);
    this.stats.rowsReadAhead += store.reads.ahead - before.ahead;
    this.stats.rowsReadInStep += store.reads.inStep - before.inStep;
    // the next step's rows, where they come over the network, are read while this one computes
    if (message.next) store.prefetch(message.step + 1, message.next);
    const result = await engine.gradient(xs, ys, count, out, onReady, stepRows(message, count, ws));
    const computeMs = performance.now() - started - notCompute();
    this.stats.steps++;
    this.stats.samples += count;
    this.stats.computeSeconds += computeMs / 1000;
    this.options.metrics?.step(count, computeMs / 1000);
    return { count, lossSum: result.lossSum, metricSums: result.metricSums, computeMs };
  }

  /** Refuses a step whose rows at once (a micro-batch where the job has them) would need more activation memory than this worker gives a step. */
  private checkStepMemory(message: StepMessage): void {
    const job = this.need(this.job, 'step');
    const count = message.rows.length + (message.x.length > 0 ? message.x.length : message.pixels.length) / job.features;
    const atOnce = Math.min(count, job.spec.microBatchSize ?? count);
    const budget = this.options.maxStepBytes ?? defaultMaxStepBytes();
    if (atOnce * this.rowBytes > budget) {
      throw new WorkerError(`step ${message.step}: ${atOnce} rows at once need about ${size(atOnce * this.rowBytes)} of activations, more than the ${size(budget)} this worker gives a step (--max-step-memory, in MiB)`);
    }
  }

  /** A message's rows as float32 features: its x, or its uint8 pixels scaled (images; the job says which). */
  private features(message: { readonly x: Float32Array; readonly pixels: Uint8Array }, what: string): Float32Array {
    const { pixelScale } = this.need(this.job, what);
    if (pixelScale > 0) {
      if (message.x.length > 0) throw new ProtocolError(`"${what}" message with float32 x in a job whose rows travel as uint8 pixels`, 'malformed');
      return scalePixels(message.pixels, pixelScale);
    }
    if (message.pixels.length > 0) throw new ProtocolError(`"${what}" message with uint8 pixels in a job whose rows travel as float32 x`, 'malformed');
    return message.x;
  }

  /** The reader of the job's data files in --data-dir or at --data-url. */
  private dataFile(job: JobMessage): Promise<DataFileReader> {
    const { data } = this.options;
    if (!data) throw new ProtocolError('the job names data files to read, and this node did not offer to read data (--data-dir, --data-url)', 'unexpected');
    return openDataFile(job, data, this.options.log);
  }

  private need<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw new ProtocolError(`"${what}" message before the job`, 'unexpected');
    return value;
  }

  private loadWeights(engine: BatchEngine): void {
    if (this.weights) {
      engine.setWeights(this.weights);
      this.weights = undefined;
    }
  }

  /**
   * Takes a job: its model's size is counted from the spec's shapes (weightLayout: arithmetic,
   * nothing built) and held to this worker's limit and to the job's own count before the model is
   * built, so that a coordinator cannot make this worker allocate what it likes.
   */
  private startJob(job: JobMessage, file: DataFileReader | undefined): void {
    const parameters = weightLayout(job.spec).size;
    const limit = this.options.maxParameters ?? defaultMaxParameters();
    if (parameters > limit) {
      throw new JobRefusedError(
        `the coordinator at ${this.options.url} sent a job whose model has ${parameters.toLocaleString('en-US')} parameters (${printable(describeModel(job.spec), 100)}), ` +
          `more than this worker takes: --max-parameters ${limit.toLocaleString('en-US')} (about ${BYTES_PER_PARAMETER} bytes of memory each)`,
      );
    }
    if (parameters !== job.parameters) throw new WorkerError(`job says ${job.parameters} parameters, its model spec has ${parameters}`);
    const sums = metricSumsWidth(job.spec.metrics, job.spec.weightedMetrics);
    if (sums > MAX_METRIC_SUMS) {
      throw new JobRefusedError(
        `the coordinator at ${this.options.url} sent a job whose metrics (${printable(metricKeys(job.spec.metrics, job.spec.weightedMetrics).join(', '), 200)}) take ${sums} sums, more than the ${MAX_METRIC_SUMS} a gradient carries`,
      );
    }
    // a model of few parameters can still hold gigabytes a row (a convolution over a huge image)
    const perRow = activationValuesPerRow(job.spec);
    const budget = this.options.maxStepBytes ?? defaultMaxStepBytes();
    if (perRow !== undefined && 4 * perRow > budget) {
      throw new JobRefusedError(
        `the coordinator at ${this.options.url} sent a job whose model holds about ${size(4 * perRow)} of activations for one row (${printable(describeModel(job.spec), 100)}), ` +
          `more than the ${size(budget)} this worker gives a step (--max-step-memory, in MiB)`,
      );
    }
    this.rowBytes = perRow === undefined ? 0 : 4 * perRow;
    this.engine?.dispose();
    this.engine = undefined; // not the disposed one, should the build below throw
    this.engine = this.options.devices ? this.options.devices.engine(job.spec) : createEngine(job.spec, 'dense');
    this.store = new ShardStore(job.features, job.outputs, file);
    this.job = job;
    this.version = -1;
    this.weights = undefined;
    this.replica = undefined;
    this.scratch = undefined;
    if (job.reduction === 'peers' && this.mesh) {
      const mesh = this.mesh;
      mesh.join({ jobId: job.jobId, self: this.workerId, parameters });
      // a replica replaced (the node rejoined) sends nothing more: its frames would claim the old id
      const replica: PeerReplica = new PeerReplica(job, this.replicaLinks(mesh, () => this.replica === replica), this.options.log);
      this.replica = replica;
    }
    this.options.log(
      `job ${job.jobId}: model ${describeModel(job.spec)} (${job.parameters} parameters), ${job.trainRows} training rows, backend ${this.options.devices ? `${this.options.backend} on ${this.options.devices.count} devices` : tf.getBackend()}`,
    );
  }

  /** Where a replica's frames go while it is the node's: the peer endpoint and the coordinator (silenced mid-gather by a kill-mid-gather fault point). */
  private replicaLinks(mesh: PeerMesh, live: () => boolean): ReplicaLinks {
    const links: ReplicaLinks = {
      toPeer: (to, message) => void (live() && mesh.send(to, message)),
      whenSent: (to, send) => mesh.whenSent(to, send),
      toCoordinator: (message) => void (live() && this.connection?.send(message)),
    };
    const fault = this.fault;
    if (fault?.kind !== 'kill-mid-gather') return links;
    let silenced = false;
    return {
      toPeer: (to, message) => {
        if (silenced) return;
        links.toPeer(to, message);
        if (message.type === 'reduced' && message.step === fault.step) {
          silenced = true;
          killSelf(300);
        }
      },
      whenSent: links.whenSent,
      toCoordinator: (message) => void (silenced || links.toCoordinator(message)),
    };
  }

  close(): void {
    this.engine?.dispose();
  }
}

type Handlers = { readonly [K in Message['type']]?: (message: Extract<Message, { type: K }>, session: Session) => void | Promise<void> };

/** How long a session's end waits for the message being handled (a step's compute) before the node reconnects anyway. */
const DRAIN_MS = 60_000;

/**
 * One connection to the coordinator: hello, then every frame decoded (decodeFrame) and given to
 * its type's handler (`dispatch`), one after another: a handler that computes (a step on a GPU
 * reads its results back asynchronously) finishes before the next message is handled, as if
 * it had run synchronously. Heartbeats both ways once the job is known. `done` hears how it
 * ended, or the error when the coordinator refuses this worker for good.
 */
class Session {
  welcomed = false;
  /** A step's gradient went out on this connection. */
  private progressed = false;
  /** What the coordinator's frames may hold; its weights bounded by the model once the job is known. */
  private frameLimits: FrameLimits = coordinatorFrameLimits();
  private settled = false;
  /** The handling of the messages received so far, in order. */
  private handled: Promise<void> = Promise.resolve();
  private lastSeen = performance.now();
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly socket: WebSocket;

  constructor(
    private readonly options: NodeClientOptions,
    /** The peer endpoint's port and host for the hello (none without one). */
    private readonly peer: { readonly peerPort?: number; readonly peerHost?: string; readonly peerTls?: true },
    /** Gradient frames are encoded into this reused memory. */
    private readonly gradientFrames: FramePool,
    private readonly dispatch: (message: Message, session: Session) => void | Promise<void>,
    private readonly done: (end: SessionEnd | Error) => void,
  ) {
    const { url, token, name, backend, adapter, devices, ca, maxPayload, data } = options;
    // zero masking keys: no XOR pass over every gradient on either side (zero-mask.ts)
    const socket = new WebSocket(url, { maxPayload, handshakeTimeout: 10_000, generateMask: zeroMask, ...(ca ? { ca } : {}) });
    this.socket = socket;
    socket.on('open', () =>
      this.send({ type: 'hello', version: PROTOCOL_VERSION, token, name, backend, ...(adapter ? { adapter: adapter.slice(0, 400) } : {}), ...(devices && devices.count > 1 ? { devices: devices.count } : {}), ...this.peer, ...(data ? { readsData: true as const } : {}) }),
    );
    socket.on('error', (err) => this.lost(err.message));
    socket.on('close', (code, reason) => this.lost(`closed (${code}${reason.length ? `: ${reason.toString()}` : ''})`));
    socket.on('message', (data: Buffer, isBinary: boolean) => this.receive(data, isBinary));
  }

  /** Ends the session as a lost connection (retried by NodeClient.run). */
  private lost(reason: string): void {
    this.finish({ kind: 'lost', reason, welcomed: this.welcomed, progressed: this.progressed });
  }

  /**
   * Ends the session. The message being handled finishes first (at most DRAIN_MS; the ones queued
   * behind it are skipped), so a node never runs two sessions' handlers at once: a step still
   * computing when the coordinator dropped the node ends, and its frames go out, before the node
   * reconnects under a new id.
   */
  finish(end: SessionEnd | Error): void {
    if (this.settled) return;
    this.settled = true;
    clearInterval(this.heartbeat);
    this.options.metrics?.connected(false);
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate();
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise<void>((resolve) => (timer = setTimeout(resolve, DRAIN_MS)));
    void Promise.race([this.handled, drained]).then(() => {
      clearTimeout(timer);
      this.done(end);
    });
  }

  send(message: Message): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (message.type === 'gradient' || message.type === 'round_sums') this.progressed = true;
    // gradients (every step, megabytes) are encoded into reused memory
    if (message.type === 'gradient' || message.type === 'gradient_part') {
      const frame = this.gradientFrames.encode(message);
      const written = frame.retain();
      frame.release();
      this.options.metrics?.bytes('sent', frame.bytes.byteLength);
      this.socket.send(frame.bytes, () => written());
      return;
    }
    const frame = encodeMessage(message);
    this.options.metrics?.bytes('sent', frame.byteLength);
    this.socket.send(frame);
  }

  /** Heartbeats every `intervalMs`; the coordinator is given up after `timeoutMs` of silence. */
  startHeartbeat(intervalMs: number, timeoutMs: number): void {
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      if (performance.now() - this.lastSeen > timeoutMs) this.lost(`no message from the coordinator for ${timeoutMs} ms`);
      else this.send({ type: 'heartbeat', sentAt: Date.now() });
    }, intervalMs);
  }

  private receive(data: Buffer, isBinary: boolean): void {
    const { log } = this.options;
    this.lastSeen = performance.now();
    this.options.metrics?.bytes('received', data.byteLength);
    let message: Message;
    try {
      message = decodeFrame(data, isBinary, this.frameLimits);
      // the frames after a job are decoded before its handler runs (handlers run in turn, below)
      if (message.type === 'job') this.frameLimits = coordinatorFrameLimits(message.parameters);
    } catch (err) {
      log(`bad message from the coordinator: ${(err as Error).message}`);
      this.send({ type: 'error', code: 'E_PROTOCOL', message: (err as Error).message.slice(0, 4000) });
      this.lost(`bad message: ${(err as Error).message}`);
      return;
    }
    this.handled = this.handled.then(async () => {
      if (this.settled) return;
      try {
        await this.dispatch(message, this);
      } catch (err) {
        const text = (err as Error).message;
        log(`cannot handle "${message.type}": ${text}`);
        // cut to fit an error frame's limit (frame-limits.ts)
        this.send({ type: 'error', code: (err as { code?: string }).code ?? 'E_WORKER', message: text.slice(0, 4000) });
        // a refused job would come again on every reconnect: that ends this worker
        if (err instanceof JobRefusedError) this.finish(err);
        else this.lost(text);
      }
    });
  }
}

/** The training rows of a step's samples (held, then inline) and their virtual batches, checked against the count. */
function stepRows(message: StepMessage, count: number, weights: Float32Array | undefined): BatchRows {
  if (message.rows.length + message.inline.length !== count) {
    throw new WorkerError(`step ${message.step}: ${message.inline.length} inline row ids for ${count - message.rows.length} inline rows`);
  }
  if (message.groups.length !== 0 && message.groups.length !== count) {
    throw new WorkerError(`step ${message.step}: ${message.groups.length} virtual-batch ids for ${count} rows`);
  }
  const rows = new Int32Array(count);
  rows.set(message.rows);
  rows.set(message.inline, message.rows.length);
  return { step: message.step, rows, ...(message.groups.length > 0 ? { groups: message.groups } : {}), ...(weights ? { weights } : {}) };
}
