/**
 * FramePool: reusable memory for the large frames a peer sends every step (the coordinator's
 * weights, a worker's gradient). A fresh megabyte-sized buffer per frame costs page faults and
 * garbage collection each step; on the virtual machines measured here that was over a
 * millisecond per megabyte, more than the copy itself (BENCHMARKS.md).
 *
 * Memory may be written again only when nothing can still read it: the encoder holds a frame
 * until it calls `release()`, and every send holds it from `retain()` until the socket has
 * written it (the callback `retain` returns, which ws calls when the write is done or has failed).
 * When every slot is held, the pool allocates: a frame is never overwritten while in use.
 */
import { encodeMessage } from './codec.js';
import { type Message } from './schemas.js';

interface Slot {
  memory: Uint8Array;
  holds: number;
}

export class PooledFrame {
  private released = false;

  constructor(
    readonly bytes: Uint8Array,
    private readonly slot: Slot | undefined,
  ) {}

  /** Holds the frame for one send; call the returned function once the send is written or failed. */
  retain(): () => void {
    const slot = this.slot;
    if (!slot) return () => undefined;
    slot.holds++;
    let done = false;
    return () => {
      if (!done) {
        done = true;
        slot.holds--;
      }
    };
  }

  /** The encoder will not hand this frame to any further send. */
  release(): void {
    if (this.released || !this.slot) return;
    this.released = true;
    this.slot.holds--;
  }
}

export class FramePool {
  private readonly slots: Slot[] = [];

  /** At most `maxSlots` buffers are kept (frames beyond them get memory of their own). */
  constructor(private readonly maxSlots = 3) {}

  /** Encodes `message` into memory no earlier frame still uses. */
  encode(message: Message): PooledFrame {
    let slot: Slot | undefined;
    const bytes = encodeMessage(message, (size) => {
      slot = this.slots.find((s) => s.holds === 0);
      if (!slot && this.slots.length < this.maxSlots) {
        slot = { memory: new Uint8Array(0), holds: 0 };
        this.slots.push(slot);
      }
      if (!slot) return new Uint8Array(size);
      // grown with headroom, so that a frame a few bytes longer (a bigger header) still fits
      if (slot.memory.byteLength < size) slot.memory = new Uint8Array(size + 4096);
      slot.holds = 1;
      return slot.memory;
    });
    return new PooledFrame(bytes, slot);
  }

  /** Buffers kept, and how many of them are in use (for tests). */
  get usage(): { slots: number; held: number } {
    return { slots: this.slots.length, held: this.slots.filter((s) => s.holds > 0).length };
  }
}
