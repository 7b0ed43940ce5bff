/**
 * A participant computes gradients for the coordinator: a local Piscina thread or (later) a
 * remote worker node. The trainer sees only this interface.
 */
import type { RowRange } from '../../shared/data/dataset.js';
import type { GradientResult } from '../../shared/protocol/gradient-packet.js';
import type { EvaluateAnswer } from '../../shared/protocol/thread-tasks.js';

export interface Participant {
  /** Stable name for logs and metrics, e.g. "thread-0". */
  readonly id: string;
  readonly kind: 'thread' | 'node';
  /** Mean gradient over `rows` (training-set row indices) with the weights of `version`. */
  gradient(step: number, version: number, rows: Int32Array): Promise<GradientResult>;
  /** Loss and metric sums over a range of the data set with the weights of `version`. */
  evaluate(version: number, range: RowRange): Promise<EvaluateAnswer>;
}

/** A set of participants that receive weights together (threads share one buffer). */
export interface ParticipantGroup {
  readonly participants: readonly Participant[];
  /** Makes `weights` the weights of `version` for every participant in the group. */
  publish(weights: Float32Array, version: number): void;
  close(): Promise<void>;
}
