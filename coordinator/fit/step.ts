/**
 * One synchronous data-parallel step: split the global batch over the participants
 * (plan/split-plan), dispatch the parts, recompute the part of any participant that fails,
 * combine the accepted gradients by sample count (reduce/), apply one optimizer step and publish
 * the new weights. Pure of the wire: participants are the `Participant` interface.
 *
 * Participants that are not trusted (worker nodes, whose token holders may lie) cannot end the
 * run by failing: an attempt counts towards MAX_ATTEMPTS only when a proven participant (a local
 * thread, one that computed parts before, or one whose part was accepted in this step) failed in
 * it, or none took part; after UNPROVEN_ATTEMPTS attempts the pending rows go to proven
 * participants only, so nodes joining in waves cannot keep a step going either; and the last
 * LOCAL_ATTEMPTS counted attempts go to the local threads alone, so while one of them works,
 * nodes that computed parts before and then fail one attempt after another cannot end the step.
 * With robust aggregation no participant gets more than 1/minVotes of what is split, so a fast
 * participant cannot take the batch and leave the median a vote of one.
 */
import { performance } from 'node:perf_hooks';
import type { JobConfig } from '../../shared/config/schema.js';
import { ClusterError, WorkerError } from '../../shared/errors.js';
import { virtualBatchSize, type ModelSpec } from '../../shared/model/spec.js';
import { weightLayout } from '../../shared/model/layout.js';
import { sumsProblem } from '../../shared/model/sums.js';
import type { GradientResult } from '../../shared/protocol/gradient-packet.js';
import { ParticipantFault, faultOf, type Participant, type ParticipantGroup } from '../participants/participant.js';
import { assignRows, assignUnits, runEnds, virtualBatches, type BatchPart } from '../../shared/plan/split-plan.js';
import { statisticRanges, stepWithStatistics, type StatisticRange } from '../../shared/optimize/moving-statistics.js';
import { GradientReducer, firstNonFinite, weightedAverage, type GradientContribution } from '../reduce/reduce.js';
import { capCounts } from '../../shared/plan/balance.js';
import { clipScales, robustAggregate } from '../reduce/robust.js';
import type { PhaseTimes } from './logs.js';
import type { ModelWeights, OptimizerSlot } from './state.js';
import { metricLayoutOf, totalSums } from '../../shared/model/metric-sums.js';

/** Attempts per step (each one recomputes only the parts that failed) in which a proven participant failed, before the run stops. */
export const MAX_ATTEMPTS = 8;
/** Attempts of a step open to participants not proven yet; later ones go to proven participants (when any is ready). */
export const UNPROVEN_ATTEMPTS = 2;
/** The last counted attempts of a step go to the local threads alone (when any is ready): nodes proven before cannot fail them. */
export const LOCAL_ATTEMPTS = 2;

/** What a step trusts a participant to answer (see the opening comment). */
export type TrustPolicy = (participant: Participant, group: ParticipantGroup) => boolean;

/** Proven: a local thread, or a participant that computed parts in earlier steps. */
export const provenParticipant: TrustPolicy = (p, group) => p.kind === 'thread' || (group.stats.get(p.id)?.steps ?? 0) > 0;

/** What one step gives back: sums for the epoch logs, its phase times and its participants' tensor counts. */
export interface StepSums {
  readonly lossSum: number;
  readonly metricSums: number[];
  /** Slowest participant's time on its own part, seconds (0 if none reported); for benchmarks. */
  readonly slowestCompute: number;
  readonly phases: Readonly<PhaseTimes>;
  /** tf.memory().numTensors of each participant that reported it. */
  readonly tensorCounts: readonly number[];
  /** Seconds spent waiting for worker nodes (not part of any phase; the epoch's time leaves it out). */
  readonly waited: number;
}

interface Accepted {
  readonly participant: Participant;
  readonly rows: Int32Array;
  readonly result: GradientResult;
  readonly seconds: number;
}

export class StepRunner {
  /** Reused every step for the combined gradient (no allocation on the hot path). */
  private readonly meanGradient: Float32Array;
  private readonly reducer: GradientReducer;
  /** Batch norm's moving statistics in the flat weights (set from batch statistics, not the optimizer). */
  private readonly statistics: StatisticRange[];
  /** Batch norm's rows per virtual batch (no part cuts one), or undefined. */
  private readonly virtualBatchSize: number | undefined;
  /** Steps at which each participant's gradient had to be clipped hard (robust aggregation). */
  private readonly clipped = new Map<string, number>();
  /** Splits with fewer participants than cluster.minVotes (robust aggregation). */
  private fewVotes = 0;

  constructor(
    private readonly spec: ModelSpec,
    private readonly cluster: Pick<JobConfig['cluster'], 'aggregation' | 'trimFraction' | 'clipNorm'> & Partial<Pick<JobConfig['cluster'], 'minVotes'>>,
    private readonly group: ParticipantGroup,
    private readonly weights: ModelWeights,
    private readonly optimizer: OptimizerSlot,
    /** Warnings (robust aggregation's clipping). */
    private readonly log?: (line: string) => void,
    /** Which participants' failures count towards MAX_ATTEMPTS and who computes a step's last attempts. */
    private readonly proven: TrustPolicy = provenParticipant,
  ) {
    this.meanGradient = new Float32Array(weights.values.length);
    this.reducer = new GradientReducer(weights.values.length);
    this.virtualBatchSize = virtualBatchSize(spec);
    this.statistics = statisticRanges(spec, weightLayout(spec));
  }

  /**
   * Tells the participants that read their rows ahead which of `rows` they will likely compute at
   * `step`: the batch split as the group stands now (a guess: who takes part, and their speeds,
   * may change before then; a wrong guess costs only reads).
   */
  hint(step: number, rows: Int32Array): void {
    const participants = this.group.participants;
    if (!participants?.some((p) => p.hintRows)) return;
    const groupOf = this.virtualBatchSize === undefined ? undefined : virtualBatches(rows, this.virtualBatchSize);
    const peek = { split: (total: number, ps: readonly Participant[], unitRows?: number) => this.group.split(total, ps, unitRows, true) };
    for (const part of splitBatch(rows, participants, peek, groupOf && { groupOf, unitRows: this.virtualBatchSize! })) {
      if (part.rows.length > 0) participants[part.participant]!.hintRows?.(step, part.rows);
    }
  }

  /**
   * Runs step `step` on the global batch `rows`. The part of any participant that fails is
   * recomputed by the others, so the combined gradient is always over the whole batch, and the
   * optimizer steps once.
   *
   * Gradients are checked for NaN and infinity through their mean: the weighted average is
   * non-finite at an index exactly when some part is (reduce.ts), so one pass over the mean
   * replaces a pass over every part; only when it fails are the parts searched for the culprits,
   * which are then treated like any failed part.
   */
  async run(step: number, rows: Int32Array): Promise<StepSums> {
    const t0 = performance.now();
    let accepted: Accepted[] = [];
    const nonFiniteRows = new Set<number>();
    const excluded = new Set<Participant>();
    let failed: Int32Array[] = [];
    /** A part that failed: its participant is told, its rows go back to be recomputed. */
    const reject = (participant: Participant, partRows: Int32Array, fault: ParticipantFault): void => {
      if (fault.reason === 'non_finite') {
        if (partRows.some((r) => nonFiniteRows.has(r))) {
          throw new WorkerError(
            `step ${step}: the gradient is not finite on the same rows from two participants: training diverged (try a lower learning rate or data.standardize: true)`,
          );
        }
        partRows.forEach((r) => nonFiniteRows.add(r));
        excluded.add(participant);
      }
      this.group.failed(participant, step, fault);
      failed.push(partRows);
    };
    let pending = rows;
    let reduceMs = 0;
    let waitedMs = 0;
    const groupOf = this.virtualBatchSize === undefined ? undefined : virtualBatches(rows, this.virtualBatchSize);
    const groupsOf = (partRows: Int32Array): Int32Array | undefined => (groupOf ? partRows.map((r) => groupOf.get(r)!) : undefined);
    /** Participants with a part accepted in this step: proven for the rest of it. */
    const acceptedFrom = new Set<Participant>();
    const isProven = (p: Participant): boolean => acceptedFrom.has(p) || this.proven(p, this.group);
    /** Attempts that count towards MAX_ATTEMPTS. */
    let counted = 0;
    for (let attempt = 0; ; attempt++) {
      if (counted >= MAX_ATTEMPTS) {
        const which = counted === attempt ? '' : ` (${counted} in which a proven participant failed or none took part)`;
        throw new ClusterError(`step ${step}: ${pending.length} rows still not computed after ${attempt} attempts${which}`);
      }
      const readyAt = performance.now();
      let participants = (await this.group.ready()).filter((p) => !excluded.has(p));
      waitedMs += performance.now() - readyAt;
      if (participants.length === 0) {
        if (nonFiniteRows.size > 0) throw new WorkerError(`step ${step}: the gradient is not finite and no other participant is left to check it: training diverged (try a lower learning rate or data.standardize: true)`);
        throw new ClusterError(`step ${step}: no participant left to compute ${pending.length} rows`);
      }
      if (attempt >= UNPROVEN_ATTEMPTS) {
        const trusted = participants.filter(counted >= MAX_ATTEMPTS - LOCAL_ATTEMPTS ? (p) => p.kind === 'thread' : isProven);
        if (trusted.length > 0) participants = trusted;
      }
      // with batch norm, whole virtual batches only: the units of the split are the runs of one group
      const parts = splitBatch(pending, participants, this.group, groupOf && { groupOf, unitRows: this.virtualBatchSize! }, (counts) => this.capShares(step, counts));
      const version = this.weights.version;
      const settled = await Promise.allSettled(
        parts.map(async (part) => {
          const started = performance.now();
          const result = await participants[part.participant]!.gradient(step, version, part.rows, groupsOf(part.rows));
          return { result, seconds: (performance.now() - started) / 1000 };
        }),
      );
      failed = [];
      // proven before this attempt's results: a participant's first accepted part does not excuse its failing another
      const provenHere = parts.map((part) => isProven(participants[part.participant]!));
      let provenFailed = false;
      settled.forEach((outcome, i) => {
        const part = parts[i]!;
        const participant = participants[part.participant]!;
        const fault = outcome.status === 'rejected' ? faultOf(participant.id, outcome.reason) : sumsFault(this.spec, participant, part.rows.length, outcome.value.result);
        if (fault) {
          provenFailed ||= provenHere[i]!;
          return reject(participant, part.rows, fault);
        }
        if (outcome.status === 'fulfilled') {
          accepted.push({ participant, rows: part.rows, ...outcome.value });
          acceptedFrom.add(participant);
        }
      });
      if (failed.length > 0 && (provenFailed || !provenHere.some(Boolean))) counted++;
      if (failed.length === 0) {
        const started = performance.now();
        const finite = this.combine(step, accepted);
        reduceMs += performance.now() - started;
        if (finite) break;
        // Rare: find the parts that are not finite; the others stay accepted.
        const checked = accepted.map((a) => ({ ...a, bad: firstNonFinite(a.result.gradient) }));
        accepted = checked.filter((a) => a.bad < 0);
        for (const { participant, rows: partRows, result, bad } of checked.filter((a) => a.bad >= 0)) {
          reject(participant, partRows, new ParticipantFault(participant.id, 'non_finite', `returned a non-finite gradient (value ${bad} is ${result.gradient[bad]}, loss sum ${result.lossSum})`));
        }
        counted++;
      }
      pending = concatRows(failed);
    }
    const tensorCounts: number[] = [];
    for (const { participant, result, seconds } of accepted) {
      if (result.numTensors >= 0) tensorCounts.push(result.numTensors);
      this.group.succeeded(participant, step, result.count, seconds);
    }
    const results = accepted.map((a) => a.result);
    const t2 = performance.now();
    const t1 = t2 - reduceMs;
    const computeMs = t1 - t0 - waitedMs;
    stepWithStatistics(this.weights.values, this.meanGradient, this.statistics, (w, g) => this.optimizer.apply(w, g));
    const t3 = performance.now();
    this.weights.publish();
    const t4 = performance.now();
    return {
      lossSum: results.reduce((a, r) => a + r.lossSum, 0),
      metricSums: totalSums(metricLayoutOf(this.spec).width, results),
      slowestCompute: results.reduce((a, r) => Math.max(a, (r.computeMs ?? -1) / 1000), 0),
      phases: { compute: computeMs / 1000, reduce: (t2 - t1) / 1000, apply: (t3 - t2) / 1000, broadcast: (t4 - t3) / 1000 },
      tensorCounts,
      waited: waitedMs / 1000,
    };
  }

  /**
   * With robust aggregation, `counts` with none above 1/minVotes of their total (rounded up), so
   * at least minVotes participants vote; with fewer participants than that, equal parts and a
   * warning (the median of fewer cannot outvote a bad one).
   */
  private capShares(step: number, counts: number[]): number[] {
    const { aggregation, minVotes = 3 } = this.cluster;
    if (aggregation === 'mean' || counts.length === 0) return counts;
    const total = counts.reduce((a, c) => a + c, 0);
    if (counts.length < minVotes) {
      const seen = this.fewVotes++;
      if (seen % 100 === 0) this.log?.(`warning: step ${step}: ${counts.length} participant(s) for cluster.aggregation ${aggregation}, fewer than cluster.minVotes ${minVotes}: one bad participant can move the result; split in equal parts (${seen + 1} time(s) so far)`);
      return capCounts(counts, Math.ceil(total / counts.length));
    }
    return capCounts(counts, Math.ceil(total / minVotes));
  }

  /**
   * The step's gradient from the accepted parts: the weighted mean (cluster.aggregation: mean,
   * the default), or a robust combination (reduce/robust.ts), which also says when it had to
   * clip a participant's gradient hard. True when the result is finite.
   */
  private combine(step: number, accepted: readonly Accepted[]): boolean {
    const { aggregation, trimFraction, clipNorm } = this.cluster;
    if (aggregation === 'mean') return this.reducer.mean(accepted.map((a) => a.result), this.meanGradient);
    const votes = votesOf(accepted);
    const results = votes.map((v) => v.result);
    if (votes.length < 2) return this.reducer.mean(results, this.meanGradient);
    clipScales(results, clipNorm, this.statistics).forEach((scale, i) => {
      if (scale >= 0.01) return;
      const id = votes[i]!.participant.id;
      const seen = this.clipped.get(id) ?? 0;
      this.clipped.set(id, seen + 1);
      if (seen % 100 === 0) this.log?.(`warning: step ${step}: ${id}'s gradient norm is ${(1 / scale).toPrecision(3)}x the allowed ${clipNorm} x median norm; clipped (${seen + 1} time(s) so far)`);
    });
    return robustAggregate(results, this.meanGradient, { aggregation, trimFraction, clip: clipNorm, unclipped: this.statistics });
  }
}

/**
 * One vote per participant for robust aggregation: the parts one participant computed in a step
 * (a first part and recomputed rows) become one gradient, their sample-weighted mean.
 */
function votesOf(accepted: readonly Accepted[]): { participant: Participant; result: GradientContribution }[] {
  const byParticipant = new Map<Participant, GradientContribution[]>();
  for (const a of accepted) {
    const parts = byParticipant.get(a.participant);
    if (parts) parts.push(a.result);
    else byParticipant.set(a.participant, [a.result]);
  }
  return [...byParticipant].map(([participant, parts]) => ({
    participant,
    result: parts.length === 1 ? parts[0]! : { gradient: weightedAverage(parts), count: parts.reduce((a, p) => a + p.count, 0) },
  }));
}

/** Why a part's sums cannot be right (count, finiteness, range), or undefined. */
export function sumsFault(spec: ModelSpec, participant: Participant, rows: number, result: { readonly count: number; readonly lossSum: number; readonly metricSums: readonly number[] }): ParticipantFault | undefined {
  if (result.count !== rows) return new ParticipantFault(participant.id, 'shape', `computed ${result.count} samples, was given ${rows}`);
  if (!Number.isFinite(result.lossSum)) return new ParticipantFault(participant.id, 'non_finite', `returned a non-finite loss sum (${result.lossSum})`);
  const problem = sumsProblem(spec, result.count, result.lossSum, [...result.metricSums]);
  return problem === undefined ? undefined : new ParticipantFault(participant.id, 'out_of_range', `returned sums that cannot be: ${problem}`);
}

/**
 * A batch's rows (or, with batch norm, its whole virtual batches: `groupOf` each row's) split over
 * `participants` by the group's counts, capped by `cap`, data-aware (split-plan.ts).
 */
export function splitBatch(rows: Int32Array, participants: readonly Participant[], group: Pick<ParticipantGroup, 'split'>, batchNorm: { readonly groupOf: Map<number, number>; readonly unitRows: number } | undefined, cap: (counts: number[]) => number[] = (c) => c): BatchPart[] {
  const holds = participants.map((p) => p.holds);
  if (!batchNorm) return assignRows(rows, cap(group.split(rows.length, participants)), holds);
  const ends = runEnds(rows.map((r) => batchNorm.groupOf.get(r)!));
  return assignUnits(rows, ends, cap(group.split(ends.length, participants, batchNorm.unitRows)), holds);
}

function concatRows(parts: readonly Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
