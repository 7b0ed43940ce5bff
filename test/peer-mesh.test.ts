/**
 * A node's peer endpoint (worker/peer-mesh.ts) over real sockets: an honest peer's frames arrive
 * in order; connections without the token, of another job or protocol version, frames before the
 * hello, frames of another type, malformed and oversize frames and frames the receiver refuses
 * are each closed with a reason, and none of it stops the endpoint or keeps an honest peer out
 * (idle connections from another address cannot fill the slots waiting for a hello), and a token
 * holder cannot claim another node's id.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Packr } from 'msgpackr';
import { PROTOCOL_VERSION, type Message } from '../shared/protocol/schemas.js';
import { encodeMessage } from '../shared/protocol/codec.js';
import { PeerMesh, type PeerFrame } from '../worker/peer-mesh.js';
import { Rng } from '../shared/math/rng.js';
import { selfSignedCertificate } from './cluster-helpers.js';
import { peerProof } from '../shared/peer/peer-proof.js';

const TOKEN = 'peer-token-0123456789abcdef';
const JOB = { jobId: 'job-1', self: 'node-9', parameters: 64 };
const meshes: PeerMesh[] = [];
const sockets: WebSocket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate();
  for (const m of meshes.splice(0)) await m.close();
});

async function endpoint(options: Partial<Parameters<typeof PeerMesh.listen>[0]> = {}): Promise<{ mesh: PeerMesh; url: string; frames: { from: string; frame: PeerFrame }[]; log: string[] }> {
  const log: string[] = [];
  const mesh = await PeerMesh.listen({ port: 0, host: '127.0.0.1', token: TOKEN, maxPayload: 1 << 20, log: (l) => log.push(l), ...options });
  meshes.push(mesh);
  mesh.join(JOB);
  const frames: { from: string; frame: PeerFrame }[] = [];
  mesh.onFrame = (from, frame) => {
    if (frame.type === 'block' && frame.shard !== 0) throw new Error(`block for shard ${frame.shard}, which this node does not own`);
    frames.push({ from, frame });
  };
  return { mesh, url: `ws://127.0.0.1:${mesh.port}`, frames, log };
}

/** Opens a connection (from `localAddress`), sends `frames`, and resolves with how it was closed. */
function attempt(url: string, frames: (Message | Uint8Array | string)[], localAddress = '127.0.0.1'): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress });
    sockets.push(ws);
    ws.on('open', () => {
      for (const f of frames) ws.send(typeof f === 'string' || f instanceof Uint8Array ? f : encodeMessage(f));
    });
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  });
}

/** A peer_hello to the node of peer key `key`, with the proof the coordinator would give `from` (default node-1). */
const hello = (key: string, over: Partial<Extract<Message, { type: 'peer_hello' }>> = {}): Message => ({ type: 'peer_hello', version: PROTOCOL_VERSION, token: TOKEN, jobId: JOB.jobId, from: over.from ?? 'node-1', proof: peerProof(key, JOB.jobId, over.from ?? 'node-1'), ...over });
const block = (shard: number, step = 0): Message => ({ type: 'block', epoch: 0, step, block: 1, count: 4, shard, values: new Float32Array(32).fill(0.5) });

describe('PeerMesh', { timeout: 60_000 }, () => {
  it("an honest peer's frames arrive in order, with its id; sending opens one connection per peer", async () => {
    const a = await endpoint();
    const b = await endpoint();
    b.mesh.join({ ...JOB, self: 'node-1' });
    for (let step = 0; step < 5; step++) b.mesh.send({ id: 'node-9', url: a.url, proof: peerProof(a.mesh.key, JOB.jobId, 'node-1') }, block(0, step));
    await expect.poll(() => a.frames.length).toBe(5);
    expect(a.frames.map((f) => [f.from, f.frame.step])).toEqual([0, 1, 2, 3, 4].map((s) => ['node-1', s]));
    expect(a.frames[0]!.frame.values).toEqual(new Float32Array(32).fill(0.5));
    expect(b.mesh.bytes.sent).toBeGreaterThan(5 * 128);
  });

  it('whenSent waits for the frames given so far to the peers named to be written, also to a peer still connecting, and for none to a peer that is gone; only the latest waits', async () => {
    const a = await endpoint();
    const b = await endpoint();
    b.mesh.join({ ...JOB, self: 'node-1' });
    const order: string[] = [];
    const to = { id: 'node-9', url: a.url, proof: peerProof(a.mesh.key, JOB.jobId, 'node-1') };
    b.mesh.whenSent([to], () => order.push('nothing unsent'));
    for (let step = 0; step < 3; step++) b.mesh.send(to, { ...block(0, step), values: new Float32Array(32).fill(step) } as Message);
    b.mesh.whenSent([to], () => order.push('replaced'));
    b.mesh.whenSent([to], () => order.push('sent'));
    expect(order).toEqual(['nothing unsent']);
    await expect.poll(() => order).toEqual(['nothing unsent', 'sent']);
    await expect.poll(() => a.frames.length).toBe(3);
    // a peer nobody listens at: its frames are never written, and what waits runs when it is given up
    const closed = await endpoint();
    const dead = { id: 'node-8', url: closed.url, proof: 'x' };
    await closed.mesh.close();
    b.mesh.send(dead, block(0, 9));
    await new Promise<void>((resolve) => b.mesh.whenSent([dead, to], resolve));
  });

  it('refuses each hostile connection with a reason, and keeps serving', async () => {
    const { url, frames, log, mesh } = await endpoint();
    expect(await attempt(url, [hello(mesh.key, { token: 'wrong-token-0123456789' })])).toEqual({ code: 1008, reason: 'bad token' });
    expect((await attempt(url, [hello(mesh.key, { jobId: 'job-2' })])).reason).toBe("not this node's job");
    // a token holder claiming another node's id: without that node's proof, or with its own proof
    expect((await attempt(url, [hello(mesh.key, { from: 'node-2', proof: '00'.repeat(32) })])).reason).toBe('cannot prove it is node-2');
    expect((await attempt(url, [hello(mesh.key, { from: 'node-2', proof: peerProof(mesh.key, JOB.jobId, 'node-7') })])).reason).toBe('cannot prove it is node-2');
    expect((await attempt(url, [hello(mesh.key, { from: 'node-2', proof: peerProof('ab'.repeat(32), JOB.jobId, 'node-2') })])).reason).toBe('cannot prove it is node-2');
    expect((await attempt(url, [block(0)])).reason).toBe('sent "block" before peer_hello');
    expect((await attempt(url, ['text'])).reason).toMatch(/text frame/);
    expect((await attempt(url, [Uint8Array.of(0xc1, 0x00)])).reason).toMatch(/not a msgpack message/);
    // a declared array of 2^32-1 elements: refused on its bytes, nothing allocated
    expect((await attempt(url, [Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff)])).code).toBe(1008);
    expect((await attempt(url, [new Packr({ useRecords: false }).pack({ ...hello(mesh.key), version: PROTOCOL_VERSION + 1 })])).reason).toMatch(/protocol version/);
    // after the hello: a frame of another type, one over the model's size, one the receiver refuses
    expect((await attempt(url, [hello(mesh.key), { type: 'bye', reason: 'x' }])).reason).toBe('sent an unexpected "bye" message');
    expect((await attempt(url, [hello(mesh.key), { ...block(0), values: new Float32Array(4096) } as Message])).reason).toMatch(/over its limit/);
    expect((await attempt(url, [hello(mesh.key), block(3)])).reason).toBe('block for shard 3, which this node does not own');
    expect(frames).toHaveLength(0);
    // still serving
    const ok = new WebSocket(url);
    sockets.push(ok);
    ok.on('error', () => undefined);
    await new Promise((r) => ok.on('open', r));
    ok.send(encodeMessage(hello(mesh.key, { from: 'node-5' })));
    ok.send(encodeMessage(block(0, 7)));
    await expect.poll(() => frames.some((f) => f.from === 'node-5' && f.frame.step === 7)).toBe(true);
    expect(log.filter((l) => l.includes('refused')).length).toBeGreaterThanOrEqual(10);
  });

  it('one connection per proven peer: a token holder opening 20 as itself holds one socket, the newest', async () => {
    const { url, frames, mesh } = await endpoint();
    const open = async (): Promise<{ ws: WebSocket; closed: Promise<string> }> => {
      const ws = new WebSocket(url);
      sockets.push(ws);
      ws.on('error', () => undefined);
      const closed = new Promise<string>((resolve) => ws.on('close', (_code, reason) => resolve(reason.toString())));
      await new Promise((r) => ws.on('open', r));
      ws.send(encodeMessage(hello(mesh.key, { from: 'node-3' })));
      return { ws, closed };
    };
    const all: { ws: WebSocket; closed: Promise<string> }[] = [];
    for (let i = 0; i < 20; i++) {
      all.push(await open());
      // the hello is taken before the next connection says its own
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const { closed } of all.slice(0, -1)) expect(await closed).toBe('replaced by a newer connection from the same peer');
    const newest = all.at(-1)!.ws;
    expect(newest.readyState).toBe(WebSocket.OPEN);
    newest.send(encodeMessage(block(0, 3)));
    await expect.poll(() => frames.map((f) => [f.from, f.frame.step])).toEqual([['node-3', 3]]);
  });

  it('over TLS: a peer trusting the certificate is heard; a socket that never finishes its handshake is cut at the hello deadline', async () => {
    const { cert, key } = selfSignedCertificate(mkdtempSync(join(tmpdir(), 'dptrain-peer-tls-')));
    const tls = { cert: readFileSync(cert), key: readFileSync(key) };
    const a = await endpoint({ tls, helloTimeoutMs: 400 });
    expect(a.mesh.tls).toBe(true);
    const b = await endpoint({ ca: tls.cert });
    b.mesh.join({ ...JOB, self: 'node-2' });
    b.mesh.send({ id: 'node-9', url: `wss://127.0.0.1:${a.mesh.port}`, proof: peerProof(a.mesh.key, JOB.jobId, 'node-2') }, block(0, 4));
    await expect.poll(() => a.frames.map((f) => [f.from, f.frame.step])).toEqual([['node-2', 4]]);
    // a raw TCP socket that sends nothing: closed by the handshake deadline, not held
    const started = performance.now();
    const closedAfter = await new Promise<number>((resolve) => {
      const raw = connect(a.mesh.port, '127.0.0.1');
      raw.on('error', () => undefined);
      raw.on('close', () => resolve(performance.now() - started));
    });
    expect(closedAfter).toBeLessThan(3000);
    // and a peer that does not trust the certificate cannot send
    const c = await endpoint();
    c.mesh.join({ ...JOB, self: 'node-3' });
    c.mesh.send({ id: 'node-9', url: `wss://127.0.0.1:${a.mesh.port}`, proof: peerProof(a.mesh.key, JOB.jobId, 'node-3') }, block(0, 5));
    await expect.poll(() => c.log.some((l) => /self[- ]signed certificate/.test(l))).toBe(true);
    expect(a.frames).toHaveLength(1);
  });

  it('idle connections from one address fill only its share of the slots: an honest peer from another address says hello at once', async () => {
    const { url, frames, mesh } = await endpoint({ pending: { total: 8, perAddress: 6 }, helloTimeoutMs: 60_000 });
    const idle = Array.from({ length: 20 }, () => {
      const ws = new WebSocket(url, { localAddress: '127.0.0.2' });
      sockets.push(ws);
      ws.on('error', () => undefined);
      return new Promise<void>((r) => {
        ws.on('open', () => r());
        ws.on('close', () => r());
      });
    });
    await Promise.all(idle);
    const honest = new WebSocket(url, { localAddress: '127.0.0.1' });
    sockets.push(honest);
    honest.on('error', () => undefined);
    await new Promise((r) => honest.on('open', r));
    honest.send(encodeMessage(hello(mesh.key, { from: 'node-3' })));
    honest.send(encodeMessage(block(0, 1)));
    await expect.poll(() => frames.some((f) => f.from === 'node-3')).toBe(true);
    const open = sockets.filter((s) => s.readyState === WebSocket.OPEN).length;
    expect(open).toBeLessThanOrEqual(6 + 1);
  });

  it('fuzz: 600 hostile frames (random bytes, mutated and truncated frames, before and after a hello) while an honest peer sends: it gets through, the endpoint stays up', async () => {
    const { url, frames, mesh } = await endpoint({ pending: { total: 64, perAddress: 16 } });
    const rng = new Rng(17);
    const valid = [encodeMessage(hello(mesh.key)), encodeMessage(block(0, 3)), encodeMessage({ type: 'reduced', epoch: 0, step: 3, shard: 1, values: new Float32Array(8) })];
    const mutate = (frame: Uint8Array): Uint8Array => {
      const out = Uint8Array.from(frame.subarray(0, 1 + Math.floor(rng.next() * frame.length)));
      for (let k = 0; k < 1 + Math.floor(rng.next() * 4); k++) out[Math.floor(rng.next() * out.length)] = Math.floor(rng.next() * 256);
      return out;
    };
    const hostile = (): Uint8Array => {
      const kind = rng.next();
      if (kind < 0.3) return Uint8Array.from({ length: Math.floor(rng.next() * 64) }, () => Math.floor(rng.next() * 256));
      return mutate(valid[Math.floor(rng.next() * valid.length)]!);
    };
    const honest = new WebSocket(url, { localAddress: '127.0.0.3' });
    sockets.push(honest);
    honest.on('error', () => undefined);
    await new Promise((r) => honest.on('open', r));
    honest.send(encodeMessage(hello(mesh.key, { from: 'node-2' })));
    const attacks: Promise<unknown>[] = [];
    for (let c = 0; c < 60; c++) {
      // half say a valid hello first, so their garbage reaches the checks after it
      const batch = [...(c % 2 === 0 ? [valid[0]!] : []), ...Array.from({ length: 10 }, hostile)];
      attacks.push(attempt(url, batch, c % 3 === 0 ? '127.0.0.2' : '127.0.0.1'));
      honest.send(encodeMessage(block(0, 100 + c)));
    }
    await Promise.all(attacks);
    await expect.poll(() => frames.filter((f) => f.from === 'node-2').length).toBe(60);
    // whatever a hostile peer's frame happened to say, only frames the receiver accepted arrived, in order
    expect(frames.filter((f) => f.from === 'node-2').map((f) => f.frame.step)).toEqual(Array.from({ length: 60 }, (_, c) => 100 + c));
    expect(mesh.port).toBeGreaterThan(0);
    const late = await attempt(url, [hello(mesh.key, { token: 'wrong-token-0123456789' })]);
    expect(late.reason).toBe('bad token');
  });
});
