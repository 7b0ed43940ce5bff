/**
 * The node path without compute: the coordinator sends the workload (b) weights (286,721 float32)
 * to N worker processes over loopback WebSocket, each decodes them and answers with a gradient of
 * the same size, encoded as dptrain's workers do (protocol messages, reused frame memory, zero
 * mask). Prints the round trip's median and spread: what a step pays for moving its data.
 * Run it once with glibc's defaults and once with the settings of docs/deployment.md, "Memory allocator".
 *
 *   node dist/bench/ws-round-trip.js [nodes=2] [round trips=300]
 */
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket, { WebSocketServer } from 'ws';
import { FramePool } from '../shared/protocol/frame-pool.js';
import { decodeMessage } from '../shared/protocol/codec.js';
import { type Message } from '../shared/protocol/schemas.js';

const PARAMETERS = 286_721;

function worker(url: string): void {
  const socket = new WebSocket(url, { maxPayload: 2 ** 28, generateMask: (mask) => mask.fill(0) });
  const gradient = new Float32Array(PARAMETERS).map((_, i) => Math.cos(i));
  const frames = new FramePool();
  socket.on('message', (data: Buffer) => {
    const weights = decodeMessage(data) as Extract<Message, { type: 'weights' }>;
    const frame = frames.encode({ type: 'gradient', step: weights.version, count: 512, lossSum: 1, metricSums: [1], computeMs: 0, dtype: 'float32', parts: 0, gradient });
    const written = frame.retain();
    frame.release();
    socket.send(frame.bytes, () => written());
  });
}

async function coordinator(nodes: number, trips: number): Promise<void> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 2 ** 28 });
  await new Promise<void>((resolve) => server.on('listening', resolve));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const children = Array.from({ length: nodes }, () => spawn(process.execPath, [fileURLToPath(import.meta.url), '--worker', url], { stdio: 'inherit' }));
  const sockets: WebSocket[] = [];
  await new Promise<void>((resolve) =>
    server.on('connection', (s) => {
      sockets.push(s);
      if (sockets.length === nodes) resolve();
    }),
  );
  const weights = new Float32Array(PARAMETERS).map((_, i) => Math.sin(i));
  const frames = new FramePool();
  const times: number[] = [];
  for (let version = 0; version < trips + 10; version++) {
    const t0 = performance.now();
    const frame = frames.encode({ type: 'weights', version, weights });
    await Promise.all(
      sockets.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.once('message', (data: Buffer) => {
              decodeMessage(data);
              resolve();
            });
            const written = frame.retain();
            s.send(frame.bytes, () => written());
          }),
      ),
    );
    frame.release();
    if (version >= 10) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const at = (q: number): string => times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(2);
  const malloc = Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_'));
  console.log(`${nodes} worker process(es), ${trips} round trips of ${(PARAMETERS * 4) / 1e6} MB each way (${malloc.length ? malloc.map(([k, v]) => `${k}=${v}`).join(' ') : 'glibc defaults'}):`);
  console.log(`  ms: fastest ${at(0)}, p10 ${at(0.1)}, median ${at(0.5)}, p90 ${at(0.9)}`);
  for (const c of children) c.kill();
  server.close();
}

const args = process.argv.slice(2);
if (args[0] === '--worker') worker(args[1]!);
else await coordinator(Number(args[0] ?? 2), Number(args[1] ?? 300));
