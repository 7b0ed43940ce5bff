/**
 * Protocol fuzzing against a live coordinator: while it trains with one honest worker node,
 * thousands of hostile connections (no token) hit its port: idle and half-open TCP, bytes that
 * are not HTTP, stalled upgrades, then after the upgrade random and mutated frames, bad RSV bits
 * (the two-frame crash: any masked binary frame, then f2 80 00 00 00 00), invalid UTF-8 text,
 * length headers of terabytes, unmasked frames, fragments never finished, oversize control
 * frames and close frames with bad codes, frames declaring object graphs (2^32 - 1 elements,
 * arrays 3,000 deep), upgraded connections that never send a hello, keep-alive GETs and upgrades
 * trickled a byte at a time. The coordinator must survive it, stay within a memory
 * bound (its peak RSS over the whole attacked run), and end with the bits of an unattacked run of
 * the same job. The attacks are a fixed number; the honest node is paused (a step in flight) once
 * a few seconds of training have been attacked, so that a slow machine cannot end the run before
 * they are all made.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import { Rng } from '../shared/math/rng.js';
import { PROTOCOL_VERSION } from '../shared/protocol/schemas.js';
import { coordinatorUrl, jobFolder, readRunWeights, readSummary, startCoordinator, startWorker, type Proc } from './cluster-helpers.js';
import { peakRssMiB } from './helpers.js';

const procs: Proc[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill();
});

const JOB = {
  seed: 3,
  data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
  model: { layers: [{ units: 16, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
  compile: { optimizer: 'adam', loss: 'binaryCrossentropy' },
  fit: { epochs: 40, batchSize: 32 },
  // the honest node is paused for part of the attack (see run()): nothing may give it up meanwhile
  cluster: { threads: 0, minWorkers: 1, backend: 'wasm', heartbeatInterval: 0.5, heartbeatTimeout: 300, stepTimeout: 300, stepDeadline: { factor: 0 } },
  metrics: { listen: false },
};

/** A WebSocket frame as a client writes it (masked unless told otherwise). */
function frame(opcode: number, payload: Uint8Array, { fin = true, rsv = 0, mask = true, claimedLength }: { fin?: boolean; rsv?: number; mask?: boolean; claimedLength?: number } = {}): Buffer {
  const length = claimedLength ?? payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  const m = mask ? 0x80 : 0;
  if (length < 126) head.push(m | length);
  else if (length < 65536) head.push(m | 126, length >> 8, length & 255);
  else {
    head.push(m | 127);
    for (let i = 7; i >= 0; i--) head.push(Math.floor(length / 2 ** (8 * i)) & 255);
  }
  const key = mask ? [0x12, 0x34, 0x56, 0x78] : [];
  const body = Buffer.from(payload.map((b, i) => (mask ? b ^ key[i % 4]! : b)));
  return Buffer.concat([Buffer.from([...head, ...key]), body]);
}

function upgradeRequest(port: number): string {
  return `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

const ATTACKS = 2000;

const packr = new Packr({ useRecords: false });
const badHello = packr.pack({ type: 'hello', version: PROTOCOL_VERSION, token: 'not-the-token-0000000000', name: 'fuzz', backend: 'wasm' });

/** What an attack sends after the HTTP upgrade (undefined: the attack does not upgrade). */
function attackFrames(kind: number, rng: Rng): Buffer[] {
  const random = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(rng.next() * 256));
  switch (kind) {
    case 0: // the two-frame crash
      return [frame(2, random(8)), Buffer.from([0xf2, 0x80, 0, 0, 0, 0])];
    case 1: // invalid UTF-8 in a text frame
      return [frame(1, Uint8Array.from([0xff, 0xfe, 0xc3, 0x28]))];
    case 2: // a terabyte announced
      return [frame(2, new Uint8Array(0), { claimedLength: 2 ** 40 })];
    case 3: // unmasked
      return [frame(2, badHello, { mask: false })];
    case 4: // fragments, a ping between them, never finished
      return [frame(2, badHello.subarray(0, 5), { fin: false }), frame(9, random(4)), frame(0, badHello.subarray(5, 9), { fin: false })];
    case 5: // control frames: oversize ping, close with a bad code, pong
      return [frame(9, random(126)), frame(8, Uint8Array.from([0x03, 0xe7])), frame(10, random(3))];
    case 6: { // a mutated hello (wrong token: a mutation must never authenticate)
      const mutated = Uint8Array.from(badHello);
      for (let k = 0; k < 1 + Math.floor(rng.next() * 4); k++) mutated[Math.floor(rng.next() * mutated.length)] = Math.floor(rng.next() * 256);
      return [frame(2, mutated)];
    }
    case 7: // random bytes as frames
      return [Buffer.from(random(1 + Math.floor(rng.next() * 64)))];
    case 8: // a frame larger than a hello may be
      return [frame(2, random(64 * 1024))];
    case 14: // object graphs a decoder would build before any schema check: an array declaring
      // 2^32 - 1 elements, and arrays nested 3,000 deep
      return [frame(2, Uint8Array.from([0x82, 0xa4, ...Buffer.from('type'), 0xa5, ...Buffer.from('hello'), 0xa1, 0x78, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80, 0x80]))];
    case 15:
      return [frame(2, Uint8Array.from([...new Array<number>(3000).fill(0x91), 0xc0]))];
    case 16: // upgraded, then silent: holds a slot before the hello until its deadline
      return [];
    default: // reserved opcode, RSV bits on a text frame
      return [frame(3, random(2)), frame(1, random(2), { rsv: 4 })];
  }
}

/** One hostile connection; resolves when it is over (closed by the server or cut by us). */
function attack(port: number, n: number, rng: Rng): Promise<void> {
  return new Promise((resolve) => {
    // from 8 loopback addresses (Linux routes 127/8 to lo): the 32 attackers at once stay within
    // the coordinator's cap per address, so the attacks reach the frame parser rather than a 503
    const socket: Socket = connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (n % 8)}` });
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, 500 + rng.next() * 2500);
    socket.on('error', done);
    socket.on('close', done);
    const kind = n % 19;
    socket.on('connect', () => {
      if (kind === 10) return; // idle: a half-open connection that never speaks
      if (kind === 17) {
        // keep-alive: a plain GET again and again on one connection
        const again = setInterval(() => socket.writable && socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`), 100);
        socket.on('close', () => clearInterval(again));
        return void socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
      }
      if (kind === 18) {
        // trickle: the upgrade one byte at a time
        const request = upgradeRequest(port);
        let at = 0;
        const trickle = setInterval(() => (at < request.length && socket.writable ? socket.write(request[at++]!) : clearInterval(trickle)), 50);
        return void socket.on('close', () => clearInterval(trickle));
      }
      if (kind === 11) return void socket.write(Buffer.from(Uint8Array.from({ length: 32 }, () => Math.floor(rng.next() * 256)))); // not HTTP
      if (kind === 12) return void socket.write(upgradeRequest(port).slice(0, 40)); // a stalled upgrade
      if (kind === 13) return void socket.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n'); // plain HTTP
      socket.write(upgradeRequest(port));
      let upgraded = false;
      socket.on('data', (data: Buffer) => {
        if (upgraded || !data.toString('latin1').startsWith('HTTP/1.1 101')) return;
        upgraded = true;
        for (const f of attackFrames(kind, rng)) socket.write(f);
        if (rng.next() < 0.3) socket.end(); // half-close after the frames
      });
    });
  });
}

/**
 * Bound on the coordinator's peak RSS in the attacked run. Measured on the 2-core test machine
 * (Node 20, wasm backend): 133-138 MiB for the unattacked run, 122-161 MiB attacked (both
 * include the training itself); the margin is for allocator and GC noise, while the 2,000
 * connections leaking 64 KiB each would take it over.
 */
const MAX_RSS_MIB = 200;

async function run(attacked: boolean): Promise<{ weights: Float32Array; attacks: number; peakRss: number; output: string; rejected: Record<string, number> }> {
  const job = jobFolder(1200, JOB);
  const coordinator = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
  procs.push(coordinator);
  const url = await coordinatorUrl(coordinator);
  const port = Number(new URL(url).port);
  const honest = startWorker('honest', url, job.tokenFile, ['--metrics-listen', 'off']);
  procs.push(honest);
  await coordinator.waitFor(/^Epoch 1\//);
  let attacks = 0;
  // the peak is read until the coordinator exits: the attack's garbage may be collected later
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, peakRssMiB(coordinator.child.pid!) ?? 0)), 100);
  if (attacked) {
    // A fixed number of attacks, whatever this machine's speed: the first ones while the run
    // trains; then, at epoch 10 of 40 if they are not all done by then, the honest node is paused
    // (SIGSTOP, a step in flight) until they are, and resumed. (A pause after a fixed time let a
    // fast machine finish training first: the rest of the attacks then met a closed port.)
    const rng = new Rng(11);
    let attacking = true;
    void coordinator.waitFor(/^Epoch 10\//).then(
      () => attacking && honest.child.kill('SIGSTOP'),
      () => undefined,
    );
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (attacks < ATTACKS && coordinator.child.exitCode === null) await attack(port, attacks++, rng);
      }),
    );
    attacking = false;
    honest.child.kill('SIGCONT');
  }
  const code = await coordinator.exited;
  clearInterval(sampler);
  expect(code, coordinator.output.slice(-3000)).toBe(0);
  expect(peakRss).toBeGreaterThan(0); // it was measured
  return { weights: readRunWeights(job.out), attacks, peakRss, output: coordinator.output, rejected: readSummary(job.out).rejectedPeers };
}

describe('protocol fuzzing', { timeout: 300_000 }, () => {
  it('a live coordinator survives thousands of hostile connections and frames, and trains the bits of an unattacked run', async () => {
    const quiet = await run(false);
    const attacked = await run(true);
    expect(attacked.attacks).toBe(ATTACKS); // all of them, while the coordinator ran
    expect(attacked.peakRss).toBeLessThan(MAX_RSS_MIB);
    expect(attacked.output).toMatch(/Epoch 40\/40/);
    // the attackers were refused for their reasons (most of them: the idle and cut-off ones are
    // not counted, but none met a closed port), and none was ever taken for a node
    expect(Object.keys(attacked.rejected).length).toBeGreaterThan(2);
    // object graphs refused on their bytes, keep-alive GETs answered once and closed, silent and
    // trickling peers cut at their deadlines
    for (const reason of ['oversize', 'malformed', 'http', 'timeout']) expect(attacked.rejected[reason] ?? 0, reason).toBeGreaterThan(0);
    expect(Object.values(attacked.rejected).reduce((a, b) => a + b, 0)).toBeGreaterThan(ATTACKS / 2);
    expect(attacked.output).not.toMatch(/node-2/);
    expect(new Uint32Array(attacked.weights.buffer)).toEqual(new Uint32Array(quiet.weights.buffer));
    console.log(`fuzz: ${attacked.attacks} hostile connections, coordinator peak RSS ${attacked.peakRss.toFixed(0)} MiB (${quiet.peakRss.toFixed(0)} MiB unattacked), refused: ${JSON.stringify(attacked.rejected)}`);
  });
});
