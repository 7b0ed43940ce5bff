/**
 * A worker node against a scripted coordinator (a bare WebSocket server in this process): what it
 * does with messages the real coordinator never sends, and exactly what it sends for a step.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { initBackend } from '../shared/backend.js';
import { Rng } from '../shared/math/rng.js';
import { PROTOCOL_VERSION, type GradientMessage, type GradientPartMessage, type Message } from '../shared/protocol/schemas.js';
import { decodeMessage, encodeMessage } from '../shared/protocol/codec.js';
import { DenseGradientEngine } from '../compute/dense-gradient.js';
import { NodeClient } from '../worker/node-client.js';

const TOKEN = 'node-client-test-token-0123';
const SPEC = { inputDim: 3, layers: [{ units: 2, activation: 'relu' as const, useBias: true }, { units: 1, activation: 'sigmoid' as const, useBias: true }], loss: 'binaryCrossentropy' as const, metrics: ['accuracy' as const] };
const PARAMETERS = 3 * 2 + 2 + 2 * 1 + 1;

describe('NodeClient', () => {
  let server: WebSocketServer;
  let url: string;
  const received: Message[] = [];

  beforeAll(async () => {
    await initBackend('wasm');
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.on('listening', resolve));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
    server.on('connection', (socket) => {
      socket.on('message', (data: Buffer) => {
        const message = decodeMessage(data);
        received.push(message);
        if (message.type !== 'hello') return;
        socket.send(encodeMessage({ type: 'welcome', version: PROTOCOL_VERSION, workerId: 'node-1' }));
        socket.send(
          encodeMessage({ type: 'job', jobId: 'j', spec: SPEC, parameters: PARAMETERS, features: 3, outputs: 1, trainRows: 0, heartbeatMs: 1000, heartbeatTimeoutMs: 5000, gradientDtype: 'float32', bucketBytes: 0, pixelScale: 0 }),
        );
        // one value short
        socket.send(encodeMessage({ type: 'weights', version: 0, weights: new Float32Array(PARAMETERS - 1) }));
      });
    });
  });

  afterAll(() => server.close());

  it('refuses weights of the wrong length with a reason, and tells the coordinator', async () => {
    const lines: string[] = [];
    const client = new NodeClient({ url, token: TOKEN, name: 'w', backend: 'wasm', retries: 0, backoffMs: 10, maxPayload: 2 ** 20, log: (line) => lines.push(line) });
    await expect(client.run()).rejects.toThrow(`weights have ${PARAMETERS - 1} values, the job has ${PARAMETERS} parameters`);
    client.close();
    expect(lines.join('\n')).toContain(`cannot handle "weights": weights have ${PARAMETERS - 1} values, the job has ${PARAMETERS} parameters`);
    await expect.poll(() => received.find((m) => m.type === 'error')).toMatchObject({ type: 'error', code: 'E_PROTOCOL', message: `weights have ${PARAMETERS - 1} values, the job has ${PARAMETERS} parameters` });
  });
});

describe('NodeClient gradient parts', () => {
  const spec = { inputDim: 3, layers: [{ units: 40, activation: 'relu' as const, useBias: true }, { units: 30, activation: 'relu' as const, useBias: true }, { units: 1, activation: 'sigmoid' as const, useBias: true }], loss: 'binaryCrossentropy' as const, metrics: ['accuracy' as const] };
  const parameters = 3 * 40 + 40 + 40 * 30 + 30 + 30 + 1;
  const rows = 17;
  const rng = new Rng(5);
  const weights = Float32Array.from({ length: parameters }, () => rng.normal() * 0.3);
  const x = Float32Array.from({ length: rows * 3 }, () => rng.normal());
  const y = Float32Array.from({ length: rows }, (_, i) => i % 2);

  it('sends the end of its gradient ahead once a bucket is full, the rest with the sums; together the gradient', async () => {
    await initBackend('wasm');
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.on('listening', resolve));
    const received: Message[] = [];
    server.on('connection', (socket) => {
      socket.on('message', (data: Buffer) => {
        const message = decodeMessage(data);
        received.push(message);
        if (message.type === 'hello') {
          socket.send(encodeMessage({ type: 'welcome', version: PROTOCOL_VERSION, workerId: 'node-1' }));
          // 1 KiB buckets: the last layer (31 values) waits, the second's end (1261 values from 160) goes ahead
          socket.send(encodeMessage({ type: 'job', jobId: 'j', spec, parameters, features: 3, outputs: 1, trainRows: 0, heartbeatMs: 1000, heartbeatTimeoutMs: 5000, gradientDtype: 'float32', bucketBytes: 1024, pixelScale: 0 }));
          socket.send(encodeMessage({ type: 'weights', version: 0, weights }));
          socket.send(encodeMessage({ type: 'step', step: 0, version: 0, groups: new Int32Array(0), inline: Int32Array.from({ length: x.length / 3 }, (_, i) => i), rows: new Int32Array(0), pixels: new Uint8Array(0), x, y }));
        }
        if (message.type === 'gradient') socket.send(encodeMessage({ type: 'bye', reason: 'done' }));
      });
    });
    const client = new NodeClient({ url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, token: TOKEN, name: 'w', backend: 'wasm', retries: 0, backoffMs: 10, maxPayload: 2 ** 20, log: () => undefined });
    expect(await client.run()).toBe('done');
    client.close();
    server.close();

    const parts = received.filter((m): m is GradientPartMessage => m.type === 'gradient_part');
    const last = received.find((m): m is GradientMessage => m.type === 'gradient')!;
    expect(parts.map((p) => [p.step, p.offset, p.values.length])).toEqual([[0, 160, parameters - 160]]);
    expect([last.parts, last.gradient.length, last.count]).toEqual([1, 160, rows]);
    expect(received.indexOf(parts[0]!)).toBeLessThan(received.indexOf(last));
    const engine = new DenseGradientEngine(spec);
    engine.setWeights(weights);
    const expected = await engine.gradient(x, y, rows);
    engine.dispose();
    expect(Float32Array.from([...last.gradient, ...parts[0]!.values])).toEqual(expected.gradient);
    expect(last.lossSum).toBe(expected.lossSum);
  });
});
