/**
 * A participant computes gradients for the coordinator: a local Piscina thread or a remote
 * worker node. The trainer sees only this interface and the group that manages membership.
 */
import type { RowRange } from '../../shared/data/dataset.js';
import { WorkerError } from '../../shared/errors.js';
import { ProtocolError } from '../../shared/errors.js';
import type { Holds } from '../../shared/plan/split-plan.js';
import type { GradientResult } from '../../shared/protocol/gradient-packet.js';
import type { EvaluateAnswer } from '../../shared/protocol/thread-tasks.js';

export type ParticipantKind = 'thread' | 'node';

/**
 * Why a participant's part of a step was not used. Also the `reason` label of the failure
 * counters, so keep the set small.
 */
export const FAILURE_REASONS = ['disconnected', 'timeout', 'malformed', 'shape', 'non_finite', 'unexpected', 'worker_error', 'crashed', 'straggler', 'out_of_range'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** A participant failed a request; its part is recomputed by others. */
export class ParticipantFault extends WorkerError {
  constructor(
    readonly participant: string,
    readonly reason: FailureReason,
    message: string,
  ) {
    super(`${participant}: ${message}`);
  }
}

/**
 * The one mapping from an error to why a participant's part failed: a ParticipantFault as it
 * is; a ProtocolError by its fault (non_finite, shape and unexpected keep their name, the rest
 * is malformed); anything else is `otherwise` (a thread that threw: crashed).
 */
export function faultOf(participant: string, err: unknown, otherwise: FailureReason = 'crashed'): ParticipantFault {
  if (err instanceof ParticipantFault) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ProtocolError) {
    const reason: FailureReason = err.fault === 'non_finite' || err.fault === 'shape' || err.fault === 'unexpected' ? err.fault : 'malformed';
    return new ParticipantFault(participant, reason, message);
  }
  return new ParticipantFault(participant, otherwise, message);
}

export interface Participant {
  /** Stable name for logs and metrics, e.g. "thread-0", "node-2". */
  readonly id: string;
  readonly kind: ParticipantKind;
  /** Which training rows it holds without being sent them (undefined: all). */
  readonly holds: Holds;
  /**
   * Mean gradient over `rows` (training-set row indices) with the weights of `version`. Rejects
   * with a ParticipantFault (its reason: timeout, disconnected, malformed, shape, ...) or another
   * error, which faultOf maps to one; either way the step recomputes these rows elsewhere. A
   * result is not trusted either: the step checks its count, sums and finiteness. `groups`: each
   * row's virtual batch, for a model with batch norm (the part holds whole virtual batches).
   */
  gradient(step: number, version: number, rows: Int32Array, groups?: Int32Array): Promise<GradientResult>;
  /** Loss and metric sums over a range of the data set with the weights of `version`; rejects as `gradient` does. */
  evaluate(version: number, range: RowRange): Promise<EvaluateAnswer>;
  /** The rows it will likely compute at `step` (a guess, for a participant that reads its rows ahead). */
  hintRows?(step: number, rows: Int32Array): void;
}

/** Per-participant accounting, kept for the run summary (and metrics). */
export interface ParticipantStats {
  readonly id: string;
  readonly kind: ParticipantKind;
  readonly name: string;
  readonly backend: string;
  samples: number;
  steps: number;
  failures: number;
  /** Step at which it first took part (-1: never). */
  firstStep: number;
  lastStep: number;
  /** Why it left, if it did. */
  left?: string;
}

/**
 * Departed nodes whose own entries were folded out of the per-participant stats (past the most
 * recent few), summed: their samples, steps and failures stay counted.
 */
export interface DepartedStats {
  /** Nodes folded in. */
  nodes: number;
  samples: number;
  steps: number;
  failures: number;
}

/**
 * The participants of a run and their membership: who takes part in the next step, how a batch
 * is shared among them, and what happens when one fails.
 */
export interface ParticipantGroup {
  /** Participants for the next step; may wait (with a timeout) for enough workers. */
  ready(): Promise<readonly Participant[]>;
  /** Makes `weights` the weights of `version` for every participant. */
  publish(weights: Float32Array, version: number): void;
  /**
   * How many of `total` samples each participant gets (equal, or balanced by measured speed);
   * `unitRows`: the samples are units of that many rows (batch norm's virtual batches).
   * `peek`: a guess at a coming step's split, which changes nothing (no idle step counted).
   */
  split(total: number, participants: readonly Participant[], unitRows?: number, peek?: boolean): number[];
  /** A participant's result for `step` was used: `count` samples in `seconds`. */
  succeeded(participant: Participant, step: number, count: number, seconds: number): void;
  /** A participant failed at `step` (-1: evaluation); nodes are dropped, threads are retried. */
  failed(participant: Participant, step: number, fault: ParticipantFault): void;
  readonly stats: ReadonlyMap<string, ParticipantStats>;
  /** The participants as they stand, without waiting for any (where the group knows them). */
  readonly participants?: readonly Participant[];
  /** Step `step` is about to compute batches[index] (batches[index + i]: step + i): the local lanes' read-ahead may start on the coming ones. */
  prefetch?(step: number, batches: readonly Int32Array[], index: number): void;
  close(reason?: string): Promise<void>;
}

/**
 * The participants on the coordinator's own machine, which read the data set and the weights in
 * shared memory: Piscina threads (ThreadPool) or the coordinator's own thread (InProcessLane).
 */
export interface LocalLanes {
  readonly participants: readonly Participant[];
  /** The TensorFlow.js backend they run. */
  readonly backend: string;
  /** On what, or why (the WebGPU adapter; what `auto` found), for the start line. */
  readonly backendDetail?: string | undefined;
  /** Makes `weights` current; only called between steps. */
  publish(weights: Float32Array): void;
  /** As ParticipantGroup.prefetch, where the lanes read a data set on disk ahead. */
  prefetch?(step: number, batches: readonly Int32Array[], index: number): void;
  close(): Promise<void>;
}
