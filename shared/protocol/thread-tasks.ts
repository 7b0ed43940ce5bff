/**
 * Messages between the coordinator and its Piscina threads. The data set and the weights live
 * in SharedArrayBuffers handed over once at start (ThreadInit); per step a thread gets only the
 * row indices it must compute and the weights version to use.
 */
import type { BackendChoice } from '../backend-choice.js';
import type { EngineName, ModelSpec } from '../model/spec.js';
import type { OnDisk } from '../data/feature-rows.js';
import type { RingInit } from '../data/read-ahead-ring.js';

export interface ThreadInit {
  readonly spec: ModelSpec;
  readonly backend: BackendChoice;
  /** How gradients are computed: 'dense' (direct backpropagation) or 'tape' (stock tfjs). */
  readonly engine: EngineName;
  readonly x: SharedArrayBuffer;
  readonly y: SharedArrayBuffer;
  readonly features: number;
  readonly outputs: number;
  /** The current flat weights, written by the coordinator between steps. */
  readonly weights: SharedArrayBuffer;
  /** Each row's sample weight (data.sampleWeight), or absent. */
  readonly sampleWeights?: SharedArrayBuffer;
  /** The features are on disk (a .npy file, tar shards; x is then empty); its arrays in SharedArrayBuffers. */
  readonly onDisk?: OnDisk;
  /** The read-ahead ring to take rows from before the disk (a data set on disk, data.readAhead). */
  readonly readAhead?: RingInit;
}

/** Gradient of the mean loss over `rows` with the weights of `version`. Answer: a GradientPacket. */
export interface GradientTask {
  readonly kind: 'gradient';
  readonly step: number;
  readonly version: number;
  readonly rows: Int32Array;
  /** Each row's virtual batch (batch norm), or absent. */
  readonly groups?: Int32Array;
}

/** Loss and metric sums over rows start..start+count-1 with the weights of `version`. */
export interface EvaluateTask {
  readonly kind: 'evaluate';
  readonly version: number;
  readonly start: number;
  readonly count: number;
}

/** Which backend the thread is running. */
export interface InfoTask {
  readonly kind: 'info';
}

export type ThreadTask = GradientTask | EvaluateTask | InfoTask;

export interface EvaluateAnswer {
  readonly count: number;
  readonly lossSum: number;
  readonly metricSums: number[];
  readonly numTensors: number;
}

export interface InfoAnswer {
  readonly backend: string;
  /** The WebGPU adapter, described. */
  readonly adapter?: string;
  readonly numTensors: number;
}
