/**
 * Local participants: Piscina worker threads. The data set and weights are SharedArrayBuffers
 * given to every thread once; a step sends only row indices, and a gradient comes back as a
 * transferred ArrayBuffer (GradientPacket).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { BackendChoice } from '../../shared/backend-choice.js';
import type { Dataset, RowRange } from '../../shared/data/dataset.js';
import { WorkerError } from '../../shared/errors.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import { unpackGradient, type GradientResult } from '../../shared/protocol/gradient-packet.js';
import type { EvaluateAnswer, InfoAnswer, ThreadInit, ThreadTask } from '../../shared/protocol/thread-tasks.js';
import { ParticipantFault, type LocalLanes, type Participant } from './participant.js';
import type { ReadAhead } from './read-ahead.js';

/** The compiled thread entry (threads run JavaScript, also when the caller runs from source). */
function threadEntry(): string {
  for (const rel of ['../../worker/thread-entry.cjs', '../../dist/worker/thread-entry.cjs']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new WorkerError('the thread entry dist/worker/thread-entry.cjs is missing: run `npm run build` first');
}

export interface ThreadPoolOptions {
  readonly threads: number;
  readonly backend: BackendChoice;
  readonly spec: ModelSpec;
  readonly dataset: Dataset;
  readonly parameters: number;
  /** Counts bytes passed to and from threads (row indices out, gradient packets back). */
  readonly onBytes?: (direction: 'sent' | 'received', bytes: number) => void;
  /** Batches read ahead for a data set on disk (the pool closes it). */
  readonly readAhead?: ReadAhead | undefined;
}

export class ThreadPool implements LocalLanes {
  readonly participants: Participant[];
  private readonly weights: Float32Array;

  private constructor(
    private readonly pool: Piscina,
    weights: SharedArrayBuffer,
    private readonly parameters: number,
    threads: number,
    readonly backend: string,
    readonly backendDetail: string | undefined,
    private readonly onBytes?: (direction: 'sent' | 'received', bytes: number) => void,
    private readonly readAhead?: ReadAhead,
  ) {
    this.weights = new Float32Array(weights);
    this.participants = Array.from({ length: threads }, (_, i) => this.participant(`thread-${i}`));
  }

  static async start(options: ThreadPoolOptions): Promise<ThreadPool> {
    const { dataset } = options;
    const weights = new SharedArrayBuffer(options.parameters * Float32Array.BYTES_PER_ELEMENT);
    const init: ThreadInit = {
      spec: options.spec,
      backend: options.backend,
      engine: 'dense',
      x: dataset.x.buffer as SharedArrayBuffer,
      y: dataset.y.buffer as SharedArrayBuffer,
      features: dataset.features,
      outputs: dataset.outputs,
      weights,
      ...(dataset.sampleWeights ? { sampleWeights: dataset.sampleWeights.buffer as SharedArrayBuffer } : {}),
      ...(dataset.onDisk ? { onDisk: dataset.onDisk } : {}),
      ...(options.readAhead ? { readAhead: options.readAhead.init } : {}),
    };
    const pool = new Piscina({
      filename: threadEntry(),
      minThreads: options.threads,
      maxThreads: options.threads,
      idleTimeout: 2 ** 31 - 1,
      concurrentTasksPerWorker: 1,
      workerData: init,
    });
    let info: InfoAnswer;
    try {
      info = (await pool.run({ kind: 'info' } satisfies ThreadTask)) as InfoAnswer;
    } catch (err) {
      await pool.destroy();
      await options.readAhead?.close();
      throw new WorkerError(`worker threads failed to start: ${(err as Error).message}`, { cause: err });
    }
    return new ThreadPool(pool, weights, options.parameters, options.threads, info.backend, info.adapter, options.onBytes, options.readAhead);
  }

  publish(weights: Float32Array): void {
    // Only called between steps, while no thread is reading.
    this.weights.set(weights);
  }

  private participant(id: string): Participant {
    const run = async <T>(task: ThreadTask): Promise<T> => {
      try {
        return (await this.pool.run(task)) as T;
      } catch (err) {
        throw new ParticipantFault(id, 'crashed', (err as Error).message);
      }
    };
    return {
      id,
      kind: 'thread',
      holds: undefined,
      gradient: async (step, version, rows, groups): Promise<GradientResult> => {
        // slice(): send only this part, not the whole epoch order the view points into.
        this.onBytes?.('sent', rows.byteLength + (groups?.byteLength ?? 0));
        const packet = await run<ArrayBuffer>({ kind: 'gradient', step, version, rows: rows.slice(), ...(groups ? { groups: groups.slice() } : {}) });
        this.onBytes?.('received', packet.byteLength);
        try {
          return unpackGradient(packet, this.parameters);
        } catch (err) {
          throw new ParticipantFault(id, 'shape', (err as Error).message);
        }
      },
      evaluate: (version, range: RowRange) => run<EvaluateAnswer>({ kind: 'evaluate', version, start: range.start, count: range.count }),
    };
  }

  prefetch(step: number, batches: readonly Int32Array[], index: number): void {
    this.readAhead?.prefetch(step, batches, index);
  }

  async close(): Promise<void> {
    await this.pool.destroy();
    await this.readAhead?.close();
  }
}
