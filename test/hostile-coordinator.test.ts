/**
 * A worker against a hostile coordinator (a bare WebSocket server in this process that speaks the
 * protocol as far as a welcome and a job): a 30000x30000 Dense job is refused from its spec's
 * arithmetic before anything is built, with an error naming the coordinator and the numbers,
 * and the worker's memory stays where it was; a 4 MiB heartbeat of empty maps is refused before
 * it is decoded (frame-limits.ts); a coordinator that welcomes the worker and drops it, again and
 * again, is given up after --retries attempts, with growing delays.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { initBackend } from '../shared/backend.js';
import { JobRefusedError } from '../shared/errors.js';
import { decodeMessage, encodeMessage } from '../shared/protocol/codec.js';
import { PROTOCOL_VERSION, type JobMessage, type Message } from '../shared/protocol/schemas.js';
import { NodeClient, defaultMaxParameters } from '../worker/node-client.js';
import { weightLayout } from '../shared/model/layout.js';
import { TOKEN, WORKER_BIN, spawnNode, trackProcesses } from './cluster-helpers.js';
import { peakRssMiB } from './helpers.js';

const track = trackProcesses();
const MiB = 2 ** 20;

/** A job message of `spec` (`parameters` as the job claims it). */
const job = (spec: JobMessage['spec'], parameters: number): JobMessage => ({
  type: 'job',
  jobId: 'j',
  spec,
  parameters,
  features: spec.inputDim,
  outputs: 1,
  trainRows: 0,
  heartbeatMs: 1000,
  heartbeatTimeoutMs: 5000,
  gradientDtype: 'float32',
  bucketBytes: 0,
  pixelScale: 0,
});

/** One Dense layer of 30000 inputs and 30000 units: 900,030,000 parameters (3.6 GB of float32 weights alone) in a frame of a few hundred bytes. */
const HUGE = job({ inputDim: 30_000, layers: [{ units: 30_000, activation: 'sigmoid', useBias: true }], loss: 'binaryCrossentropy', metrics: [] }, 30_000 * 30_000 + 30_000);
/**
 * A tfjs-layers model job that declares one weight of 4 values while its config holds a
 * 30000x30000 Dense layer (3.6 GB once built).
 */
const DISGUISED = job(
  {
    inputDim: 30_000,
    layers: [],
    keras: {
      className: 'Sequential',
      config: { name: 's', layers: [{ className: 'Dense', config: { name: 'd', units: 30_000, useBias: false, batchInputShape: [null, 30_000], dtype: 'float32', kernelInitializer: { className: 'Zeros', config: {} } } }] },
      inputShape: [30_000],
      weights: [{ name: 'd/kernel', shape: [2, 2] }],
      outputs: 30_000,
    },
    loss: 'meanSquaredError',
    metrics: [],
  },
  4,
);
/** A 3x3 convolution of 8 filters over a 4096x4096 image, pooled: under 500 parameters, about 1.1 GB of activations a row. */
const WIDE = job({ inputDim: 4096 * 4096, inputShape: [4096, 4096, 1], layers: [{ type: 'conv2d', filters: 8, kernelSize: [3, 3], strides: [1, 1], padding: 'valid', activation: 'relu', useBias: true }, { type: 'maxPooling2d', poolSize: [512, 512], strides: [512, 512], padding: 'valid' }, { type: 'flatten' }, { units: 1, activation: 'sigmoid', useBias: true }], loss: 'binaryCrossentropy', metrics: [] }, 0);
const SMALL = job({ inputDim: 3, layers: [{ units: 2, activation: 'sigmoid', useBias: true }], loss: 'binaryCrossentropy', metrics: [] }, 8);

interface FakeCoordinator {
  readonly url: string;
  /** When each connection's hello arrived, and when the server closed it (performance.now()). */
  readonly hellos: number[];
  readonly closes: number[];
  readonly received: Message[];
}

const servers: WebSocketServer[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A coordinator that answers every hello with a welcome and `then` (the job it sends, and whether it closes the connection). */
async function fakeCoordinator(then: (socket: WebSocket) => void): Promise<FakeCoordinator> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  servers.push(server);
  await new Promise<void>((resolve) => server.on('listening', resolve));
  const fake: FakeCoordinator = { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, hellos: [], closes: [], received: [] };
  server.on('connection', (socket) => {
    socket.on('error', () => undefined);
    socket.on('message', (data: Buffer) => {
      const message = decodeMessage(data);
      fake.received.push(message);
      if (message.type !== 'hello') return;
      fake.hellos.push(performance.now());
      socket.send(encodeMessage({ type: 'welcome', version: PROTOCOL_VERSION, workerId: `node-${fake.hellos.length}` }));
      then(socket);
    });
    socket.on('close', () => fake.closes.push(performance.now()));
  });
  return fake;
}

describe('a worker and a job too large for it', { timeout: 120_000 }, () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('refuses a 30000x30000 Dense job from its spec, before building it: quickly, with the numbers, once, and without the memory', async () => {
    expect(encodeMessage(HUGE).byteLength).toBeLessThan(400);
    const coordinator = await fakeCoordinator((socket) => socket.send(encodeMessage(HUGE)));
    const lines: string[] = [];
    const client = new NodeClient({ url: coordinator.url, token: TOKEN, name: 'w', backend: 'wasm', retries: 3, backoffMs: 50, maxPayload: 64 * MiB, log: (line) => lines.push(line) });
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 5);
    const started = performance.now();
    const refused = await client.run().then(
      () => undefined,
      (err: unknown) => err,
    );
    const ms = performance.now() - started;
    clearInterval(sampler);
    client.close();
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    console.log(`worker sent the 30000x30000 job: refused in ${ms.toFixed(0)} ms, RSS ${(rssBefore / MiB).toFixed(0)} -> peak ${(rssPeak / MiB).toFixed(0)} MiB`);
    const limit = defaultMaxParameters().toLocaleString('en-US');
    const message = `the coordinator at ${coordinator.url} sent a job whose model has 900,030,000 parameters (30000-30000), more than this worker takes: --max-parameters ${limit} (about 32 bytes of memory each)`;
    expect(refused).toBeInstanceOf(JobRefusedError);
    expect((refused as Error).message).toBe(message);
    expect((rssPeak - rssBefore) / MiB).toBeLessThan(100);
    expect(ms).toBeLessThan(2000);
    // said to the coordinator, and not retried: the coordinator would send the same job again
    await expect.poll(() => coordinator.received.find((m) => m.type === 'error')).toEqual({ type: 'error', code: 'E_WORKER', message });
    expect(coordinator.hellos).toHaveLength(1);
    expect(lines.join('\n')).not.toMatch(/retry/);
  });

  it('refuses a job of few parameters whose one row holds more activations than it gives a step; a step of too many rows fails, said to the coordinator', async () => {
    const wide = { ...WIDE, parameters: weightLayout(WIDE.spec).size };
    expect(wide.parameters).toBeLessThan(500);
    const lines: string[] = [];
    const coordinator = await fakeCoordinator((socket) => socket.send(encodeMessage(wide)));
    const client = new NodeClient({ url: coordinator.url, token: TOKEN, name: 'w', backend: 'wasm', retries: 3, backoffMs: 50, maxPayload: 64 * MiB, maxStepBytes: 1024 * MiB, log: (line) => lines.push(line) });
    const refused = await client.run().then(() => undefined, (err: unknown) => err);
    client.close();
    expect(refused).toBeInstanceOf(JobRefusedError);
    expect((refused as Error).message).toMatch(new RegExp(`^the coordinator at ${coordinator.url} sent a job whose model holds about 1\\.1 GiB of activations for one row \\(.*\\), more than the 1\\.0 GiB this worker gives a step \\(--max-step-memory, in MiB\\)$`));

    // 100 inline rows of the small model (3 inputs, 2 outputs: 10 values, 40 bytes a row) against a 2 KiB budget
    const rows = 100;
    const step = { type: 'step', step: 0, version: 0, groups: new Int32Array(0), inline: Int32Array.from({ length: rows }, (_, i) => i), rows: new Int32Array(0), pixels: new Uint8Array(0), y: new Float32Array(rows * 2), x: new Float32Array(rows * 3) };
    const small = await fakeCoordinator((socket) => {
      socket.send(encodeMessage({ ...SMALL, outputs: 2, spec: { ...SMALL.spec, layers: [{ units: 2, activation: 'softmax', useBias: true }], loss: 'categoricalCrossentropy' }, parameters: 8 }));
      socket.send(encodeMessage(step as never));
    });
    const other = new NodeClient({ url: small.url, token: TOKEN, name: 'w', backend: 'wasm', retries: 0, backoffMs: 50, maxPayload: 64 * MiB, maxStepBytes: 2048, log: (line) => lines.push(line) });
    await other.run().catch(() => undefined);
    other.close();
    await expect.poll(() => small.received.find((m) => m.type === 'error')).toEqual({ type: 'error', code: 'E_WORKER', message: 'step 0: 100 rows at once need about 3.9 KiB of activations, more than the 2.0 KiB this worker gives a step (--max-step-memory, in MiB)' });
  });

  it('refuses a job whose metrics take more sums than a frame carries (plain and weighted together), naming the coordinator', async () => {
    const many = job({ ...SMALL.spec, metrics: ['auc', 'prAuc', 'auc'], weightedMetrics: ['auc', 'prAuc', 'auc'] }, 8);
    const coordinator = await fakeCoordinator((socket) => socket.send(encodeMessage(many)));
    const client = new NodeClient({ url: coordinator.url, token: TOKEN, name: 'w', backend: 'wasm', retries: 1, backoffMs: 50, maxPayload: 64 * MiB, log: () => undefined });
    const refused = await client.run().then(
      () => undefined,
      (err: unknown) => err,
    );
    client.close();
    expect(refused).toBeInstanceOf(JobRefusedError);
    expect((refused as Error).message).toBe(`the coordinator at ${coordinator.url} sent a job whose metrics (auc, prAuc, auc, weighted_auc, weighted_prAuc, weighted_auc) take 2412 sums, more than the 2048 a gradient carries`);
    // said to the coordinator once, not retried: it would send the same job again
    await expect.poll(() => coordinator.received.find((m) => m.type === 'error')).toEqual({ type: 'error', code: 'E_WORKER', message: (refused as Error).message });
    expect(coordinator.hellos).toHaveLength(1);
  });

  it("refuses a tfjs-layers job whose config would make other weights than it declares, before allocating them", async () => {
    const coordinator = await fakeCoordinator((socket) => socket.send(encodeMessage(DISGUISED)));
    const client = new NodeClient({ url: coordinator.url, token: TOKEN, name: 'w', backend: 'wasm', retries: 1, backoffMs: 50, maxPayload: 64 * MiB, log: () => undefined });
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 5);
    const refused = await client.run().then(
      () => undefined,
      (err: unknown) => err,
    );
    clearInterval(sampler);
    client.close();
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    expect(String(refused)).toMatch(/the tfjs-layers model's config makes weights of shapes \[30000x30000\]; its spec declares \[2x2\]/);
    expect((rssPeak - rssBefore) / MiB).toBeLessThan(100);
    await expect.poll(() => coordinator.received.find((m) => m.type === 'error')).toBeDefined();
  });

  it('worker start: the same job ends the worker process (exit 1, the error, its peak RSS low); --max-parameters sets the limit', async () => {
    const coordinator = await fakeCoordinator((socket) => socket.send(encodeMessage(HUGE)));
    const worker = track(spawnNode('worker', WORKER_BIN, ['start', '--connect', coordinator.url, '--backend', 'wasm', '--metrics-listen', 'off', '--retries', '3'], { DPTRAIN_TOKEN: TOKEN }));
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, peakRssMiB(worker.child.pid!) ?? 0);
      // past this the old worker was on its way to 3 GB: stop it here, the test has failed
      if (peak > 1500) worker.kill();
    }, 20);
    const code = await worker.exited;
    clearInterval(sampler);
    console.log(`worker process sent the 30000x30000 job: exit ${code}, peak RSS ${peak.toFixed(0)} MiB`);
    expect(code, worker.output).toBe(1);
    expect(worker.output).toMatch(new RegExp(`error \\[E_WORKER\\]: the coordinator at ${coordinator.url} sent a job whose model has 900,030,000 parameters \\(30000-30000\\), more than this worker takes: --max-parameters [\\d,]+`));
    expect(worker.output).not.toMatch(/retry/);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(500);

    const small = await fakeCoordinator((socket) => socket.send(encodeMessage(SMALL)));
    const strict = track(spawnNode('worker', WORKER_BIN, ['start', '--connect', small.url, '--backend', 'wasm', '--metrics-listen', 'off', '--max-parameters', '5'], { DPTRAIN_TOKEN: TOKEN }));
    expect(await strict.exited, strict.output).toBe(1);
    expect(strict.output).toContain(`error [E_WORKER]: the coordinator at ${small.url} sent a job whose model has 8 parameters (3-2), more than this worker takes: --max-parameters 5`);
  });
});

describe('a coordinator that sends a 4 MiB heartbeat of empty maps', { timeout: 120_000 }, () => {
  it('is dropped by the worker before the frame is decoded: quickly, said why, and without the memory', async () => {
    // {type: 'heartbeat', sentAt: 1, junk: [{}, {}, ...]}: the empty array becomes an array32 of one-byte empty maps
    const head = encodeMessage({ type: 'heartbeat', sentAt: 1, junk: [] } as unknown as Message);
    const at = head.indexOf(0x90);
    const maps = 4 * MiB - at - 5;
    const frame = new Uint8Array(4 * MiB);
    frame.set(head.subarray(0, at));
    frame.set([0xdd, maps >>> 24, (maps >>> 16) & 0xff, (maps >>> 8) & 0xff, maps & 0xff], at);
    frame.fill(0x80, at + 5);
    const coordinator = await fakeCoordinator((socket) => socket.send(frame));
    const client = new NodeClient({ url: coordinator.url, token: TOKEN, name: 'w', backend: 'wasm', retries: 0, backoffMs: 50, maxPayload: 64 * MiB, log: () => undefined });
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 5);
    const started = performance.now();
    await expect(client.run()).rejects.toThrow(`last error: bad message: a "heartbeat" message of ${4 * MiB} bytes is over its limit of 1024`);
    const ms = performance.now() - started;
    clearInterval(sampler);
    client.close();
    console.log(`worker sent the 4 MiB heartbeat: dropped in ${ms.toFixed(0)} ms, RSS ${(rssBefore / MiB).toFixed(0)} -> peak ${(rssPeak / MiB).toFixed(0)} MiB`);
    await expect.poll(() => coordinator.received.find((m) => m.type === 'error')).toEqual({ type: 'error', code: 'E_PROTOCOL', message: `a "heartbeat" message of ${4 * MiB} bytes is over its limit of 1024` });
    expect(ms).toBeLessThan(1000);
    expect((rssPeak - rssBefore) / MiB).toBeLessThan(50);
  });
});

describe('a coordinator that welcomes the worker and drops it, again and again', { timeout: 120_000 }, () => {
  it('is given up after --retries attempts, with growing delays between them', async () => {
    // a welcome and a job, then the connection closes: no step is ever computed
    const coordinator = await fakeCoordinator((socket) => {
      socket.send(encodeMessage(SMALL));
      socket.close(1011, 'gone');
    });
    const lines: string[] = [];
    const client = new NodeClient({ url: coordinator.url, token: TOKEN, name: 'w', backend: 'wasm', retries: 3, backoffMs: 200, maxPayload: MiB, log: (line) => lines.push(line) });
    const outcome = await Promise.race([
      client.run().then(
        () => 'finished',
        (err: unknown) => err,
      ),
      new Promise<string>((resolve) => setTimeout(() => resolve(`still reconnecting after 8 s: ${coordinator.hellos.length} connections`), 8000)),
    ]);
    client.close();
    expect((outcome as Error).message ?? outcome).toMatch(new RegExp(`^gave up on the coordinator at ${coordinator.url} after 4 failed attempt\\(s\\) in a row without a step computed; last error: closed \\(1011: gone\\)$`));
    // the first connection and 3 retries
    expect(coordinator.hellos).toHaveLength(4);
    expect(lines.filter((l) => /connection to .* lost \(closed \(1011: gone\)\); retry \d\/3 in/.test(l))).toHaveLength(3);
    // the wait before retry k is 200 ms x 2^(k-1), +-25%: each longer than the one before
    const waits = coordinator.hellos.slice(1).map((t, k) => t - coordinator.closes[k]!);
    console.log(`waits between a drop and the next hello: ${waits.map((w) => w.toFixed(0)).join(', ')} ms`);
    waits.forEach((wait, k) => expect(wait).toBeGreaterThanOrEqual(0.75 * 200 * 2 ** k - 5));
    expect(waits[1]!).toBeGreaterThan(waits[0]!);
    expect(waits[2]!).toBeGreaterThan(waits[1]!);
  });
});
