/**
 * The peer all-reduce's round (shared/peer/all-reduce-round.ts) over an in-memory bus, with exact
 * numbers: every rank and the coordinator end with the bits of the coordinator's weighted mean
 * (one block per participant, in participant order), whatever order frames are delivered in;
 * frames that break the plan are refused, naming the peer.
 */
import { describe, expect, it } from 'vitest';
import { weightedAverage } from '../coordinator/reduce/reduce.js';
import { Rng } from '../shared/math/rng.js';
import { AllReduceRound, OBSERVER, RoundMemory, type BlockFrame, type ReducedFrame, type RoundPlan } from '../shared/peer/all-reduce-round.js';

function gradient(length: number, rng: Rng): Float32Array {
  return Float32Array.from({ length }, () => rng.normal() * 10 ** Math.floor(rng.next() * 6 - 3));
}

type Delivery = () => void;

/** Ranks 0..ranks-1 and the observer on one bus; `deliver` runs the queued frames in an order of its choosing. */
function bus(plan: RoundPlan, memories?: Map<number, RoundMemory>) {
  const queue: Delivery[] = [];
  const rounds = new Map<number, AllReduceRound>();
  const copy = <T extends { values: Float32Array }>(f: T): T => ({ ...f, values: f.values.slice() });
  for (const self of [OBSERVER, ...Array.from({ length: plan.ranks }, (_, r) => r)]) {
    rounds.set(
      self,
      new AllReduceRound(plan, self, {
        block: (to, frame: BlockFrame) => {
          const f = copy(frame);
          queue.push(() => rounds.get(to)!.receiveBlock(self, f));
        },
        reduced: (frame: ReducedFrame) => {
          const f = copy(frame);
          for (const to of rounds.keys()) if (to !== self) queue.push(() => rounds.get(to)!.receiveReduced(self, f));
        },
      }, undefined, memories?.get(self)),
    );
  }
  return { rounds, queue };
}

describe('AllReduceRound', () => {
  it('every rank and the coordinator end with the weighted mean bit for bit, in any delivery order, in memory of their own or reused', async () => {
    const rng = new Rng(11);
    for (const [ranks, parameters] of [[1, 37], [2, 101], [3, 1000], [5, 257], [8, 9]] as const) {
      // each rank's memory reused round after round, as nodes and the coordinator do
      const memories = new Map([OBSERVER, ...Array.from({ length: ranks }, (_, r) => r)].map((r) => [r, new RoundMemory(parameters)]));
      for (let trial = 0; trial < 4; trial++) {
        // blocks in participant order: the coordinator's lanes first, then the nodes (some with two parts)
        const blockSenders = [OBSERVER, OBSERVER, ...Array.from({ length: ranks }, (_, r) => r), ...(ranks > 1 ? [1] : [])];
        const parts = blockSenders.map((_, b) => ({ count: 1 + ((b * 7) % 5), gradient: gradient(parameters, rng) }));
        const plan: RoundPlan = { epoch: 3, step: 17, parameters, ranks, blockSenders };
        const { rounds, queue } = bus(plan, trial % 2 === 0 ? memories : undefined);
        parts.forEach((p, b) => rounds.get(blockSenders[b]!)!.contribute(b, p.count, p.gradient));
        while (queue.length > 0) queue.splice(Math.floor(rng.next() * queue.length), 1)[0]!();
        const expected = weightedAverage(parts);
        for (const [self, round] of rounds) {
          expect(round.complete, `rank ${self}`).toBe(true);
          expect(await round.done).toEqual(expected);
        }
      }
    }
  });

  it('shards sent as the backward pass finishes them (contributeReady) give the same bits, each frame once', async () => {
    const rng = new Rng(5);
    const ranks = 4;
    const parameters = 403;
    const blockSenders = [OBSERVER, 0, 1, 2, 3];
    const parts = blockSenders.map((_, b) => ({ count: 2 + b, gradient: gradient(parameters, rng) }));
    const plan: RoundPlan = { epoch: 1, step: 9, parameters, ranks, blockSenders };
    const { rounds, queue } = bus(plan);
    let early = 0;
    parts.forEach((p, b) => {
      const round = rounds.get(blockSenders[b]!)!;
      // the last values first, as a backward pass finishes them; frames may be delivered in between
      for (const ready of [380, 300, 250, 101, 0]) {
        const before = queue.length;
        round.contributeReady(b, p.count, p.gradient, ready);
        early += queue.length - before;
        if (rng.next() < 0.5) queue.splice(0, 1)[0]?.();
      }
      round.contribute(b, p.count, p.gradient);
    });
    // every shard but the sender's own went out early: 5 blocks, 3 other owners each (4 for the observer)
    expect(early).toBe(4 + 4 * 3);
    while (queue.length > 0) queue.splice(Math.floor(rng.next() * queue.length), 1)[0]!();
    for (const round of rounds.values()) expect(await round.done).toEqual(weightedAverage(parts));
  });

  it('more owners than 4-value groups: empty shards take no frames and the round completes', async () => {
    const plan: RoundPlan = { epoch: 0, step: 0, parameters: 5, ranks: 4, blockSenders: [0, 1, 2, 3] };
    const { rounds, queue } = bus(plan);
    const rng = new Rng(2);
    const parts = [0, 1, 2, 3].map(() => ({ count: 2, gradient: gradient(5, rng) }));
    parts.forEach((p, b) => rounds.get(b)!.contribute(b, p.count, p.gradient));
    while (queue.length > 0) queue.shift()!();
    for (const round of rounds.values()) expect(round.mean).toEqual(weightedAverage(parts));
  });

  it('refuses frames that break the plan, naming the peer', () => {
    const plan: RoundPlan = { epoch: 2, step: 5, parameters: 16, ranks: 2, blockSenders: [OBSERVER, 0, 1] };
    const round = new AllReduceRound(plan, 0, { block: () => undefined, reduced: () => undefined }, (r) => (r === OBSERVER ? 'the coordinator' : `node-${r}`));
    const values = new Float32Array(8);
    const block = (over: Partial<BlockFrame>): BlockFrame => ({ epoch: 2, step: 5, block: 2, count: 3, shard: 0, values, ...over });
    expect(() => round.receiveBlock(1, block({ step: 4 }))).toThrow(/node-1 sent a frame of epoch 2 step 4 into epoch 2 step 5/);
    expect(() => round.receiveBlock(1, block({ epoch: 1 }))).toThrow(/epoch 1 step 5/);
    expect(() => round.receiveBlock(1, block({ shard: 1 }))).toThrow(/node-1 sent block 2 of shard 1 to node-0, which owns shard 0/);
    expect(() => round.receiveBlock(1, block({ block: 1 }))).toThrow(/node-1 sent block 1, which is node-0's to send/);
    expect(() => round.receiveBlock(1, block({ block: 9 }))).toThrow(/block 9; step 5 has 3/);
    expect(() => round.receiveBlock(1, block({ count: 0 }))).toThrow(/over 0 rows/);
    expect(() => round.receiveBlock(1, block({ values: new Float32Array(7) }))).toThrow(/7 values of block 2; shard 0 has 8/);
    round.receiveBlock(1, block({}));
    expect(() => round.receiveBlock(1, block({}))).toThrow(/node-1 sent block 2 of step 5 twice/);
    const reduced = (over: Partial<ReducedFrame>): ReducedFrame => ({ epoch: 2, step: 5, shard: 1, values, ...over });
    expect(() => round.receiveReduced(1, reduced({ shard: 0 }))).toThrow(/node-1 sent the mean of shard 0, which it does not own/);
    expect(() => round.receiveReduced(OBSERVER, reduced({ shard: 1 }))).toThrow(/the coordinator sent the mean of shard 1, which it does not own/);
    expect(() => round.receiveReduced(1, reduced({ values: new Float32Array(9) }))).toThrow(/9 values for shard 1, which has 8/);
    round.receiveReduced(1, reduced({}));
    expect(() => round.receiveReduced(1, reduced({}))).toThrow(/shard 1 of step 5 twice/);
    expect(round.complete).toBe(false);
    expect(() => round.contribute(2, 1, new Float32Array(16))).toThrow(/not this rank's/);
  });
});
