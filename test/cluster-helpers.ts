/**
 * Helpers for tests that run a real coordinator and real worker processes on 127.0.0.1:
 * spawn, read their output line by line, wait for a line, kill.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { afterEach, expect } from 'vitest';
import { stringify } from 'yaml';
import type { Summary } from '../coordinator/job.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { weightLayout } from '../shared/model/layout.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { PROTOCOL_VERSION } from '../shared/protocol/schemas.js';
import { decodeMessage, encodeMessage } from '../shared/protocol/codec.js';
import { COORDINATOR_BIN, ROOT } from './helpers.js';

export const WORKER_BIN = fileURLToPath(new URL('../bin/worker.js', import.meta.url));
export const TOKEN = 'test-token-0123456789abcdef';

export class Proc {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  private waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const line of parts) this.line(line);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  private line(line: string): void {
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => {
      const m = line.match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }

  get output(): string {
    return this.lines.join('\n');
  }

  /** Resolves with the first line (already seen or future) that matches. */
  waitFor(re: RegExp, timeoutMs = 300_000): Promise<RegExpMatchArray> {
    for (const line of this.lines) {
      const m = line.match(re);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no line matching ${re} within ${timeoutMs} ms; output:\n${this.output}`)), timeoutMs);
      const waiter = {
        re,
        resolve: (m: RegExpMatchArray) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      this.waiters.push(waiter);
      void this.exited.then(() => {
        if (this.waiters.includes(waiter)) {
          clearTimeout(timer);
          reject(new Error(`${this.name} exited before printing ${re}; output:\n${this.output}`));
        }
      });
    });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null) this.child.kill(signal);
  }
}

/** `track`: registers a process a test starts; every one is killed after its test. Call at file or describe level. */
/** A self-signed certificate and key for 127.0.0.1 in `dir` (openssl): what wss:// tests serve and trust. */
export function selfSignedCertificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

export function trackProcesses(): (p: Proc) => Proc {
  const procs: Proc[] = [];
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill();
  });
  return (p) => (procs.push(p), p);
}

export function spawnNode(name: string, bin: string, args: string[], env: Record<string, string> = {}, cwd = ROOT): Proc {
  const child = spawn(process.execPath, [bin, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Proc(name, child);
}

/** A temp folder with the token file, a demo CSV of `rows` rows and a job config. */
export function jobFolder(rows: number, config: Record<string, unknown>): { dir: string; configFile: string; dataFile: string; tokenFile: string; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-cluster-'));
  const dataFile = join(dir, 'data.csv');
  writeFileSync(dataFile, telcoDemoCsv(rows, 3));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const configFile = join(dir, 'job.yaml');
  writeFileSync(configFile, stringify({ ...config, data: { ...(config['data'] as object), path: dataFile } }));
  return { dir, configFile, dataFile, tokenFile, out: join(dir, 'run') };
}

export function startCoordinator(configFile: string, args: string[] = []): Proc {
  return spawnNode('coordinator', COORDINATOR_BIN, ['start', '--config', configFile, '--listen', '127.0.0.1:0', ...args]);
}

export async function coordinatorUrl(coordinator: Proc): Promise<string> {
  return (await coordinator.waitFor(/listening for worker nodes on (wss?:\/\/\S+)/))[1]!;
}

/** A worker node process on wasm, unless `args` names another backend (the last --backend counts). */
export function startWorker(name: string, url: string, tokenFile: string, args: string[] = [], env: Record<string, string> = {}): Proc {
  return spawnNode(name, WORKER_BIN, ['start', '--connect', url, '--token-file', tokenFile, '--name', name, '--backend', 'wasm', ...args], env);
}

/** A job with one worker node process (`w1`): both exit 0; the run's summary. */
export async function runWithOneNode(job: { configFile: string; tokenFile: string; out: string }, track: (p: Proc) => Proc, workerArgs: string[] = []): Promise<Summary> {
  const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
  const worker = track(startWorker('w1', await coordinatorUrl(coordinator), job.tokenFile, workerArgs));
  expect(await coordinator.exited, coordinator.output).toBe(0);
  expect(await worker.exited, worker.output).toBe(0);
  return readSummary(job.out);
}

/**
 * A job on worker node processes started one after another, each joining before the next starts
 * (so node order, and with it the split, is the same in every run); checks that all exit 0.
 */
export async function runWithNodes(job: { configFile: string; tokenFile: string; out: string }, names: readonly string[], track: (p: Proc) => Proc, workerArgs: string[] = []): Promise<{ summary: Summary; coordinator: Proc; workers: Proc[] }> {
  const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
  const url = await coordinatorUrl(coordinator);
  const workers: Proc[] = [];
  for (const name of names) {
    workers.push(track(startWorker(name, url, job.tokenFile, ['--metrics-listen', 'off', ...workerArgs])));
    await coordinator.waitFor(new RegExp(`\\(${name}, `), 120_000);
  }
  expect(await coordinator.exited, coordinator.output).toBe(0);
  for (const w of workers) expect(await w.exited, w.output).toBe(0);
  return { summary: readSummary(job.out), coordinator, workers };
}

/**
 * A job on one worker node with `--devices 2` (wasm unless `workerArgs` says otherwise), one of
 * whose device processes is killed with SIGKILL once the node has logged step `atStep`; checks
 * that the coordinator and the node exit 0 and that the node saw the loss. The node's output.
 */
export async function runKillingOneDevice(job: { configFile: string; tokenFile: string; out: string }, atStep: number, track: (p: Proc) => Proc, workerArgs: string[] = []): Promise<Proc> {
  const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
  const node = track(startWorker('w1', await coordinatorUrl(coordinator), job.tokenFile, ['--devices', '2', '--verbose', ...workerArgs]));
  const pid = Number((await node.waitFor(/device 1: pid (\d+)/, 120_000))[1]);
  await node.waitFor(new RegExp(`^\\[worker\\] step ${atStep}:`, 'm'), 600_000);
  process.kill(pid, 'SIGKILL');
  expect(await coordinator.exited, coordinator.output).toBe(0);
  expect(await node.exited, node.output).toBe(0);
  expect(node.output).toMatch(/device 1 lost \(killed by SIGKILL\)/);
  return node;
}

/**
 * A job on two worker node processes (`workerArgs` for both), of which `victim` is killed with
 * SIGKILL once it has logged step `atStep`; checks that the coordinator and the survivor exit 0
 * and that the victim's loss was seen. `track` registers each process (to be killed after the test).
 */
export async function runKillingOneOfTwoNodes(job: { configFile: string; tokenFile: string; out: string }, atStep: number, track: (p: Proc) => Proc, workerArgs: string[] = []): Promise<{ coordinator: Proc; survivor: Proc }> {
  const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
  const url = await coordinatorUrl(coordinator);
  const victim = track(startWorker('victim', url, job.tokenFile, ['--verbose', ...workerArgs]));
  const survivor = track(startWorker('survivor', url, job.tokenFile, workerArgs));
  await victim.waitFor(new RegExp(`^\\[worker\\] step ${atStep}:`, 'm'), 600_000);
  victim.kill('SIGKILL');
  expect(await coordinator.exited, coordinator.output).toBe(0);
  expect(await survivor.exited, survivor.output).toBe(0);
  expect(coordinator.output).toMatch(/\(victim\) left at step \d+: disconnected/);
  return { coordinator, survivor };
}

export function readSummary(out: string): Summary {
  return JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
}

/** The trained weights as the run saved them (model/weights.bin, flat float32 in layer order). */
/**
 * A run's saved weights in flat-layout order. weights.bin holds them in tfjs's save order
 * (trainable weights first, then batch norm's statistics), named in model.json's manifest.
 */
export function readRunWeights(out: string): Float32Array {
  const bytes = readFileSync(join(out, 'model', 'weights.bin'));
  const saved = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const manifest = (JSON.parse(readFileSync(join(out, 'model', 'model.json'), 'utf8')) as { weightsManifest: { weights: { name: string; shape: number[] }[] }[] }).weightsManifest.flatMap((g) => g.weights);
  const at = new Map<string, number>();
  let offset = 0;
  for (const w of manifest) {
    at.set(w.name, offset);
    offset += w.shape.reduce((a, n) => a * n, 1);
  }
  const layout = weightLayout(JSON.parse(readFileSync(join(out, 'model', 'dptrain-model.json'), 'utf8')) as ModelSpec);
  const flat = new Float32Array(layout.size);
  for (const e of layout.entries) {
    const from = at.get(e.name);
    if (from === undefined) throw new Error(`${out}: the saved model has no weight ${e.name}`);
    flat.set(saved.subarray(from, from + e.size), e.offset);
  }
  return flat;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** What a scripted node answers to its n-th step (undefined: it never answers that one). */
export interface ScriptedAnswer {
  /** Milliseconds before the answer goes out. */
  readonly delayMs?: number;
  /** Sums it claims (default: a loss of 0.5 and an accuracy of 0.5 per sample). */
  readonly lossSum?: number;
  readonly metricSums?: readonly number[];
  /** Every value of its gradient (default 1e-4: small and valid). */
  readonly value?: number;
}

/**
 * A worker node played by the test over a real WebSocket, with the token: it answers each step
 * as `answer` says (float32, whole gradients), heartbeats every 300 ms, and answers evaluations
 * with a loss of 0 and an accuracy of 1 (a lie that must never reach summary.json).
 */
export function scriptedNode(url: string, name: string, answer: (n: number, count: number) => ScriptedAnswer | undefined): { socket: WebSocket; left: Promise<string>; evaluations: () => number } {
  const socket = new WebSocket(url);
  const packr = new Packr({ useRecords: false, moreTypes: false });
  let parameters = 0;
  let features = 0;
  let answered = 0;
  let evaluations = 0;
  let dropped = '';
  socket.on('open', () => socket.send(encodeMessage({ type: 'hello', version: PROTOCOL_VERSION, token: TOKEN, name, backend: 'wasm' })));
  socket.on('error', () => undefined);
  const beat = setInterval(() => socket.readyState === socket.OPEN && socket.send(encodeMessage({ type: 'heartbeat', sentAt: Date.now() })), 300);
  socket.on('message', (data: Buffer) => {
    const m = decodeMessage(data);
    if (m.type === 'job') ({ parameters, features } = m);
    if (m.type === 'error') dropped = m.message;
    if (m.type === 'evaluate') {
      evaluations++;
      const count = m.x.length / features;
      socket.send(encodeMessage({ type: 'evaluation', id: m.id, count, lossSum: 0, metricSums: [count] }));
    }
    if (m.type !== 'step') return;
    const count = m.rows.length + m.x.length / features;
    const a = answer(answered++, count);
    if (a === undefined) return;
    const gradient = new Float32Array(parameters).fill(a.value ?? 1e-4);
    const frame = packr.pack({
      type: 'gradient',
      step: m.step,
      count,
      lossSum: a.lossSum ?? 0.5 * count,
      metricSums: a.metricSums ?? [count / 2],
      computeMs: 1,
      dtype: 'float32',
      scaleExp: 0,
      parts: 0,
      gradient: new Uint8Array(gradient.buffer),
    });
    setTimeout(() => socket.readyState === socket.OPEN && socket.send(frame), a.delayMs ?? 0);
  });
  const left = new Promise<string>((resolve) =>
    socket.on('close', () => {
      clearInterval(beat);
      resolve(dropped);
    }),
  );
  return { socket, left, evaluations: () => evaluations };
}
