/**
 * RemoteNode (the coordinator's side of a worker node) against a scripted worker in this process:
 * how it assembles a gradient sent in parts.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { RemoteNode, type NodeContext } from '../coordinator/participants/remote-node.js';
import type { Dataset } from '../shared/data/dataset.js';
import { FramePool } from '../shared/protocol/frame-pool.js';
import { PROTOCOL_VERSION } from '../shared/protocol/schemas.js';
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
    const frames = new FramePool();
    const weights = new Float32Array(PARAMETERS);
    const context: NodeContext = {
      jobId: 'j',
      spec: SPEC,
      dataset,
      parameters: PARAMETERS,
      heartbeatMs: 60_000,
      heartbeatTimeoutMs: 120_000,
      gradientDtype: 'float32',
      bucketBytes: 8,
      stepTimeoutMs: 10_000,
      chunkBytes: 1 << 20,
      weightsFrame: (version) => frames.encode({ type: 'weights', version, weights }),
    };
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
