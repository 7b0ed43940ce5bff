/**
 * ShardStore: the training rows a worker node holds, as the coordinator sent them (chunks of
 * contiguous rows, indexed by their global row number). A step names held rows by index and
 * brings any other rows inline; `batch` puts both together for the gradient engine. A node that
 * reads the job's data itself holds only where its rows are in the files (and their targets),
 * and reads their features per batch (data-files.ts).
 */
import { WorkerError } from '../shared/errors.js';
import type { DataFileReader } from './data-files.js';

interface Chunk {
  readonly start: number;
  readonly count: number;
  /** The rows' features, or (empty) where they are in the job's files, `refWidth` numbers a row in `refs`. */
  readonly x: Float32Array;
  readonly refs: Float64Array | undefined;
  readonly y: Float32Array;
  /** The rows' sample weights, where the job has them. */
  readonly w: Float32Array | undefined;
}

/** Rows of a coming step read ahead (step.next): their features once `done` resolves true. */
interface ReadAhead {
  readonly step: number;
  readonly at: Map<number, number>;
  readonly values: Float32Array;
  readonly done: Promise<boolean>;
}

export class ShardStore {
  private readonly chunks: Chunk[] = [];
  private held = 0;
  /** The next step's rows being read (one step ahead at most). */
  private ahead: ReadAhead | undefined;
  /** Held rows whose features came from a read ahead, and from a read in the step. */
  readonly reads = { ahead: 0, inStep: 0 };

  constructor(
    readonly features: number,
    readonly outputs: number,
    /** The job's data files, read here (job.dataFile). */
    private readonly file?: DataFileReader,
  ) {}

  /** Rows held (a row sent twice counts twice; the coordinator sends only missing rows). */
  get rows(): number {
    return this.held;
  }

  add(start: number, count: number, x: Float32Array, y: Float32Array, w?: Float32Array, refs?: Float64Array): void {
    if (refs) this.checkRefs(start, count, x, refs);
    else if (this.file) throw new WorkerError(`shard chunk of ${count} rows from ${start} brings features, and this node reads them from ${this.file.path}`);
    if ((!refs && x.length !== count * this.features) || y.length !== count * this.outputs) {
      throw new WorkerError(
        `shard chunk of ${count} rows from ${start} has ${x.length} feature values and ${y.length} targets, expected ${count * this.features} and ${count * this.outputs}`,
      );
    }
    if (w !== undefined && w.length !== count) throw new WorkerError(`shard chunk of ${count} rows from ${start} has ${w.length} sample weights`);
    if (this.chunks.length > 0 && (w === undefined) !== (this.chunks[0]!.w === undefined)) throw new WorkerError(`shard chunk of ${count} rows from ${start} ${w ? 'has' : 'lacks'} sample weights, unlike the chunks before it`);
    if (w?.some((v) => !(v >= 0))) throw new WorkerError(`shard chunk of ${count} rows from ${start} has a negative sample weight`);
    this.chunks.push({ start, count, x, refs, y, w });
    this.chunks.sort((a, b) => a.start - b.start);
    this.held += count;
  }

  private checkRefs(start: number, count: number, x: Float32Array, refs: Float64Array): void {
    const { file } = this;
    if (!file) throw new WorkerError(`shard chunk of ${count} rows from ${start} names rows in files, and the job has no data file for this node`);
    if (refs.length !== count * file.refWidth || x.length !== 0) throw new WorkerError(`shard chunk of ${count} rows from ${start} has ${refs.length} file references and ${x.length} feature values`);
    const bad = file.check(refs);
    if (bad) throw new WorkerError(`shard chunk of ${count} rows from ${start} names ${bad}`);
  }

  /** The chunk holding `row`, or undefined. */
  private findHeld(row: number): Chunk | undefined {
    try {
      return this.find(row);
    } catch {
      return undefined;
    }
  }

  private find(row: number): Chunk {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = this.chunks[mid]!;
      if (row < c.start) hi = mid - 1;
      else if (row >= c.start + c.count) lo = mid + 1;
      else return c;
    }
    throw new WorkerError(`row ${row} was named in a step but is not in this node's shard`);
  }

  /**
   * Starts reading the features of held `rows`, which step `step` will likely name (step.next),
   * where they come from the network: the reads overlap the computing of the step before it.
   * Rows this node does not hold are left out; a read that fails is left to the step, which reads
   * again and reports the error.
   */
  prefetch(step: number, rows: Int32Array): void {
    const file = this.file;
    if (!file?.remote || this.ahead?.step === step) return;
    const width = file.refWidth;
    const refs: number[] = [];
    const at = new Map<number, number>();
    for (const row of rows) {
      const c = this.findHeld(row);
      if (!c?.refs || at.has(row)) continue;
      const k = row - c.start;
      at.set(row, at.size);
      for (let j = 0; j < width; j++) refs.push(c.refs[k * width + j]!);
    }
    if (at.size === 0) return;
    const values = new Float32Array(at.size * this.features);
    this.ahead = { step, at, values, done: file.read(Float64Array.from(refs), values).then(() => true, () => false) };
  }

  /** Features, targets (and sample weights) of the held `rows`, followed by the inline rows `x`, `y` (`w`); `step`: the step they are for (rows read ahead for it are used). */
  async batch(rows: Int32Array, x: Float32Array, y: Float32Array, w?: Float32Array, step?: number): Promise<{ xs: Float32Array; ys: Float32Array; ws: Float32Array | undefined; count: number }> {
    const { features, outputs } = this;
    if (x.length % features !== 0 || y.length !== (x.length / features) * outputs) {
      throw new WorkerError(`inline rows: ${x.length} feature values and ${y.length} targets do not make whole rows of ${features} + ${outputs}`);
    }
    const inline = x.length / features;
    const count = rows.length + inline;
    const weighted = this.chunks.length > 0 ? this.chunks[0]!.w !== undefined : w !== undefined;
    if (weighted && inline > 0 && w?.length !== inline) throw new WorkerError(`inline rows: ${w?.length ?? 0} sample weights for ${inline} rows`);
    if (!weighted && w !== undefined && w.length > 0) throw new WorkerError('inline rows bring sample weights, and the held rows have none');
    const xs = new Float32Array(count * features);
    const ys = new Float32Array(count * outputs);
    const ws = weighted ? new Float32Array(count) : undefined;
    const fromFile: number[] = [];
    /** Where each row read from the file goes (its position in the batch). */
    const fileAt: number[] = [];
    const width = this.file?.refWidth ?? 1;
    const pending = step === undefined ? undefined : this.ahead;
    let ahead: ReadAhead | undefined;
    if (pending && pending.step <= step!) {
      this.ahead = undefined;
      if (pending.step === step && (await pending.done)) ahead = pending;
    }
    rows.forEach((row, i) => {
      const c = this.find(row);
      const k = row - c.start;
      const early = ahead?.at.get(row);
      if (early !== undefined) {
        xs.set(ahead!.values.subarray(early * features, (early + 1) * features), i * features);
        this.reads.ahead++;
      } else if (c.refs) {
        for (let j = 0; j < width; j++) fromFile.push(c.refs[k * width + j]!);
        fileAt.push(i);
        this.reads.inStep++;
      } else xs.set(c.x.subarray(k * features, (k + 1) * features), i * features);
      ys.set(c.y.subarray(k * outputs, (k + 1) * outputs), i * outputs);
      if (ws) ws[i] = c.w![k]!;
    });
    if (fromFile.length > 0) {
      // in order into the batch where every held row is read now; else through a buffer
      const direct = fileAt.length === rows.length;
      const read = direct ? xs : new Float32Array(fileAt.length * features);
      await this.file!.read(Float64Array.from(fromFile), read);
      if (!direct) fileAt.forEach((i, j) => xs.set(read.subarray(j * features, (j + 1) * features), i * features));
    }
    xs.set(x, rows.length * features);
    ys.set(y, rows.length * outputs);
    if (ws && w) ws.set(w, rows.length);
    return { xs, ys, ws, count };
  }
}
