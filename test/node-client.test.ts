/**
 * A worker node against a scripted coordinator (a bare WebSocket server in this process): what it
 * does with messages the real coordinator never sends.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { initBackend } from '../shared/backend.js';
import { PROTOCOL_VERSION, decodeMessage, encodeMessage, type Message } from '../shared/protocol/messages.js';
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
          encodeMessage({ type: 'job', jobId: 'j', spec: SPEC, parameters: PARAMETERS, features: 3, outputs: 1, trainRows: 0, heartbeatMs: 1000, heartbeatTimeoutMs: 5000, gradientDtype: 'float32' }),
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
