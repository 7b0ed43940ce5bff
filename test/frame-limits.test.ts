/**
 * Frames are held to their type's limits before msgpackr decodes them (shared/protocol/frame-limits.ts):
 * a small frame that would decode into a huge object graph (a heartbeat of millions of empty maps,
 * an array declaring 30 million elements, nesting thousands deep) is refused in microseconds
 * without allocating, on both sides (the coordinator reading a node, a worker reading its
 * coordinator); the largest honest frames still pass. End to end: a real coordinator (runJob, in
 * this process) that a node with the token sends the 4 MiB heartbeat drops that node and trains on.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { runJob } from '../coordinator/job.js';
import { loadConfig } from '../shared/config/load.js';
import { ProtocolError } from '../shared/errors.js';
import { decodeFrame, decodeMessage, encodeMessage } from '../shared/protocol/codec.js';
import { ANY_FRAME, HELLO_FRAME, MESSAGE_LIMITS, coordinatorFrameLimits, modelBytes, nodeFrameLimits, type FrameLimits } from '../shared/protocol/frame-limits.js';
import { PROTOCOL_VERSION, type Message } from '../shared/protocol/schemas.js';
import { TOKEN, jobFolder } from './cluster-helpers.js';
import { MAX_METRIC_SUMS } from '../shared/model/spec.js';

const packr = new Packr({ useRecords: false, moreTypes: false });
const MiB = 2 ** 20;
const PARAMETERS = 1000;
/** Both sides: the coordinator reading a node of a 1000-parameter model, a worker reading its coordinator. */
const RECEIVERS: [string, FrameLimits][] = [
  ['coordinator', nodeFrameLimits(PARAMETERS)],
  ['worker', coordinatorFrameLimits(PARAMETERS)],
  ['any', ANY_FRAME],
];

/** A msgpack array32 header of n elements. */
const array32 = (n: number): number[] => [0xdd, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

/**
 * A heartbeat of `bytes` bytes whose extra field `junk` is an array of empty maps (one byte each,
 * tens of bytes of heap each once decoded). typeLast: its "type" field after the junk, so a
 * receiver learns the type only at the frame's end.
 */
function hostileHeartbeat(bytes: number, typeLast = false): Uint8Array {
  const fields = typeLast ? { sentAt: 1, junk: [] as unknown[], type: 'heartbeat' } : { type: 'heartbeat', sentAt: 1, junk: [] as unknown[] };
  const head = packr.pack(fields);
  // the empty array (0x90) becomes an array32 header and its maps
  const at = head.indexOf(0x90);
  const tail = head.subarray(at + 1);
  const maps = bytes - at - 5 - tail.length;
  const frame = new Uint8Array(bytes);
  frame.set(head.subarray(0, at));
  frame.set(array32(maps), at);
  frame.fill(0x80, at + 5, at + 5 + maps);
  frame.set(tail, at + 5 + maps);
  return frame;
}

/** `f` run once: what it threw, in how many ms, and how much the RSS grew (MiB). */
function measure(f: () => unknown): { error: unknown; ms: number; rssGrowthMiB: number } {
  const rss = process.memoryUsage().rss;
  const started = performance.now();
  let error: unknown;
  try {
    f();
  } catch (err) {
    error = err;
  }
  return { error, ms: performance.now() - started, rssGrowthMiB: (process.memoryUsage().rss - rss) / MiB };
}

const faultOf = (f: () => unknown): { fault: string; message: string } => {
  try {
    f();
  } catch (err) {
    if (err instanceof ProtocolError) return { fault: err.fault, message: err.message };
    throw err;
  }
  throw new Error('not refused');
};

describe('frame limits, before decoding', () => {
  it('a 4 MiB heartbeat holding an array of 4 million empty maps is refused in well under 100 ms without allocating, on both sides', () => {
    const frame = hostileHeartbeat(4 * MiB);
    expect(frame.byteLength).toBe(4 * MiB);
    for (const [side, limits] of RECEIVERS) {
      for (const typeLast of [false, true]) {
        const hostile = typeLast ? hostileHeartbeat(4 * MiB, true) : frame;
        const { error, ms, rssGrowthMiB } = measure(() => decodeFrame(hostile, true, limits));
        expect(error, side).toBeInstanceOf(ProtocolError);
        expect((error as ProtocolError).fault, `${side}: ${(error as Error).message}`).toBe('oversize');
        expect(ms, side).toBeLessThan(100);
        expect(rssGrowthMiB, side).toBeLessThan(50);
      }
    }
    expect(faultOf(() => decodeMessage(frame, nodeFrameLimits(PARAMETERS))).message).toBe(`a "heartbeat" message of ${4 * MiB} bytes is over its limit of ${MESSAGE_LIMITS.heartbeat.bytes}`);
    // the type at the frame's end: refused by what any frame this side takes may have
    expect(faultOf(() => decodeMessage(hostileHeartbeat(4 * MiB, true), coordinatorFrameLimits())).message).toBe(`a frame holds more than its limit of ${MESSAGE_LIMITS.job.elements} msgpack values`);
    // the node takes no small type larger than an evaluation request's answer room (32 KiB)
    expect(faultOf(() => decodeMessage(hostileHeartbeat(4 * MiB, true), nodeFrameLimits(PARAMETERS))).message).toMatch(new RegExp(`^a frame of ${4 * MiB} bytes is over its limit of \\d+$`));
    expect(Number(/(\d+)$/.exec(faultOf(() => decodeMessage(hostileHeartbeat(4 * MiB, true), nodeFrameLimits(PARAMETERS))).message)![1])).toBeLessThanOrEqual(32 * 1024);
    // under the loosest limit (a job's values), the type known only at the end still holds
    expect(faultOf(() => decodeMessage(hostileHeartbeat(200_000, true), coordinatorFrameLimits())).message).toBe(`a "heartbeat" message of 200000 bytes is over its limit of ${MESSAGE_LIMITS.heartbeat.bytes}`);
  });

  it('a 36-byte frame declaring an array of 30 million elements is refused without the array', () => {
    const head = packr.pack({ type: 'heartbeat', sentAt: 1, junk: [] });
    const frame = Uint8Array.from([...head.subarray(0, -1), ...array32(30_000_000)]);
    for (const [side, limits] of [...RECEIVERS, ['hello', HELLO_FRAME] as [string, FrameLimits]]) {
      const { error, ms, rssGrowthMiB } = measure(() => decodeFrame(frame, true, limits));
      expect(error, side).toBeInstanceOf(ProtocolError);
      expect(ms, side).toBeLessThan(100);
      expect(rssGrowthMiB, side).toBeLessThan(50);
    }
    // a job may hold many values, but not more than the bytes left
    const job = packr.pack({ type: 'job', jobId: 'j', spec: [] });
    expect(faultOf(() => decodeMessage(Uint8Array.from([...job.subarray(0, -1), ...array32(100_000)]), coordinatorFrameLimits())).message).toMatch(/100000 values declared at byte \d+, with 0 bytes left/);
  });

  it('deeply nested arrays are refused before msgpackr recurses into them', () => {
    /** A `type` message whose extra field is `depth` arrays, each holding the next. */
    const nested = (type: string, depth: number): Uint8Array => Uint8Array.from([...packr.pack({ type, junk: [] }).subarray(0, -1), ...new Array<number>(depth).fill(0x91), 0x90]);
    for (const [side, limits, type, levels] of [
      ['coordinator', nodeFrameLimits(PARAMETERS), 'gradient', 2],
      ['worker', coordinatorFrameLimits(), 'job', 32],
      ['any', ANY_FRAME, 'bye', 1],
    ] as const) {
      const { error, ms } = measure(() => decodeFrame(nested(type, 3000), true, limits));
      expect(error, side).toEqual(expect.objectContaining({ fault: 'malformed', message: `a "${type}" message nests deeper than its limit of ${levels} levels` }));
      expect(ms).toBeLessThan(100);
    }
    // 100,000 levels: over a bye's bytes as well
    expect(faultOf(() => decodeMessage(nested('bye', 100_000))).fault).toBe('oversize');
    // a job's tfjs-layers config may nest, up to 32 levels in all
    const jobWithConfig = (depth: number): Message => {
      let config: unknown = {};
      for (let i = 0; i < depth; i++) config = { c: config };
      return { type: 'job', jobId: 'j', spec: { inputDim: 2, layers: [], keras: { className: 'Model', config: { c: config }, inputShape: [2], weights: [], outputs: 1 }, loss: 'meanSquaredError', metrics: [] } as never, parameters: 1, features: 2, outputs: 1, trainRows: 1, heartbeatMs: 1000, heartbeatTimeoutMs: 5000, gradientDtype: 'float32', bucketBytes: 0, pixelScale: 0 };
    };
    // job (1), spec (2), keras (3), config (4), c (5): 27 more levels fit
    expect(decodeMessage(encodeMessage(jobWithConfig(27)), coordinatorFrameLimits()).type).toBe('job');
    expect(faultOf(() => decodeMessage(encodeMessage(jobWithConfig(28)), coordinatorFrameLimits()))).toEqual({ fault: 'malformed', message: 'a "job" message nests deeper than its limit of 32 levels' });
  });

  it('refuses an oversize message of each small type, as oversize', () => {
    const over: [string, Record<string, unknown>][] = [
      ['hello', { type: 'hello', version: PROTOCOL_VERSION, token: TOKEN, name: 'n', backend: 'wasm', adapter: 'a'.repeat(16 * 1024) }],
      ['welcome', { type: 'welcome', version: PROTOCOL_VERSION, workerId: 'w'.repeat(5000) }],
      ['heartbeat', { type: 'heartbeat', sentAt: 1, junk: 'x'.repeat(1024) }],
      ['error', { type: 'error', code: 'E_X', message: 'e'.repeat(17 * 1024) }],
      ['bye', { type: 'bye', reason: 'r'.repeat(5000) }],
      ['evaluation', { type: 'evaluation', id: 0, count: 1, lossSum: 1, metricSums: new Array<number>(MAX_METRIC_SUMS + 300).fill(0.5) }],
    ];
    for (const [type, fields] of over) {
      const frame = packr.pack(fields);
      // each receiver that takes the type
      const receivers = type === 'hello' ? [HELLO_FRAME, ANY_FRAME] : type === 'welcome' ? [coordinatorFrameLimits(), ANY_FRAME] : type === 'evaluation' ? [nodeFrameLimits(PARAMETERS), ANY_FRAME] : [nodeFrameLimits(PARAMETERS), coordinatorFrameLimits(), ANY_FRAME];
      for (const limits of receivers) {
        const refused = faultOf(() => decodeMessage(frame, limits));
        expect(refused.fault, `${type}: ${refused.message}`).toBe('oversize');
        expect(refused.message).toMatch(new RegExp(`^a "${type}" message (of \\d+ bytes is over its limit of \\d+|holds more than its limit of \\d+ msgpack values)$`));
      }
    }
    // a type this side does not take gets a small limit (a worker sends no jobs)
    const job = packr.pack({ type: 'job', jobId: 'j'.repeat(20_000) });
    expect(faultOf(() => decodeMessage(job, nodeFrameLimits(PARAMETERS)))).toEqual({ fault: 'oversize', message: `a message of a type this side does not take of ${job.byteLength} bytes is over its limit of 16384` });
    // and so does a frame that names no type at all
    const untyped = packr.pack({ junk: 'x'.repeat(20_000) });
    expect(faultOf(() => decodeMessage(untyped, coordinatorFrameLimits()))).toEqual({ fault: 'oversize', message: `a message of no type this side takes of ${untyped.byteLength} bytes is over its limit of 16384` });
  });

  it('refuses extension types, non-string keys, two type fields and trailing bytes', () => {
    const heartbeat = packr.pack({ type: 'heartbeat', sentAt: 1 });
    // {type: 'heartbeat', sentAt: <ext>}: a msgpackr record definition (fixext 1, 0x72), a
    // structured-clone pointer (fixext 4, 0x70), a typed array (ext 8, 0x74)
    const head = [0x82, 0xa4, ...Buffer.from('type'), 0xa9, ...Buffer.from('heartbeat'), 0xa6, ...Buffer.from('sentAt')];
    for (const ext of [[0xd4, 0x72, 0x40], [0xd6, 0x70, 0, 0, 0, 0], [0xc7, 1, 0x74, 0]]) {
      const frame = Uint8Array.from([...head, ...ext]);
      expect(faultOf(() => decodeMessage(frame)).message).toMatch(/a msgpack extension \(type byte 0x[cd][0-9a-f]\) at byte \d+; the protocol has none/);
    }
    expect(faultOf(() => decodeMessage(Uint8Array.from([0x82, 0xa4, ...Buffer.from('type'), 0xa3, ...Buffer.from('bye'), 0x91, 0xa6, ...Buffer.from('reason'), 0xa1, 0x78]))).message).toMatch(/a map key that is not a string at byte 10/);
    expect(faultOf(() => decodeMessage(Uint8Array.from([0x82, 0xa4, ...Buffer.from('type'), 0xa3, ...Buffer.from('bye'), 0xa4, ...Buffer.from('type'), 0xa3, ...Buffer.from('job')]))).message).toMatch(/two "type" fields/);
    expect(faultOf(() => decodeMessage(Uint8Array.from([...heartbeat, 0x00]))).message).toMatch(/its value ends at byte \d+, and 1 more bytes follow/);
  });

  it('still takes the largest honest frames: a whole gradient and a part of the model\'s size, its weights, a job with a large tfjs-layers config', () => {
    const values = Float32Array.from({ length: PARAMETERS }, (_, i) => i / 7);
    const metricSums = [1, 2, 3, 4, 5];
    const gradient: Message = { type: 'gradient', step: 3, count: 32, lossSum: 4, metricSums, computeMs: 1, dtype: 'float32', parts: 0, gradient: values };
    const part: Message = { type: 'gradient_part', step: 3, offset: 0, dtype: 'float32', values };
    const coordinator = nodeFrameLimits(PARAMETERS);
    expect(decodeMessage(encodeMessage(gradient), coordinator)).toEqual(gradient);
    expect(decodeMessage(encodeMessage(part), coordinator)).toEqual(part);
    expect(encodeMessage(gradient).byteLength).toBeLessThanOrEqual(modelBytes(PARAMETERS));
    // more values than the model's and the fields' room is over: its frame is sized by the model
    const tooLong = encodeMessage({ ...part, values: new Float32Array(Math.ceil(modelBytes(PARAMETERS) / 4)) } as Message);
    expect(faultOf(() => decodeMessage(tooLong, coordinator))).toEqual({ fault: 'oversize', message: `a "gradient_part" message of ${tooLong.byteLength} bytes is over its limit of ${modelBytes(PARAMETERS)}` });
    const weights: Message = { type: 'weights', version: 1, weights: values };
    expect(decodeMessage(encodeMessage(weights), coordinatorFrameLimits(PARAMETERS))).toEqual(weights);
    // a tfjs-layers config of 3000 layers (~0.5 MB, ~90,000 values) with inbound nodes four levels deep
    const layers = Array.from({ length: 3000 }, (_, i) => ({
      class_name: 'Dense',
      config: { name: `dense_${i}`, units: 10, activation: 'relu', use_bias: true, kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } } },
      inbound_nodes: [[[`dense_${i - 1}`, 0, 0, {}]]],
    }));
    const job: Message = {
      type: 'job',
      jobId: 'j',
      spec: { inputDim: 3, layers: [], keras: { className: 'Model', config: { layers }, inputShape: [3], weights: [{ name: 'dense_1/kernel', shape: [3, 10] }], outputs: 10 }, loss: 'meanSquaredError', metrics: [] } as never,
      parameters: 30,
      features: 3,
      outputs: 10,
      trainRows: 100,
      heartbeatMs: 1000,
      heartbeatTimeoutMs: 5000,
      gradientDtype: 'float32',
      bucketBytes: 0,
      pixelScale: 0,
    };
    const frame = encodeMessage(job);
    expect(frame.byteLength).toBeGreaterThan(400_000);
    expect(decodeMessage(frame, coordinatorFrameLimits())).toEqual(job);
    // the scan is cheap next to the decode it guards, for a gradient of 10 million values
    const big = encodeMessage({ ...gradient, gradient: new Float32Array(10_000_000) } as Message);
    const limits = nodeFrameLimits(10_000_000);
    const started = performance.now();
    for (let i = 0; i < 100; i++) decodeMessage(big, limits);
    expect((performance.now() - started) / 100).toBeLessThan(5);
  });
});

describe('a coordinator sent the 4 MiB heartbeat by a node with the token', { timeout: 300_000 }, () => {
  it('drops that node (malformed), stays responsive and small, and finishes training', async () => {
    const job = jobFolder(400, {
      seed: 2,
      data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
      model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
      compile: { optimizer: 'adam', loss: 'binaryCrossentropy' },
      fit: { epochs: 3, batchSize: 32 },
      // a local thread trains on once the node is gone; the first step waits for the node
      cluster: { threads: 1, backend: 'wasm', startWorkers: 1, minWorkers: 0, heartbeatInterval: 0.5 },
      metrics: { listen: false },
    });
    const config = loadConfig(job.configFile, { 'output.dir': job.out, 'cluster.listen': '127.0.0.1:0', 'cluster.tokenFile': job.tokenFile });
    const delay = monitorEventLoopDelay({ resolution: 10 });
    let attack: { rssBefore: number; rssPeak: number; closedWith: string } | undefined;
    const node = (url: string): void => {
      const socket = new WebSocket(url);
      socket.on('error', () => undefined);
      socket.on('open', () => socket.send(encodeMessage({ type: 'hello', version: PROTOCOL_VERSION, token: TOKEN, name: 'hostile', backend: 'wasm' })));
      let sent = false;
      let rssPeak = 0;
      const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 5);
      socket.on('message', (data: Buffer) => {
        const message = decodeMessage(data);
        // answer the first step with the hostile frame instead of a gradient
        if (message.type !== 'step' || sent) return;
        sent = true;
        const rssBefore = process.memoryUsage().rss;
        rssPeak = rssBefore;
        delay.enable();
        socket.send(hostileHeartbeat(4 * MiB));
        socket.on('close', (code, reason) => {
          delay.disable();
          clearInterval(sampler);
          attack = { rssBefore, rssPeak, closedWith: `${code} ${reason.toString()}` };
        });
      });
    };
    const lines: string[] = [];
    const result = await runJob(config, { handleSignals: false, log: (line) => lines.push(line), onListening: node });
    expect(attack, lines.join('\n')).toBeDefined();
    const blockedMs = delay.max / 1e6;
    const rssGrowthMiB = (attack!.rssPeak - attack!.rssBefore) / MiB;
    console.log(`coordinator under the 4 MiB heartbeat: longest event-loop block ${blockedMs.toFixed(1)} ms, RSS ${(attack!.rssBefore / MiB).toFixed(0)} -> peak ${(attack!.rssPeak / MiB).toFixed(0)} MiB`);
    const hostile = result.summary.participants.find((p) => p.name === 'hostile')!;
    expect(hostile.left).toMatch(/a "heartbeat" message of 4194304 bytes is over its limit of 1024/);
    expect(attack!.closedWith).toMatch(/^1008 a "heartbeat" message of 4194304 bytes is over its limit/);
    expect(result.summary.failures).toMatchObject({ malformed: 1 });
    expect(result.summary.epochs).toBe(3);
    expect(result.summary.participants.find((p) => p.kind === 'thread')!.samples).toBeGreaterThan(0);
    // decoded, this frame blocks the event loop 1.3-1.9 s and takes ~300 MB; the window also
    // holds the step's own work on this thread and the frame's arrival
    expect(blockedMs).toBeLessThan(500);
    expect(rssGrowthMiB).toBeLessThan(50);
  });
});
