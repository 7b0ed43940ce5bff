/**
 * ReadAhead: the coordinator's side of reading batches ahead for a data set left on disk. It
 * owns the ring (shared/data/read-ahead-ring.ts) the local lanes read, and a reader thread that
 * fills it: at each step the fit loop names the coming batches, and the ones not yet asked for,
 * up to `batches` ahead, are sent to the reader. What it reads is a cache: a lane that finds
 * nothing there reads the disk, so a slow or failed reader costs time, never a different model.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Dataset } from '../../shared/data/dataset.js';
import { ReadAheadRing, type FillRequest, type ReaderInit, type RingInit } from '../../shared/data/read-ahead-ring.js';

/** The compiled reader thread (threads run JavaScript, also when the caller runs from source). */
function readerEntry(): string | undefined {
  for (const rel of ['../../worker/read-ahead-thread.js', '../../dist/worker/read-ahead-thread.js']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  return undefined;
}

export class ReadAhead {
  /** The highest step asked for so far. */
  private asked = -1;
  private failed = false;

  private constructor(
    private readonly ring: ReadAheadRing,
    private readonly reader: Worker,
    private readonly batches: number,
    log: (line: string) => void,
  ) {
    reader.on('error', (err) => {
      // the lanes read the disk themselves from now on
      this.failed = true;
      ring.clear();
      log(`warning: the read-ahead thread stopped (${err.message}); batches are read by the lanes`);
    });
  }

  /** A read-ahead of `batches` batches of up to `batchSize` rows, or undefined where the data is in memory or `batches` is 0. */
  static start(dataset: Dataset, batches: number, batchSize: number, log: (line: string) => void): ReadAhead | undefined {
    const entry = readerEntry();
    if (!dataset.onDisk || batches <= 0 || !entry) return undefined;
    const ring = ReadAheadRing.create(batches + 1, Math.min(batchSize, dataset.train.count), dataset.features);
    const init: ReaderInit = { ring: ring.init, onDisk: dataset.onDisk };
    const reader = new Worker(entry, { workerData: init });
    reader.unref();
    return new ReadAhead(ring, reader, batches, log);
  }

  /** Batches the reader has read so far. */
  get fills(): number {
    return this.ring.fills;
  }

  /** What the lanes open the ring with. */
  get init(): RingInit {
    return this.ring.init;
  }

  /** Step `step` is about to compute batches[index]; batches[index + i] is the batch of step + i. */
  prefetch(step: number, batches: readonly Int32Array[], index: number): void {
    this.ring.setCurrent(step);
    if (this.failed) return;
    const last = step + Math.min(this.batches, batches.length - 1 - index);
    for (let s = Math.max(step, this.asked + 1); s <= last; s++) {
      const request: FillRequest = { slot: s % this.ring.init.slots, step: s, rows: batches[index + s - step]!.slice() };
      this.reader.postMessage(request);
      this.asked = s;
    }
  }

  async close(): Promise<void> {
    await this.reader.terminate();
  }
}
