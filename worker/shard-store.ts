/**
 * ShardStore: the training rows a worker node holds, as the coordinator sent them (chunks of
 * contiguous rows, indexed by their global row number). A step names held rows by index and
 * brings any other rows inline; `batch` puts both together for the gradient engine. A node that
 * reads the job's data file itself holds only its rows' file rows (and targets), and reads their
 * features per batch.
 */
import { WorkerError } from '../shared/errors.js';

/** Reads file rows of the job's data file (from --data-dir or --data-url) as float32 features into out. */
export interface DataFileReader {
  readonly path: string;
  readonly rows: number;
  read(fileRows: Int32Array, out: Float32Array): Promise<unknown> | unknown;
}

interface Chunk {
  readonly start: number;
  readonly count: number;
  /** The rows' features, or (empty) their file rows in `fileRows`. */
  readonly x: Float32Array;
  readonly fileRows: Int32Array | undefined;
  readonly y: Float32Array;
  /** The rows' sample weights, where the job has them. */
  readonly w: Float32Array | undefined;
}

export class ShardStore {
  private readonly chunks: Chunk[] = [];
  private held = 0;

  constructor(
    readonly features: number,
    readonly outputs: number,
    /** The job's data file, read here (job.dataFile): where it is, its row count, and its reader. */
    private readonly file?: DataFileReader,
  ) {}

  /** Rows held (a row sent twice counts twice; the coordinator sends only missing rows). */
  get rows(): number {
    return this.held;
  }

  add(start: number, count: number, x: Float32Array, y: Float32Array, w?: Float32Array, fileRows?: Int32Array): void {
    if (fileRows) this.checkFileRows(start, count, x, fileRows);
    else if (this.file) throw new WorkerError(`shard chunk of ${count} rows from ${start} brings features, and this node reads them from ${this.file.path}`);
    if ((!fileRows && x.length !== count * this.features) || y.length !== count * this.outputs) {
      throw new WorkerError(
        `shard chunk of ${count} rows from ${start} has ${x.length} feature values and ${y.length} targets, expected ${count * this.features} and ${count * this.outputs}`,
      );
    }
    if (w !== undefined && w.length !== count) throw new WorkerError(`shard chunk of ${count} rows from ${start} has ${w.length} sample weights`);
    if (this.chunks.length > 0 && (w === undefined) !== (this.chunks[0]!.w === undefined)) throw new WorkerError(`shard chunk of ${count} rows from ${start} ${w ? 'has' : 'lacks'} sample weights, unlike the chunks before it`);
    if (w?.some((v) => !(v >= 0))) throw new WorkerError(`shard chunk of ${count} rows from ${start} has a negative sample weight`);
    this.chunks.push({ start, count, x, fileRows, y, w });
    this.chunks.sort((a, b) => a.start - b.start);
    this.held += count;
  }

  private checkFileRows(start: number, count: number, x: Float32Array, fileRows: Int32Array): void {
    const { file } = this;
    if (!file) throw new WorkerError(`shard chunk of ${count} rows from ${start} names file rows, and the job has no data file for this node`);
    if (fileRows.length !== count || x.length !== 0) throw new WorkerError(`shard chunk of ${count} rows from ${start} has ${fileRows.length} file rows and ${x.length} feature values`);
    const bad = fileRows.findIndex((r) => r < 0 || r >= file.rows);
    if (bad >= 0) throw new WorkerError(`shard chunk of ${count} rows from ${start} names file row ${fileRows[bad]}, and ${file.path} has ${file.rows}`);
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

  /** Features, targets (and sample weights) of the held `rows`, followed by the inline rows `x`, `y` (`w`). */
  async batch(rows: Int32Array, x: Float32Array, y: Float32Array, w?: Float32Array): Promise<{ xs: Float32Array; ys: Float32Array; ws: Float32Array | undefined; count: number }> {
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
    rows.forEach((row, i) => {
      const c = this.find(row);
      const k = row - c.start;
      if (c.fileRows) fromFile.push(c.fileRows[k]!);
      else xs.set(c.x.subarray(k * features, (k + 1) * features), i * features);
      ys.set(c.y.subarray(k * outputs, (k + 1) * outputs), i * outputs);
      if (ws) ws[i] = c.w![k]!;
    });
    // a node reading the file holds only file rows, so its held rows all come from there, in order
    if (fromFile.length > 0) await this.file!.read(Int32Array.from(fromFile), xs);
    xs.set(x, rows.length * features);
    ys.set(y, rows.length * outputs);
    if (ws && w) ws.set(w, rows.length);
    return { xs, ys, ws, count };
  }
}
