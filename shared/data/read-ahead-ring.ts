/**
 * Batches read ahead: a ring of slots in one SharedArrayBuffer, each holding the rows of one
 * coming step and their features, filled by a reader thread (worker/read-ahead-thread.ts) while
 * the current step computes, and read by the lanes instead of the disk (RingRows). A slot is a
 * cache of rows: a row's features are the same whichever slot holds them, so a lane takes the rows
 * it finds in a slot and reads the rest from disk, and gets what the disk would have given, bit
 * for bit, whatever the reader managed to do.
 *
 * A slot's life: EMPTY, then its rows are written and it is FILLING (a lane that needs one of
 * those rows waits for it rather than decoding it twice), then READY. Each refill bumps the slot's
 * generation, and a lane checks it after copying, so a slot rewritten under it is never used.
 */
import type { FeatureRows, OnDisk } from './feature-rows.js';

/** What a thread needs to open the ring. Plain data (it travels to threads). */
export interface RingInit {
  readonly buffer: SharedArrayBuffer;
  readonly slots: number;
  /** Rows a slot holds at most (the global batch size). */
  readonly rowsPerSlot: number;
  readonly features: number;
}

/** What the reader thread starts with. */
export interface ReaderInit {
  readonly ring: RingInit;
  readonly onDisk: OnDisk;
}

/** Fill slot `slot` with the rows of `step` (a message to the reader thread). */
export interface FillRequest {
  readonly slot: number;
  readonly step: number;
  readonly rows: Int32Array;
}

const EMPTY = 0;
const FILLING = 1;
const READY = 2;
/** Int32 words per slot in the header: state, generation, row count, step. */
const WORDS = 4;
/** After the slots' words: the step the lanes are computing now (the reader skips older fills), and the fills done. */
const current = (slots: number): number => slots * WORDS;
const filled = (slots: number): number => slots * WORDS + 1;

export class ReadAheadRing {
  private readonly header: Int32Array;
  private readonly rows: Int32Array;
  private readonly values: Float32Array;

  constructor(readonly init: RingInit) {
    const { buffer, slots, rowsPerSlot, features } = init;
    this.header = new Int32Array(buffer, 0, slots * WORDS + 2);
    this.rows = new Int32Array(buffer, this.header.byteLength, slots * rowsPerSlot);
    this.values = new Float32Array(buffer, this.header.byteLength + this.rows.byteLength, slots * rowsPerSlot * features);
  }

  static create(slots: number, rowsPerSlot: number, features: number): ReadAheadRing {
    const bytes = 4 * (slots * WORDS + 2 + slots * rowsPerSlot + slots * rowsPerSlot * features);
    return new ReadAheadRing({ buffer: new SharedArrayBuffer(bytes), slots, rowsPerSlot, features });
  }

  /** Bytes the ring holds (the read-ahead's memory). */
  get bytes(): number {
    return this.init.buffer.byteLength;
  }

  /** Every slot EMPTY, and lanes waiting on one woken (the reader is gone: a slot it was filling never will be). */
  clear(): void {
    for (let k = 0; k < this.init.slots; k++) {
      Atomics.store(this.header, k * WORDS, EMPTY);
      Atomics.notify(this.header, k * WORDS);
    }
  }

  /** Slots filled so far. */
  get fills(): number {
    return Atomics.load(this.header, filled(this.init.slots));
  }

  /** Marks `step` as the one being computed: fills for earlier steps are skipped. */
  setCurrent(step: number): void {
    Atomics.store(this.header, current(this.init.slots), step);
  }

  /**
   * Fills `slot` with `rows` (the rows of `step`), their features read from `source`. Does
   * nothing where the lanes are past `step`. A read that throws leaves the slot EMPTY (the lanes
   * then read those rows themselves and meet the error) and rethrows.
   */
  fill(slot: number, step: number, rows: Int32Array, source: FeatureRows): boolean {
    const { header } = this;
    if (step < Atomics.load(header, current(this.init.slots))) return false;
    const at = slot * WORDS;
    const n = Math.min(rows.length, this.init.rowsPerSlot);
    Atomics.store(header, at, EMPTY);
    Atomics.add(header, at + 1, 1);
    this.rows.set(rows.subarray(0, n), slot * this.init.rowsPerSlot);
    Atomics.store(header, at + 2, n);
    Atomics.store(header, at + 3, step);
    Atomics.store(header, at, FILLING);
    const features = this.init.features;
    const start = slot * this.init.rowsPerSlot * features;
    try {
      source.gather(rows.subarray(0, n), this.values.subarray(start, start + n * features));
      Atomics.store(header, at, READY);
      Atomics.add(header, filled(this.init.slots), 1);
    } catch (err) {
      Atomics.store(header, at, EMPTY);
      throw err;
    } finally {
      Atomics.notify(header, at);
    }
    return true;
  }

  /** Where each slot's rows are, rebuilt when its generation changes. */
  private readonly maps: { generation: number; positions: Map<number, number> }[] = [];

  /** The slot state, generation and row positions of slot `k`, or undefined when it is empty. */
  slot(k: number): { state: number; generation: number; positions: Map<number, number> } | undefined {
    const at = k * WORDS;
    // the generation before the state: a refill empties the slot before it bumps the generation,
    // so a slot seen not EMPTY after its generation holds that generation's rows in full
    const generation = Atomics.load(this.header, at + 1);
    const state = Atomics.load(this.header, at);
    if (state === EMPTY) return undefined;
    let map = this.maps[k];
    if (map?.generation !== generation) {
      const count = Atomics.load(this.header, at + 2);
      const first = k * this.init.rowsPerSlot;
      const positions = new Map<number, number>();
      for (let i = 0; i < count; i++) positions.set(this.rows[first + i]!, i);
      map = this.maps[k] = { generation, positions };
    }
    // the rows were written before the state left EMPTY: re-check it was not refilled meanwhile
    if (Atomics.load(this.header, at + 1) !== generation) return undefined;
    return { state, generation, positions: map.positions };
  }

  /** Waits up to `ms` for slot `k` to stop FILLING; whether it is READY with `generation` now. */
  waitReady(k: number, generation: number, ms: number): boolean {
    const at = k * WORDS;
    Atomics.wait(this.header, at, FILLING, ms);
    return this.isReady(k, generation);
  }

  isReady(k: number, generation: number): boolean {
    const at = k * WORDS;
    return Atomics.load(this.header, at) === READY && Atomics.load(this.header, at + 1) === generation;
  }

  /** Row `position` of slot `k`'s features. */
  features(k: number, position: number): Float32Array {
    const f = this.init.features;
    const start = (k * this.init.rowsPerSlot + position) * f;
    return this.values.subarray(start, start + f);
  }
}

/** How long a lane waits for a slot being filled before it reads the rows itself. */
const FILL_WAIT_MS = 30_000;

/** FeatureRows that take rows from the ring where it holds them, and from `disk` otherwise. */
export class RingRows implements FeatureRows {
  readonly features: number;
  /** Rows served from the ring and from the disk (for the tests and the benchmark). */
  readonly served = { ring: 0, disk: 0 };

  constructor(
    private readonly ring: ReadAheadRing,
    private readonly disk: FeatureRows,
  ) {
    this.features = disk.features;
  }

  gather(rows: ArrayLike<number>, out = new Float32Array(rows.length * this.features)): Float32Array {
    const f = this.features;
    const missing: number[] = [];
    const slots = Array.from({ length: this.ring.init.slots }, (_, k) => this.ring.slot(k));
    /** Per slot used: its generation when read, and the output rows it gave. */
    const used = new Map<number, { generation: number; taken: number[] }>();
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      let from = -1;
      for (let k = 0; k < slots.length && from < 0; k++) if (slots[k]?.positions.has(row)) from = k;
      const slot = from >= 0 ? slots[from]! : undefined;
      if (!slot || (slot.state !== READY && !this.ring.waitReady(from, slot.generation, FILL_WAIT_MS))) {
        if (slot) slots[from] = undefined;
        missing.push(i);
        continue;
      }
      slot.state = READY;
      out.set(this.ring.features(from, slot.positions.get(row)!), i * f);
      let u = used.get(from);
      if (!u) used.set(from, (u = { generation: slot.generation, taken: [] }));
      u.taken.push(i);
    }
    // a slot refilled while its rows were copied: those rows come from the disk
    for (const [k, u] of used) if (!this.ring.isReady(k, u.generation)) missing.push(...u.taken);
    this.served.ring += rows.length - missing.length;
    this.served.disk += missing.length;
    if (missing.length > 0) {
      const read = this.disk.gather(missing.map((i) => rows[i]!));
      missing.forEach((i, j) => out.set(read.subarray(j * f, (j + 1) * f), i * f));
    }
    return out;
  }

  range(start: number, count: number, out?: Float32Array): Float32Array {
    return this.disk.range(start, count, out);
  }
}
