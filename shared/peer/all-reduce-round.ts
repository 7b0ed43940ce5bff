/**
 * One step's all-reduce among peers, as one rank sees it (the math and the rules, no sockets):
 * a reduce-scatter, then an all-gather. The flat gradient is cut into one parameter shard per
 * owner rank (shared/plan/parameter-shards.ts). Every block of the global batch (one participant's
 * part) goes, shard by shard, to the shard's owner; the owner folds the blocks of its shard in
 * block order (BlockSum: the same bits whoever computed which block and whatever order they came
 * in) and sends the mean of its shard to every other rank and to the coordinator; each rank puts
 * the shards it receives in place until it holds the whole mean gradient.
 *
 * The coordinator takes part as the observer (rank -1): it owns no shard, sends the blocks of its
 * own lanes and receives every reduced shard. Owners send their shard's mean to the observer too.
 *
 * Every frame from a peer is checked against the plan before it touches a sum: the round (epoch
 * and step), the shard (a block for a shard this rank owns; a reduced shard from its owner), the
 * block (sent by the rank the plan gave it to, once), the row count and the length. A frame that
 * breaks a rule throws a ProtocolError naming the peer; the caller drops that peer.
 */
import { ProtocolError } from '../errors.js';
import { BlockSum } from '../math/block-sum.js';
import { parameterShards, type ParameterRange } from '../plan/parameter-shards.js';

/** The coordinator's rank in a round: it owns no shard. */
export const OBSERVER = -1;

export interface RoundPlan {
  /** Membership epoch: which ranks own which shards. */
  readonly epoch: number;
  readonly step: number;
  readonly parameters: number;
  /** Owner ranks 0..ranks-1; rank i owns shard i. */
  readonly ranks: number;
  /** For each block of the batch, in block order, the rank that computes and sends it (OBSERVER: the coordinator). */
  readonly blockSenders: readonly number[];
}

/** Block `block`'s values over shard `shard`, from its sender to the shard's owner. */
export interface BlockFrame {
  readonly epoch: number;
  readonly step: number;
  readonly block: number;
  /** Rows the block's mean is over. */
  readonly count: number;
  readonly shard: number;
  readonly values: Float32Array;
}

/** Shard `shard` of the step's mean gradient, from its owner to every other rank. */
export interface ReducedFrame {
  readonly epoch: number;
  readonly step: number;
  readonly shard: number;
  readonly values: Float32Array;
}

/** Where a round's frames go: the transport decides how (peer sockets, the coordinator's). */
export interface RoundOutput {
  /** A block's shard to the rank that owns it. */
  block(to: number, frame: BlockFrame): void;
  /** This rank's reduced shard to every other rank and to the observer. */
  reduced(frame: ReducedFrame): void;
}

/**
 * Memory a round works in, reused round after round (a round allocates megabytes otherwise, and
 * the garbage collector's passes over them cost more than the arithmetic): the mean gradient
 * and the owner's float64 sum. Only the round under way may use it.
 */
export class RoundMemory {
  readonly mean: Float32Array;
  private sums = new Float64Array(0);

  constructor(parameters: number) {
    this.mean = new Float32Array(parameters);
  }

  /** Float64 memory for a shard's sum of `length` values (grown when a shard is larger than any before). */
  sum(length: number): Float64Array {
    if (this.sums.length < length) this.sums = new Float64Array(length);
    return this.sums;
  }
}

/** Who sent what: a peer's name for errors. */
export type PeerName = (rank: number) => string;

const defaultName: PeerName = (rank) => (rank === OBSERVER ? 'the coordinator' : `rank ${rank}`);

export class AllReduceRound {
  readonly shards: readonly ParameterRange[];
  /** The step's mean gradient, shard by shard as they come in. */
  readonly mean: Float32Array;
  private readonly own: BlockSum | undefined;
  private readonly placed: boolean[];
  private missing: number;
  /** Blocks folded into this rank's shard (a second copy is refused naming its sender). */
  private readonly blocksSeen = new Set<number>();
  /** Shards of this rank's own block already sent (contributeReady), by block. */
  private readonly sentEarly = new Map<number, Set<number>>();
  private finish!: (mean: Float32Array) => void;
  /** Resolves with the whole mean gradient once every shard is in place. */
  readonly done: Promise<Float32Array>;

  constructor(
    readonly plan: RoundPlan,
    /** This rank (OBSERVER for the coordinator). */
    readonly self: number,
    private readonly output: RoundOutput,
    private readonly name: PeerName = defaultName,
    /** Reused memory (RoundMemory of the plan's parameters); a round of its own without it. */
    memory?: RoundMemory,
  ) {
    const { parameters, ranks, blockSenders } = plan;
    if (!Number.isInteger(ranks) || ranks < 1) throw new RangeError(`a round needs at least one owner rank, got ${ranks}`);
    if (self !== OBSERVER && !(Number.isInteger(self) && self >= 0 && self < ranks)) throw new RangeError(`rank ${self} is not one of the round's ${ranks}`);
    if (blockSenders.length < 1) throw new RangeError('a round needs at least one block');
    for (const s of blockSenders) if (s !== OBSERVER && !(Number.isInteger(s) && s >= 0 && s < ranks)) throw new RangeError(`block sender ${s} is not one of the round's ranks`);
    this.shards = parameterShards(parameters, ranks);
    if (memory && memory.mean.length !== parameters) throw new RangeError(`round memory for ${memory.mean.length} parameters, the plan has ${parameters}`);
    this.mean = memory ? memory.mean : new Float32Array(parameters);
    this.done = new Promise((resolve) => (this.finish = resolve));
    this.placed = this.shards.map((s) => s.count === 0);
    this.missing = this.placed.filter((p) => !p).length;
    const mine = self === OBSERVER ? undefined : this.shards[self]!;
    this.own = mine && mine.count > 0 ? new BlockSum(mine.count, blockSenders.length, memory?.sum(mine.count)) : undefined;
    if (this.missing === 0) this.finish(this.mean);
  }

  get complete(): boolean {
    return this.missing === 0;
  }

  /** This rank's own block: its mean gradient over `count` rows, all parameters (its shards not sent yet by contributeReady). */
  contribute(block: number, count: number, gradient: Float32Array): void {
    this.checkOwnBlock(block, gradient);
    const sent = this.sentEarly.get(block);
    this.shards.forEach((range, shard) => {
      if (range.count === 0 || sent?.has(shard)) return;
      const values = gradient.subarray(range.start, range.start + range.count);
      if (shard === this.self) this.fold(block, count, values);
      else this.send(block, count, shard, values);
    });
  }

  /**
   * Part of this rank's own block is final while the backward pass goes on: values [ready,
   * parameters). The other owners' shards that lie wholly in it go out now (the last layers'
   * gradients come first, as DDP's buckets), so sending overlaps the rest of the computation;
   * `contribute` then sends the rest and folds this rank's own shard. The frames are the ones
   * `contribute` alone would send, so the sums are the same bits.
   */
  contributeReady(block: number, count: number, gradient: Float32Array, ready: number): void {
    this.checkOwnBlock(block, gradient);
    let sent = this.sentEarly.get(block);
    if (!sent) this.sentEarly.set(block, (sent = new Set()));
    this.shards.forEach((range, shard) => {
      if (range.count === 0 || shard === this.self || sent.has(shard) || range.start < ready) return;
      sent.add(shard);
      this.send(block, count, shard, gradient.subarray(range.start, range.start + range.count));
    });
  }

  private checkOwnBlock(block: number, gradient: Float32Array): void {
    if (this.plan.blockSenders[block] !== this.self) throw new RangeError(`block ${block} is not this rank's to send`);
    if (gradient.length !== this.plan.parameters) throw new RangeError(`a block has ${this.plan.parameters} values, got ${gradient.length}`);
  }

  private send(block: number, count: number, shard: number, values: Float32Array): void {
    const { epoch, step } = this.plan;
    this.output.block(shard, { epoch, step, block, count, shard, values });
  }

  /** A block's shard from rank `from`. */
  receiveBlock(from: number, frame: BlockFrame): void {
    const who = this.name(from);
    this.checkRound(who, frame);
    if (frame.shard !== this.self) throw new ProtocolError(`${who} sent block ${frame.block} of shard ${frame.shard} to ${this.name(this.self)}, which owns ${this.self === OBSERVER ? 'no shard' : `shard ${this.self}`}`, 'unexpected');
    const sender = this.plan.blockSenders[frame.block];
    if (sender === undefined) throw new ProtocolError(`${who} sent block ${frame.block}; step ${frame.step} has ${this.plan.blockSenders.length}`, 'shape');
    if (sender !== from) throw new ProtocolError(`${who} sent block ${frame.block}, which is ${this.name(sender)}'s to send`, 'unexpected');
    this.fold(frame.block, frame.count, frame.values, who);
  }

  /** A reduced shard from its owner `from`. */
  receiveReduced(from: number, frame: ReducedFrame): void {
    const who = this.name(from);
    this.checkRound(who, frame);
    if (frame.shard !== from) throw new ProtocolError(`${who} sent the mean of shard ${frame.shard}, which it does not own`, 'unexpected');
    if (from === this.self) throw new ProtocolError(`${who} is this rank`, 'unexpected');
    const range = this.shards[from]!;
    if (this.placed[from]) throw new ProtocolError(`${who} sent the mean of shard ${from} of step ${frame.step} twice`, 'unexpected');
    if (frame.values.length !== range.count) throw new ProtocolError(`${who} sent ${frame.values.length} values for shard ${from}, which has ${range.count}`, 'shape');
    this.mean.set(frame.values, range.start);
    this.place(from);
  }

  private checkRound(who: string, frame: { readonly epoch: number; readonly step: number }): void {
    const { epoch, step } = this.plan;
    if (frame.epoch !== epoch || frame.step !== step) throw new ProtocolError(`${who} sent a frame of epoch ${frame.epoch} step ${frame.step} into epoch ${epoch} step ${step}`, 'unexpected');
  }

  private fold(block: number, count: number, values: Float32Array, who = this.name(this.self)): void {
    const own = this.own;
    if (!own) throw new ProtocolError(`${who} sent block ${block} to ${this.name(this.self)}, whose shard is empty`, 'unexpected');
    if (this.blocksSeen.has(block)) throw new ProtocolError(`${who} sent block ${block} of step ${this.plan.step} twice`, 'unexpected');
    if (!Number.isInteger(count) || count <= 0) throw new ProtocolError(`${who} sent block ${block} over ${count} rows`, 'shape');
    if (values.length !== own.length) throw new ProtocolError(`${who} sent ${values.length} values of block ${block}; shard ${this.self} has ${own.length}`, 'shape');
    this.blocksSeen.add(block);
    own.add(block, count, values);
    if (!own.complete) return;
    const range = this.shards[this.self]!;
    const mean = this.mean.subarray(range.start, range.start + range.count);
    own.mean(mean);
    this.place(this.self);
    this.output.reduced({ epoch: this.plan.epoch, step: this.plan.step, shard: this.self, values: mean });
  }

  private place(shard: number): void {
    this.placed[shard] = true;
    if (--this.missing === 0) this.finish(this.mean);
  }
}
