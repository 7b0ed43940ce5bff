/**
 * What the live run page shows, as records: one JSON line each in `<run dir>/events.jsonl`, and
 * the same objects pushed to the page over /events. A reader rebuilds the run's state by
 * applying them in order (run-state.ts; the page's app.js does the same).
 */
import type { PhaseTimes } from '../fit/logs.js';

/** A process started (or resumed) the run. */
export interface RunRecord {
  readonly type: 'run';
  /** Wall-clock ms (Date.now()). */
  readonly time: number;
  /** The run directory's name. */
  readonly name: string;
  readonly model: string;
  readonly parameters: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly trainRows: number;
  readonly valRows: number;
  readonly testRows: number;
  readonly features: number;
  /** Metric names (compile.metrics); epochs also hold val_<name>. */
  readonly metrics: readonly string[];
  /** Steps already taken (a resumed run's checkpoint), 0 for a fresh run. */
  readonly startStep: number;
  /** The checkpoint file (its name) this process resumed from. */
  readonly resumedFrom?: string;
}

/** A summary of the steps since the previous one (at most a few a second, so the file stays small). */
export interface StepRecord {
  readonly type: 'step';
  readonly time: number;
  /** 1-based epoch and batch of the last step summarised. */
  readonly epoch: number;
  readonly batch: number;
  readonly batches: number;
  /** The last step summarised (steps applied so far). */
  readonly step: number;
  /** How many steps this summarises. */
  readonly steps: number;
  /** Mean training loss and metrics over the samples of those steps (null: not finite). */
  readonly loss: number | null;
  readonly metrics: Readonly<Record<string, number | null>>;
  /** Samples per second over those steps' wall time. */
  readonly samplesPerSecond: number;
  /** Mean seconds per step in each phase. */
  readonly phases: Readonly<PhaseTimes>;
}

/** An epoch's end, with the values history.json gets. */
export interface EpochRecord {
  readonly type: 'epoch';
  readonly time: number;
  /** 1-based. */
  readonly epoch: number;
  /** loss, metrics, val_loss, val_metrics (JSON writes a non-finite value as null, as history.json does). */
  readonly values: Readonly<Record<string, number | null>>;
  readonly seconds: number;
  readonly samplesPerSecond: number;
}

export type ParticipantState = 'computing' | 'idle' | 'waiting' | 'left';

/** One thread or worker node as the participants table shows it. */
export interface ParticipantRow {
  readonly id: string;
  readonly kind: 'thread' | 'node';
  /** The node's name (its host, or --name); a thread's id. */
  readonly name: string;
  readonly backend: string;
  /** The GPU adapter (WebGPU) or other detail of the backend. */
  readonly adapter?: string;
  /** Devices a node computes on (more than one: a device group). */
  readonly devices?: number;
  /** The node's network address. */
  readonly address?: string;
  /** computing: had a part in the latest step; idle: in the run without one; waiting: not yet given a part; left: dropped or gone. */
  readonly state: ParticipantState;
  /** Measured samples per second of its recent parts (null: not measured yet). */
  readonly samplesPerSecond: number | null;
  /** Its share of the latest step's batch, 0..1 (null: no part in it). */
  readonly share: number | null;
  readonly samples: number;
  readonly steps: number;
  readonly failures: number;
  /** Why it left. */
  readonly left?: string;
}

export interface ParticipantsRecord {
  readonly type: 'participants';
  readonly time: number;
  readonly rows: readonly ParticipantRow[];
  /** Departed nodes without a row of their own (past the most recent departures), summed; absent when none. */
  readonly departed?: { readonly nodes: number; readonly samples: number; readonly steps: number; readonly failures: number };
}

export type EventKind = 'start' | 'resumed' | 'joined' | 'left' | 'failure' | 'straggler' | 'checkpoint' | 'checkpoint-failed' | 'early-stop' | 'end';

/** Something that happened once: a node joined or left, a part failed, a checkpoint, early stopping, the end. */
export interface EventRecord {
  readonly type: 'event';
  readonly time: number;
  readonly kind: EventKind;
  /** Steps applied when it happened. */
  readonly step: number;
  /** A sentence for people. */
  readonly text: string;
}

export type RunOutcome = 'finished' | 'interrupted' | 'failed';

/** The run's end in this process. */
export interface EndRecord {
  readonly type: 'end';
  readonly time: number;
  readonly outcome: RunOutcome;
  readonly text: string;
  /** Loss and metrics on the test rows (finished runs with test rows). */
  readonly test?: Readonly<Record<string, number | null>>;
  readonly bestEpoch?: number;
}

/** The whole state, sent first on every /events connection (and again if a viewed file is replaced). */
export interface SnapshotRecord {
  readonly type: 'snapshot';
  readonly run: RunRecord | null;
  readonly steps: readonly StepRecord[];
  readonly epochs: readonly EpochRecord[];
  readonly participants: readonly ParticipantRow[];
  readonly departed?: ParticipantsRecord['departed'];
  readonly events: readonly EventRecord[];
  readonly end: EndRecord | null;
}

export type FeedRecord = RunRecord | StepRecord | EpochRecord | ParticipantsRecord | EventRecord | EndRecord;

/** A finite number as is, anything else as null (what JSON would write anyway, typed). */
export function finite(value: number | undefined): number | null {
  return value !== undefined && Number.isFinite(value) ? value : null;
}
