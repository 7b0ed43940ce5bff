/**
 * Our trainer over Piscina threads, or (`in-process`) in this thread as the one lane, on a data
 * set in memory or on disk (read ahead as data.readAhead says), on the config's backend: what the equivalence tests compare with one plain
 * TensorFlow.js process.
 */
import { expect } from 'vitest';
import { Trainer, modelSpec, type FitOptions, type FitResult } from '../coordinator/fit/trainer.js';
import { Cluster } from '../coordinator/participants/cluster.js';
import { InProcessLane } from '../coordinator/participants/in-process.js';
import { ThreadPool } from '../coordinator/participants/threads.js';
import { ReadAhead } from '../coordinator/participants/read-ahead.js';
import type { JobConfig } from '../shared/config/schema.js';
import type { Dataset } from '../shared/data/dataset.js';
import { weightLayout } from '../shared/model/layout.js';

export async function trainOnLanes(config: JobConfig, dataset: Dataset, threads: number | 'in-process', options: FitOptions = {}): Promise<FitResult & { readAheadFills: number }> {
  const spec = modelSpec(config, dataset);
  const parameters = weightLayout(spec).size;
  const backend = config.cluster.backend;
  const readAhead = ReadAhead.start(dataset, config.data.readAhead, config.fit.batchSize, () => {});
  const pool = threads === 'in-process' ? await InProcessLane.start({ backend, spec, dataset, parameters, readAhead }) : await ThreadPool.start({ threads, backend, spec, dataset, parameters, readAhead });
  try {
    const cluster = new Cluster(pool, { minWorkers: 0, waitTimeoutMs: 1000, balance: 'equal', log: () => {}, trainRows: dataset.train.count });
    const fit = await new Trainer(config, dataset, cluster, spec).fit(options);
    return { ...fit, weights: fit.weights.slice(), readAheadFills: readAhead?.fills ?? 0 };
  } finally {
    await pool.close();
  }
}

/** The largest difference relative to the largest magnitude of the reference `b`. */
export function maxRelativeDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  }
  return diff / Math.max(scale, 1e-12);
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
