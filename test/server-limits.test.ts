/**
 * The limits of a peer that has not yet been accepted, on a NodeServer in this process: the
 * two-frame crash, a small frame limit before the hello (an accepted node then gets its full
 * one), a cap on pending connections per address, a timeout for the HTTP upgrade, and peer
 * strings that cannot forge log lines.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { closeReason } from '../shared/protocol/printable.js';
import { NodeServer, type NodeServerOptions } from '../coordinator/server.js';
import { PROTOCOL_VERSION, type Message } from '../shared/protocol/schemas.js';
import { decodeMessage, encodeMessage } from '../shared/protocol/codec.js';

const TOKEN = 'server-limits-token-0123456789';
const servers: NodeServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close(0);
});

async function start(over: Partial<NodeServerOptions> = {}): Promise<{ server: NodeServer; lines: string[]; nodes: WebSocket[] }> {
  const lines: string[] = [];
  const nodes: WebSocket[] = [];
  const server = await NodeServer.start({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    maxPayload: 8 * 2 ** 20,
    helloTimeoutMs: 2000,
    log: (l) => lines.push(l),
    onNode: (socket, hello) => {
      nodes.push(socket);
      lines.push(`accepted ${JSON.stringify(hello.name)}`);
      socket.on('message', (data: Buffer) => lines.push(`node sent ${data.byteLength} bytes`));
      socket.on('error', () => undefined);
      socket.send(encodeMessage({ type: 'welcome', version: PROTOCOL_VERSION, workerId: 'node-1' }));
    },
    ...over,
  });
  servers.push(server);
  return { server, lines, nodes };
}

const port = (server: NodeServer): number => Number(new URL(server.url).port);
const upgrade = (p: number): string => `GET / HTTP/1.1\r\nHost: 127.0.0.1:${p}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
const until = async (what: () => boolean, ms = 5000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('before the hello', () => {
  it('a masked binary frame then f2 80 00 00 00 00 closes that peer only', async () => {
    const { server, lines } = await start();
    const socket = connect(port(server), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(upgrade(port(server)));
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.write(Buffer.from([0x82, 0x82, 1, 2, 3, 4, 0xc1, 0x02]));
    socket.write(Buffer.from([0xf2, 0x80, 0, 0, 0, 0]));
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await until(() => lines.some((l) => /rejected peer 127\.0\.0\.1:\d+: /.test(l)));
    expect(server.rejections.get('malformed')).toBe(1);
  });

  it('a rejection whose reason is long non-ASCII text closes that peer only (close reasons are cut to 123 bytes)', async () => {
    expect(Buffer.byteLength(closeReason('é'.repeat(200)))).toBeLessThanOrEqual(123);
    expect(closeReason('bad token')).toBe('bad token');
    const { server, lines } = await start();
    // a msgpack value and then a stray byte: msgpackr's error quotes the value it read
    const frame = Buffer.concat([Buffer.from(new Packr({ useRecords: false }).pack({ type: 'hello', name: 'é€'.repeat(80) })), Buffer.from([0x01])]);
    const peer = new WebSocket(server.url);
    peer.on('error', () => undefined);
    peer.on('open', () => peer.send(frame));
    await new Promise((resolve) => peer.on('close', resolve));
    await until(() => lines.some((l) => l.includes('not a msgpack message')));
  });

  it('frames over 16 KiB are refused before the hello; an accepted node sends its 1 MiB frames', async () => {
    const { server, lines } = await start();
    const big = new WebSocket(server.url);
    big.on('error', () => undefined);
    big.on('open', () => big.send(new Uint8Array(20 * 1024)));
    await new Promise((resolve) => big.on('close', resolve));
    expect(server.rejections.get('oversize')).toBe(1);
    const node = new WebSocket(server.url);
    const got: Message[] = [];
    node.on('message', (d: Buffer) => got.push(decodeMessage(d)));
    node.on('open', () => node.send(encodeMessage({ type: 'hello', version: PROTOCOL_VERSION, token: TOKEN, name: 'n', backend: 'wasm' })));
    await until(() => got.length > 0);
    node.send(new Uint8Array(2 ** 20));
    await until(() => lines.includes(`node sent ${2 ** 20} bytes`));
    node.close();
  });

  it('at most 16 pending connections from one address; the rest get 503', async () => {
    const { server } = await start({ preAuth: { pendingPerAddress: 4 } });
    const replies: string[] = [];
    const sockets = Array.from({ length: 6 }, () => {
      const s = connect(port(server), '127.0.0.1');
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => replies.push(d.toString('latin1').split('\r\n')[0]!));
      s.write(upgrade(port(server)));
      return s;
    });
    await until(() => replies.length === 6);
    expect(replies.filter((r) => r.startsWith('HTTP/1.1 101')).length).toBe(4);
    expect(replies.filter((r) => r.startsWith('HTTP/1.1 503')).length).toBe(2);
    expect(server.rejections.get('busy')).toBe(2);
    for (const s of sockets) s.destroy();
  });

  it('a TCP connection that never upgrades is cut after the upgrade timeout', async () => {
    const { server } = await start({ preAuth: { upgradeTimeoutMs: 500 } });
    const socket = connect(port(server), '127.0.0.1');
    socket.on('error', () => undefined);
    const t0 = Date.now();
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('a name with a newline and ANSI codes cannot forge log lines; a huge version is cut', async () => {
    const { server, lines } = await start({
      onNode: (socket, hello) => {
        lines.push(`joined ${hello.name}`);
        socket.close();
      },
    });
    const a = new WebSocket(server.url);
    a.on('open', () => a.send(encodeMessage({ type: 'hello', version: PROTOCOL_VERSION + 1, token: TOKEN, name: 'n', backend: 'x' } as never)));
    await new Promise((resolve) => a.on('close', resolve));
    await until(() => lines.some((l) => l.includes('protocol version')));
    const forged = new WebSocket(server.url);
    forged.on('open', () => forged.send(encodeMessage({ type: 'hello', version: PROTOCOL_VERSION, token: 'wrong-token-but-long-enough', name: 'x\nnode-9 (fake) joined\u001b[31m', backend: 'wasm' })));
    await new Promise((resolve) => forged.on('close', resolve));
    // eslint-disable-next-line no-control-regex
    for (const line of lines) expect(line).not.toMatch(/[\n\u001b]/);
  });
});
