/**
 * Which steps are reduced among peers: cluster.reduction as a policy function the peer step asks
 * before each step, with what the coordinator knows then (as piscina's balancer and DDP's comm
 * hook are passed in). `peers` always asks for a round; `auto` asks where the star would carry
 * enough bytes a step to be worth a round, and backs off after rounds that failed.
 */
import type { JobConfig } from '../../shared/config/schema.js';

export interface ReductionView {
  readonly step: number;
  /** Worker nodes in the step, each with a usable peer endpoint. */
  readonly nodes: number;
  /** The float32 gradient's bytes (S). */
  readonly gradientBytes: number;
  /** Rounds that failed one after the other (0 after one that did not), and the step of the last that failed. */
  readonly failuresInARow: number;
  readonly lastFailure: number;
}

export type ReductionChoice = { readonly peers: true } | { readonly peers: false; readonly reason: string };

export type ReductionPolicy = (view: ReductionView) => ReductionChoice;

/** cluster.reduction: peers: a round every step it can run. */
export const alwaysPeers: ReductionPolicy = () => ({ peers: true });

/**
 * Bytes a step the star carries each way on the coordinator's link (nodes x S) from which `auto`
 * reduces among peers: 16 MiB is about 130 ms a step each way at 1 Gbit/s, where a round's
 * longer chain of messages costs less than the star's link (BENCHMARKS.md, scale-out: S = 2.1 MB,
 * peers 1.8x faster than the star at 8 nodes, on par at 2 on fast links).
 */
export const AUTO_PEERS_BYTES = 16 * 2 ** 20;

/** Steps `auto` waits after `failures` failed rounds in a row before it tries another: 8, 16, 32, ... at most 1024. */
export function autoBackoff(failures: number): number {
  return failures === 0 ? 0 : Math.min(1024, 8 * 2 ** (failures - 1));
}

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 3 : 1)} MiB`;

/** cluster.reduction: auto. */
export const autoReduction: ReductionPolicy = ({ step, nodes, gradientBytes, failuresInARow, lastFailure }) => {
  const star = nodes * gradientBytes;
  if (star < AUTO_PEERS_BYTES) return { peers: false, reason: `reduction auto: ${nodes} nodes x ${mb(gradientBytes)} of gradient = ${mb(star)} a step on the coordinator's link, under the ${mb(AUTO_PEERS_BYTES)} from which nodes reduce among themselves` };
  const wait = autoBackoff(failuresInARow);
  if (step - lastFailure <= wait) return { peers: false, reason: `reduction auto: ${failuresInARow} round(s) among peers failed in a row; the next is tried at step ${lastFailure + wait + 1}` };
  return { peers: true };
};

/** The policy of a job's cluster.reduction, or undefined where no step goes among peers (the star only: coordinator, or robust aggregation under auto). */
export function reductionPolicy(cluster: Pick<JobConfig['cluster'], 'reduction' | 'aggregation'>): ReductionPolicy | undefined {
  if (cluster.reduction === 'peers') return alwaysPeers;
  return cluster.reduction === 'auto' && cluster.aggregation === 'mean' ? autoReduction : undefined;
}
