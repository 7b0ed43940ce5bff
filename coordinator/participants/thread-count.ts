/**
 * How many local lanes a job gets when `cluster.threads` is `auto` (the default). Splitting a step
 * over threads saves compute but adds a round trip per thread (post the rows, wake the thread,
 * move the gradient back) and the coordinator's own work on a core the threads also want. For a
 * small model that fixed cost is larger than the compute it saves: the seed's 45-64-64-1 model at
 * batch 32 is ~1.4 MFLOP a step and runs faster in one lane than in two (BENCHMARKS.md), while the
 * 45-512-512-1 model at batch 1024 (~1.8 GFLOP a step) keeps every core busy. So: one thread per
 * MIN_FLOPS_PER_THREAD of a step's work, at most one per core, at least one; one lane with the
 * tensorflow backend (native TensorFlow is multi-threaded already and runs only in the main thread).
 */
import type { JobConfig } from '../../shared/config/schema.js';
import { forwardFlops } from '../../shared/model/layers.js';
import type { ModelSpec } from '../../shared/model/spec.js';

/**
 * A thread pays for itself from about this much work per step: the wasm matMul time of this many
 * FLOP against a thread's round trip (both measured in BENCHMARKS.md). Chosen on the safe side: a
 * model near it is about as fast either way.
 */
export const MIN_FLOPS_PER_THREAD = 50e6;

/** A JobConfig whose cluster.threads is a number (what the cluster is started with). */
export type RunConfig = JobConfig & { readonly cluster: JobConfig['cluster'] & { readonly threads: number } };

/**
 * Floating-point operations of one training step: forward (per layer and sample: 2 x fanIn x
 * units for Dense, 2 x output positions x kernel size for conv2d; layers.ts), backward twice that
 * (input and kernel gradients), biases left out.
 */
export function stepFlops(spec: ModelSpec, batchSize: number): number {
  return 3 * batchSize * forwardFlops(spec);
}

export interface ThreadChoice {
  readonly threads: number;
  /** Why, for the start line (only when chosen automatically). */
  readonly reason?: string;
}

/** The choice when it does not depend on the model: a number given, or one lane for tensorflow / inProcess: true. */
function choiceWithoutModel(config: JobConfig): ThreadChoice | undefined {
  const { threads, backend, inProcess } = config.cluster;
  if (threads !== 'auto') return { threads };
  if (backend === 'tensorflow' || backend === 'webgpu' || inProcess === true) {
    return { threads: 1, reason: `threads: auto chose 1 (${backend === 'tensorflow' || backend === 'webgpu' ? `backend ${backend}: one GPU lane` : 'cluster.inProcess: true'})` };
  }
  return undefined;
}

/** The thread count if it is known before the data and model are (for checks made before anything is written). */
export function threadsWithoutModel(config: JobConfig): number | undefined {
  return choiceWithoutModel(config)?.threads;
}

/** Resolves `cluster.threads: auto` for this model and batch on a machine with `cores` cores. */
export function chooseThreads(config: JobConfig, spec: ModelSpec, cores: number): ThreadChoice {
  const fixed = choiceWithoutModel(config);
  if (fixed) return fixed;
  const flops = stepFlops(spec, config.fit.batchSize);
  const threadsForWork = Math.floor(flops / MIN_FLOPS_PER_THREAD);
  const chosen = Math.max(1, Math.min(cores, threadsForWork, config.fit.batchSize));
  const mflops = flops / 1e6;
  return {
    threads: chosen,
    reason: `threads: auto chose ${chosen} of ${cores} core(s): a step is ~${mflops < 10 ? mflops.toFixed(1) : mflops.toFixed(0)} MFLOP and a thread pays from ~${MIN_FLOPS_PER_THREAD / 1e6} MFLOP`,
  };
}

/** The config with cluster.threads resolved. */
export function withThreads(config: JobConfig, threads: number): RunConfig {
  return { ...config, cluster: { ...config.cluster, threads } };
}
