/**
 * Loss and metrics over a range of rows with the current weights, spread over the participants
 * that may evaluate (validation and test), recomputing any range whose participant fails or
 * returns sums that cannot be.
 */
import type { JobConfig } from '../../shared/config/schema.js';
import type { RowRange } from '../../shared/data/dataset.js';
import { ClusterError, ConfigError } from '../../shared/errors.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import { sumsProblem } from '../../shared/model/sums.js';
import type { EvaluateAnswer } from '../../shared/protocol/thread-tasks.js';
import { ParticipantFault, faultOf, type Participant, type ParticipantGroup } from '../participants/participant.js';
import { MAX_ATTEMPTS } from './step.js';
import { metricLayoutOf, totalSums } from '../../shared/model/metric-sums.js';

export interface EvaluateResult {
  readonly loss: number;
  readonly [metric: string]: number;
}

export async function evaluateRows(
  spec: ModelSpec,
  evaluateOn: JobConfig['cluster']['evaluateOn'],
  group: ParticipantGroup,
  version: number,
  range: RowRange,
): Promise<EvaluateResult> {
  const answers: EvaluateAnswer[] = [];
  let pending: RowRange[] = range.count > 0 ? [range] : [];
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt >= MAX_ATTEMPTS) throw new ClusterError(`evaluation: rows still not evaluated after ${MAX_ATTEMPTS} attempts`);
    const participants = evaluators(evaluateOn, await group.ready());
    const jobs: { participant: Participant; range: RowRange }[] = [];
    for (const r of pending) {
      let start = r.start;
      group.split(r.count, participants).forEach((count, i) => {
        if (count > 0) jobs.push({ participant: participants[i]!, range: { start, count } });
        start += count;
      });
    }
    const settled = await Promise.allSettled(jobs.map((j) => j.participant.evaluate(version, j.range)));
    pending = [];
    settled.forEach((outcome, i) => {
      const job = jobs[i]!;
      const problem =
        outcome.status === 'fulfilled'
          ? outcome.value.count !== job.range.count
            ? `evaluated ${outcome.value.count} rows, was given ${job.range.count}`
            : sumsProblem(spec, outcome.value.count, outcome.value.lossSum, outcome.value.metricSums)
          : undefined;
      if (outcome.status === 'fulfilled' && problem === undefined) {
        answers.push(outcome.value);
        return;
      }
      const fault =
        outcome.status === 'fulfilled'
          ? new ParticipantFault(job.participant.id, 'out_of_range', `returned evaluation sums that cannot be: ${problem}`)
          : faultOf(job.participant.id, outcome.reason);
      group.failed(job.participant, -1, fault);
      pending.push(job.range);
    });
  }
  const total = answers.reduce((a, r) => a + r.count, 0);
  const result: Record<string, number> = { loss: answers.reduce((a, r) => a + r.lossSum, 0) / total };
  Object.assign(result, metricLayoutOf(spec).values(totalSums(metricLayoutOf(spec).width, answers), total));
  return result as EvaluateResult;
}

/**
 * Who evaluates (validation and test): the coordinator's own lanes when it has them and
 * cluster.evaluateOn is auto or local, so a node cannot forge the figures in summary.json; every
 * participant with evaluateOn all (or when there are no local lanes).
 */
function evaluators(evaluateOn: JobConfig['cluster']['evaluateOn'], participants: readonly Participant[]): readonly Participant[] {
  if (evaluateOn === 'all') return participants;
  const local = participants.filter((p) => p.kind === 'thread');
  if (local.length > 0) return local;
  if (evaluateOn === 'local') throw new ConfigError('cluster.evaluateOn is local, but the coordinator has no local lane (threads: 0)');
  return participants;
}
