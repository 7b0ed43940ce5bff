/**
 * A worker node: connects to the coordinator over WebSocket, authenticates, receives the job and
 * its shard, then answers steps (gradients) and evaluations until the coordinator says bye.
 * A lost connection is retried with exponential backoff; a rejection (bad token, other protocol
 * version) is final. The wire format lives in shared/protocol/messages.ts; the math in the
 * gradient engine; this file is only the conversation.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs-core';
import WebSocket from 'ws';
import { WorkerError } from '../shared/errors.js';
import {
  PROTOCOL_VERSION,
  ProtocolError,
  decodeMessage,
  encodeMessage,
  type JobMessage,
  type Message,
} from '../shared/protocol/messages.js';
import { FramePool } from '../shared/protocol/frame-pool.js';
import type { BatchEngine } from '../compute/engine.js';
import { createEngine } from '../compute/gradient.js';
import type { WorkerMetrics } from './metrics.js';
import { ShardStore } from './shard-store.js';

export interface NodeClientOptions {
  /** ws://host:port or wss://host:port */
  readonly url: string;
  readonly token: string;
  readonly name: string;
  /** The backend this process runs (already started). */
  readonly backend: string;
  /** Extra CA certificate(s) to trust for wss:// (PEM). */
  readonly ca?: Buffer;
  /** Consecutive failed connection attempts before giving up. */
  readonly retries: number;
  /** First backoff delay in ms (doubles per attempt, at most 30 s). */
  readonly backoffMs: number;
  readonly maxPayload: number;
  readonly log: (line: string) => void;
  /** Log every step (for debugging and tests). */
  readonly verbose?: boolean;
  readonly metrics?: WorkerMetrics | undefined;
}

/** How one connection ended. */
type SessionEnd = { kind: 'finished'; reason: string } | { kind: 'lost'; reason: string; welcomed: boolean };

function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}

/** Codes the coordinator sends when it will never accept this worker as it is. */
const FINAL_CODES = new Set(['E_AUTH', 'E_VERSION']);

export interface NodeStats {
  steps: number;
  samples: number;
  computeSeconds: number;
  reconnects: number;
}

export class NodeClient {
  readonly stats: NodeStats = { steps: 0, samples: 0, computeSeconds: 0, reconnects: 0 };
  private engine: BatchEngine | undefined;
  private store: ShardStore | undefined;
  private job: JobMessage | undefined;
  private version = -1;
  private readonly gradientFrames = new FramePool();
  /** Weights of `version` not yet loaded into the engine. */
  private weights: Float32Array | undefined;
  /** The gradient of a step, reused (its values are copied into frames as they are sent). */
  private gradientMemory = new Float32Array(0);

  constructor(private readonly options: NodeClientOptions) {}

  /** Runs until the coordinator ends the job (resolves with its reason) or gives up (throws). */
  async run(): Promise<string> {
    const { retries, backoffMs, url, log } = this.options;
    let failures = 0;
    /** Whether any session got as far as the coordinator's welcome (else it never connected). */
    let everConnected = false;
    for (;;) {
      const end = await this.session();
      if (end.kind === 'finished') return end.reason;
      if (end.welcomed) {
        failures = 0;
        everConnected = true;
        this.stats.reconnects++;
        this.options.metrics?.reconnected();
      }
      failures++;
      if (failures > retries) {
        throw new WorkerError(
          everConnected
            ? `gave up on the coordinator at ${url} after ${failures} failed attempt(s); last error: ${end.reason}`
            : `cannot connect to the coordinator at ${url}: ${failures} attempt(s) failed, the last with: ${end.reason} (is it running with --listen on that address, and reachable from here?)`,
        );
      }
      const delay = Math.min(30_000, backoffMs * 2 ** (failures - 1)) * (0.75 + Math.random() * 0.5);
      log(`${everConnected ? `connection to ${url} lost` : `cannot connect to ${url}`} (${end.reason}); retry ${failures}/${retries} in ${(delay / 1000).toFixed(1)} s`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private session(): Promise<SessionEnd> {
    const { url, token, name, backend, ca, maxPayload, log } = this.options;
    return new Promise((resolve, reject) => {
      // Frames carry a zero masking key, which ws takes as "skip the XOR" on both sides. Masking
      // (RFC 6455, 5.3) keeps scripts in a browser from steering what intermediaries cache; a
      // worker is not a browser, and masking cost a byte-by-byte pass over every gradient here and
      // again in the coordinator.
      const socket = new WebSocket(url, { maxPayload, handshakeTimeout: 10_000, generateMask: zeroMask, ...(ca ? { ca } : {}) });
      let welcomed = false;
      let settled = false;
      let lastSeen = performance.now();
      let heartbeat: NodeJS.Timeout | undefined;
      const finish = (end: SessionEnd | Error): void => {
        if (settled) return;
        settled = true;
        clearInterval(heartbeat);
        this.options.metrics?.connected(false);
        if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.terminate();
        if (end instanceof Error) reject(end);
        else resolve(end);
      };
      const send = (message: Message): void => {
        if (socket.readyState !== WebSocket.OPEN) return;
        // gradients (every step, megabytes) are encoded into reused memory
        if (message.type === 'gradient' || message.type === 'gradient_part') {
          const frame = this.gradientFrames.encode(message);
          const written = frame.retain();
          frame.release();
          this.options.metrics?.bytes('sent', frame.bytes.byteLength);
          socket.send(frame.bytes, () => written());
          return;
        }
        const frame = encodeMessage(message);
        this.options.metrics?.bytes('sent', frame.byteLength);
        socket.send(frame);
      };

      socket.on('open', () => send({ type: 'hello', version: PROTOCOL_VERSION, token, name, backend }));
      socket.on('error', (err) => finish({ kind: 'lost', reason: err.message, welcomed }));
      socket.on('close', (code, reason) => finish({ kind: 'lost', reason: `closed (${code}${reason.length ? `: ${reason.toString()}` : ''})`, welcomed }));
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        lastSeen = performance.now();
        this.options.metrics?.bytes('received', data.byteLength);
        let message: Message;
        try {
          if (!isBinary) throw new ProtocolError('text frame; the protocol is binary msgpack');
          message = decodeMessage(data);
        } catch (err) {
          log(`bad message from the coordinator: ${(err as Error).message}`);
          send({ type: 'error', code: 'E_PROTOCOL', message: (err as Error).message });
          finish({ kind: 'lost', reason: `bad message: ${(err as Error).message}`, welcomed });
          return;
        }
        try {
          switch (message.type) {
            case 'welcome':
              welcomed = true;
              this.options.metrics?.connected(true);
              log(`connected to ${url} as ${message.workerId}`);
              return;
            case 'job':
              this.startJob(message);
              clearInterval(heartbeat);
              heartbeat = setInterval(() => {
                if (performance.now() - lastSeen > message.heartbeatTimeoutMs) {
                  finish({ kind: 'lost', reason: `no message from the coordinator for ${message.heartbeatTimeoutMs} ms`, welcomed });
                } else send({ type: 'heartbeat', sentAt: Date.now() });
              }, message.heartbeatMs);
              return;
            case 'shard':
              this.need(this.store, 'shard').add(message.firstRow, message.rows, message.x, message.y);
              return;
            case 'weights':
              // loaded into the model by the next step or evaluation, as a thread does
              if (message.weights.length !== this.need(this.job, 'weights').parameters) {
                throw new ProtocolError(`weights have ${message.weights.length} values, the job has ${this.need(this.job, 'weights').parameters} parameters`, 'shape');
              }
              this.weights = message.weights;
              this.version = message.version;
              return;
            case 'step': {
              const engine = this.need(this.engine, 'step');
              if (message.version !== this.version) throw new WorkerError(`step ${message.step} wants weights version ${message.version}, this node has ${this.version}`);
              const { gradientDtype: dtype, bucketBytes, parameters } = this.need(this.job, 'step');
              if (this.gradientMemory.length !== parameters) this.gradientMemory = new Float32Array(parameters);
              const gradient = this.gradientMemory;
              // The gradient's end goes out as soon as the backward pass has finished `bucketBytes`
              // of it (the first part is the largest layers' gradients, ready before the first layer's).
              const bytesPerValue = dtype === 'float16' ? 2 : 4;
              let sentFrom = parameters;
              let parts = 0;
              let sendingMs = 0;
              const onReady =
                bucketBytes > 0
                  ? (start: number): void => {
                      if (start === 0 || (sentFrom - start) * bytesPerValue < bucketBytes) return; // the gradient message brings the rest
                      const t0 = performance.now();
                      send({ type: 'gradient_part', step: message.step, offset: start, dtype, values: gradient.subarray(start, sentFrom) });
                      sendingMs += performance.now() - t0;
                      sentFrom = start;
                      parts++;
                    }
                  : undefined;
              // compute time counts what a thread's does: loading new weights, gathering rows, the
              // gradient; not the sending of parts on the way
              const started = performance.now();
              this.loadWeights(engine);
              const { xs, ys, count } = this.need(this.store, 'step').batch(message.rows, message.x, message.y);
              const result = engine.gradient(xs, ys, count, gradient, onReady);
              const computeMs = performance.now() - started - sendingMs;
              this.stats.steps++;
              this.stats.samples += count;
              this.stats.computeSeconds += computeMs / 1000;
              this.options.metrics?.step(count, computeMs / 1000);
              send({ type: 'gradient', step: message.step, count, lossSum: result.lossSum, metricSums: result.metricSums, computeMs, dtype, parts, gradient: gradient.subarray(0, sentFrom) });
              if (this.options.verbose) log(`step ${message.step}: ${count} rows (${message.rows.length} held, ${count - message.rows.length} inline), ${computeMs.toFixed(1)} ms`);
              return;
            }
            case 'evaluate': {
              const engine = this.need(this.engine, 'evaluate');
              if (message.version !== this.version) throw new WorkerError(`evaluation wants weights version ${message.version}, this node has ${this.version}`);
              const count = message.x.length / this.need(this.job, 'evaluate').features;
              this.loadWeights(engine);
              const sums = engine.evaluate(message.x, message.y, count);
              send({ type: 'evaluation', id: message.id, count: sums.count, lossSum: sums.lossSum, metricSums: sums.metricSums });
              return;
            }
            case 'heartbeat':
              return;
            case 'error':
              log(`coordinator error [${message.code}]: ${message.message}`);
              if (FINAL_CODES.has(message.code)) finish(new WorkerError(`the coordinator at ${url} refused this worker: ${message.message}`));
              return;
            case 'bye':
              finish({ kind: 'finished', reason: message.reason });
              return;
            default:
              throw new ProtocolError(`unexpected "${message.type}" message from the coordinator`);
          }
        } catch (err) {
          const text = (err as Error).message;
          log(`cannot handle "${message.type}": ${text}`);
          send({ type: 'error', code: (err as { code?: string }).code ?? 'E_WORKER', message: text });
          finish({ kind: 'lost', reason: text, welcomed });
        }
      });
    });
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

  private startJob(job: JobMessage): void {
    this.engine?.dispose();
    this.engine = createEngine(job.spec, 'dense');
    if (this.engine.layout.size !== job.parameters) {
      throw new WorkerError(`job says ${job.parameters} parameters, its model spec has ${this.engine.layout.size}`);
    }
    this.store = new ShardStore(job.features, job.outputs);
    this.job = job;
    this.version = -1;
    this.weights = undefined;
    this.options.log(
      `job ${job.jobId}: model ${[job.spec.inputDim, ...job.spec.layers.map((l) => l.units)].join('-')} (${job.parameters} parameters), ${job.trainRows} training rows, backend ${tf.getBackend()}`,
    );
  }

  close(): void {
    this.engine?.dispose();
  }
}
