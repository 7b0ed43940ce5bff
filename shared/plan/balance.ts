/**
 * Proportional balance: how to split a global batch so that participants of different speed
 * (a GPU node, a CPU thread) finish their parts at about the same time.
 *
 * Each participant's time for a part of n samples is modelled as `latency + n * perSample`
 * (latency: messages, weights upload, kernel launches; perSample: compute). The model is fitted
 * online by least squares with exponential forgetting, so it follows changes in load. A split
 * then fills participants like water levels: all finish at the same predicted time T, and
 * participants whose latency alone exceeds T get nothing. Modelling latency matters: with pure
 * throughput (n / seconds), a participant given few samples looks slow (latency dominates),
 * gets even fewer, and starves.
 */
import { splitCounts } from './split-counts.js';

export interface TimeModel {
  /** Seconds per part, whatever its size. */
  readonly latency: number;
  /** Seconds per sample. */
  readonly perSample: number;
}

/** Online fit of seconds = latency + n * perSample, weighting older observations by `decay`^age. */
export class SpeedModel {
  private s1 = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;
  private seen = 0;

  constructor(private readonly decay = 0.9) {}

  get observations(): number {
    return this.seen;
  }

  observe(samples: number, seconds: number): void {
    if (!(samples > 0) || !(seconds >= 0) || !Number.isFinite(seconds)) return;
    const d = this.decay;
    this.s1 = d * this.s1 + 1;
    this.sx = d * this.sx + samples;
    this.sy = d * this.sy + seconds;
    this.sxx = d * this.sxx + samples * samples;
    this.sxy = d * this.sxy + samples * seconds;
    this.seen++;
  }

  /** The fitted model; undefined before the first observation. */
  model(): TimeModel | undefined {
    if (this.seen === 0) return undefined;
    const meanX = this.sx / this.s1;
    const meanY = this.sy / this.s1;
    const varX = this.sxx / this.s1 - meanX * meanX;
    // Sizes that barely vary cannot separate latency from compute: attribute all time to compute.
    if (varX <= 1e-6 * meanX * meanX + 1e-12) return { latency: 0, perSample: Math.max(meanY / meanX, 1e-9) };
    const slope = (this.sxy / this.s1 - meanX * meanY) / varX;
    const perSample = Math.max(slope, 1e-9);
    const latency = Math.max(0, meanY - perSample * meanX);
    return { latency, perSample };
  }
}

/**
 * Splits `total` samples so that every participant with a share finishes at the same predicted
 * time. Models must have perSample > 0. Integer counts via largest remainders (splitCounts).
 */
export function balancedCounts(total: number, models: readonly TimeModel[]): number[] {
  if (models.length === 0) throw new RangeError('cannot split a batch over zero participants');
  if (total === 0) return models.map(() => 0);
  const share = (T: number): number[] => models.map((m) => Math.max(0, (T - m.latency) / m.perSample));
  const sum = (T: number): number => share(T).reduce((a, b) => a + b, 0);
  let lo = Math.min(...models.map((m) => m.latency));
  let hi = Math.max(...models.map((m) => m.latency + total * m.perSample));
  for (let i = 0; i < 100 && hi - lo > 1e-12 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2;
    if (sum(mid) < total) lo = mid;
    else hi = mid;
  }
  const weights = share(hi);
  return splitCounts(total, weights.some((w) => w > 0) ? weights : models.map(() => 1));
}

/**
 * `counts` with none above `cap`: what is over the cap goes to the participants below it, in
 * proportion to their room (largest remainders), so the total is kept. Throws a RangeError when
 * the total does not fit (`cap` times the participants is less than it).
 */
export function capCounts(counts: readonly number[], cap: number): number[] {
  const out = counts.map((c) => Math.min(c, cap));
  const excess = counts.reduce((a, c) => a + c, 0) - out.reduce((a, c) => a + c, 0);
  if (excess === 0) return out;
  const room = out.map((c) => cap - c);
  if (room.reduce((a, r) => a + r, 0) < excess) throw new RangeError(`${excess + out.reduce((a, c) => a + c, 0)} samples do not fit ${counts.length} participants of at most ${cap} each`);
  // each share is at most ceil(excess * room / sum(room)) <= room: one pass places it all
  splitCounts(excess, room).forEach((g, i) => (out[i]! += g));
  return out;
}
