/**
 * InProcessLane: the coordinator computes the gradients itself, in its own thread, with a
 * LocalLane over the same shared data set and weights the threads would use. Used for a job with
 * one lane and no worker nodes (`cluster.inProcess`): one Piscina thread would only add a round
 * trip per step (post, wake, transfer back) while the coordinator waits; `model.fit` pays none.
 * It is also the one local lane that may run the `tensorflow` backend (tfjs-node is not safe in
 * worker threads, but is in a process's main thread).
 */
import type { BackendChoice } from '../../shared/backend-choice.js';
import type { Dataset, RowRange } from '../../shared/data/dataset.js';
import { featureRows } from '../../shared/data/feature-rows.js';
import { ReadAheadRing, RingRows } from '../../shared/data/read-ahead-ring.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import type { GradientResult } from '../../shared/protocol/gradient-packet.js';
import type { EvaluateAnswer } from '../../shared/protocol/thread-tasks.js';
import type { LocalLane } from '../../compute/local-lane.js';
import { ParticipantFault, type LocalLanes, type Participant } from './participant.js';
import type { ReadAhead } from './read-ahead.js';

export interface InProcessOptions {
  readonly backend: BackendChoice;
  readonly spec: ModelSpec;
  readonly dataset: Dataset;
  readonly parameters: number;
  /** Hears why `auto` did not get wasm. */
  readonly onFallback?: (message: string) => void;
  /** Batches read ahead for a data set on disk (the lane closes it). */
  readonly readAhead?: ReadAhead | undefined;
}

export class InProcessLane implements LocalLanes {
  readonly participants: readonly Participant[];

  private constructor(
    private readonly lane: LocalLane,
    /** The array the lane reads its weights from. */
    private readonly weights: Float32Array,
    readonly backend: string,
    readonly backendDetail: string | undefined,
    private readonly readAhead: ReadAhead | undefined,
  ) {
    this.participants = [this.participant('main')];
  }

  static async start(options: InProcessOptions): Promise<InProcessLane> {
    // tfjs is loaded only when a job computes in-process.
    const [{ backendReport, initBackend }, { LocalLane }] = await Promise.all([import('../../shared/backend.js'), import('../../compute/local-lane.js')]);
    const backend = await initBackend(options.backend, options.onFallback);
    const report = backendReport();
    const { dataset } = options;
    const weights = new Float32Array(options.parameters);
    const disk = featureRows(dataset);
    const x = options.readAhead ? new RingRows(new ReadAheadRing(options.readAhead.init), disk) : disk;
    const lane = new LocalLane({ spec: options.spec, engine: 'dense', x, y: dataset.y, outputs: dataset.outputs, weights, ...(dataset.sampleWeights ? { sampleWeights: dataset.sampleWeights } : {}) });
    const detail = [report.adapter, options.backend === 'auto' ? report.reason : undefined].filter(Boolean).join('; ');
    return new InProcessLane(lane, weights, backend, detail || undefined, options.readAhead);
  }

  publish(weights: Float32Array): void {
    this.weights.set(weights);
  }

  private participant(id: string): Participant {
    const guard = async <T>(compute: () => Promise<T>): Promise<T> => {
      // Let the event loop run first (signals, /metrics, timers): otherwise a whole fit of
      // already-resolved promises would never yield to it.
      await new Promise<void>((resolve) => setImmediate(resolve));
      try {
        return await compute();
      } catch (err) {
        throw new ParticipantFault(id, 'worker_error', (err as Error).message);
      }
    };
    return {
      id,
      kind: 'thread',
      holds: undefined,
      gradient: (step, version, rows, groups): Promise<GradientResult> => guard(() => this.lane.gradient(version, { step, rows, ...(groups ? { groups } : {}) })),
      evaluate: (version, range: RowRange): Promise<EvaluateAnswer> => guard(() => this.lane.evaluate(version, range.start, range.count)),
    };
  }

  prefetch(step: number, batches: readonly Int32Array[], index: number): void {
    this.readAhead?.prefetch(step, batches, index);
  }

  async close(): Promise<void> {
    this.lane.dispose();
    await this.readAhead?.close();
  }
}
