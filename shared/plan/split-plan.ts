/**
 * Batch planning: which rows make up each step, and how one global batch is divided among the
 * participants of a synchronous step. Pure functions over typed arrays; no transport, no tensors.
 */
import { Rng, range, shuffleInPlace } from '../math/rng.js';
import { runEnds, splitCounts } from './split-counts.js';

export { runEnds, splitCounts };

/** One participant's share of a global batch: a contiguous slice of the batch's row indices. */
export interface BatchPart {
  /** Index of the participant in the list the plan was made for. */
  readonly participant: number;
  /** Row indices (into the training set) this participant computes. */
  readonly rows: Int32Array;
}

/** The row order of one epoch: 0..n-1, shuffled with `rng` when `shuffle` is true. */
export function epochOrder(n: number, shuffle: boolean, rng: Rng): Int32Array {
  const order = range(n);
  return shuffle ? shuffleInPlace(order, rng) : order;
}

/** Cuts an epoch's row order into global batches of `batchSize` (the last one may be smaller). */
export function epochBatches(order: Int32Array, batchSize: number): Int32Array[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const batches: Int32Array[] = [];
  for (let start = 0; start < order.length; start += batchSize) {
    batches.push(order.subarray(start, Math.min(order.length, start + batchSize)));
  }
  return batches;
}

/** Number of steps in one epoch of `n` rows. */
export function stepsPerEpoch(n: number, batchSize: number): number {
  return Math.ceil(n / batchSize);
}

/** Which training rows a participant holds: `undefined` means all of them (a local thread). */
export type Holds = ((row: number) => boolean) | undefined;

/**
 * One global batch split by counts, data-aware: participant i gets exactly `counts[i]` rows, and
 * participants with partial data (worker nodes holding a shard) first get rows they hold; the
 * rest is filled in batch order. Rows a node is given but does not hold travel inline with the
 * step. The union of the parts is always the whole batch, so the averaged gradient is the same
 * whatever the assignment (up to float rounding). Deterministic for the same inputs.
 *
 * Nodes first take the rows only they hold, then rows they share with other nodes: a node that
 * kept its old, larger shard after another joined would otherwise take the newcomer's rows and
 * leave it to receive its part inline every step. Each part lists its rows in batch order.
 */
export function assignRows(batchRows: Int32Array, counts: readonly number[], holds: readonly Holds[]): BatchPart[] {
  return assignUnits(batchRows, Int32Array.from({ length: batchRows.length }, (_, i) => i + 1), counts, holds);
}

/**
 * As assignRows, over units of consecutive rows that no part cuts (batch norm's virtual
 * batches): `unitEnds` are the units' exclusive ends in the batch (ascending, the last one the
 * batch's length), `counts` are in units, and a node holds a unit when it holds all its rows.
 */
export function assignUnits(batchRows: Int32Array, unitEnds: Int32Array, counts: readonly number[], holds: readonly Holds[]): BatchPart[] {
  const units = unitEnds.length;
  if (units > 0 && unitEnds[units - 1] !== batchRows.length) throw new RangeError(`units end at ${unitEnds[units - 1]}, the batch has ${batchRows.length} rows`);
  const total = counts.reduce((a, b) => a + b, 0);
  if (total !== units) throw new RangeError(`counts add up to ${total}, the batch has ${units} ${units === batchRows.length ? 'rows' : 'units'}`);
  if (holds.length !== counts.length) throw new RangeError(`${holds.length} holds for ${counts.length} counts`);
  const startOf = (u: number): number => (u === 0 ? 0 : unitEnds[u - 1]!);
  const held = (holdsRow: (row: number) => boolean, u: number): boolean => {
    for (let i = startOf(u); i < unitEnds[u]!; i++) if (!holdsRow(batchRows[i]!)) return false;
    return true;
  };
  const owner = new Int32Array(units).fill(-1);
  const given = counts.map(() => 0);
  const nodes = holds.flatMap((h, p) => (h ? [{ p, holds: h }] : []));
  // Only with two or more nodes can a held unit be shared; then count its holders (once per step).
  const holderCount = nodes.length > 1 ? Array.from({ length: units }, (_, u) => nodes.reduce((n, node) => n + (held(node.holds, u) ? 1 : 0), 0)) : undefined;
  const take = (p: number, u: number): void => {
    owner[u] = p;
    given[p]!++;
  };
  for (const exclusiveOnly of holderCount ? [true, false] : [false]) {
    for (const { p, holds: holdsRow } of nodes) {
      for (let u = 0; u < units && given[p]! < counts[p]!; u++) {
        if (owner[u]! < 0 && (!exclusiveOnly || holderCount![u] === 1) && held(holdsRow, u)) take(p, u);
      }
    }
  }
  let next = 0;
  counts.forEach((want, p) => {
    while (given[p]! < want) {
      while (owner[next]! >= 0) next++;
      take(p, next);
    }
  });
  const rows: number[][] = counts.map(() => []);
  owner.forEach((p, u) => {
    for (let i = startOf(u); i < unitEnds[u]!; i++) rows[p]!.push(batchRows[i]!);
  });
  const parts: BatchPart[] = [];
  rows.forEach((r, participant) => {
    if (r.length > 0) parts.push({ participant, rows: Int32Array.from(r) });
  });
  return parts;
}

/**
 * Batch norm's virtual batches of a global batch: row i of the batch is in group
 * floor(i / size) (the last group may be smaller), as a map from training row to group.
 */
export function virtualBatches(batchRows: Int32Array, size: number): Map<number, number> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`virtualBatchSize must be a positive integer, got ${size}`);
  const groups = new Map<number, number>();
  batchRows.forEach((row, i) => groups.set(row, Math.floor(i / size)));
  return groups;
}
