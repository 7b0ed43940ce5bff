import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { NodeServer } from '../coordinator/server.js';
import { PROTOCOL_VERSION, type Message } from '../shared/protocol/schemas.js';
import { decodeMessage, encodeMessage } from '../shared/protocol/codec.js';

const TOKEN = 'server-test-token-0123456789';

/**
 * The end of a job: the coordinator sends its last frames and `bye`, starts the close handshake,
 * and closes the server right after. A frame too big to leave in one write (16 MiB here, far past
 * any socket buffer) must still arrive whole, then `bye`, then a clean close (1000), not a cut
 * connection (1006) that a worker would read as "coordinator lost" and retry against.
 */
describe('NodeServer.close', () => {
  it('lets the last frames and the close handshake reach a connected node before cutting it', async () => {
    const lines: string[] = [];
    let ended: Promise<void> = Promise.resolve();
    const server = await NodeServer.start({
      host: '127.0.0.1',
      port: 0,
      token: TOKEN,
      maxPayload: 64 * 2 ** 20,
      helloTimeoutMs: 5000,
      log: (line) => lines.push(line),
      onNode: (socket) => {
        ended = (async () => {
          socket.send(encodeMessage({ type: 'weights', version: 1, weights: new Float32Array(4 * 2 ** 20).fill(0.5) }));
          socket.send(encodeMessage({ type: 'bye', reason: 'job finished' }));
          socket.close(1000, 'bye');
          await server.close();
        })();
      },
    });
    const client = new WebSocket(server.url);
    const received: Message[] = [];
    client.on('open', () => client.send(encodeMessage({ type: 'hello', version: PROTOCOL_VERSION, token: TOKEN, name: 'n', backend: 'wasm' })));
    client.on('message', (data: Buffer) => received.push(decodeMessage(data)));
    const code = await new Promise<number>((resolve) => client.on('close', (c) => resolve(c)));
    await ended;
    expect(lines).toEqual([]);
    expect(received.map((m) => m.type)).toEqual(['weights', 'bye']);
    expect((received[0] as Extract<Message, { type: 'weights' }>).weights.length).toBe(4 * 2 ** 20);
    expect(code).toBe(1000);
  });
});
