/**
 * Stragglers: which worker nodes to drop for being far slower than the rest, and how long a
 * node may take for its part of a step. Pure (no sockets, no clocks): the cluster feeds it each
 * step's part times and asks it for deadlines.
 *
 * - A node is a straggler in a step when its part took more than `factor` times the median of
 *   the other participants' parts, and more than `floorSeconds` (a slow network alone is not
 *   straggling). `steps` such steps in a row, among the steps it took part in, drop it.
 * - A node's deadline for a part: `factor` times what its measured speed predicts for that many
 *   samples, at least `floorSeconds` of the deadline floor, at most stepTimeout. While its speed
 *   is unmeasured: `factor` times the longer of what the slowest measured participant's speed
 *   predicts and the slowest local thread's warm-up (its first part; a newcomer warms up too).
 *   An honest newcomer is given a small probe part, so this is about the floor; only before any
 *   participant has computed a part is it stepTimeout. A node that heartbeats but never answers
 *   then costs seconds, not stepTimeout, however many such nodes join.
 */
import type { TimeModel } from '../../shared/plan/balance.js';

export interface StragglerOptions {
  /** Slower than this many times the others' median part time is straggling (0: never drop). */
  readonly factor: number;
  /** Straggling steps in a row that drop a node. */
  readonly steps: number;
  /** A part faster than this is never straggling. */
  readonly floorSeconds: number;
}

export interface DeadlineOptions {
  /** Deadline: this many times the predicted time (0: always stepTimeout). */
  readonly factor: number;
  /** Deadline floor, seconds. */
  readonly floorSeconds: number;
  /** Deadline ceiling, and the deadline while no participant's speed is measured, seconds. */
  readonly stepTimeoutSeconds: number;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export class StragglerWatch {
  private readonly strikes = new Map<string, number>();

  constructor(private readonly options: StragglerOptions) {}

  /**
   * One step's part times (participant id -> seconds; `nodes`: which of them may be dropped).
   * Returns the nodes to drop now, with why.
   */
  observe(times: ReadonlyMap<string, number>, nodes: ReadonlySet<string>): { id: string; why: string }[] {
    const { factor, steps, floorSeconds } = this.options;
    if (!(factor > 0) || times.size < 2) return [];
    const out: { id: string; why: string }[] = [];
    for (const [id, seconds] of times) {
      if (!nodes.has(id)) continue;
      const others = median([...times].filter(([other]) => other !== id).map(([, s]) => s));
      const slow = seconds > floorSeconds && seconds > factor * others;
      const strikes = slow ? (this.strikes.get(id) ?? 0) + 1 : 0;
      this.strikes.set(id, strikes);
      if (strikes >= steps) {
        out.push({ id, why: `${strikes} steps in a row more than ${factor}x slower than the others (last: ${seconds.toFixed(2)} s for its part, others' median ${others.toFixed(3)} s)` });
        this.strikes.delete(id);
      }
    }
    return out;
  }

  forget(id: string): void {
    this.strikes.delete(id);
  }
}

const predictedSeconds = (model: TimeModel, samples: number): number => Math.max(0, model.latency) + Math.max(0, model.perSample) * samples;

/** What an unmeasured node's deadline is derived from: the measured participants' speeds and the slowest local warm-up, seconds. */
export interface MeasuredPeers {
  readonly models: readonly TimeModel[];
  readonly warmUpSeconds: number;
}

/**
 * How long a node may take for `samples` samples, in ms (see the opening comment): from its own
 * `model`, or, unmeasured, from the `measured` participants.
 */
export function partDeadlineMs(model: TimeModel | undefined, samples: number, options: DeadlineOptions, measured: MeasuredPeers = { models: [], warmUpSeconds: 0 }): number {
  const ceiling = options.stepTimeoutSeconds * 1000;
  if (!(options.factor > 0)) return ceiling;
  if (!model && measured.models.length === 0 && !(measured.warmUpSeconds > 0)) return ceiling;
  const predicted = model ? predictedSeconds(model, samples) : Math.max(measured.warmUpSeconds, ...measured.models.map((m) => predictedSeconds(m, samples)));
  return Math.round(Math.min(ceiling, Math.max(options.floorSeconds * 1000, options.factor * predicted * 1000)));
}
