/**
 * Connection admission for strangers (no token): on the node port, floods of keep-alive HTTP,
 * header bytes trickled below any idle timeout, and addresses that fill every pre-hello slot must
 * not keep an honest worker out; on the metrics port, idle sockets are capped and cut, a
 * pipelined /metrics flood costs a bounded number of renders, and no connection outlives its
 * lifetime, however often it asks. Attackers bind to other loopback
 * addresses (Linux routes all of 127/8 to lo) to stand for other hosts.
 */
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { NodeServer, type NodeServerOptions } from '../coordinator/server.js';
import { NodeClient } from '../worker/node-client.js';
import { PROTOCOL_VERSION } from '../shared/protocol/schemas.js';
import { encodeMessage } from '../shared/protocol/codec.js';
import { Admission, RefusalLog, addressKey } from '../shared/admission.js';
import { defaultProcessMetrics, serveMetrics, type MetricsServer } from '../shared/metrics-server.js';

const TOKEN = 'admission-token-0123456789abcdef';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startNodeServer(over: Partial<NodeServerOptions> = {}): Promise<{ server: NodeServer; lines: string[]; port: number }> {
  const lines: string[] = [];
  const server = await NodeServer.start({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    maxPayload: 2 ** 20,
    helloTimeoutMs: 1000,
    log: (l) => lines.push(l),
    onNode: (socket, hello) => {
      lines.push(`accepted ${hello.name}`);
      socket.on('error', () => undefined);
      socket.send(encodeMessage({ type: 'welcome', version: PROTOCOL_VERSION, workerId: 'node-1' }));
      socket.send(encodeMessage({ type: 'bye', reason: 'admitted' }));
    },
    ...over,
  });
  cleanups.push(() => server.close(0));
  return { server, lines, port: Number(new URL(server.url).port) };
}

/** The worker's own client, retries and backoff included, from 127.0.0.1; resolves with the time it took to be welcomed. */
async function honestWorker(url: string, retries: number, backoffMs = 200): Promise<{ ms: number; log: string[] }> {
  const log: string[] = [];
  const client = new NodeClient({ url, token: TOKEN, name: 'honest', backend: 'wasm', retries, backoffMs, maxPayload: 2 ** 20, log: (l) => log.push(l) });
  const t0 = performance.now();
  const reason = await client.run();
  client.close();
  expect(reason).toBe('admitted');
  return { ms: performance.now() - t0, log };
}

const upgrade = (p: number): string => `GET / HTTP/1.1\r\nHost: 127.0.0.1:${p}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Resolves when the server has closed `s` (what it sends is read, so that its FIN is seen). */
const closed = (s: Socket): Promise<void> =>
  new Promise((resolve) => {
    if (s.destroyed) return resolve();
    if (s.listenerCount('data') === 0) s.resume();
    s.once('close', () => resolve());
  });

/**
 * Keeps `count` connections from `localAddress` going while `active()`: each is opened, runs
 * `behave`, and is opened again `reconnectMs` after it closes. Returns the sockets ever opened.
 */
function flood(port: number, localAddress: string, count: number, behave: (s: Socket) => void, active: () => boolean, reconnectMs = 50): { opened: () => number; open: Set<Socket> } {
  let opened = 0;
  const open = new Set<Socket>();
  const one = (): void => {
    if (!active()) return;
    opened++;
    const s = connect({ port, host: '127.0.0.1', localAddress });
    open.add(s);
    s.on('error', () => undefined);
    s.resume(); // reads what it is sent, so that the server's FIN is seen
    s.on('close', () => {
      open.delete(s);
      setTimeout(one, reconnectMs);
    });
    behave(s);
  };
  for (let i = 0; i < count; i++) one();
  cleanups.push(() => {
    for (const s of open) s.destroy();
  });
  return { opened: () => opened, open };
}

describe('Admission', () => {
  it('caps per address and in all, and gives a lighter address the oldest slot of the heaviest', () => {
    const admission = new Admission({ total: 4, perAddress: 2 });
    const evicted: string[] = [];
    const slot = (address: string, name: string): (() => void) | undefined => admission.admit(address, () => evicted.push(name));
    expect(slot('10.0.0.1', 'a1')).toBeDefined();
    expect(slot('10.0.0.1', 'a2')).toBeDefined();
    expect(slot('10.0.0.1', 'a3')).toBeUndefined(); // its share
    expect(slot('10.0.0.2', 'b1')).toBeDefined();
    const b2 = slot('10.0.0.2', 'b2');
    expect(admission.size).toBe(4);
    // full: a newcomer takes the oldest slot of an address holding two
    expect(slot('10.0.0.3', 'c1')).toBeDefined();
    expect(evicted).toEqual(['a1']);
    // an address holding one cannot take from one holding two (no ping-pong between equals)
    expect(slot('10.0.0.1', 'a4')).toBeUndefined();
    expect(admission.size).toBe(4);
    b2!();
    b2!(); // idempotent
    expect(admission.size).toBe(3);
    expect(admission.heldBy('10.0.0.2')).toBe(1);
    // one slot each (as from many attacking addresses): an address holding none still gets one, the oldest's
    const many = new Admission({ total: 3, perAddress: 2 });
    const cut: string[] = [];
    for (const a of ['10.0.1.1', '10.0.1.2', '10.0.1.3']) many.admit(a, () => cut.push(a));
    expect(many.admit('10.0.1.4', () => cut.push('10.0.1.4'))).toBeDefined();
    expect(cut).toEqual(['10.0.1.1']);
    expect(many.admit('10.0.1.4', () => undefined)).toBeUndefined(); // holds one, as every other
  });

  it('counts an IPv6 /64 as one address and IPv4-mapped addresses as IPv4', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe(addressKey('2001:db8:1:2::ffff'));
    expect(addressKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:3::1')).not.toBe(addressKey('2001:db8:1:2::1'));
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('10.1.2.3')).toBe('10.1.2.3');
  });

  it('logs a burst of refusals in full, then one line that counts the rest', async () => {
    const lines: string[] = [];
    const log = new RefusalLog((l) => lines.push(l), 'connections', 3, 200);
    for (let i = 0; i < 1000; i++) log.note(i % 2 ? 'busy' : 'timeout', `refused ${i}`);
    expect(lines).toEqual(['refused 0', 'refused 1', 'refused 2']);
    await sleep(300);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe('refused 997 more connections in 0 s without logging each (busy 499, timeout 498)');
  });
});

describe('the node port', () => {
  it('520 keep-alive HTTP connections from one address, each asking GET / every 300 ms: they are answered and closed, and an honest worker joins', async () => {
    const { server, lines } = await startNodeServer();
    const port = Number(new URL(server.url).port);
    let attacking = true;
    let answers = 0;
    const attack = flood(
      port,
      '127.0.0.2',
      520,
      (s) => {
        const ask = (): void => void s.write(`GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n`);
        s.on('connect', ask);
        s.on('data', () => answers++);
        const every = setInterval(ask, 300);
        s.on('close', () => clearInterval(every));
      },
      () => attacking,
      200,
    );
    let maxPending = 0;
    const sampler = setInterval(() => (maxPending = Math.max(maxPending, server.pending)), 5);
    cleanups.push(() => clearInterval(sampler));
    await sleep(1000);
    const { ms } = await honestWorker(server.url, 5);
    await sleep(500);
    attacking = false;
    clearInterval(sampler);
    console.log(
      `keep-alive flood: ${attack.opened()} attacker connections, ${answers} answers, most held at once ${maxPending}, honest worker joined in ${ms.toFixed(0)} ms; ` +
        `refused ${JSON.stringify(Object.fromEntries(server.rejections))}, ${lines.length} log lines`,
    );
    expect(lines).toContain('accepted honest');
    expect(maxPending).toBeLessThanOrEqual(16 + 1);
    expect(server.rejections.get('http')).toBeGreaterThan(0);
    // the log is rate-limited: 20 lines a window and a count
    expect(lines.filter((l) => l.startsWith('refused ')).length).toBeLessThanOrEqual(22);
  });

  it('520 silent TCP connections from one address: at most 16 are held, the rest refused at once, and an honest worker joins', async () => {
    const { server, lines } = await startNodeServer({ preAuth: { upgradeTimeoutMs: 60_000 } });
    const port = Number(new URL(server.url).port);
    let attacking = true;
    const attack = flood(port, '127.0.0.2', 520, () => undefined, () => attacking, 200);
    let maxPending = 0;
    const sampler = setInterval(() => (maxPending = Math.max(maxPending, server.pending)), 5);
    cleanups.push(() => clearInterval(sampler));
    await sleep(1000);
    const { ms } = await honestWorker(server.url, 5);
    attacking = false;
    clearInterval(sampler);
    console.log(`silent flood: ${attack.opened()} attacker connections, most held at once ${maxPending}, honest worker joined in ${ms.toFixed(0)} ms; refused ${JSON.stringify(Object.fromEntries(server.rejections))}`);
    expect(lines).toContain('accepted honest');
    expect(maxPending).toBeLessThanOrEqual(16 + 1);
    expect(server.rejections.get('busy')).toBeGreaterThan(400);
  });

  it('a worker refused with 503 before its hello retries with backoff and gets in once the flood stops', async () => {
    const { server, lines } = await startNodeServer({ preAuth: { pending: 1, pendingPerAddress: 1, upgradeTimeoutMs: 60_000 } });
    const port = Number(new URL(server.url).port);
    // one silent connection from the worker's own address holds the only slot for 700 ms
    const squatter = connect(port, '127.0.0.1');
    squatter.on('error', () => undefined);
    await new Promise((r) => squatter.once('connect', r));
    await sleep(50);
    setTimeout(() => squatter.destroy(), 700);
    const { log } = await honestWorker(server.url, 5, 200);
    const retries = log.filter((l) => l.includes('retry'));
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries[0]).toMatch(/503/);
    expect(lines).toContain('accepted honest');
    expect(server.rejections.get('busy')).toBe(retries.length);
  });

  it('over maxConnections the connection is dropped and counted', async () => {
    const { server, port } = await startNodeServer({ preAuth: { maxConnections: 2, upgradeTimeoutMs: 60_000 } });
    const sockets = [0, 1, 2].map(() => {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.resume();
      return s;
    });
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
    });
    const deadline = performance.now() + 3000;
    while (!server.rejections.get('busy') && performance.now() < deadline) await sleep(10);
    expect(server.rejections.get('busy')).toBe(1);
    expect(server.pending).toBe(2);
  });

  it('a plain GET is answered 426 with Connection: close and the connection ends', async () => {
    const { server, port } = await startNodeServer();
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    let reply = '';
    s.on('data', (d: Buffer) => (reply += d.toString('latin1')));
    s.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const t0 = performance.now();
    await closed(s);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(reply).toMatch(/^HTTP\/1\.1 426 /);
    expect(reply.toLowerCase()).toContain('connection: close');
    expect(reply.match(/HTTP\/1\.1 426/g)).toHaveLength(1); // the pipelined second request is not served
    expect(server.rejections.get('http')).toBe(1);
  });

  it('a peer trickling header bytes is cut at the upgrade deadline from its connect, not at an idle timeout', async () => {
    const { server, port } = await startNodeServer({ preAuth: { upgradeTimeoutMs: 600 } });
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    const text = upgrade(port);
    let i = 0;
    const trickle = setInterval(() => s.writable && s.write(text[i++ % text.length]!), 100);
    cleanups.push(() => clearInterval(trickle));
    const t0 = performance.now();
    await closed(s);
    const ms = performance.now() - t0;
    clearInterval(trickle);
    console.log(`trickle: cut after ${ms.toFixed(0)} ms (deadline 600 ms), ${i} bytes sent`);
    expect(ms).toBeGreaterThan(500);
    expect(ms).toBeLessThan(1500);
    expect(server.rejections.get('timeout')).toBe(1);
  });

  it('an upgraded peer gets its hello deadline from the connect, not from the upgrade', async () => {
    const { server, port } = await startNodeServer({ helloTimeoutMs: 800 });
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    const t0 = performance.now();
    // the 101 answer comes at the upgrade (400 ms), the error and close frames at the deadline
    const arrivals: number[] = [];
    s.on('data', () => arrivals.push(performance.now() - t0));
    // half the hello time spent before the upgrade
    await sleep(400);
    s.write(upgrade(port));
    await closed(s);
    const ms = arrivals.find((t) => t > 600) ?? Infinity;
    expect(ms).toBeGreaterThan(700);
    expect(ms).toBeLessThan(1150); // 400 + 800 were it counted from the upgrade
    expect(server.rejections.get('timeout')).toBe(1);
  });

  it('4 addresses x 16 upgraded connections that never say hello, reconnecting 50 ms after each cut: an honest worker joins during the flood', async () => {
    const { server, lines } = await startNodeServer({ helloTimeoutMs: 1000 });
    const port = Number(new URL(server.url).port);
    let attacking = true;
    // upgrades, then says nothing; cut (the server's close frame) it connects again
    const attacker = (s: Socket): void => {
      s.on('connect', () => s.write(upgrade(port)));
      s.on('data', (d: Buffer) => d[0] !== 0x48 /* not "HTTP/1.1 101" */ && s.destroy());
    };
    const attacks = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'].map((address) =>
      flood(port, address, 16, attacker, () => attacking),
    );
    // wait until they hold every slot
    const deadline = performance.now() + 5000;
    while (server.pending < 64 && performance.now() < deadline) await sleep(10);
    // and keep them through a round of hello deadlines and reconnects
    await sleep(1500);
    const fullAt = server.pending;
    const { ms, log } = await honestWorker(server.url, 5);
    attacking = false;
    const opened = attacks.reduce((n, a) => n + a.opened(), 0);
    console.log(
      `4x16 flood: slots held when the worker came ${fullAt}, honest worker joined in ${ms.toFixed(0)} ms after ${log.filter((l) => l.includes('retry')).length} retries; ` +
        `${opened} attacker connections; refused ${JSON.stringify(Object.fromEntries(server.rejections))}`,
    );
    expect(fullAt).toBeGreaterThanOrEqual(60);
    expect(lines).toContain('accepted honest');
    expect(log.filter((l) => l.includes('retry'))).toEqual([]); // in at the first try: a fair share
    expect(server.rejections.get('evicted')).toBeGreaterThanOrEqual(1);
  });

  it('once such a flood stops, the attackers hold nothing past the hello deadline', async () => {
    const { server, port } = await startNodeServer({ helloTimeoutMs: 500 });
    let attacking = true;
    const attacker = (s: Socket): void => void s.on('connect', () => s.write(upgrade(port)));
    const attack = flood(port, '127.0.0.2', 16, attacker, () => attacking);
    await sleep(300);
    attacking = false;
    await sleep(600);
    // every slot is free at the deadline (the sockets get a second more to hear why)
    expect(server.pending).toBe(0);
    await sleep(1200);
    expect(attack.open.size).toBe(0);
  });
});

/** A metrics registry with the process metrics (about 5 KB of text), counting its renders. */
function countedRegistry(): { registry: Registry; renders: () => number } {
  const registry = new Registry();
  defaultProcessMetrics(registry);
  let renders = 0;
  const metrics = registry.metrics.bind(registry);
  registry.metrics = () => {
    renders++;
    return metrics();
  };
  return { registry, renders: () => renders };
}

async function startMetricsServer(registry: Registry, limits: Parameters<typeof serveMetrics>[5] = {}): Promise<{ server: MetricsServer; port: number; rejected: string[]; lines: string[] }> {
  const rejected: string[] = [];
  const lines: string[] = [];
  const server = await serveMetrics(registry, '127.0.0.1', 0, () => true, undefined, { log: (l) => lines.push(l), onRejected: (r) => rejected.push(r), ...limits });
  cleanups.push(() => server.close());
  return { server, port: Number(new URL(server.url).port), rejected, lines };
}

/** GET /metrics from `localAddress`, as Prometheus would. */
function scrape(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', localAddress, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the metrics port', () => {
  it('400 idle sockets from 8 addresses: at most 64 held, 16 per address, a scraper from another address is served, and idle ones are cut at the header deadline', async () => {
    const { registry } = countedRegistry();
    const { port, rejected } = await startMetricsServer(registry, { limits: { headersTimeoutMs: 3000 } });
    const sockets: Socket[] = [];
    for (let a = 2; a < 10; a++) {
      for (let i = 0; i < 50; i++) {
        const s = connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${a}` });
        s.on('error', () => undefined);
        s.resume();
        sockets.push(s);
      }
    }
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
    });
    // until the server has accepted (or refused) them all
    await sleep(1500);
    const held = sockets.filter((s) => !s.destroyed && !s.readableEnded && !s.connecting);
    const perAddress = new Map<string, number>();
    for (const s of held) perAddress.set(s.localAddress!, (perAddress.get(s.localAddress!) ?? 0) + 1);
    console.log(`idle flood: ${sockets.length} sockets, ${held.length} held by the server, per address ${JSON.stringify(Object.fromEntries(perAddress))}`);
    expect(held.length).toBeLessThanOrEqual(64);
    for (const n of perAddress.values()) expect(n).toBeLessThanOrEqual(16);
    expect(await scrape(port, '127.0.0.1')).toBe(200);
    // refused at once, or evicted when a lighter address came
    expect(rejected.filter((r) => r === 'metrics_busy' || r === 'metrics_evicted').length).toBeGreaterThanOrEqual(400 - 64);
    // nothing sent: cut once the header deadline passes (checked every second)
    await sleep(3000);
    expect(sockets.filter((s) => !s.destroyed && !s.readableEnded && !s.connecting)).toHaveLength(0);
    expect(rejected).toContain('metrics_timeout');
  });

  it('2,000 pipelined GET /metrics on one connection: a bounded number of renders and responses', async () => {
    const { registry, renders } = countedRegistry();
    const { port } = await startMetricsServer(registry);
    await scrape(port, '127.0.0.1'); // warm up
    const before = { renders: renders(), cpu: process.cpuUsage(), rss: process.memoryUsage().rss };
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    const ask = Buffer.from('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(2000));
    s.write(ask);
    let bytes = 0;
    let head = '';
    s.on('data', (d: Buffer) => {
      bytes += d.byteLength;
      if (head.length < 1 << 20) head += d.toString('latin1');
    });
    await closed(s);
    const cpu = process.cpuUsage(before.cpu);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const rssMb = (process.memoryUsage().rss - before.rss) / 2 ** 20;
    const ok = (head.match(/HTTP\/1\.1 200/g) ?? []).length;
    console.log(
      `pipelined flood: ${ask.byteLength} bytes sent, ${bytes} bytes of responses (${ok} × 200 seen), ${renders() - before.renders} renders, ${cpuMs.toFixed(0)} ms CPU, RSS ${rssMb >= 0 ? '+' : ''}${rssMb.toFixed(1)} MB`,
    );
    expect(renders() - before.renders).toBeLessThanOrEqual(10);
    expect(ok).toBeLessThanOrEqual(100);
    expect(bytes).toBeLessThan(4 * 2 ** 20);
  });

  it('a keep-alive client asking again and again is cut after the connection lifetime, each time after a whole response with Connection: close', async () => {
    // a render takes 300 ms, so a request is nearly always in flight when the lifetime ends
    const { registry } = countedRegistry();
    const render = registry.metrics.bind(registry);
    registry.metrics = async () => (await sleep(300), render());
    const { port, rejected } = await startMetricsServer(registry, { limits: { connectionLifetimeMs: 1000 } });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    /** When each connection the client used was opened and closed. */
    const lives = new Map<Socket, { opened: number; closed?: number }>();
    const answers: { status: number; connection: string | undefined }[] = [];
    const t0 = performance.now();
    while (performance.now() - t0 < 2600) {
      answers.push(
        await new Promise((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, path: '/metrics', localAddress: '127.0.0.2', agent }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
          });
          req.on('socket', (socket: Socket) => {
            if (lives.has(socket)) return;
            const life: { opened: number; closed?: number } = { opened: performance.now() };
            lives.set(socket, life);
            socket.once('close', () => (life.closed = performance.now()));
          });
          req.on('error', reject);
          req.end();
        }),
      );
    }
    // meanwhile a scraper from another address
    expect(await scrape(port, '127.0.0.1')).toBe(200);
    const ms = [...lives.values()].filter((l) => l.closed !== undefined).map((l) => l.closed! - l.opened);
    console.log(`keep-alive client: ${answers.length} answers over ${lives.size} connections, those closed lived ${ms.map((t) => t.toFixed(0)).join(', ')} ms (lifetime 1000 ms, 300 ms a render)`);
    // every request answered in full, none cut in the middle
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(lives.size).toBeGreaterThanOrEqual(2);
    expect(ms.length).toBeGreaterThanOrEqual(1);
    for (const t of ms) expect(t).toBeLessThan(1000 + 300 + 300);
    // a connection's last answer says so
    expect(answers.filter((a) => a.connection === 'close').length).toBeGreaterThanOrEqual(ms.length);
    // the end of a connection's life is no refusal
    expect(rejected).toEqual([]);
  });

  it('an idle kept-alive connection is closed when its lifetime ends, not at the keep-alive timeout', async () => {
    const { registry } = countedRegistry();
    const { port } = await startMetricsServer(registry, { limits: { connectionLifetimeMs: 1000 } });
    const s = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    s.on('error', () => undefined);
    cleanups.push(() => void s.destroy());
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    const t0 = performance.now();
    s.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const cut = await Promise.race([closed(s).then(() => performance.now() - t0), sleep(3000).then(() => Infinity)]);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toMatch(/keep-alive/i); // answered as a kept connection: 65 s idle were allowed
    expect(cut).toBeGreaterThan(800);
    expect(cut).toBeLessThan(1800);
  });

  it('a scraper asking now and then gets a fresh render each time', async () => {
    const { registry, renders } = countedRegistry();
    const { port } = await startMetricsServer(registry);
    for (let i = 0; i < 3; i++) expect(await scrape(port, '127.0.0.1')).toBe(200);
    expect(renders()).toBe(3);
  });
});
