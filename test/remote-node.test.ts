/**
 * RemoteNode (the coordinator's side of a worker node): against a scripted worker over a real
 * WebSocket in this process, how it assembles a gradient sent in parts; against a fake socket (the
 * class only needs on/send/close/terminate), what it sends, the answers it takes and refuses (wrong
 * step, shape or count, non-finite sums, a non-finite gradient through the step), its deadlines
 * (step timeout, heartbeat), a disconnect mid-step, and its one-way open -> closed transition.
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { RemoteNode, type NodeContext } from '../coordinator/participants/remote-node.js';
import { ParticipantFault, type Participant, type ParticipantGroup } from '../coordinator/participants/participant.js';
import { ModelWeights, OptimizerSlot } from '../coordinator/fit/state.js';
import { StepRunner } from '../coordinator/fit/step.js';
import { validateConfig } from '../shared/config/load.js';
import type { Dataset } from '../shared/data/dataset.js';
import { splitCounts } from '../shared/plan/split-plan.js';
import { FramePool } from '../shared/protocol/frame-pool.js';
import type { GradientResult } from '../shared/protocol/gradient-packet.js';
import { PROTOCOL_VERSION, type GradientMessage, type HelloMessage, type Message } from '../shared/protocol/schemas.js';
import { decodeMessage, encodeMessage } from '../shared/protocol/codec.js';

const SPEC = { inputDim: 3, layers: [{ units: 2, activation: 'relu' as const, useBias: true }, { units: 1, activation: 'sigmoid' as const, useBias: true }], loss: 'binaryCrossentropy' as const, metrics: ['accuracy' as const] };
const PARAMETERS = 3 * 2 + 2 + 2 * 1 + 1;
const ROWS = 10;
const dataset: Dataset = {
  x: Float32Array.from({ length: ROWS * 3 }, (_, i) => i / 10),
  y: Float32Array.from({ length: ROWS }, (_, i) => i % 2),
  features: 3,
  outputs: 1,
  train: { start: 0, count: ROWS },
  val: { start: ROWS, count: 0 },
  test: { start: ROWS, count: 0 },
};

/** What the coordinator tells a RemoteNode about the job, `weights` published as version frames. */
function nodeContext(weights: Float32Array, over: Partial<NodeContext> = {}): NodeContext {
  const frames = new FramePool();
  return {
    jobId: 'job-7',
    spec: SPEC,
    dataset,
    parameters: PARAMETERS,
    heartbeatMs: 60_000,
    heartbeatTimeoutMs: 120_000,
    gradientDtype: 'float32',
    bucketBytes: 0,
    stepTimeoutMs: 10_000,
    chunkBytes: 1 << 20,
    weightsFrame: (version) => frames.encode({ type: 'weights', version, weights }),
    ...over,
  };
}

describe('RemoteNode', () => {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  afterAll(() => server.close());

  it('assembles a gradient from its parts and the rest; a second request in one step gets memory of its own', async () => {
    await new Promise<void>((resolve) => (server.address() ? resolve() : server.on('listening', resolve)));
    const accepted = new Promise<WebSocket>((resolve) => server.on('connection', resolve));
    const worker = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    await new Promise((resolve) => worker.on('open', resolve));
    // the scripted worker answers its k-th step with values 100k + i: [4, end) ahead, then [0, 4)
    let answers = 0;
    worker.on('message', (data: Buffer) => {
      const m = decodeMessage(data);
      if (m.type !== 'step') return;
      answers++;
      const values = Float32Array.from({ length: PARAMETERS }, (_, i) => 100 * answers + i);
      worker.send(encodeMessage({ type: 'gradient_part', step: m.step, offset: 4, dtype: 'float32', values: values.subarray(4) }));
      worker.send(encodeMessage({ type: 'gradient', step: m.step, count: m.rows.length + m.x.length / 3, lossSum: 1, metricSums: [1], computeMs: 1, dtype: 'float32', parts: 1, gradient: values.subarray(0, 4) }));
    });
    const context = nodeContext(new Float32Array(PARAMETERS), { jobId: 'j', bucketBytes: 8 });
    const node = new RemoteNode('node-1', await accepted, { type: 'hello', version: PROTOCOL_VERSION, token: 't', name: 'scripted', backend: 'wasm' }, '127.0.0.1', context);
    const expected = (k: number): Float32Array => Float32Array.from({ length: PARAMETERS }, (_, i) => 100 * k + i);
    const rows = Int32Array.from([0, 3, 7]);

    const first = await node.gradient(5, 0, rows);
    expect(first.count).toBe(3);
    expect(first.gradient).toEqual(expected(1));
    // the trainer asks again within step 5 (recomputing another participant's rows): the first answer stays intact
    const second = await node.gradient(5, 0, rows);
    expect(second.gradient).toEqual(expected(2));
    expect(first.gradient).toEqual(expected(1));
    // the next step reuses the memory of the first
    const third = await node.gradient(6, 0, rows);
    expect(third.gradient).toEqual(expected(3));
    expect(third.gradient.buffer).toBe(first.gradient.buffer);
    node.bye('done');
    worker.close();
  });
});

/** The socket RemoteNode drives, in memory: what it sent (decoded), how it was closed; the peer's side is `reply`, `hangUp`, `fail`. */
class FakeSocket extends EventEmitter {
  readonly sent: Message[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  terminated = false;
  /** Called with each message the node sends (after it is recorded): the scripted peer. */
  peer: ((message: Message) => void) | undefined;

  send(frame: Uint8Array, written?: (err?: Error) => void): void {
    const message = decodeMessage(Uint8Array.from(frame)); // a copy: pooled frames are written again
    this.sent.push(message);
    written?.();
    this.peer?.(message);
  }
  close(code: number, reason: string): void {
    this.closes.push({ code, reason });
  }
  terminate(): void {
    this.terminated = true;
  }
  /** The node sends `message` (encoded as a worker does; nothing checks it on this side). */
  reply(message: Message | Record<string, unknown>): void {
    this.emit('message', Buffer.from(encodeMessage(message as Message)), true);
  }
  /** The connection closes under the node (no close handshake of its own). */
  hangUp(code: number, reason = ''): void {
    this.emit('close', code, Buffer.from(reason));
  }
  fail(err: Error & { code?: string }): void {
    this.emit('error', err);
  }
  of<T extends Message['type']>(type: T): Extract<Message, { type: T }>[] {
    return this.sent.filter((m): m is Extract<Message, { type: T }> => m.type === type);
  }
}

const HELLO: HelloMessage = { type: 'hello', version: PROTOCOL_VERSION, token: 't', name: 'fake\u001b[31m', backend: 'wasm', devices: 2 };
const WEIGHTS = Float32Array.from({ length: PARAMETERS }, (_, i) => i / 4);

function fakeNode(over: Partial<NodeContext> = {}): { node: RemoteNode; socket: FakeSocket; closed: [string, string][] } {
  const context = nodeContext(WEIGHTS, over);
  const socket = new FakeSocket();
  const node = new RemoteNode('node-1', socket as unknown as WebSocket, HELLO, '10.0.0.7', context);
  nodes.push(node);
  const closed: [string, string][] = [];
  node.onClose((reason, message) => closed.push([reason, message]));
  return { node, socket, closed };
}

const nodes: RemoteNode[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const node of nodes.splice(0)) node.bye('test over'); // clears the heartbeat of those still open
});

/** A gradient message answering `step` for `count` samples: values 0.5, 1.5, ..., sums in range. */
function gradientReply(step: number, count: number, over: Partial<Record<keyof GradientMessage, unknown>> = {}): Record<string, unknown> {
  return { type: 'gradient', step, count, lossSum: 1.25, metricSums: [2], computeMs: 4, dtype: 'float32', parts: 0, gradient: Float32Array.from({ length: PARAMETERS }, (_, i) => i + 0.5), ...over };
}

/** What `promise` rejected with (fails the test if it resolved). */
async function rejection(promise: Promise<unknown>): Promise<ParticipantFault> {
  const err = await promise.then(
    () => expect.fail('resolved'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ParticipantFault);
  return err as ParticipantFault;
}

/** The node is dropped: it told the peer why (E_DROPPED), closed with 1008, and said so to its listeners, once. */
function expectDropped(fake: ReturnType<typeof fakeNode>, reason: string, message: string): void {
  expect(fake.node.open).toBe(false);
  expect(fake.socket.of('error').at(-1)).toEqual({ type: 'error', code: 'E_DROPPED', message });
  expect(fake.socket.closes).toEqual([{ code: 1008, reason: message.slice(0, 123) }]);
  expect(fake.closed).toEqual([[reason, message]]);
}

describe('RemoteNode against a fake socket', () => {
  it('start: welcome and the job; sendRows: the shard in chunks, then it holds those rows', () => {
    const { node, socket } = fakeNode({ chunkBytes: 40 }); // a row is 3 x 4 + 4 bytes: 2 rows a chunk
    expect(node.name).toBe('fake?[31m'); // printable: a peer cannot write escapes into the log
    expect(node.devices).toBe(2);
    expect(node.open).toBe(true);
    node.start();
    expect(socket.sent.map((m) => m.type)).toEqual(['welcome', 'job']);
    expect(socket.of('welcome')[0]).toEqual({ type: 'welcome', version: PROTOCOL_VERSION, workerId: 'node-1' });
    expect(socket.of('job')[0]).toMatchObject({ jobId: 'job-7', parameters: PARAMETERS, features: 3, outputs: 1, trainRows: ROWS, gradientDtype: 'float32', bucketBytes: 0, pixelScale: 0 });
    node.sendRows({ start: 2, count: 5 });
    const shards = socket.of('shard');
    expect(shards.map((m) => [m.firstRow, m.rows, m.chunk, m.chunks])).toEqual([
      [2, 2, 0, 3],
      [4, 2, 1, 3],
      [6, 1, 2, 3],
    ]);
    expect(Array.from(shards[2]!.x)).toEqual(Array.from(dataset.x.subarray(18, 21)));
    expect(Array.from({ length: ROWS }, (_, r) => node.holds(r))).toEqual([false, false, true, true, true, true, true, false, false, false]);
  });

  it('a good gradient: weights sent once per version, held rows named, the others inline; the answer comes back as it was sent', async () => {
    const { node, socket, closed } = fakeNode();
    node.sendRows({ start: 0, count: 5 });
    const rows = Int32Array.from([1, 7, 3]);
    const first = node.gradient(3, 0, rows);
    expect(socket.sent.slice(-2).map((m) => m.type)).toEqual(['weights', 'step']);
    expect(socket.of('weights')[0]).toMatchObject({ version: 0 });
    expect(Array.from(socket.of('weights')[0]!.weights)).toEqual(Array.from(WEIGHTS));
    const step = socket.of('step')[0]!;
    expect({ step: step.step, version: step.version, rows: Array.from(step.rows), inline: Array.from(step.inline) }).toEqual({ step: 3, version: 0, rows: [1, 3], inline: [7] });
    expect(Array.from(step.x)).toEqual(Array.from(dataset.x.subarray(21, 24)));
    expect(Array.from(step.y)).toEqual([1]);
    socket.reply(gradientReply(3, 3));
    expect(await first).toEqual({ count: 3, lossSum: 1.25, metricSums: [2], computeMs: 4, numTensors: -1, gradient: Float32Array.from({ length: PARAMETERS }, (_, i) => i + 0.5) });
    // same version: no weights again; a new version: its weights first
    const second = node.gradient(4, 0, rows);
    socket.reply(gradientReply(4, 3));
    await second;
    const third = node.gradient(5, 1, rows);
    socket.reply(gradientReply(5, 3));
    await third;
    expect(socket.sent.filter((m) => m.type === 'weights' || m.type === 'step').map((m) => `${m.type} ${m.version}`)).toEqual(['weights 0', 'step 0', 'step 0', 'weights 1', 'step 1']);
    expect(node.open).toBe(true);
    expect(socket.closes).toEqual([]);
    expect(closed).toEqual([]);
  });

  const nan = Number.NaN;
  it.each([
    ['for another step', gradientReply(4, 3), 'unexpected', 'sent an answer to step 4, which was not asked for'],
    ['with too few values', gradientReply(3, 3, { gradient: new Float32Array(PARAMETERS - 1) }), 'shape', `gradient has ${PARAMETERS - 1} values, the model has ${PARAMETERS} parameters`],
    ['with too many values', gradientReply(3, 3, { gradient: new Float32Array(PARAMETERS + 1) }), 'shape', `gradient has ${PARAMETERS + 1} values, the model has ${PARAMETERS} parameters`],
    ['for another number of samples', gradientReply(3, 2), 'shape', 'computed 2 samples for step 3, was given 3'],
    ['with another number of metric sums', gradientReply(3, 3, { metricSums: [1, 1] }), 'shape', 'gradient has 2 metric sums, expected 1'],
    ['claiming parts that never came', gradientReply(3, 3, { parts: 2 }), 'shape', 'gradient says 2 part(s) came before it, 0 did'],
    ['with a NaN loss sum', gradientReply(3, 3, { lossSum: nan }), 'malformed', /^bad "gradient" message: lossSum: .+/],
    ['with an infinite metric sum', gradientReply(3, 3, { metricSums: [Number.POSITIVE_INFINITY] }), 'malformed', /^bad "gradient" message: metricSums\.0: .+/],
    ['of another kind', { type: 'evaluation', id: 0, count: 3, lossSum: 1, metricSums: [1] }, 'unexpected', 'sent an answer to evaluation 0, which was not asked for'],
  ] as const)('a gradient %s is refused: the step fails with a clear fault and the node is dropped', async (_what, reply, reason, message) => {
    const fake = fakeNode();
    const pending = fake.node.gradient(3, 0, Int32Array.from([1, 7, 3]));
    fake.socket.reply(reply);
    const fault = await rejection(pending);
    expect(fault.participant).toBe('node-1');
    expect(fault.reason).toBe(reason);
    const text = fault.message.replace(/^node-1: /, '');
    expect(fault.message).toBe(`node-1: ${text}`);
    if (typeof message === 'string') expect(text).toBe(message);
    else expect(text).toMatch(message);
    expectDropped(fake, reason, text);
  });

  it('a gradient with non-finite values passes the node (the step checks every gradient through its mean) and is refused by the step, which recomputes its rows', async () => {
    const fake = fakeNode();
    fake.socket.peer = (m) => {
      if (m.type !== 'step') return;
      const gradient = new Float32Array(PARAMETERS).fill(1);
      gradient[2] = Number.NaN;
      setImmediate(() => fake.socket.reply(gradientReply(m.step, m.rows.length + m.inline.length, { gradient, lossSum: 1 })));
    };
    const honestRows: number[][] = [];
    const honest: Participant = {
      id: 'thread-0',
      kind: 'thread',
      holds: undefined,
      gradient: (_step, _version, rows): Promise<GradientResult> => {
        honestRows.push(Array.from(rows));
        return Promise.resolve({ count: rows.length, lossSum: rows.length / 2, metricSums: [0], gradient: new Float32Array(PARAMETERS).fill(0.25), numTensors: -1 });
      },
      evaluate: () => Promise.reject(new Error('not used')),
    };
    const members: Participant[] = [fake.node, honest];
    const failures: [string, string, string][] = [];
    const group: ParticipantGroup = {
      stats: new Map(),
      ready: () => Promise.resolve([...members]),
      publish: () => undefined,
      split: (total, participants) => splitCounts(total, participants.map(() => 1)),
      succeeded: () => undefined,
      failed: (p, _step, fault) => {
        // as the cluster does: a node that fails is dropped
        failures.push([p.id, fault.reason, fault.message]);
        if (p instanceof RemoteNode) p.drop(fault.reason, fault.message);
        members.splice(members.indexOf(p), 1);
      },
      close: () => Promise.resolve(),
    };
    const config = validateConfig(
      {
        data: { label: { column: 'y', positive: '1' } },
        model: { layers: [{ units: 2, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
        compile: { optimizer: { name: 'sgd', learningRate: 1 }, loss: 'binaryCrossentropy', metrics: ['accuracy'] },
      },
      'test config',
    );
    const weights = new ModelWeights(new Float32Array(PARAMETERS), group);
    const runner = new StepRunner(SPEC, config.cluster, group, weights, new OptimizerSlot(config.compile.optimizer, PARAMETERS));
    const sums = await runner.run(0, Int32Array.from([0, 1, 2, 3, 4, 5]));
    expect(failures).toEqual([['node-1', 'non_finite', 'node-1: returned a non-finite gradient (value 2 is NaN, loss sum 1)']]);
    expect(honestRows).toEqual([[3, 4, 5], [0, 1, 2]]);
    expect(sums.lossSum).toBe(3);
    expect(Array.from(weights.values)).toEqual(new Array(PARAMETERS).fill(-0.25));
    expectDropped(fake, 'non_finite', 'node-1: returned a non-finite gradient (value 2 is NaN, loss sum 1)');
  });

  it('a step with no answer within its deadline times out: the node is dropped, and a late answer changes nothing', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const fake = fakeNode({ stepTimeoutMs: 10_000, deadlineMs: (id, samples) => (id === 'node-1' ? 200 + samples : 0) });
    const pending = fake.node.gradient(3, 0, Int32Array.from([1, 7, 3]));
    let settled = false;
    void pending.catch(() => undefined).finally(() => (settled = true));
    await vi.advanceTimersByTimeAsync(202);
    expect(settled).toBe(false);
    expect(fake.node.open).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    const fault = await rejection(pending);
    expect([fault.reason, fault.message]).toEqual(['timeout', 'node-1: no answer to step 3 within 203 ms']);
    expectDropped(fake, 'timeout', 'no answer to step 3 within 203 ms');
    const sent = fake.socket.sent.length;
    fake.socket.reply(gradientReply(3, 3));
    expect(fake.socket.sent.length).toBe(sent);
    expect(fake.closed).toHaveLength(1);
    // the peer had 2 s to finish the close handshake; then the connection is cut
    expect(fake.socket.terminated).toBe(false);
    await vi.advanceTimersByTimeAsync(2000);
    expect(fake.socket.terminated).toBe(true);
  });

  it('heartbeats: sent every heartbeatMs; a peer silent for longer than heartbeatTimeoutMs is dropped and its step fails', async () => {
    // the interval is faked; the silence is measured on performance.now(), which is not
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const fake = fakeNode({ heartbeatMs: 100, heartbeatTimeoutMs: 150 });
    const failed = rejection(fake.node.gradient(3, 0, Int32Array.from([1])));
    for (let k = 0; k < 3; k++) {
      fake.socket.reply({ type: 'heartbeat', sentAt: Date.now() });
      await vi.advanceTimersByTimeAsync(100);
    }
    expect(fake.socket.of('heartbeat')).toHaveLength(3);
    expect(fake.node.open).toBe(true);
    const silent = performance.now() + 160;
    while (performance.now() < silent); // the peer says nothing for 160 ms
    await vi.advanceTimersByTimeAsync(100);
    const fault = await failed;
    expect(fault.reason).toBe('timeout');
    expect(fault.message).toMatch(/^node-1: no heartbeat for (1[6-9]\d|[2-9]\d\d) ms$/);
    expectDropped(fake, 'timeout', fault.message.replace('node-1: ', ''));
    // closed: no more heartbeats, and once the close handshake's 2 s are up no timer is left (heartbeat, step deadline)
    await vi.advanceTimersByTimeAsync(2000);
    expect(fake.socket.of('heartbeat')).toHaveLength(3);
    expect(fake.socket.terminated).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it.each([
    ['the connection closes', (s: FakeSocket) => s.hangUp(1006), 'disconnected', 'connection closed (1006)', false],
    ['the connection closes with a reason', (s: FakeSocket) => s.hangUp(1001, 'going away'), 'disconnected', 'connection closed (1001: going away)', false],
    ['the socket fails', (s: FakeSocket) => s.fail(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), 'disconnected', 'read ECONNRESET (ECONNRESET)', true],
    ['a frame is over the size limit', (s: FakeSocket) => s.fail(Object.assign(new Error('Max payload size exceeded'), { code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' })), 'malformed', 'Max payload size exceeded (WS_ERR_UNSUPPORTED_MESSAGE_LENGTH)', true],
    ['the node says bye', (s: FakeSocket) => s.reply({ type: 'bye', reason: 'SIGTERM' }), 'disconnected', 'left: SIGTERM', true],
    ['the node reports an error', (s: FakeSocket) => s.reply({ type: 'error', code: 'E_BACKEND', message: 'out of GPU memory' }), 'worker_error', 'reported [E_BACKEND] out of GPU memory', true],
    ['a text frame arrives', (s: FakeSocket) => s.emit('message', Buffer.from('{"type":"gradient"}'), false), 'malformed', 'text frame; the protocol is binary msgpack', true],
    ['a gradient part nobody asked for arrives', (s: FakeSocket) => s.reply({ type: 'gradient_part', step: 9, offset: 4, dtype: 'float32', values: new Float32Array(5) }), 'unexpected', 'sent a gradient part for step 9, which was not asked for', true],
  ] as const)('mid-step, %s: the step fails with that reason and the node is closed for good', async (_what, event, reason, message, dropped) => {
    const fake = fakeNode();
    const pending = fake.node.gradient(3, 0, Int32Array.from([1, 7, 3]));
    event(fake.socket);
    const fault = await rejection(pending);
    expect([fault.reason, fault.message]).toEqual([reason, `node-1: ${message}`]);
    expect(fake.node.open).toBe(false);
    expect(fake.closed).toEqual([[reason, message]]);
    // a connection that is already gone is not closed again; any other is, with the reason
    if (dropped) expectDropped(fake, reason, message);
    else expect(fake.socket.closes).toEqual([]);
    // closed for good: a later request fails at once without sending anything, a later event is not reported again
    const sent = fake.socket.sent.length;
    const later = await rejection(fake.node.gradient(4, 0, Int32Array.from([1])));
    expect([later.reason, later.message]).toEqual(['disconnected', `node-1: is gone (${message})`]);
    fake.socket.hangUp(1006);
    expect(fake.node.drop('timeout', 'again')).toMatchObject({ reason: 'timeout' });
    expect(fake.socket.sent.length).toBe(sent);
    expect(fake.closed).toHaveLength(1);
  });

  it('bye: the node is told and closed normally, its listeners are not (the job ended, nothing failed)', () => {
    const fake = fakeNode();
    fake.node.bye('training finished');
    expect(fake.node.open).toBe(false);
    expect(fake.socket.sent.at(-1)).toEqual({ type: 'bye', reason: 'training finished' });
    expect(fake.socket.closes).toEqual([{ code: 1000, reason: 'bye' }]);
    fake.socket.hangUp(1000, 'bye');
    fake.node.bye('again');
    expect(fake.socket.of('bye')).toHaveLength(1);
    expect(fake.closed).toEqual([]);
  });

  it('evaluate: an answer with the right count comes back; one with another count drops the node', async () => {
    const fake = fakeNode();
    const good = fake.node.evaluate(0, { start: 2, count: 4 });
    const request = fake.socket.of('evaluate')[0]!;
    expect([request.id, request.version, Array.from(request.y)]).toEqual([0, 0, [0, 1, 0, 1]]);
    fake.socket.reply({ type: 'evaluation', id: 0, count: 4, lossSum: 2, metricSums: [3] });
    expect(await good).toEqual({ count: 4, lossSum: 2, metricSums: [3], numTensors: -1 });
    const bad = fake.node.evaluate(0, { start: 2, count: 4 });
    fake.socket.reply({ type: 'evaluation', id: 1, count: 3, lossSum: 2, metricSums: [3] });
    const fault = await rejection(bad);
    expect([fault.reason, fault.message]).toEqual(['shape', 'node-1: bad answer to evaluation 1']);
    expectDropped(fake, 'shape', 'bad answer to evaluation 1');
  });
});
