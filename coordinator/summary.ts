/** What a run's summary.json holds. */
import type { EvaluateResult } from './fit/evaluate.js';
import type { DepartedStats, ParticipantStats } from './participants/participant.js';
import type { FitResult } from './fit/trainer.js';

export interface Summary {
  readonly test: EvaluateResult;
  readonly epochs: number;
  readonly bestEpoch: number;
  readonly stoppedEarly: boolean;
  readonly restoredBestWeights: boolean;
  /** fit.modelCheckpoint's last save: the epoch (1-based) and the monitored value then; absent without that key or before a save. */
  readonly modelCheckpoint?: { readonly dir: string; readonly epoch: number; readonly monitor: string; readonly value: number };
  readonly trainRows: number;
  readonly valRows: number;
  readonly testRows: number;
  readonly rowsRead: number;
  readonly rowsDropped: number;
  readonly features: number;
  readonly parameters: number;
  readonly steps: number;
  readonly samples: number;
  readonly samplesPerSecond: number;
  readonly wallSeconds: number;
  readonly threads: number;
  readonly backend: string;
  readonly seed: number;
  readonly phaseSeconds: FitResult['phases'];
  /**
   * Samples, steps and failures of every thread and node that took part, except the nodes that
   * left before the most recent DEPARTED_KEPT departures (participants/cluster.ts).
   */
  readonly participants: ParticipantStats[];
  /** Those nodes, summed: `samples` is the sum over `participants` plus `departed.samples`. */
  readonly departed: DepartedStats;
  /** Bytes on the coordinator's connections to worker nodes and to its threads, each way. */
  readonly traffic: Record<'thread' | 'node', { readonly sent: number; readonly received: number }>;
  /** Steps reduced among worker nodes (cluster.reduction: peers); the others went through the coordinator. */
  readonly peerSteps: number;
  /** Participant failures by reason (each failed part was recomputed). */
  readonly failures: Record<string, number>;
  /** Connections refused before joining, by reason (bad token, version, malformed...). */
  readonly rejectedPeers: Record<string, number>;
  /** Stopped by a signal before the end; resume with `dptrain start --resume <run dir>`. */
  readonly interrupted: boolean;
  /** The checkpoint this process resumed from, if it did. */
  readonly resumedFrom?: string;
  /** The newest good checkpoint, and the last write that failed if none succeeded after it. */
  readonly checkpoint: { readonly last: string | null; readonly lastFailed?: { readonly step: number; readonly error: string } };
}

