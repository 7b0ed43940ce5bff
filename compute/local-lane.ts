/**
 * LocalLane: gradients and evaluations over a data set in shared memory, computed in the calling
 * thread. The Piscina thread entry (thread.ts) runs one per thread; the coordinator runs one in
 * its own thread for a single-lane job (coordinator/participants/in-process.ts), as `model.fit`
 * would. Rows are read in place (or from the file of a data set on disk); weights are reloaded from the shared array when the version
 * changes.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs-core';
import type { GradientResult } from '../shared/protocol/gradient-packet.js';
import type { EvaluateAnswer } from '../shared/protocol/thread-tasks.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import type { ModelSpec } from '../shared/model/spec.js';
import type { BatchEngine, EngineName } from './engine.js';
import { createEngine } from './gradient.js';
import { PartSums } from './part-sums.js';
import type { FeatureRows } from '../shared/data/feature-rows.js';
import { rowChunks } from '../shared/data/row-chunks.js';

export interface LocalLaneData {
  readonly spec: ModelSpec;
  readonly engine: EngineName;
  /** Features of every row (in memory or on disk). */
  readonly x: FeatureRows;
  /** Targets of every row, row-major. */
  readonly y: Float32Array;
  readonly outputs: number;
  /** The current flat weights, written by the coordinator between steps. */
  readonly weights: Float32Array;
  /** Each row's weight in the training loss (data.sampleWeight), or absent. */
  readonly sampleWeights?: Float32Array;
}

export class LocalLane {
  private readonly engine: BatchEngine;
  private loadedVersion = -1;

  constructor(private readonly data: LocalLaneData) {
    this.engine = createEngine(data.spec, data.engine);
  }

  /** Mean gradient over `batch.rows` with the weights of `version` (written into `out` if given), and the time it took. */
  async gradient(version: number, batch: BatchRows, out?: Float32Array): Promise<GradientResult> {
    const started = performance.now();
    const { rows } = batch;
    this.useVersion(version);
    const { outputs, x, y } = this.data;
    const xs = x.gather(rows);
    const ys = new Float32Array(rows.length * outputs);
    rows.forEach((r, i) => ys.set(y.subarray(r * outputs, (r + 1) * outputs), i * outputs));
    const { sampleWeights } = this.data;
    const withWeights = sampleWeights ? { ...batch, weights: Float32Array.from(rows, (r) => sampleWeights[r]!) } : batch;
    const result = await this.engine.gradient(xs, ys, rows.length, out, undefined, withWeights);
    return { ...result, numTensors: tf.memory().numTensors, computeMs: performance.now() - started };
  }

  /** Loss and metric sums over rows start..start+count-1 with the weights of `version` (the loss weighted by data.sampleWeight where the data has it). */
  async evaluate(version: number, start: number, count: number): Promise<EvaluateAnswer> {
    this.useVersion(version);
    const { outputs, x, y, sampleWeights } = this.data;
    const weights = (a: number, n: number): Float32Array | undefined => sampleWeights?.subarray(a, a + n);
    // a chunk of rows at a time, so a large test set (or one on disk) is never in memory whole
    const total = new PartSums();
    for (const chunk of rowChunks(count, x.features)) {
      const a = start + chunk.first;
      total.add(await this.engine.evaluate(x.range(a, chunk.count), y.slice(a * outputs, (a + chunk.count) * outputs), chunk.count, weights(a, chunk.count)));
    }
    return { ...total.sums(), numTensors: tf.memory().numTensors };
  }

  /** Parameters of the model (values in a gradient). */
  get parameters(): number {
    return this.engine.layout.size;
  }

  dispose(): void {
    this.engine.dispose();
  }

  private useVersion(version: number): void {
    if (version !== this.loadedVersion) {
      this.engine.setWeights(this.data.weights);
      this.loadedVersion = version;
    }
  }
}
