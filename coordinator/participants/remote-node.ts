/**
 * RemoteNode: a worker node connected over WebSocket, as a Participant. It holds a shard of the
 * training set (sent once, in chunks); a step names the rows it holds and carries any others
 * inline; weights go out only when the node does not have the step's version yet. Any protocol
 * violation, a missed heartbeat or step deadline, or a closed connection drops the node: its
 * pending requests fail with a ParticipantFault, so the trainer recomputes that part.
 *
 * Every message a peer may send is checked here, next to the request it answers (a check moved
 * away from its request is one that drifts); the wire itself is in shared/protocol/, part
 * assembly in gradient-assembler.ts, deadlines in stragglers.ts.
 */
import { closeReason, printable } from '../../shared/protocol/printable.js';
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';
import type { Dataset, RowRange } from '../../shared/data/dataset.js';
import { featureRows, type FeatureRows, type OnDisk } from '../../shared/data/feature-rows.js';
import { basename } from 'node:path';
import type { GradientDtype } from '../../shared/math/float16.js';
import { chunkRange, inRanges } from '../../shared/plan/shard-plan.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import type { PooledFrame } from '../../shared/protocol/frame-pool.js';
import type { GradientResult } from '../../shared/protocol/gradient-packet.js';
import { PROTOCOL_VERSION, type JobMessage, type BlockMessage, type CommitMessage, type GradientPartMessage, type HelloMessage, type Message, type PeersMessage, type ReducedMessage, type RoundMessage, type RoundSumsMessage, type StepMessage } from '../../shared/protocol/schemas.js';
import type { OptimizerConfig } from '../../shared/config/optimizer-config.js';
import { decodeFrame, encodeMessage } from '../../shared/protocol/codec.js';
import { nodeFrameLimits, type FrameLimits } from '../../shared/protocol/frame-limits.js';
import { expectGradient } from '../../shared/protocol/context-checks.js';
import type { EvaluateAnswer } from '../../shared/protocol/thread-tasks.js';
import { GradientAssembler } from './gradient-assembler.js';
import { ParticipantFault, faultOf, type FailureReason, type Participant } from './participant.js';
import { metricLayoutOf } from '../../shared/model/metric-sums.js';
import { peerProof } from '../../shared/peer/peer-proof.js';

export interface NodeContext {
  readonly jobId: string;
  readonly spec: ModelSpec;
  readonly dataset: Dataset;
  readonly parameters: number;
  readonly heartbeatMs: number;
  readonly heartbeatTimeoutMs: number;
  /** How the node sends gradients. */
  readonly gradientDtype: GradientDtype;
  /** Gradient bytes a node sends ahead in parts (job.bucketBytes; 0: whole gradients). */
  readonly bucketBytes: number;
  readonly stepTimeoutMs: number;
  /** How long this node may take for a part of `samples` samples (default stepTimeoutMs); stragglers.ts. */
  readonly deadlineMs?: (nodeId: string, samples: number) => number;
  /** Largest shard chunk in bytes (below the peers' maxPayload). */
  readonly chunkBytes: number;
  /** The encoded "weights" message of a version (throws unless it is the current one). */
  readonly weightsFrame: (version: number) => PooledFrame;
  /** coordinator, or peers: nodes all-reduce among themselves and step `optimizer` themselves (PeerStep). */
  readonly reduction?: 'coordinator' | 'peers';
  readonly optimizer?: OptimizerConfig;
  /** Counts bytes on the wire (metrics). */
  readonly onBytes?: (direction: 'sent' | 'received', bytes: number) => void;
}

interface Pending {
  readonly key: string;
  readonly resolve: (message: Message) => void;
  readonly reject: (fault: ParticipantFault) => void;
  readonly timer: NodeJS.Timeout;
}

export class RemoteNode implements Participant {
  readonly kind = 'node' as const;
  readonly holds: (row: number) => boolean;
  /** The data set's features, read for the rows this node is sent. */
  private readonly rows: FeatureRows;
  /** The node reads the data file itself (hello.readsData, features on disk): its shards are file rows. */
  readonly readsData: boolean;
  /** The files it reads them from, where it does. */
  private readonly readsFrom: OnDisk | undefined;
  /** Training rows this node was sent (it keeps them all). */
  readonly ranges: RowRange[] = [];
  readonly name: string;
  readonly backend: string;
  /** The node's WebGPU adapter or why auto chose its backend (hello.adapter), printable. */
  readonly adapter: string | undefined;
  /** Its compute processes (hello.devices). */
  readonly devices: number;
  private sentVersion = -1;
  /** The version of the weights and optimizer state this node steps from itself (reduction peers; -1: none). */
  private replicaVersion = -1;
  /** The last membership epoch this node was told its peers of. */
  private peerEpoch = -1;
  /** The peer endpoint other nodes reach this one at (reduction peers), if it has one (and a key to prove peers by). */
  readonly peerUrl: string | undefined;
  private readonly peerKey: string | undefined;
  /** The last round the coordinator gave up on before this node answered it: a late answer to it is no fault. */
  private abandonedRound = -1;
  /** Hears this node's reduced shards of the round under way (PeerStep); throwing drops the node. */
  onReduced: ((message: ReducedMessage) => void) | undefined;
  private readonly pending = new Map<string, Pending>();
  private nextEvaluation = 0;
  private lastSeen = performance.now();
  private readonly heartbeat: NodeJS.Timeout;
  private closedReason: string | undefined;
  private readonly closeListeners: ((reason: FailureReason, message: string) => void)[] = [];
  private readonly parts: GradientAssembler;
  /** What this node's frames may hold (gradients: the model's size), checked before they are decoded. */
  private readonly frameLimits: FrameLimits;

  constructor(
    readonly id: string,
    private readonly socket: WebSocket,
    hello: HelloMessage,
    readonly address: string,
    private readonly context: NodeContext,
  ) {
    this.name = printable(hello.name, 64);
    this.backend = printable(hello.backend, 32);
    this.adapter = hello.adapter === undefined ? undefined : printable(hello.adapter, 200);
    this.devices = hello.devices ?? 1;
    this.peerKey = hello.peerKey;
    this.peerUrl = hello.peerPort === undefined || hello.peerKey === undefined ? undefined : peerUrl(hello.peerHost ?? address.replace(/:\d+$/, ''), hello.peerPort, hello.peerTls === true);
    this.holds = (row) => inRanges(this.ranges, row);
    this.rows = featureRows(context.dataset);
    // standardized .npy features are sent as rows: a node reading the file would need the
    // statistics too (CSV rows travel with their encoding and statistics: job.dataFile)
    const onDisk = context.dataset.onDisk;
    this.readsFrom = hello.readsData === true && onDisk !== undefined && !(onDisk.kind === 'npy' && onDisk.standardize) ? onDisk : undefined;
    this.readsData = this.readsFrom !== undefined;
    if (this.readsData) this.hintRows = (step, rows) => (this.hint = { step, rows });
    this.parts = new GradientAssembler(context.parameters);
    this.frameLimits = nodeFrameLimits(context.parameters);
    socket.on('message', (data: Buffer, isBinary: boolean) => this.receive(data, isBinary));
    socket.on('close', (code, reason) => this.closed('disconnected', `connection closed (${code}${reason.length ? `: ${reason.toString()}` : ''})`));
    socket.on('error', (err: Error & { code?: string }) =>
      this.drop(err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'malformed' : 'disconnected', `${err.message}${err.code ? ` (${err.code})` : ''}`),
    );
    this.heartbeat = setInterval(() => {
      const silent = performance.now() - this.lastSeen;
      if (silent > context.heartbeatTimeoutMs) this.drop('timeout', `no heartbeat for ${Math.round(silent)} ms`);
      else this.send({ type: 'heartbeat', sentAt: Date.now() });
    }, context.heartbeatMs);
  }

  /** Welcomes the node and sends it the job. */
  start(): void {
    const { jobId, spec, parameters, dataset, heartbeatMs, heartbeatTimeoutMs, gradientDtype, bucketBytes } = this.context;
    this.send({ type: 'welcome', version: PROTOCOL_VERSION, workerId: this.id });
    this.send({
      type: 'job',
      jobId,
      spec: spec as never,
      parameters,
      features: dataset.features,
      outputs: dataset.outputs,
      trainRows: dataset.train.count,
      heartbeatMs,
      heartbeatTimeoutMs,
      gradientDtype,
      bucketBytes,
      pixelScale: dataset.pixels?.scale ?? 0,
      ...(this.context.reduction === 'peers' ? { reduction: 'peers' as const, ...(this.context.optimizer ? { optimizer: this.context.optimizer } : {}) } : {}),
      ...(this.readsFrom ? { dataFile: dataFileOf(this.readsFrom) } : {}),
    });
  }

  get open(): boolean {
    return this.closedReason === undefined;
  }

  onClose(listener: (reason: FailureReason, message: string) => void): void {
    this.closeListeners.push(listener);
  }

  /** Sends training rows (global indices within the training set) in chunks; the node keeps them. */
  sendRows(range: RowRange): void {
    const { dataset, chunkBytes } = this.context;
    const { features, outputs } = dataset;
    const rowBytes = (this.readsData ? 24 : features * (dataset.pixels ? 1 : 4)) + outputs * 4 + (dataset.sampleWeights ? 4 : 0);
    const chunks = chunkRange(range, Math.max(1, Math.floor(chunkBytes / rowBytes)));
    chunks.forEach((c, i) => {
      const first = dataset.train.start + c.start;
      this.send({
        type: 'shard',
        firstRow: c.start,
        rows: c.count,
        chunk: i,
        chunks: chunks.length,
        ...(this.readsFrom ? { ...fileRefs(this.readsFrom, first, c.count), pixels: new Uint8Array(0), x: new Float32Array(0) } : rowFeatures(dataset, this.rows, first, c.count)),
        ...(dataset.sampleWeights ? { w: dataset.sampleWeights.subarray(first, first + c.count) } : {}),
        y: dataset.y.subarray(first * outputs, (first + c.count) * outputs),
      });
    });
    this.ranges.push(range);
  }

  private send(message: Message): void {
    if (this.open) this.sendFrame(encodeMessage(message));
  }

  /** Sends a frame; `written` is called once the socket has written it (or failed to). */
  private sendFrame(frame: Uint8Array, written?: () => void): void {
    if (!this.open) {
      written?.();
      return;
    }
    this.context.onBytes?.('sent', frame.byteLength);
    this.socket.send(frame, written && (() => written()));
  }

  private sendWeights(version: number): void {
    if (this.sentVersion !== version) {
      const frame = this.context.weightsFrame(version);
      this.sendFrame(frame.bytes, frame.retain());
      this.sentVersion = version;
    }
  }

  /**
   * Sends and awaits the answer `key`. Past `timeoutMs` the node is dropped, or, given
   * `onTimeout`, the request is settled with that (a peer round's wait is not the node's fault
   * alone: it may be waiting on another node).
   */
  private request(key: string, send: () => void, timeoutMs = this.context.stepTimeoutMs, onTimeout?: () => ParticipantFault): Promise<Message> {
    if (!this.open) return Promise.reject(new ParticipantFault(this.id, 'disconnected', `is gone (${this.closedReason})`));
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (onTimeout) this.settle(key)?.reject(onTimeout());
        else this.drop('timeout', `no answer to ${key} within ${timeoutMs} ms`);
      }, timeoutMs);
      this.pending.set(key, { key, resolve, reject, timer });
      try {
        send();
      } catch (err) {
        this.settle(key);
        clearTimeout(timer);
        reject(faultOf(this.id, err, 'unexpected'));
      }
    });
  }

  private settle(key: string): Pending | undefined {
    const p = this.pending.get(key);
    if (p) {
      clearTimeout(p.timer);
      this.pending.delete(key);
    }
    return p;
  }

  /** The rows this node will likely compute at a coming step (a node that reads the data itself reads them ahead). */
  private hint: { readonly step: number; readonly rows: Int32Array } | undefined;

  /** The rows this node will likely compute at `step`, sent with the step before it; only where this node reads its rows itself. */
  readonly hintRows?: (step: number, rows: Int32Array) => void;

  /** The "step" message of `rows`: the rows this node holds by index, the others inline. */
  private stepMessage(step: number, version: number, rows: Int32Array, groups?: Int32Array): StepMessage {
    const { dataset } = this.context;
    const { features, outputs } = dataset;
    const held: number[] = [];
    const inline: number[] = [];
    const heldGroups: number[] = [];
    const inlineGroups: number[] = [];
    rows.forEach((r, i) => {
      const isHeld = this.holds(r);
      (isHeld ? held : inline).push(r);
      if (groups) (isHeld ? heldGroups : inlineGroups).push(groups[i]!);
    });
    const { pixels } = dataset;
    const values = pixels ? new Uint8Array(inline.length * features) : this.rows.gather(inline.map((r) => dataset.train.start + r));
    const y = new Float32Array(inline.length * outputs);
    const { sampleWeights } = dataset;
    const w = sampleWeights ? new Float32Array(inline.length) : undefined;
    inline.forEach((r, i) => {
      const row = dataset.train.start + r;
      if (pixels) values.set(pixels.values.subarray(row * features, (row + 1) * features), i * features);
      y.set(dataset.y.subarray(row * outputs, (row + 1) * outputs), i * outputs);
      if (w) w[i] = sampleWeights![row]!;
    });
    const inlineFeatures = values instanceof Uint8Array ? { pixels: values, x: new Float32Array(0) } : { pixels: new Uint8Array(0), x: values };
    const next = this.hint?.step === step + 1 ? this.hint.rows.filter((r) => this.holds(r)) : undefined;
    return { type: 'step', step, version, groups: Int32Array.from([...heldGroups, ...inlineGroups]), inline: Int32Array.from(inline), rows: Int32Array.from(held), ...(next && next.length > 0 ? { next } : {}), ...inlineFeatures, ...(w ? { w } : {}), y };
  }

  /** Sends a step's rows (after what `first` sends) and awaits the answer `key`, within this node's deadline for that many rows. */
  private stepRequest(key: string, step: number, version: number, rows: Int32Array, groups: Int32Array | undefined, first: () => void, onTimeout?: () => ParticipantFault): Promise<Message> {
    const message = this.stepMessage(step, version, rows, groups);
    return this.request(
      key,
      () => {
        first();
        this.send(message);
      },
      this.context.deadlineMs?.(this.id, rows.length),
      onTimeout,
    );
  }

  async gradient(step: number, version: number, rows: Int32Array, groups?: Int32Array): Promise<GradientResult> {
    const { parameters, spec } = this.context;
    const assembly = this.parts.begin(step);
    const answer = await this.stepRequest(`step ${step}`, step, version, rows, groups, () => this.sendWeights(version));
    let gradient;
    try {
      gradient = expectGradient(answer, step, parameters, metricLayoutOf(spec).width, assembly);
    } catch (err) {
      const fault = faultOf(this.id, err, 'unexpected');
      throw this.drop(fault.reason === 'malformed' ? 'unexpected' : fault.reason, (err as Error).message);
    }
    if (gradient.count !== rows.length) throw this.drop('shape', `computed ${gradient.count} samples for step ${step}, was given ${rows.length}`);
    return { count: gradient.count, lossSum: gradient.lossSum, metricSums: gradient.metricSums, gradient: assembly.complete(gradient.gradient), numTensors: -1, computeMs: gradient.computeMs };
  }

  /** Whether this node steps from the coordinator's state of `version` already (reduction peers). */
  holdsState(version: number): boolean {
    return this.replicaVersion === version;
  }

  /** The coordinator's weights and optimizer state of `version` (an encoded "state" frame). */
  sendState(version: number, frame: PooledFrame): void {
    this.sendFrame(frame.bytes, frame.retain());
    this.replicaVersion = version;
    this.sentVersion = version;
  }

  /** The proof node `from` shows this node's peer endpoint (its peer_hello). */
  proofFor(from: string): string {
    if (this.peerKey === undefined) throw new Error(`${this.id} has no peer key`);
    return peerProof(this.peerKey, this.context.jobId, from);
  }

  /** The owner ranks of membership epoch `epoch`, made by `message` and sent once per epoch. */
  sendPeers(epoch: number, message: () => PeersMessage): void {
    if (this.peerEpoch === epoch) return;
    this.send(message());
    this.peerEpoch = epoch;
  }

  /**
   * A step reduced among peers: its round, then its rows; answers with the sums of this node's
   * block once the node holds the round's whole mean gradient (its reduced shard came first).
   */
  async roundGradient(step: number, version: number, rows: Int32Array, groups: Int32Array | undefined, round: RoundMessage): Promise<RoundSumsMessage> {
    if (!this.holdsState(version)) throw new ParticipantFault(this.id, 'unexpected', `has no state of version ${version} to step from`);
    // past the deadline the round is given up, not this node: the step then goes through the
    // coordinator, where a node that does not answer is its own proof
    const answer = await this.stepRequest(`round ${step}`, step, version, rows, groups, () => this.send(round), () => {
      this.abandonedRound = Math.max(this.abandonedRound, step);
      return new RoundAbandoned(this.id, step, 'no answer within the deadline');
    });
    if (answer.type !== 'round_sums' || answer.metricSums.length !== metricLayoutOf(this.context.spec).width) throw this.drop('shape', `bad answer to round ${step}`);
    if (answer.count !== rows.length) throw this.drop('shape', `computed ${answer.count} samples for step ${step}, was given ${rows.length}`);
    return answer;
  }

  /** The coordinator gave up on round `step` (another participant failed it): its answer is no longer awaited, and no fault when it comes. */
  abandonRound(step: number): void {
    this.abandonedRound = Math.max(this.abandonedRound, step);
    this.settle(`round ${step}`)?.reject(new RoundAbandoned(this.id, step));
  }

  /**
   * A round of this node's was not committed: it may have stepped its weights and optimizer on
   * the round's mean already (a node steps as soon as its mean is whole), so it is sent the
   * weights before its next step and the state before its next round.
   */
  forgetWeights(): void {
    this.sentVersion = -1;
    this.replicaVersion = -1;
  }

  /** A block of the coordinator's own lanes, for the shard this node owns. */
  sendBlock(message: BlockMessage): void {
    this.send(message);
  }

  /** The step is taken: the node steps its optimizer and holds the new version. */
  commit(message: CommitMessage): void {
    this.send(message);
    this.replicaVersion = message.version;
    this.sentVersion = message.version;
  }

  /** A gradient part of the step being computed: copied into place (the step's answer takes it from there). */
  private part(message: GradientPartMessage): void {
    if (!this.pending.has(`step ${message.step}`)) {
      this.drop('unexpected', `sent a gradient part for step ${message.step}, which was not asked for`);
      return;
    }
    try {
      this.parts.add(message);
    } catch (err) {
      this.drop(faultOf(this.id, err, 'shape').reason, (err as Error).message);
    }
  }

  async evaluate(version: number, range: RowRange): Promise<EvaluateAnswer> {
    const { dataset, spec } = this.context;
    const { outputs } = dataset;
    const id = this.nextEvaluation++;
    const answer = await this.request(`evaluation ${id}`, () => {
      this.sendWeights(version);
      this.send({
        type: 'evaluate',
        id,
        version,
        ...rowFeatures(dataset, this.rows, range.start, range.count),
        ...(dataset.sampleWeights ? { w: dataset.sampleWeights.subarray(range.start, range.start + range.count) } : {}),
        y: dataset.y.subarray(range.start * outputs, (range.start + range.count) * outputs),
      });
    });
    if (answer.type !== 'evaluation' || answer.count !== range.count || answer.metricSums.length !== metricLayoutOf(spec).width) {
      throw this.drop('shape', `bad answer to evaluation ${id}`);
    }
    return { count: answer.count, lossSum: answer.lossSum, metricSums: answer.metricSums, numTensors: -1 };
  }

  private receive(data: Buffer, isBinary: boolean): void {
    this.lastSeen = performance.now();
    this.context.onBytes?.('received', data.byteLength);
    let message: Message;
    try {
      message = decodeFrame(data, isBinary, this.frameLimits);
    } catch (err) {
      this.drop(faultOf(this.id, err, 'malformed').reason, printable((err as Error).message, 300));
      return;
    }
    try {
      this.handle(message);
    } catch (err) {
      // whatever a peer's message makes go wrong, it is that peer's fault, not the coordinator's end
      this.drop('malformed', printable(`could not handle its "${message.type}" message: ${(err as Error).message}`, 300));
    }
  }

  private handle(message: Message): void {
    switch (message.type) {
      case 'heartbeat':
        return;
      case 'gradient_part':
        return this.part(message);
      case 'gradient':
        return this.answer(`step ${message.step}`, message);
      case 'evaluation':
        return this.answer(`evaluation ${message.id}`, message);
      case 'round_sums':
        if (message.step <= this.abandonedRound && !this.pending.has(`round ${message.step}`)) return;
        return this.answer(`round ${message.step}`, message);
      case 'reduced':
        if (!this.onReduced) return void this.drop('unexpected', `sent the mean of shard ${message.shard} of step ${message.step}, which was not asked for`);
        return this.onReduced(message);
      case 'error':
        this.drop('worker_error', `reported [${printable(message.code, 32)}] ${printable(message.message, 300)}`);
        return;
      case 'bye':
        this.drop('disconnected', `left: ${printable(message.reason, 200)}`);
        return;
      default:
        this.drop('unexpected', `sent an unexpected "${message.type}" message`);
    }
  }

  private answer(key: string, message: Message): void {
    const p = this.settle(key);
    if (!p) {
      this.drop('unexpected', `sent an answer to ${key}, which was not asked for`);
      return;
    }
    p.resolve(message);
  }

  /** Drops the node: closes the connection with a reason and fails what it still owes. */
  drop(reason: FailureReason, message: string): ParticipantFault {
    const fault = new ParticipantFault(this.id, reason, message);
    if (this.open) {
      this.send({ type: 'error', code: 'E_DROPPED', message });
      this.socket.close(1008, closeReason(message));
      // terminate if the peer does not complete the close handshake
      setTimeout(() => this.socket.terminate(), 2000).unref();
      this.closed(reason, message);
    }
    return fault;
  }

  /** Ends the job for this node (it exits or waits for the next job). */
  bye(reason: string): void {
    if (!this.open) return;
    this.send({ type: 'bye', reason });
    this.socket.close(1000, 'bye');
    this.closed('disconnected', `job ended: ${reason}`, false);
  }

  private closed(reason: FailureReason, message: string, notify = true): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = message;
    clearInterval(this.heartbeat);
    for (const p of [...this.pending.values()]) {
      this.settle(p.key);
      p.reject(new ParticipantFault(this.id, reason, message));
    }
    if (notify) for (const listener of this.closeListeners) listener(reason, message);
  }
}

/** A round the coordinator gave up on because of another participant: not this node's fault. */
export class RoundAbandoned extends ParticipantFault {
  constructor(node: string, step: number, why = 'another participant failed it') {
    super(node, 'unexpected', `round ${step} was given up: ${why}`);
  }
}

type DataFile = NonNullable<JobMessage['dataFile']>;

/** What a node reading the data itself must find: the files' names (in its --data-dir), layout and sizes. */
function dataFileOf(file: OnDisk): DataFile {
  if (file.kind === 'csv') {
    const files = file.files.map((f) => ({ name: basename(f.path), bytes: f.bytes ?? 0, ...(f.columns ? { columns: [...f.columns] } : {}) }));
    return { kind: 'csv', files, header: [...file.header], columns: file.encoding.columns.map((c) => (c.kind === 'onehot' ? { ...c, categories: [...c.categories] } : { ...c })), ...(file.standardize ? { standardize: { mean: [...file.standardize.mean], std: [...file.standardize.std] } } : {}) };
  }
  if (file.kind === 'tar') {
    return { kind: 'tar', names: file.shards.map((s) => basename(s)), fileBytes: [...file.shardBytes], shape: [...file.shape], resize: file.resize, scale: file.scale };
  }
  const parts = file.parts.map((p) => ({ name: basename(p.path), dataOffset: p.dataOffset, bytes: p.bytes, rows: p.rows }));
  return { kind: 'npy', dtype: file.dtype as Extract<DataFile, { kind: 'npy' }>['dtype'], scale: file.scale, parts };
}

/** Where data set rows first..first+count-1 are in the files: .npy file rows, or each image's shard, offset and size. */
function fileRefs(file: OnDisk, first: number, count: number): { fileRows: Int32Array } | { members: Float64Array } {
  const samples = file.order.subarray(first, first + count);
  if (file.kind === 'npy') return { fileRows: samples };
  const members = new Float64Array(3 * count);
  if (file.kind === 'csv') samples.forEach((s, i) => members.set([file.part[s]!, file.start[s]!, file.end[s]! - file.start[s]!], 3 * i));
  else samples.forEach((s, i) => members.set([file.shard[s]!, file.offset[s]!, file.size[s]!], 3 * i));
  return { members };
}

/** ws://host:port of a peer endpoint (IPv6 addresses in brackets). */
function peerUrl(host: string, port: number, tls: boolean): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return `${tls ? 'wss' : 'ws'}://${bare.includes(':') ? `[${bare}]` : bare}:${port}`;
}

/** Rows first..first+count-1 of the data set as they travel: uint8 pixels for images, else float32 x (the other empty). */
function rowFeatures(dataset: Dataset, rows: FeatureRows, first: number, count: number): { pixels: Uint8Array; x: Float32Array } {
  const { features } = dataset;
  if (dataset.pixels) return { pixels: dataset.pixels.values.subarray(first * features, (first + count) * features), x: new Float32Array(0) };
  return { pixels: new Uint8Array(0), x: rows.range(first, count) };
}
