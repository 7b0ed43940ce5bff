/**
 * Which parameters each owner holds when the optimizer step is sharded (ZeRO stage 1, the peer
 * reduction's plan): the flat layout cut into contiguous ranges in owner order, each a whole
 * number of 4-float groups (the SIMD kernels' width) but the last, their sizes differing by at
 * most one group. The optimizer's update is elementwise, so owners applying it to their ranges
 * give the bits of one optimizer applied to the whole (test/block-sum.test.ts).
 */

export interface ParameterRange {
  readonly start: number;
  readonly count: number;
}

/** `size` parameters cut among `owners` (an owner may get none when there are fewer groups than owners). */
export function parameterShards(size: number, owners: number): ParameterRange[] {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`parameters must be a non-negative integer, got ${size}`);
  if (!Number.isSafeInteger(owners) || owners < 1) throw new RangeError(`owners must be a positive integer, got ${owners}`);
  const groups = Math.ceil(size / 4);
  const shards: ParameterRange[] = [];
  let start = 0;
  for (let i = 0; i < owners; i++) {
    const take = 4 * (Math.floor(groups / owners) + (i < groups % owners ? 1 : 0));
    const count = Math.min(take, size - start);
    shards.push({ start, count });
    start += count;
  }
  return shards;
}
