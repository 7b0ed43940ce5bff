/**
 * The peer reduction's sum: the global batch is cut into fixed blocks of rows, and each block's
 * mean gradient (over a shard of the parameters) arrives with its row count from whichever
 * participant computed it, in any order. The sum of count x gradient is taken in float64 in
 * block order, whatever order the blocks arrive in (a block that comes early waits for those
 * before it), and divided once by the batch's rows: the same bits however the blocks were split
 * among participants and whoever sent them. With one block per participant, in participant
 * order, it is coordinator/reduce/reduce.ts's weighted mean bit for bit.
 *
 * A block given twice is refused (a late or duplicate frame), as is one of the wrong length.
 */
import { ReduceError } from '../errors.js';

export class BlockSum {
  private readonly sum: Float64Array;
  /** Blocks folded so far (all of 0..next-1); those after it that came early wait here. */
  private next = 0;
  private readonly early = new Map<number, { count: number; values: Float32Array }>();
  private rows = 0;

  constructor(
    readonly length: number,
    readonly blocks: number,
    /** Memory for the sum (at least `length` long; zeroed here), to reuse one step after another. */
    memory?: Float64Array,
  ) {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, got ${length}`);
    if (!Number.isSafeInteger(blocks) || blocks < 1) throw new RangeError(`blocks must be a positive integer, got ${blocks}`);
    if (memory && memory.length < length) throw new RangeError(`memory for ${memory.length} values, the sum needs ${length}`);
    this.sum = memory ? memory.subarray(0, length).fill(0) : new Float64Array(length);
  }

  /** Block `block`'s mean gradient over `count` rows (copied where it comes early). */
  add(block: number, count: number, values: Float32Array): void {
    if (!Number.isInteger(block) || block < 0 || block >= this.blocks) throw new ReduceError(`block ${block} is not one of the batch's ${this.blocks}`);
    if (block < this.next || this.early.has(block)) throw new ReduceError(`block ${block} was given already`);
    if (!Number.isInteger(count) || count <= 0) throw new ReduceError(`block ${block} has row count ${count}, expected a positive integer`);
    if (values.length !== this.length) throw new ReduceError(`block ${block} has ${values.length} values, expected ${this.length}`);
    if (block !== this.next) {
      this.early.set(block, { count, values: values.slice() });
      return;
    }
    this.fold(count, values);
    for (let waiting = this.early.get(this.next); waiting; waiting = this.early.get(this.next)) {
      this.early.delete(this.next);
      this.fold(waiting.count, waiting.values);
    }
  }

  private fold(count: number, values: Float32Array): void {
    const sum = this.sum;
    for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + count * (values[i] as number);
    this.rows += count;
    this.next++;
  }

  /** Whether every block has been folded in. */
  get complete(): boolean {
    return this.next === this.blocks;
  }

  /** The mean over the batch's rows, once complete; written into `out` when given. */
  mean(out?: Float32Array): Float32Array {
    if (!this.complete) throw new ReduceError(`${this.blocks - this.next} of ${this.blocks} blocks are missing`);
    const result = out ?? new Float32Array(this.length);
    if (result.length !== this.length) throw new ReduceError(`output has length ${result.length}, expected ${this.length}`);
    for (let i = 0; i < this.length; i++) result[i] = (this.sum[i] as number) / this.rows;
    return result;
  }
}
