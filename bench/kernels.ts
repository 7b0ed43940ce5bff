/**
 * Kernel-level measurements behind the engine's design (issue #7, item 2), on one backend:
 * matMul of [1024 x 512] x [512 x 512] plain, with transposeA and with transposeB, in GFLOP/s;
 * and one gradient of the 45-512-512-1 model at batch 1024 with the direct Dense engine vs the
 * stock tfjs-layers tape engine, in ms, with the largest relative difference between the two.
 */
import { performance } from 'node:perf_hooks';
import type { BackendChoice } from '../shared/backend-choice.js';
import { Rng } from '../shared/math/rng.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { WORKLOADS, median, syntheticDataset } from './cases.js';

export interface KernelResult {
  readonly backend: string;
  readonly matMulGflops: { plain: number; transposeA: number; transposeB: number };
  readonly gradientMs: { dense: number[]; tape: number[] };
  readonly maxRelativeDifference: number;
}

export async function runKernels(backend: Exclude<BackendChoice, 'auto' | 'tensorflow'>, repeats = 5): Promise<KernelResult> {
  const [{ initBackend }, tf, { createEngine }] = await Promise.all([import('../shared/backend.js'), import('@tensorflow/tfjs-core'), import('../worker/gradient.js')]);
  const used = await initBackend(backend);
  const rng = new Rng(1);
  const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal());
  const a = tf.tensor2d(rand(1024 * 512), [1024, 512]);
  const aT = tf.tensor2d(rand(512 * 1024), [512, 1024]);
  const b = tf.tensor2d(rand(512 * 512), [512, 512]);
  const flops = 2 * 1024 * 512 * 512;
  const time = (f: () => Promise<void> | void): Promise<number> =>
    (async () => {
      await f(); // warm-up
      const runs: number[] = [];
      for (let i = 0; i < repeats; i++) {
        const t0 = performance.now();
        await f();
        runs.push(performance.now() - t0);
      }
      return median(runs);
    })();
  const mm = (x: typeof a, ta: boolean, tb: boolean) => async (): Promise<void> => {
    const c = tf.matMul(x, b, ta, tb);
    await c.data();
    c.dispose();
  };
  const gflops = async (x: typeof a, ta: boolean, tb: boolean): Promise<number> => flops / ((await time(mm(x, ta, tb))) / 1000) / 1e9;
  const matMulGflops = { plain: await gflops(a, false, false), transposeA: await gflops(aT, true, false), transposeB: await gflops(a, false, true) };
  tf.dispose([a, aT, b]);

  const w = WORKLOADS.b;
  const data = syntheticDataset(w.batch, 45, 9);
  const weights = initialWeights(weightLayout(w.spec), new Rng(2));
  const gradientMs: KernelResult['gradientMs'] = { dense: [], tape: [] };
  const results: Record<string, Float32Array> = {};
  for (const name of ['dense', 'tape'] as const) {
    const engine = createEngine(w.spec, name);
    engine.setWeights(weights);
    results[name] = engine.gradient(data.x, data.y, w.batch).gradient;
    for (let i = 0; i < repeats; i++) {
      const t0 = performance.now();
      engine.gradient(data.x, data.y, w.batch);
      gradientMs[name].push(performance.now() - t0);
    }
    engine.dispose();
  }
  let maxRel = 0;
  const scale = results['tape']!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  results['dense']!.forEach((v, i) => (maxRel = Math.max(maxRel, Math.abs(v - results['tape']![i]!) / scale)));
  return { backend: used, matMulGflops, gradientMs, maxRelativeDifference: maxRel };
}
