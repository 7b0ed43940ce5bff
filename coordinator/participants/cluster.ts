/**
 * Cluster: the participants of a run (local lanes plus worker nodes) and their membership.
 * Nodes that connect are admitted at the next step boundary: they get the job, their shard and,
 * with their first step, the current weights. Nodes that fail are dropped and their shard is
 * re-planned over the others. Before each step the cluster makes sure enough workers are there
 * (`startWorkers` before the first, `minWorkers` after; waiting up to `waitTimeout`), and it
 * splits batches equally or by measured speed.
 *
 * Admission, shards, waiting and failure handling live together here because they all change one
 * member list and its invariant (who is in, holding which rows); the pure parts are in
 * shared/plan/ (shard-plan, balance) and stragglers.ts.
 *
 * Nodes may come and go by the thousand, so what the cluster keeps of them is bounded: the stats
 * of present participants and of the DEPARTED_KEPT most recent departures, the rest summed in
 * `departed`; join and leave lines (and failure lines) past MEMBERSHIP_LINES_PER_MINUTE a minute
 * are counted and summed up in one line.
 *
 * A token holder is not trusted to answer (SECURITY.md): a node that fails is dropped, and one of
 * the same identity (`rejoinKey`: its name and host) that connects again is held back for a
 * time that doubles with each of that identity's drops (`rejoin`), so silent nodes that rejoin
 * cannot stall step after step. The name is the node's own claim, so the drop of a node that
 * never computed a part also holds back every node from its address (`rejoinHost`) that has not
 * computed one under its name, and a new name does not escape the wait; nodes that have computed
 * parts are held back by their own drops only, so one bad node behind a NAT address does not keep
 * out the honest ones. An unmeasured node gets a small probe part, with a deadline derived from
 * the measured participants (stragglers.ts), not the whole of stepTimeout.
 */
import { performance } from 'node:perf_hooks';
import { addressKey } from '../../shared/admission.js';
import { ClusterError, WaitCancelledError } from '../../shared/errors.js';
import { SpeedModel, balancedCounts, type TimeModel } from '../../shared/plan/balance.js';
import { missingRanges, partitionRows } from '../../shared/plan/shard-plan.js';
import { splitCounts } from '../../shared/plan/split-plan.js';
import { FramePool, type PooledFrame } from '../../shared/protocol/frame-pool.js';
import type { TrainingMetrics } from '../metrics.js';
import type { NodeContext, RemoteNode } from './remote-node.js';
import { ParticipantFault, type DepartedStats, type FailureReason, type LocalLanes, type Participant, type ParticipantGroup, type ParticipantStats } from './participant.js';
import { StragglerWatch, partDeadlineMs, type DeadlineOptions, type MeasuredPeers, type StragglerOptions } from './stragglers.js';

export type Balance = 'auto' | 'proportional' | 'equal';

export interface ClusterOptions {
  /** Worker nodes required before a step runs (threads not counted). */
  readonly minWorkers: number;
  /** Worker nodes required before the first step (default: minWorkers). */
  readonly startWorkers?: number | undefined;
  /**
   * Participants (threads and nodes) a step needs (robust aggregation's cluster.minVotes: fewer
   * votes cannot outvote a bad one, so the step waits for more, as for minWorkers). Default 1.
   */
  readonly minVotes?: { readonly votes: number; readonly aggregation: string } | undefined;
  readonly waitTimeoutMs: number;
  readonly balance: Balance;
  readonly log: (line: string) => void;
  /** Training rows (for the shard plan). */
  readonly trainRows: number;
  readonly metrics?: TrainingMetrics | undefined;
  /** When to drop a slow node (default: never). */
  readonly straggler?: StragglerOptions;
  /** Per-node part deadlines (default: stepTimeout for every part). */
  readonly deadline?: DeadlineOptions;
  /** Hears joins, departures, failures and every part used (the live run page). */
  readonly observer?: ClusterObserver | undefined;
  /** How long a node whose identity was dropped waits before it takes part again (default: REJOIN_BACKOFF). */
  readonly rejoin?: RejoinBackoff;
  /** A node's identity for the rejoin wait (default: rejoinKey, its name and host). */
  readonly rejoinKey?: (node: Pick<RemoteNode, 'name' | 'address'>) => string;
}

/** The wait before a dropped identity takes part again: `baseMs` after the first drop, doubling with each further drop, at most `maxMs`. */
export interface RejoinBackoff {
  readonly baseMs: number;
  readonly maxMs: number;
}

export const REJOIN_BACKOFF: RejoinBackoff = { baseMs: 1000, maxMs: 300_000 };
/** Identities (and hosts) whose drops are remembered, and identities known to have computed parts (the oldest are forgotten past this). */
export const REJOIN_KEPT = 10_000;

/**
 * A node's identity for the rejoin wait: its name and host (the port changes with every
 * connection). The name is the node's own claim, so a token holder could escape this wait by
 * changing it: nodes that never computed a part also wait for their host's (rejoinHost); the host
 * alone would hold back honest nodes that share a machine or a NAT.
 */
export function rejoinKey(node: Pick<RemoteNode, 'name' | 'address'>): string {
  const host = node.address.replace(/:\d+$/, '');
  return `${node.name}@${host}`;
}

/** A node's host for the rejoin wait of nodes that never computed a part: its address without the port, an IPv6 /64 as one (addressKey). */
export function rejoinHost(node: Pick<RemoteNode, 'address'>): string {
  return addressKey(node.address.replace(/:\d+$/, ''));
}

/** The wait after an identity's `drops`-th drop (0 for none). */
export function rejoinDelayMs(drops: number, backoff: RejoinBackoff): number {
  return drops <= 0 ? 0 : Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(drops - 1, 52));
}

/** What the cluster tells an observer, synchronously and on the training path: keep it cheap. */
export interface ClusterObserver {
  joined?(node: { readonly id: string; readonly name: string; readonly backend: string; readonly adapter: string | undefined; readonly devices: number; readonly address: string }): void;
  left?(id: string, step: number, why: string, remaining: number): void;
  failed?(id: string, step: number, fault: ParticipantFault, outcome: string): void;
  /** A participant's part of `step` was used: `samples` in `seconds`. */
  part?(id: string, step: number, samples: number, seconds: number): void;
}

/** Departed nodes whose own stats are kept (the most recent departures); older ones are summed in `departed`. */
export const DEPARTED_KEPT = 32;
/** Join, leave and failure lines logged one by one in a minute (each); past that they are counted and summed up in one line. */
export const MEMBERSHIP_LINES_PER_MINUTE = 60;
const MINUTE_MS = 60_000;

/**
 * A budget for lines that can come by the thousand (nodes joining and leaving): the first
 * `perMinute` of each minute pass; the rest are counted by kind, and `summary` gets the counts
 * when the minute is over or at `flush`, so the log says what happened without a line each.
 */
export class MinuteBudget<K extends string> {
  private started = -Infinity;
  private passed = 0;
  private held = new Map<K, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly perMinute: number,
    private readonly summary: (held: ReadonlyMap<K, number>) => void,
  ) {}

  /** Whether one more line of `kind` may be written now; if not, it is counted for the summary. */
  admit(kind: K): boolean {
    const now = Date.now();
    if (now - this.started >= MINUTE_MS) {
      this.flush();
      this.started = now;
      this.passed = 0;
    }
    if (this.passed < this.perMinute) {
      this.passed++;
      return true;
    }
    this.held.set(kind, (this.held.get(kind) ?? 0) + 1);
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.started + MINUTE_MS - now);
      this.timer.unref();
    }
    return false;
  }

  /** Hands the counts held back so far to `summary` (the minute is over, or the run ends). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.held.size === 0) return;
    const held = this.held;
    this.held = new Map();
    this.summary(held);
  }
}

/** Drops per key (an identity or a host) and when it may take part again (Date.now() ms); REJOIN_KEPT keys at most, the least recently dropped forgotten first. */
class DropLog {
  private readonly drops = new Map<string, { count: number; until: number }>();

  /** When `key` may take part again (0: now). */
  until(key: string): number {
    return this.drops.get(key)?.until ?? 0;
  }

  /** Counts a drop of `key`: it waits rejoinDelayMs(its drops) from now. */
  add(key: string, backoff: RejoinBackoff): void {
    const count = (this.drops.get(key)?.count ?? 0) + 1;
    this.drops.delete(key); // re-inserted last: the map's order is the eviction order
    this.drops.set(key, { count, until: Date.now() + rejoinDelayMs(count, backoff) });
    if (this.drops.size > REJOIN_KEPT) this.drops.delete(this.drops.keys().next().value!);
  }
}

/** Forgetting factor of the per-participant speed models (per observation). */
const SPEED_DECAY = 0.9;
/** Steps a participant may go without samples under proportional balance before it is re-measured. */
const PROBE_EVERY = 16;
/** An unmeasured participant's part, while others are measured: this fraction of an equal share (at least one unit). */
const NEWCOMER_SHARE = 1 / 16;

export class Cluster implements ParticipantGroup {
  /** Present participants and the DEPARTED_KEPT most recently departed nodes, in the order they came. */
  readonly stats = new Map<string, ParticipantStats>();
  /** Departed nodes folded out of `stats`, summed. */
  readonly departed: DepartedStats = { nodes: 0, samples: 0, steps: 0, failures: 0 };
  /** Ids of the departed nodes still in `stats`, the earliest departure first. */
  private readonly departedIds: string[] = [];
  /** Participant failures by reason. */
  readonly failures = new Map<FailureReason, number>();
  private nodes: RemoteNode[] = [];
  private joining: RemoteNode[] = [];
  private readonly speeds = new Map<string, SpeedModel>();
  private readonly warmedUp = new Set<string>();
  /** Seconds each local thread took for its first part (its warm-up). */
  private readonly warmUps = new Map<string, number>();
  private readonly idleSteps = new Map<string, number>();
  private weights: Float32Array = new Float32Array(0);
  private version = -1;
  private readonly weightFrames = new FramePool();
  private encodedWeights: { version: number; frame: PooledFrame } | undefined;
  private step = 0;
  private wake: (() => void) | undefined;
  /**
   * Where the run's membership stands: no step has asked for participants yet (startWorkers
   * applies), ready() is waiting for worker nodes, or steps have their participants (minWorkers
   * applies).
   */
  private phase: 'starting' | 'waiting' | 'training' = 'starting';
  /** cancelWait() was called: a wait for nodes ends with WaitCancelledError. */
  private cancelled = false;
  private nextNode = 1;
  /** Membership changed since the last shard plan. */
  private dirty = false;
  private readonly stragglers: StragglerWatch | undefined;
  /** Part times of the latest step (measured parts only), for the straggler check. */
  private stepTimes: { step: number; times: Map<string, number>; checked: boolean } = { step: -1, times: new Map(), checked: true };
  private readonly membershipLines: MinuteBudget<'joined' | 'left'>;
  private readonly failureLines: MinuteBudget<FailureReason>;
  /** Drops per node identity (rejoinKey). */
  private readonly drops = new DropLog();
  /** Drops per host (rejoinHost) of nodes that never computed a part under their identity. */
  private readonly hostDrops = new DropLog();
  /** Identities that have computed a part (REJOIN_KEPT at most, the least recent forgotten first): their host's drops do not hold them back. */
  private readonly proven = new Set<string>();
  /** Nodes admitted once their identity's rejoin wait is over. */
  private held: { node: RemoteNode; until: number }[] = [];

  constructor(
    /** This machine's lanes: Piscina threads or the coordinator's own thread (none: nodes only). */
    readonly local: LocalLanes | undefined,
    private readonly options: ClusterOptions,
  ) {
    this.stragglers = options.straggler ? new StragglerWatch(options.straggler) : undefined;
    this.membershipLines = new MinuteBudget(MEMBERSHIP_LINES_PER_MINUTE, (held) =>
      options.log(`... and ${held.get('joined') ?? 0} more node(s) joined, ${held.get('left') ?? 0} more left in the last minute (not logged one by one; summary.json counts them all)`),
    );
    this.failureLines = new MinuteBudget(MEMBERSHIP_LINES_PER_MINUTE, (held) =>
      options.log(`... and ${[...held.values()].reduce((a, n) => a + n, 0)} more failed part(s) in the last minute (${[...held].map(([reason, n]) => `${reason} ${n}`).join(', ')}; not logged one by one; summary.json counts them by reason)`),
    );
    for (const p of local?.participants ?? []) this.track(p, p.id, local!.backend);
    if (local) options.metrics?.backend('thread', local.backend);
    this.countParticipants();
  }

  private countParticipants(): void {
    this.options.metrics?.participants('thread', this.local?.participants.length ?? 0);
    this.options.metrics?.participants('node', this.nodes.length);
  }

  /** What a node needs from the run (its job, timings); weights are read lazily. */
  nodeContext(base: Omit<NodeContext, 'weightsFrame' | 'deadlineMs'>): NodeContext {
    const deadline = this.options.deadline;
    return {
      ...base,
      weightsFrame: (version) => this.weightsFrame(version),
      ...(deadline ? { deadlineMs: (id: string, samples: number) => partDeadlineMs(this.speeds.get(id)?.model(), samples, deadline, this.measuredModels()) } : {}),
    };
  }

  /** The speed models of the measured participants and the slowest thread's warm-up (for an unmeasured node's deadline). */
  private measuredModels(): MeasuredPeers {
    const models: TimeModel[] = [];
    for (const speed of this.speeds.values()) {
      const model = speed.model();
      if (model) models.push(model);
    }
    return { models, warmUpSeconds: Math.max(0, ...this.warmUps.values()) };
  }

  /** The "weights" message of `version`, encoded once for all the nodes that need it, in reused memory. */
  private weightsFrame(version: number): PooledFrame {
    if (version !== this.version) throw new ClusterError(`weights version ${version} was asked for, the coordinator has ${this.version}`);
    if (this.encodedWeights?.version !== version) {
      this.encodedWeights?.frame.release();
      this.encodedWeights = { version, frame: this.weightFrames.encode({ type: 'weights', version, weights: this.weights }) };
    }
    return this.encodedWeights.frame;
  }

  newNodeId(): string {
    return `node-${this.nextNode++}`;
  }

  /** A node passed the handshake: it takes part from the next step on. */
  addNode(node: RemoteNode): void {
    node.start();
    this.track(node, node.name, node.backend);
    this.options.metrics?.backend('node', node.backend);
    node.onClose((reason, message) => this.removeNode(node, `${reason}: ${message}`));
    const identity = this.identity(node);
    const byName = this.drops.until(identity);
    const byHost = this.proven.has(identity) ? 0 : this.hostDrops.until(rejoinHost(node));
    const until = Math.max(byName, byHost);
    const waitMs = until - Date.now();
    // a wait for nodes wakes when a held one may take part (waitUntil)
    if (waitMs > 0) this.held.push({ node, until });
    else this.joining.push(node);
    const on = [node.backend, ...(node.adapter ? [node.adapter] : []), ...(node.devices > 1 ? [`${node.devices} devices`] : [])].join(', ');
    const why = byName >= byHost ? 'it was dropped before' : 'a node from its address was dropped before computing a part';
    const held = waitMs > 0 ? `; ${why} and takes part in ${(waitMs / 1000).toFixed(1)} s at the earliest` : '';
    if (this.membershipLines.admit('joined')) this.options.log(`${node.id} (${node.name}, ${on}, ${node.address}) joined${held}`);
    this.options.observer?.joined?.(node);
    this.wake?.();
  }

  private track(p: Participant, name: string, backend: string): void {
    this.stats.set(p.id, { id: p.id, kind: p.kind, name, backend, samples: 0, steps: 0, failures: 0, firstStep: -1, lastStep: -1 });
  }

  private identity(node: RemoteNode): string {
    return (this.options.rejoinKey ?? rejoinKey)(node);
  }

  /**
   * Counts a drop of `node`'s identity: its next connection waits longer before it takes part;
   * if the identity never computed a part, so do new connections from its host (under any name
   * not proven).
   */
  private penalize(node: RemoteNode): void {
    const backoff = this.options.rejoin ?? REJOIN_BACKOFF;
    const identity = this.identity(node);
    this.drops.add(identity, backoff);
    if (!this.proven.has(identity)) this.hostDrops.add(rejoinHost(node), backoff);
  }

  /** Remembers that `node`'s identity has computed a part. */
  private prove(node: RemoteNode): void {
    const identity = this.identity(node);
    this.proven.delete(identity); // re-inserted last: the set's order is the eviction order
    this.proven.add(identity);
    if (this.proven.size > REJOIN_KEPT) this.proven.delete(this.proven.values().next().value!);
  }

  private removeNode(node: RemoteNode, why: string): void {
    const was = this.nodes.length + this.joining.length + this.held.length;
    this.nodes = this.nodes.filter((n) => n !== node);
    this.joining = this.joining.filter((n) => n !== node);
    this.held = this.held.filter((h) => h.node !== node);
    if (this.nodes.length + this.joining.length + this.held.length === was) return;
    const stats = this.stats.get(node.id);
    if (stats) stats.left = why;
    this.dirty = true;
    this.countParticipants();
    this.forget(node.id);
    if (this.membershipLines.admit('left')) this.options.log(`${node.id} (${node.name}) left at step ${this.step}: ${why}; ${this.nodes.length} node(s) remain`);
    this.options.observer?.left?.(node.id, this.step, why, this.nodes.length);
    if (stats) {
      this.departedIds.push(node.id);
      if (this.departedIds.length > DEPARTED_KEPT) this.fold(this.departedIds.shift()!);
    }
  }

  /** Drops what is kept per participant to plan its parts (speed, warm-up, idle steps, strikes): it is gone. */
  private forget(id: string): void {
    this.speeds.delete(id);
    this.warmedUp.delete(id);
    this.warmUps.delete(id);
    this.idleSteps.delete(id);
    this.stragglers?.forget(id);
  }

  /** Moves a departed node's stats into the `departed` sums (and its samples series out of the metrics). */
  private fold(id: string): void {
    const stats = this.stats.get(id);
    if (!stats) return;
    this.stats.delete(id);
    this.departed.nodes++;
    this.departed.samples += stats.samples;
    this.departed.steps += stats.steps;
    this.departed.failures += stats.failures;
    this.options.metrics?.forgetParticipant(id, stats.kind);
  }

  get participants(): readonly Participant[] {
    return [...(this.local?.participants ?? []), ...this.nodes];
  }

  /** Nodes currently taking part. */
  get nodeCount(): number {
    return this.nodes.length;
  }

  /** Whether the run is waiting for worker nodes (before a step can run). */
  get waiting(): boolean {
    return this.phase === 'waiting';
  }

  /** Whether a step has had its participants (training has started). */
  get trainingStarted(): boolean {
    return this.phase === 'training';
  }

  /** Ends a wait for worker nodes, now or when one begins, with WaitCancelledError (a stop was asked for). */
  cancelWait(): void {
    this.cancelled = true;
    this.wake?.();
  }

  async ready(): Promise<readonly Participant[]> {
    this.dropStragglers();
    this.admit();
    const { minWorkers, startWorkers, waitTimeoutMs, log } = this.options;
    const starting = this.phase === 'starting' && startWorkers !== undefined && startWorkers > minWorkers;
    const need = starting ? startWorkers : minWorkers;
    const votes = this.options.minVotes?.votes ?? 1;
    const enough = (): boolean => this.nodes.length >= need && this.participants.length >= Math.max(votes, 1);
    this.phase = 'training';
    if (!enough()) {
      // the nodes it takes to have `votes` participants besides the local lanes
      const want = Math.max(need, 1, votes - (this.participants.length - this.nodes.length));
      const why = votes > 1 && this.participants.length < votes ? ` (cluster.minVotes ${votes} for ${this.options.minVotes!.aggregation}: ${this.participants.length} participant(s))` : '';
      log(`waiting for worker nodes: ${this.nodes.length} of ${want} connected${why} (timeout ${Math.round(waitTimeoutMs / 1000)} s)`);
      const deadline = performance.now() + waitTimeoutMs;
      this.phase = 'waiting';
      try {
        await this.waitUntil(enough, deadline, want, why ? 'minVotes' : starting ? 'startWorkers' : 'minWorkers');
      } finally {
        this.phase = 'training';
      }
      log(`${this.nodes.length} worker node(s) connected; training`);
    }
    return this.participants;
  }

  private async waitUntil(enough: () => boolean, deadline: number, want: number, knob: string): Promise<void> {
    const { waitTimeoutMs } = this.options;
    while (!enough()) {
      if (this.cancelled) throw new WaitCancelledError(`stopped while waiting for worker nodes (${this.nodes.length} of ${want} connected)`);
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new ClusterError(
          `waited ${Math.round(waitTimeoutMs / 1000)} s for worker nodes: ${this.nodes.length} of ${want} connected; start workers with \`worker start --connect ...\` or lower cluster.${knob}`,
        );
      }
      // until the deadline, or until the first held node's rejoin wait is over by the clock that
      // set it (a timer of that length can end a few ms early by Date.now, the loop's time being
      // cached per iteration; it then sleeps again for what is left)
      const due = this.held.reduce((first, h) => Math.min(first, h.until), Infinity);
      const sleep = Math.min(left, Math.max(1, due - Date.now()));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, sleep);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
      this.admit();
    }
  }

  /** Moves joined nodes (and held ones whose rejoin wait is over) into the run and re-plans the shards if membership changed. */
  private admit(): void {
    const now = Date.now();
    const due = this.held.filter((h) => h.until <= now);
    if (due.length > 0) this.held = this.held.filter((h) => h.until > now);
    const fresh = [...this.joining, ...due.map((h) => h.node)].filter((n) => n.open);
    this.joining = [];
    this.nodes.push(...fresh);
    if (fresh.length > 0) this.countParticipants();
    if (fresh.length > 0 || this.dirty) this.reshard();
    this.dirty = false;
  }

  /** The shard plan: node i holds the i-th of n equal contiguous ranges of the training set. */
  private reshard(): void {
    if (this.nodes.length === 0) return;
    const plan = partitionRows(this.options.trainRows, this.nodes.length);
    this.nodes.forEach((node, i) => {
      for (const range of missingRanges(node.ranges, plan[i]!)) node.sendRows(range);
    });
  }

  publish(weights: Float32Array, version: number): void {
    this.local?.publish(weights);
    this.weights = weights;
    this.version = version;
  }

  split(total: number, participants: readonly Participant[], unitRows = 1, peek = false): number[] {
    const equal = participants.map(() => 1);
    if (this.options.balance === 'equal') return splitCounts(total, equal);
    // Threads of one pool run the same code on the same cores: equal parts keep a run bit-reproducible.
    if (this.options.balance === 'auto' && participants.every((p) => p.kind === 'thread')) return splitCounts(total, equal);
    const models = participants.map((p) => this.speeds.get(p.id)?.model());
    const known = models.filter((m): m is TimeModel => m !== undefined);
    if (known.length === 0) return splitCounts(total, equal);
    // Newcomers get a probe part until measured: a node that never answers holds up few rows,
    // and its deadline (derived from the measured participants' speed) stays short.
    const probe = Math.max(1, Math.floor((total / participants.length) * NEWCOMER_SHARE));
    const counts = models.map(() => 0);
    let rest = total;
    models.forEach((m, i) => {
      if (m === undefined && rest > 0) rest -= counts[i] = Math.min(probe, rest);
    });
    // the rest by speed, in units of `unitRows` rows: each takes unitRows times a sample's time
    const knownAt = models.flatMap((m, i) => (m === undefined ? [] : [i]));
    balancedCounts(rest, known.map((m) => ({ latency: m.latency, perSample: m.perSample * unitRows }))).forEach((c, k) => (counts[knownAt[k]!] = c));
    // A participant left out for PROBE_EVERY steps gets one sample, so its model stays current
    // (else one slow measurement would exclude it for good).
    counts.forEach((c, i) => {
      const id = participants[i]!.id;
      const idle = c > 0 ? 0 : (this.idleSteps.get(id) ?? 0) + 1;
      if (!peek) this.idleSteps.set(id, idle);
      if (idle >= PROBE_EVERY) {
        const donor = counts.indexOf(Math.max(...counts));
        if (counts[donor]! > 1) {
          counts[donor]!--;
          counts[i] = 1;
          if (!peek) this.idleSteps.set(id, 0);
        }
      }
    });
    return counts;
  }

  succeeded(p: Participant, step: number, count: number, seconds: number): void {
    this.step = step;
    this.options.metrics?.samples(p.id, p.kind, count);
    this.options.observer?.part?.(p.id, step, count, seconds);
    const stats = this.stats.get(p.id);
    if (stats) {
      stats.samples += count;
      stats.steps++;
      if (stats.firstStep < 0) {
        stats.firstStep = step;
        const node = p.kind === 'node' ? this.nodes.find((n) => n === p) : undefined;
        if (node) this.prove(node);
      }
      stats.lastStep = step;
    } else {
      // a part that arrived as its node left, after its stats were folded
      this.departed.samples += count;
      this.departed.steps++;
    }
    // A departed node's part counts, but its speed no longer matters.
    if (!stats || stats.left !== undefined) return;
    // The first part a participant computes includes its warm-up (kernel compilation, weights): not measured.
    if (!this.warmedUp.has(p.id)) {
      this.warmedUp.add(p.id);
      // a node could stretch its own warm-up to lengthen other newcomers' deadlines: threads' only
      if (p.kind === 'thread') this.warmUps.set(p.id, seconds);
    } else {
      let model = this.speeds.get(p.id);
      if (!model) this.speeds.set(p.id, (model = new SpeedModel(SPEED_DECAY)));
      model.observe(count, seconds);
      if (this.stepTimes.step !== step) this.stepTimes = { step, times: new Map(), checked: false };
      this.stepTimes.times.set(p.id, seconds);
    }
  }

  /** Drops the nodes the last step showed to be stragglers (once per step). */
  private dropStragglers(): void {
    if (!this.stragglers || this.stepTimes.checked) return;
    this.stepTimes.checked = true;
    const nodeIds = new Set(this.nodes.map((n) => n.id));
    for (const { id, why } of this.stragglers.observe(this.stepTimes.times, nodeIds)) {
      const node = this.nodes.find((n) => n.id === id);
      if (node) this.failed(node, this.stepTimes.step, new ParticipantFault(id, 'straggler', `is a straggler (${node.name}): ${why}`), 'it is dropped');
    }
  }

  failed(p: Participant, step: number, fault: ParticipantFault, outcome = 'its part is recomputed'): void {
    const stats = this.stats.get(p.id);
    if (stats) stats.failures++;
    else this.departed.failures++;
    this.failures.set(fault.reason, (this.failures.get(fault.reason) ?? 0) + 1);
    this.options.metrics?.failure(fault.reason);
    this.stragglers?.forget(p.id);
    if (this.failureLines.admit(fault.reason)) this.options.log(`${step >= 0 ? `step ${step}` : 'evaluation'}: ${fault.message} (${fault.reason}); ${outcome}`);
    this.options.observer?.failed?.(p.id, step, fault, outcome);
    this.speeds.delete(p.id);
    if (p.kind !== 'node') return;
    const node = p as RemoteNode;
    // a node that closed its connection is already gone from the run, and is held back all the
    // same: leaving just before a deadline must not skip the rejoin wait
    this.penalize(node);
    if (this.nodes.includes(node) || this.joining.includes(node)) {
      node.drop(fault.reason, fault.message);
      this.removeNode(node, `${fault.reason}: ${fault.message}`);
    }
  }

  prefetch(step: number, batches: readonly Int32Array[], index: number): void {
    this.local?.prefetch?.(step, batches, index);
  }

  async close(reason = 'job finished'): Promise<void> {
    for (const node of [...this.nodes, ...this.joining, ...this.held.map((h) => h.node)]) node.bye(reason);
    this.nodes = [];
    this.joining = [];
    this.held = [];
    this.membershipLines.flush();
    this.failureLines.flush();
    await this.local?.close();
  }
}
