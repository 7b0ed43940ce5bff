/**
 * A node's devices (`worker start --devices N`): one compute process per device (a GPU, or a
 * CPU core on wasm), presented to the node as one BatchEngine. The node's part of a step is
 * split among the devices by the proportional balance the coordinator uses for participants
 * (shared/plan/balance.ts), batch norm's virtual batches whole; their gradients are averaged by
 * sample count here, so one gradient per node goes to the coordinator (Horovod's hierarchical
 * allreduce: the coordinator's traffic grows with nodes, not devices). A device process that
 * dies has its samples recomputed by the others in the same step and is restarted for the
 * steps after; only when none is left does the step fail (and the coordinator then treats the
 * node as lost).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BackendChoice } from '../shared/backend-choice.js';
import { WorkerError } from '../shared/errors.js';
import { weightLayout, type WeightLayout } from '../shared/model/layout.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { balancedCounts, SpeedModel, type TimeModel } from '../shared/plan/balance.js';
import { splitCounts } from '../shared/plan/split-counts.js';
import { gradientOut, type BatchEngine, type BatchGradient, type BatchSums } from '../compute/engine.js';
import { PartSums } from '../compute/part-sums.js';
import type { DeviceReply, DeviceRequest } from './device-messages.js';

export interface DeviceGroupOptions {
  readonly backend: BackendChoice;
  /** Device ids (CUDA device numbers; indices into WebGPU's adapters; labels on wasm and cpu). */
  readonly devices: readonly number[];
  readonly log: (line: string) => void;
  /** Restarts of each device's process after it dies (default 3). */
  readonly restarts?: number;
  /** The WebGPU adapters' names, in Dawn's order (for DPTRAIN_WEBGPU_ADAPTER). */
  readonly adapterNames?: readonly string[];
}

type Answer = Exclude<DeviceReply, { type: 'ready' } | { type: 'failed' }>;

/** The environment that gives a device process its device. */
export function deviceEnvironment(backend: BackendChoice, device: number, adapterNames: readonly string[] = []): Record<string, string> {
  const env: Record<string, string> = { DPTRAIN_DEVICE_BACKEND: backend };
  if (backend === 'tensorflow' || backend === 'auto') env['CUDA_VISIBLE_DEVICES'] = String(device);
  const name = adapterNames[device];
  if ((backend === 'webgpu' || backend === 'auto') && name !== undefined) env['DPTRAIN_WEBGPU_ADAPTER'] = name;
  return env;
}

/** The device process's script: beside this file when built; dist's when run from source (tests). */
function deviceEntry(): string {
  for (const rel of ['./device-process.js', '../dist/worker/device-process.js']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new WorkerError('the device process entry dist/worker/device-process.js is missing: run `npm run build` first');
}

/** One device's process: requests by id, readiness, speed, the weights it holds. */
class DeviceProcess {
  readonly speed = new SpeedModel();
  /** Restarts left after it dies. */
  restartsLeft = 0;
  ready = false;
  alive = true;
  backend = '';
  adapter: string | undefined;
  /** The version of the weights it holds (-1: none), and of the job. */
  weightsVersion = -1;
  jobVersion = -1;
  private child: ChildProcess;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (a: Answer) => void; reject: (e: Error) => void }>();
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(
    readonly device: number,
    private readonly env: Record<string, string>,
    private readonly onExit: (device: DeviceProcess, why: string) => void,
  ) {
    this.child = this.spawn();
  }

  /** Resolves when the backend has started; rejects if the process fails or dies first. */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (!this.alive) return Promise.reject(new WorkerError(`device ${this.device} is not running`));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  request(message: DeviceRequest & { id: number }): Promise<Answer> {
    if (!this.alive) return Promise.reject(new WorkerError(`device ${this.device} is not running`));
    return new Promise((resolve, reject) => {
      this.pending.set(message.id, { resolve, reject });
      this.child.send(message, (err) => {
        // a process that died is reported by its exit (with the signal or code) if that comes soon
        if (err) setTimeout(() => this.fail(`cannot send to it: ${err.message}`), 2000).unref();
      });
    });
  }

  newId(): number {
    return this.nextId++;
  }

  post(message: DeviceRequest): void {
    if (this.alive) this.child.send(message, () => undefined);
  }

  /** Starts a fresh process in place of a dead one. */
  restart(): void {
    this.alive = true;
    this.ready = false;
    this.weightsVersion = -1;
    this.jobVersion = -1;
    this.child = this.spawn();
  }

  kill(): void {
    this.alive = false;
    this.child.kill('SIGKILL');
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private spawn(): ChildProcess {
    const child = fork(deviceEntry(), [], { env: { ...process.env, ...this.env }, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (reply: DeviceReply) => this.receive(reply));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.fail(signal ? `killed by ${signal}` : `exited with code ${code}`);
    });
    child.on('error', (err) => {
      if (this.child === child) this.fail(err.message);
    });
    return child;
  }

  private receive(reply: DeviceReply): void {
    if (reply.type === 'ready') {
      this.ready = true;
      this.backend = reply.backend;
      this.adapter = reply.adapter;
      for (const w of this.readyWaiters.splice(0)) w.resolve();
      return;
    }
    if (reply.type === 'failed') {
      this.fail(`its backend did not start: ${reply.message}`);
      return;
    }
    const waiter = this.pending.get(reply.id);
    if (!waiter) return;
    this.pending.delete(reply.id);
    if (reply.type === 'error') waiter.reject(new WorkerError(`device ${this.device}: ${reply.message}`));
    else waiter.resolve(reply);
  }

  private fail(why: string): void {
    if (!this.alive) return;
    this.alive = false;
    this.ready = false;
    const error = new WorkerError(`device ${this.device} (pid ${this.child.pid}) ${why}`);
    for (const w of this.readyWaiters.splice(0)) w.reject(error);
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    this.child.kill('SIGKILL');
    this.onExit(this, why);
  }
}

/** The node's batch: features and targets, row-major. */
interface Batch {
  readonly x: Float32Array;
  readonly y: Float32Array;
  readonly features: number;
  readonly outputs: number;
  /** Each sample's weight in an evaluation's loss (data.sampleWeight), or absent. */
  readonly weights?: Float32Array;
}

/** The result of a part of a step: sums over its samples and its gradient (a mean). */
interface PartResult {
  readonly count: number;
  readonly gradient: Float32Array;
  readonly lossSum: number;
  readonly metricSums: number[];
}

export class DeviceGroup {
  private readonly processes: DeviceProcess[];
  private closed = false;
  /** The job the devices run now, and its version (a new job each time the node gets one). */
  private spec: ModelSpec | undefined;
  private jobVersion = -1;
  private weights: Float32Array | undefined;
  private weightsVersion = -1;

  private constructor(private readonly options: DeviceGroupOptions) {
    this.processes = options.devices.map((d) => new DeviceProcess(d, deviceEnvironment(options.backend, d, options.adapterNames), (p, why) => this.lost(p, why)));
  }

  /** Starts one process per device and waits for their backends; fails only if none starts. */
  static async start(options: DeviceGroupOptions): Promise<DeviceGroup> {
    if (options.devices.length === 0) throw new WorkerError('--devices names no device');
    // no restarts while starting: a device whose backend does not start is left out
    const group = new DeviceGroup(options);
    const results = await Promise.allSettled(group.processes.map((p) => p.whenReady()));
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
    if (failures.length === results.length) {
      group.close();
      throw new WorkerError(`no device process started: ${failures.join('; ')}`);
    }
    for (const f of failures) options.log(`warning: ${f}; going on with the others`);
    for (const p of group.processes) p.restartsLeft = options.restarts ?? 3;
    return group;
  }

  /** The backend the devices run (the first live one's) and its adapter. */
  get backend(): string {
    return this.live()[0]?.backend ?? 'none';
  }

  get adapter(): string | undefined {
    return this.live()[0]?.adapter;
  }

  /** Live devices' ids and pids (tests kill one). */
  pids(): { device: number; pid: number | undefined }[] {
    return this.live().map((p) => ({ device: p.device, pid: p.pid }));
  }

  /** The engine of a job: its steps are computed by the devices. */
  engine(spec: ModelSpec): BatchEngine {
    this.spec = spec;
    this.jobVersion++;
    this.weights = undefined;
    this.weightsVersion = -1;
    return new DeviceGroupEngine(this, spec);
  }

  setWeights(flat: Float32Array): void {
    this.weights = flat.slice();
    this.weightsVersion++;
  }

  close(): void {
    this.closed = true;
    for (const p of this.processes) p.kill();
  }

  /** Sums of a batch computed by the live devices, split by balance, whole virtual batches each. */
  async gradient(x: Float32Array, y: Float32Array, count: number, parameters: number, rows: BatchRows | undefined): Promise<PartResult> {
    const all = Int32Array.from({ length: count }, (_, i) => i);
    return this.computePart(all, { x, y, features: count > 0 ? x.length / count : 0, outputs: count > 0 ? y.length / count : 0 }, parameters, rows, 'gradient');
  }

  async evaluate(x: Float32Array, y: Float32Array, count: number, parameters: number, weights?: Float32Array): Promise<BatchSums> {
    const all = Int32Array.from({ length: count }, (_, i) => i);
    const r = await this.computePart(all, { x, y, features: count > 0 ? x.length / count : 0, outputs: count > 0 ? y.length / count : 0, ...(weights ? { weights } : {}) }, parameters, undefined, 'evaluate');
    return { count: r.count, lossSum: r.lossSum, metricSums: r.metricSums };
  }

  /** Samples `indices` (of the node's batch) over the live devices; a device lost on the way has its share recomputed by the rest. */
  private async computePart(indices: Int32Array, batch: Batch, parameters: number, rows: BatchRows | undefined, kind: 'gradient' | 'evaluate'): Promise<PartResult> {
    const devices = await this.usable();
    const shares = this.split(indices, devices, rows?.groups);
    const results = await Promise.all(
      shares.map(async (share, k) => {
        if (share.length === 0) return undefined;
        const device = devices[k]!;
        try {
          return await this.run(device, share, batch, rows, kind);
        } catch (err) {
          // an error its engine reported (the device still runs) would recur anywhere: the step fails
          if (this.closed || device.alive) throw err;
          // the device is gone: its samples go to the others, in this step
          this.options.log(`${(err as Error).message}; its ${share.length} sample(s) of this ${kind === 'gradient' ? 'step' : 'evaluation'} go to the other devices`);
          return this.computePart(share, batch, parameters, rows, kind);
        }
      }),
    );
    return combine(results.filter((r): r is PartResult => r !== undefined), parameters, kind === 'gradient');
  }

  /** The live devices, ready, with the current job; waits for restarting ones only when none is ready. */
  private async usable(): Promise<DeviceProcess[]> {
    let ready = this.live().filter((p) => p.ready);
    if (ready.length === 0) {
      const starting = this.processes.filter((p) => p.alive);
      if (starting.length === 0) throw new WorkerError(`every device of this node is lost (${this.processes.length} of ${this.processes.length})`);
      await Promise.any(starting.map((p) => p.whenReady())).catch(() => undefined);
      ready = this.live().filter((p) => p.ready);
      if (ready.length === 0) throw new WorkerError('no device of this node could be started again');
    }
    // a device lost while it is given the job or weights is left out of this split
    const prepared = await Promise.allSettled(ready.map((p) => this.prepare(p)));
    const usable = ready.filter((p, i) => prepared[i]!.status === 'fulfilled' && p.alive);
    if (usable.length === 0) {
      const reason = prepared.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason as Error | undefined;
      throw new WorkerError(`no device of this node could take the job${reason ? `: ${reason.message}` : ''}`);
    }
    return usable;
  }

  /** Gives a device the current job and weights where it lacks them. */
  private async prepare(p: DeviceProcess): Promise<void> {
    if (p.jobVersion !== this.jobVersion && this.spec) {
      const answer = await p.request({ type: 'job', id: p.newId(), spec: this.spec });
      const expected = weightLayout(this.spec).size;
      if (answer.type !== 'job' || answer.parameters !== expected) throw new WorkerError(`device ${p.device} built a model of ${answer.type === 'job' ? answer.parameters : '?'} parameters, the job has ${expected}`);
      p.jobVersion = this.jobVersion;
      p.weightsVersion = -1;
    }
    if (p.weightsVersion !== this.weightsVersion && this.weights) {
      p.post({ type: 'weights', weights: this.weights });
      p.weightsVersion = this.weightsVersion;
    }
  }

  /** Which samples each device computes: counts by balance, in whole virtual batches where the model has them. */
  private split(indices: Int32Array, devices: readonly DeviceProcess[], groups: Int32Array | undefined): Int32Array[] {
    const units = unitsOf(indices, groups);
    const meanUnit = indices.length / Math.max(1, units.length);
    const models = devices.map((d) => d.speed.model());
    const counts = models.every((m) => m !== undefined)
      ? balancedCounts(units.length, models.map((m): TimeModel => ({ latency: m!.latency, perSample: m!.perSample * meanUnit })))
      : splitCounts(units.length, devices.map(() => 1));
    const shares: Int32Array[] = [];
    let next = 0;
    for (const c of counts) {
      const taken = units.slice(next, next + c);
      next += c;
      shares.push(Int32Array.from(taken.flat()));
    }
    return shares;
  }

  private async run(p: DeviceProcess, share: Int32Array, batch: Batch, rows: BatchRows | undefined, kind: 'gradient' | 'evaluate'): Promise<PartResult> {
    const { x, y, features: f, outputs: o } = batch;
    const xs = new Float32Array(share.length * f);
    const ys = new Float32Array(share.length * o);
    share.forEach((s, i) => {
      xs.set(x.subarray(s * f, (s + 1) * f), i * f);
      ys.set(y.subarray(s * o, (s + 1) * o), i * o);
    });
    const id = p.newId();
    if (kind === 'evaluate') {
      const { weights } = batch;
      const a = await p.request({ type: 'evaluate', id, x: xs, y: ys, count: share.length, ...(weights ? { weights: Float32Array.from(share, (s) => weights[s]!) } : {}) });
      if (a.type !== 'evaluate') throw new WorkerError(`device ${p.device} answered an evaluation with "${a.type}"`);
      return { count: a.count, gradient: new Float32Array(0), lossSum: a.lossSum, metricSums: a.metricSums };
    }
    const a = await p.request({
      type: 'gradient',
      id,
      x: xs,
      y: ys,
      count: share.length,
      ...(rows ? { step: rows.step, rows: Int32Array.from(share, (s) => rows.rows[s]!), ...(rows.groups ? { groups: Int32Array.from(share, (s) => rows.groups![s]!) } : {}), ...(rows.weights ? { weights: Float32Array.from(share, (s) => rows.weights![s]!) } : {}) } : {}),
    });
    if (a.type !== 'gradient') throw new WorkerError(`device ${p.device} answered a gradient with "${a.type}"`);
    p.speed.observe(a.count, a.computeMs / 1000);
    return { count: a.count, gradient: a.gradient, lossSum: a.lossSum, metricSums: a.metricSums };
  }

  private live(): DeviceProcess[] {
    return this.processes.filter((p) => p.alive);
  }

  private lost(p: DeviceProcess, why: string): void {
    if (this.closed) return;
    const left = p.restartsLeft;
    const others = this.live().length;
    this.options.log(`device ${p.device} lost (${why}); ${others} of ${this.processes.length} device(s) left${left > 0 ? `; restarting it (${left} restart(s) left)` : ''}`);
    if (left > 0) {
      p.restartsLeft = left - 1;
      setTimeout(() => {
        if (!this.closed) p.restart();
      }, 500).unref();
    }
  }
}

/** The samples of a batch in units no device may split: virtual batches (by group id, in first-seen order), else single samples. */
function unitsOf(indices: Int32Array, groups: Int32Array | undefined): number[][] {
  if (!groups) return Array.from(indices, (i) => [i]);
  const byGroup = new Map<number, number[]>();
  for (const i of indices) {
    const g = groups[i]!;
    const unit = byGroup.get(g);
    if (unit) unit.push(i);
    else byGroup.set(g, [i]);
  }
  return [...byGroup.values()];
}

/** Sums of parts: loss and metric sums add; gradients (means) average by count. */
function combine(parts: readonly PartResult[], parameters: number, withGradient: boolean): PartResult {
  const total = new PartSums();
  for (const p of parts) {
    if (withGradient && p.gradient.length !== parameters) throw new WorkerError(`a device sent ${p.gradient.length} gradient values, the job has ${parameters}`);
    total.add(withGradient ? p : { count: p.count, lossSum: p.lossSum, metricSums: p.metricSums });
  }
  if (!withGradient) return { ...total.sums(), gradient: new Float32Array(0) };
  if (parts.length === 1) return parts[0]!;
  return { ...total.sums(), gradient: total.gradientInto(new Float32Array(parameters)) };
}

/** The node's engine over its devices: the BatchEngine the node client talks to. */
class DeviceGroupEngine implements BatchEngine {
  readonly layout: WeightLayout;

  constructor(
    private readonly group: DeviceGroup,
    readonly spec: ModelSpec,
  ) {
    this.layout = weightLayout(spec);
  }

  setWeights(flat: Float32Array): void {
    this.group.setWeights(flat);
  }

  async gradient(x: Float32Array, y: Float32Array, count: number, out?: Float32Array, _onReady?: (start: number) => void, rows?: BatchRows): Promise<BatchGradient> {
    const gradient = gradientOut(this.layout.size, out);
    const r = await this.group.gradient(x, y, count, this.layout.size, rows);
    gradient.set(r.gradient);
    return { gradient, count: r.count, lossSum: r.lossSum, metricSums: r.metricSums };
  }

  evaluate(x: Float32Array, y: Float32Array, count: number, weights?: Float32Array): Promise<BatchSums> {
    return this.group.evaluate(x, y, count, this.layout.size, weights);
  }

  predict(): Promise<Float32Array> {
    return Promise.reject(new WorkerError('a node does not predict'));
  }

  dispose(): void {}
}
