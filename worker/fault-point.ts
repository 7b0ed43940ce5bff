/**
 * Fault points for the failure tests of cluster.reduction: peers: a node process that dies or
 * stalls at an exact point of one step's round, which a signal sent from outside cannot hit
 * reliably. A test sets DPTRAIN_FAULT_POINT in a worker's environment; unset (as in every real
 * run), the node behaves exactly as without this file.
 *
 *   kill-after-block@S   the node is killed (SIGKILL) right after it folds another rank's block
 *                        into its shard of step S: it owns a shard and holds part of its sum
 *   kill-mid-gather@S    the node sends its reduced shard of step S to the first other rank
 *                        only, sends nothing more, and is killed 300 ms later: some nodes hold
 *                        the whole mean of step S, the others and the coordinator do not
 *   stall-block@S:MS     the node computes its block of step S, then waits MS milliseconds before
 *                        it sends the block: a straggler, busy, whose frames come late
 */
import { UsageError } from '../shared/errors.js';

export type FaultKind = 'kill-after-block' | 'kill-mid-gather' | 'stall-block';

export interface FaultPoint {
  readonly kind: FaultKind;
  readonly step: number;
  /** stall-block: how long. */
  readonly ms: number;
}

const FORM = /^(kill-after-block|kill-mid-gather)@(\d+)$|^(stall-block)@(\d+):(\d+)$/;

/** The fault point DPTRAIN_FAULT_POINT names, or undefined when it is unset. */
export function faultPointFromEnv(env: NodeJS.ProcessEnv = process.env): FaultPoint | undefined {
  const text = env.DPTRAIN_FAULT_POINT;
  if (text === undefined || text === '') return undefined;
  const m = FORM.exec(text);
  if (!m) throw new UsageError(`DPTRAIN_FAULT_POINT must be kill-after-block@STEP, kill-mid-gather@STEP or stall-block@STEP:MS, got "${text}"`);
  return m[1] ? { kind: m[1] as FaultKind, step: Number(m[2]), ms: 0 } : { kind: 'stall-block', step: Number(m[4]), ms: Number(m[5]) };
}

/** Ends this process the way a crash or an OOM kill does: no handler, no flush, no goodbye. */
export function killSelf(afterMs = 0): void {
  const kill = (): void => void process.kill(process.pid, 'SIGKILL');
  if (afterMs > 0) setTimeout(kill, afterMs);
  else kill();
}
