/**
 * The running job as the live page sees it: a fit-loop callback and a cluster observer that turn
 * training into records (records.ts), keep the state (run-state.ts), append every record to
 * `<run dir>/events.jsonl` and push it to the page's event streams.
 *
 * Cheap on the training path: a step adds its phase times to running sums; at most every
 * STEP_RECORD_MS (and at each epoch's last batch) those become one step summary. The file is
 * written through a stream, never synchronously; a failed write is reported once and training
 * goes on without the file.
 *
 * Bounded when nodes come and go by the thousand: the participants come from the cluster's
 * stats (present ones and the most recent departures, the rest summed as `departed`); join,
 * leave and failure events past MEMBERSHIP_LINES_PER_MINUTE a minute are summed up in one event,
 * and so many membership changes make a participants record at most every PARTICIPANTS_RECORD_MS.
 */
import { createWriteStream, existsSync, readFileSync, type WriteStream } from 'node:fs';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BatchEndLog, Callback, FitLoopView, TrainEndLog } from '../callbacks/callback.js';
import { addPhases, zeroPhases, type EpochLog, type PhaseTimes } from '../fit/logs.js';
import { MEMBERSHIP_LINES_PER_MINUTE, MinuteBudget, type ClusterObserver } from '../participants/cluster.js';
import type { DepartedStats, ParticipantFault, ParticipantStats } from '../participants/participant.js';
import type { LiveSource } from './event-stream.js';
import { finite, type EndRecord, type EventKind, type FeedRecord, type ParticipantRow, type RunRecord, type SnapshotRecord } from './records.js';
import { RunState, parseRecord } from './run-state.js';

/** The file in the run directory. */
export const EVENTS_FILE = 'events.jsonl';
/** Shortest time between two step summaries. */
export const STEP_RECORD_MS = 500;
/** Shortest time between two participants records, unless membership changed. */
const PARTICIPANTS_RECORD_MS = 2000;
/** Weight of the newest part in a participant's measured speed. */
const SPEED_WEIGHT = 0.3;

export interface FeedOptions {
  /** events.jsonl's path; an existing file (a resumed run) is read, then appended to. */
  readonly file: string;
  readonly run: Omit<RunRecord, 'type' | 'time'>;
  /** Where a failed write of the file is reported. */
  readonly log: (line: string) => void;
  /** Early stopping's settings, for the sentence when it stops training. */
  readonly earlyStopping?: { readonly monitor: string; readonly patience: number } | undefined;
}

/** What the feed reads of the cluster (its participants' accounting, the local lanes' detail). */
export interface ClusterView {
  readonly stats: ReadonlyMap<string, ParticipantStats>;
  /** Departed nodes no longer in `stats`, summed. */
  readonly departed?: Readonly<DepartedStats> | undefined;
  readonly local?: { readonly backendDetail?: string | undefined } | undefined;
}

/** What the feed reads of the checkpointer. */
export interface CheckpointView {
  readonly last: string | undefined;
  readonly lastFailed: { readonly step: number; readonly error: string } | undefined;
}

interface PartStats {
  /** Exponentially weighted samples and seconds of its parts (their ratio is its speed). */
  samples: number;
  seconds: number;
  lastStep: number;
  lastSamples: number;
}

/** Step summaries are made from the epoch's running means: the sums up to a batch. */
interface Mark {
  readonly batch: number;
  readonly seen: number;
  readonly sums: Readonly<Record<string, number>>;
}

export class RunFeed implements Callback, ClusterObserver, LiveSource {
  private readonly state = new RunState();
  private readonly listeners = new Set<(record: FeedRecord | SnapshotRecord) => void>();
  private out: WriteStream | undefined;
  private loop: FitLoopView | undefined;
  private cluster: ClusterView | undefined;
  private checkpoints: CheckpointView | undefined;
  private reported: { checkpoint: string | undefined; failedStep: number | undefined; earlyStop: boolean } = { checkpoint: undefined, failedStep: undefined, earlyStop: false };
  /** 1-based epoch running. */
  private epoch = 0;
  /** The epoch's sums at the last summary (undefined: none yet this epoch). */
  private mark: Mark | undefined;
  private interval = { started: 0, steps: 0, phases: zeroPhases() };
  private readonly parts = new Map<string, PartStats>();
  /** Details of joined nodes the cluster's stats do not hold. */
  private readonly nodes = new Map<string, { adapter: string | undefined; devices: number; address: string }>();
  /** The latest step with parts, and its samples. */
  private partStep = -1;
  private partTotal = 0;
  private participantsAt = -Infinity;
  private participantsJson = '';
  /** Membership changes that make a participants record at once (in a minute); past them, the interval holds. */
  private readonly membershipRecords = new MinuteBudget<'record'>(MEMBERSHIP_LINES_PER_MINUTE, () => undefined);
  /** The record a membership change past the budget is waiting for. */
  private pendingRecord: ReturnType<typeof setTimeout> | undefined;
  /** Failure events in a minute; past them, one event sums them up. */
  private readonly failureEvents = new MinuteBudget<'failure' | 'straggler'>(MEMBERSHIP_LINES_PER_MINUTE, (held) =>
    this.event('failure', `... and ${[...held.values()].reduce((a, n) => a + n, 0)} more failed part(s) in the last minute (not listed one by one)`),
  );
  /** Join and leave events in a minute; past them, one event sums them up. */
  private readonly membershipEvents = new MinuteBudget<'joined' | 'left'>(MEMBERSHIP_LINES_PER_MINUTE, (held) =>
    this.event(held.has('joined') ? 'joined' : 'left', `... and ${held.get('joined') ?? 0} more node(s) joined, ${held.get('left') ?? 0} more left in the last minute (not listed one by one)`),
  );
  /** The latest batch's log (to summarise an interrupted epoch's last steps). */
  private lastLog: BatchEndLog | undefined;

  private constructor(private readonly options: FeedOptions) {}

  /** Reads an existing events.jsonl (a resumed run's earlier processes), opens it for appending, records the start. */
  static open(options: FeedOptions): RunFeed {
    const feed = new RunFeed(options);
    if (existsSync(options.file)) {
      for (const line of readFileSync(options.file, 'utf8').split('\n')) {
        const record = parseRecord(line);
        if (record) feed.state.apply(record);
      }
    }
    feed.out = createWriteStream(options.file, { flags: 'a' });
    feed.out.on('error', (err) => {
      options.log(`warning: cannot write ${options.file} (${err.message}); the live page goes on, the file stops here`);
      feed.out = undefined;
    });
    const { run } = options;
    feed.emit({ type: 'run', time: Date.now(), ...run });
    if (run.resumedFrom) feed.event('resumed', `resumed from ${basename(run.resumedFrom)} at step ${run.startStep}`, run.startStep);
    else feed.event('start', `training started: ${run.trainRows} train / ${run.valRows} validation rows, model ${run.model}, ${run.epochs} epochs of batch ${run.batchSize}`, 0);
    return feed;
  }

  snapshot(): SnapshotRecord {
    return this.state.snapshot();
  }

  subscribe(listener: (record: FeedRecord | SnapshotRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The cluster and checkpointer of this process, once started. */
  attach(cluster: ClusterView, checkpoints: CheckpointView): void {
    this.cluster = cluster;
    this.checkpoints = checkpoints;
    this.reported.checkpoint = checkpoints.last;
    this.participants(true);
  }

  private emit(record: FeedRecord): void {
    this.state.apply(record);
    this.out?.write(`${JSON.stringify(record)}\n`);
    for (const listener of this.listeners) {
      try {
        listener(record);
      } catch {
        // a listener (one page's stream) must not stop training
      }
    }
  }

  private event(kind: EventKind, text: string, step = this.loop?.step ?? 0): void {
    this.emit({ type: 'event', time: Date.now(), kind, step, text });
  }

  // --- the fit loop (Callback) ---

  setLoop(loop: FitLoopView): void {
    this.loop = loop;
  }

  onEpochBegin(epoch: number): void {
    this.epoch = epoch + 1;
    this.mark = undefined;
    this.interval = { started: performance.now(), steps: 0, phases: zeroPhases() };
  }

  onBatchEnd(log: BatchEndLog): void {
    const { interval } = this;
    this.lastLog = log;
    interval.steps++;
    addPhases(interval.phases, log.phases);
    const now = performance.now();
    if (log.batch === log.batches || now - interval.started >= STEP_RECORD_MS) this.summarise(log, now);
    this.checkCheckpoints();
  }

  /** One step summary from the last mark to this batch. */
  private summarise(log: BatchEndLog, now: number): void {
    const { batchSize, trainRows } = this.options.run;
    const seen = Math.min(log.batch * batchSize, trainRows);
    const sums: Record<string, number> = {};
    for (const [key, mean] of Object.entries(log.logs)) sums[key] = mean * seen;
    const from = this.mark ?? (log.batch - this.interval.steps === 0 ? { batch: 0, seen: 0, sums: {} } : undefined);
    const { interval } = this;
    this.mark = { batch: log.batch, seen, sums };
    this.interval = { started: now, steps: 0, phases: zeroPhases() };
    // a resumed epoch's first steps follow sums this process never saw: they start the next summary
    if (!from || seen <= from.seen) return;
    const mean = (key: string): number | null => finite((sums[key]! - (from.sums[key] ?? 0)) / (seen - from.seen));
    const metrics: Record<string, number | null> = {};
    for (const key of Object.keys(sums)) if (key !== 'loss') metrics[key] = mean(key);
    const per = (k: keyof PhaseTimes): number => interval.phases[k] / interval.steps;
    const seconds = (now - interval.started) / 1000;
    this.emit({
      type: 'step',
      time: Date.now(),
      epoch: this.epoch,
      batch: log.batch,
      batches: log.batches,
      step: log.step,
      steps: interval.steps,
      loss: mean('loss'),
      metrics,
      samplesPerSecond: seconds > 0 ? (seen - from.seen) / seconds : 0,
      phases: { compute: per('compute'), reduce: per('reduce'), apply: per('apply'), broadcast: per('broadcast') },
    });
    this.participants(false);
  }

  onEpochEnd(log: EpochLog): void {
    this.emit({ type: 'epoch', time: Date.now(), epoch: log.epoch, values: log.values, seconds: log.seconds, samplesPerSecond: log.samplesPerSecond });
    this.checkCheckpoints();
    if (this.loop?.stopTraining === 'finished' && !this.reported.earlyStop) {
      this.reported.earlyStop = true;
      const es = this.options.earlyStopping;
      this.event('early-stop', es ? `early stopping: ${es.monitor} has not improved for ${es.patience} epoch(s); training stops after epoch ${log.epoch}` : `a callback asked to stop: training stops after epoch ${log.epoch}`);
    }
  }

  onTrainEnd(_log: TrainEndLog): void {
    if (this.interval.steps > 0 && this.lastLog) this.summarise(this.lastLog, performance.now());
    this.checkCheckpoints();
    this.participants(true);
  }

  /** Reports a checkpoint the checkpointer (called before this callback) wrote or failed to write. */
  private checkCheckpoints(): void {
    const c = this.checkpoints;
    if (!c) return;
    if (c.last !== this.reported.checkpoint) {
      this.reported.checkpoint = c.last;
      if (c.last) this.event('checkpoint', `checkpoint ${basename(c.last)} written`);
    }
    if (c.lastFailed && c.lastFailed.step !== this.reported.failedStep) {
      this.reported.failedStep = c.lastFailed.step;
      this.event('checkpoint-failed', `the checkpoint of step ${c.lastFailed.step} failed: ${c.lastFailed.error}`);
    }
  }

  // --- the cluster (ClusterObserver) ---

  joined(node: { id: string; name: string; backend: string; adapter: string | undefined; devices: number; address: string }): void {
    this.nodes.set(node.id, { adapter: node.adapter, devices: node.devices, address: node.address });
    const on = [node.backend, ...(node.adapter ? [node.adapter] : []), ...(node.devices > 1 ? [`${node.devices} devices`] : [])].join(', ');
    if (this.membershipEvents.admit('joined')) this.event('joined', `${node.id} (${node.name}) joined from ${node.address}: ${on}`);
    this.participants(true);
  }

  left(id: string, step: number, why: string, remaining: number): void {
    const name = this.cluster?.stats.get(id)?.name ?? id;
    if (this.membershipEvents.admit('left')) this.event('left', `${id} (${name}) left at step ${step}: ${why}; ${remaining} node(s) remain`, step);
    this.participants(true);
  }

  failed(id: string, step: number, fault: ParticipantFault, outcome: string): void {
    const kind = fault.reason === 'straggler' ? 'straggler' : 'failure';
    if (this.failureEvents.admit(kind)) this.event(kind, `${step >= 0 ? `step ${step}` : 'evaluation'}: ${fault.message} (${fault.reason}); ${outcome}`, Math.max(step, 0));
    this.parts.delete(id);
    this.participants(true);
  }

  part(id: string, step: number, samples: number, seconds: number): void {
    if (step !== this.partStep) {
      this.partStep = step;
      this.partTotal = 0;
    }
    this.partTotal += samples;
    const p = this.parts.get(id);
    if (!p) this.parts.set(id, { samples, seconds, lastStep: step, lastSamples: samples });
    else {
      p.samples = (1 - SPEED_WEIGHT) * p.samples + SPEED_WEIGHT * samples;
      p.seconds = (1 - SPEED_WEIGHT) * p.seconds + SPEED_WEIGHT * seconds;
      p.lastSamples = p.lastStep === step ? p.lastSamples + samples : samples;
      p.lastStep = step;
    }
  }

  /**
   * A participants record, if it changed and none was made lately, or at once when `now`
   * (membership changed) within the minute's budget; past it, the record follows when the
   * interval is over.
   */
  private participants(now: boolean): void {
    if (!this.cluster) return;
    const wait = PARTICIPANTS_RECORD_MS - (performance.now() - this.participantsAt);
    if (wait > 0 && !(now && this.membershipRecords.admit('record'))) {
      if (now && this.pendingRecord === undefined) {
        this.pendingRecord = setTimeout(() => this.record(), wait);
        this.pendingRecord.unref();
      }
      return;
    }
    this.record();
  }

  /** The participants record of now, unless it is the last one again; forgets details of nodes the cluster no longer lists. */
  private record(): void {
    clearTimeout(this.pendingRecord);
    this.pendingRecord = undefined;
    const stats = this.cluster?.stats;
    if (!stats) return;
    this.participantsAt = performance.now();
    for (const id of this.nodes.keys()) if (!stats.has(id)) this.nodes.delete(id);
    for (const id of this.parts.keys()) if (!stats.has(id)) this.parts.delete(id);
    const rows = [...stats.values()].map((s) => this.row(s));
    const departed = this.cluster?.departed;
    const json = JSON.stringify([rows, departed]);
    if (json === this.participantsJson) return;
    this.participantsJson = json;
    this.emit({ type: 'participants', time: Date.now(), rows, ...(departed && departed.nodes > 0 ? { departed: { ...departed } } : {}) });
  }

  private row(s: ParticipantStats): ParticipantRow {
    const part = this.parts.get(s.id);
    const node = this.nodes.get(s.id);
    const adapter = node ? node.adapter : this.cluster?.local?.backendDetail;
    const inLatest = part !== undefined && part.lastStep === this.partStep && this.partTotal > 0;
    return {
      id: s.id,
      kind: s.kind,
      name: s.name,
      backend: s.backend,
      ...(adapter ? { adapter } : {}),
      ...(node ? { devices: node.devices, address: node.address } : {}),
      state: s.left !== undefined ? 'left' : inLatest ? 'computing' : s.steps === 0 ? 'waiting' : 'idle',
      samplesPerSecond: part && part.seconds > 0 ? Math.round((part.samples / part.seconds) * 10) / 10 : null,
      share: inLatest && s.left === undefined ? part.lastSamples / this.partTotal : null,
      samples: s.samples,
      steps: s.steps,
      failures: s.failures,
      ...(s.left !== undefined ? { left: s.left } : {}),
    };
  }

  // --- the job ---

  /** The run's end in this process: the last record, and an event saying how it ended. */
  end(outcome: EndRecord['outcome'], text: string, extra: Pick<EndRecord, 'test' | 'bestEpoch'> = {}): void {
    if (this.pendingRecord !== undefined) this.record();
    this.membershipEvents.flush();
    this.failureEvents.flush();
    this.event('end', text);
    this.emit({ type: 'end', time: Date.now(), outcome, text, ...extra });
  }

  /** Flushes and closes events.jsonl. */
  async close(): Promise<void> {
    if (this.pendingRecord !== undefined) this.record();
    this.membershipEvents.flush();
    this.failureEvents.flush();
    const out = this.out;
    this.out = undefined;
    if (!out) return;
    await new Promise<void>((resolve) => {
      out.once('error', () => resolve());
      out.end(() => resolve());
    });
  }
}
