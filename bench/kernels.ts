/**
 * Kernel-level measurements behind the engine's design (issue #7, item 2), on one backend:
 * matMul of [1024 x 512] x [512 x 512] plain, with transposeA and with transposeB, in GFLOP/s;
 * one gradient of the 45-512-512-1 model at batch 1024 with the direct Dense engine vs the stock
 * tfjs-layers tape engine, in ms, with the largest relative difference between the two; and what
 * the engine's own transposes give: a 512 x 512 transpose and column sum with tfjs's kernels vs
 * through the SIMD transpose, and the gradient with tf.transpose instead (wasm only).
 */
import { performance } from 'node:perf_hooks';
import type { BackendChoice } from '../shared/backend-choice.js';
import { Rng } from '../shared/math/rng.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import { WORKLOADS, median, syntheticDataset } from './cases.js';

export interface KernelResult {
  readonly backend: string;
  readonly matMulGflops: { plain: number; transposeA: number; transposeB: number };
  readonly gradientMs: { dense: number[]; tape: number[]; denseStockTranspose?: number[] };
  readonly maxRelativeDifference: number;
  /** 512 x 512, ms (median): tfjs's transpose and axis-0 sum vs the engine's (wasm only). */
  readonly transposeMs?: { tfjs: number; simd: number };
  readonly columnSumMs?: { tfjs: number; simd: number };
}

export async function runKernels(backend: Exclude<BackendChoice, 'auto' | 'tensorflow'>, repeats = 5): Promise<KernelResult> {
  const [{ initBackend }, tf, { createEngine }, { DenseGradientEngine }, { Transposer }] = await Promise.all([
    import('../shared/backend.js'),
    import('@tensorflow/tfjs-core'),
    import('../compute/gradient.js'),
    import('../compute/dense-gradient.js'),
    import('../shared/wasm/transpose-kernel.js'),
  ]);
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
  let transposeMs: KernelResult['transposeMs'];
  let columnSumMs: KernelResult['columnSumMs'];
  const transposer = Transposer.create();
  const heap = tf.backend() as { typedArrayFromHeap?: (t: typeof b) => Float32Array };
  if (used === 'wasm' && transposer && heap.typedArrayFromHeap) {
    // what the engine does: read the tensor's values in place, transpose, make the tensor
    const simdTranspose = (t: typeof b): typeof b => tf.tensor2d(transposer.transpose(heap.typedArrayFromHeap!(t), 512, 512)!, [512, 512]);
    const run = (f: () => ReturnType<typeof tf.transpose>) => (): void => {
      const t = f();
      t.dataSync();
      t.dispose();
    };
    transposeMs = { tfjs: await time(run(() => tf.transpose(b))), simd: await time(run(() => simdTranspose(b))) };
    columnSumMs = {
      tfjs: await time(run(() => tf.sum(b, 0))),
      simd: await time(
        run(() => {
          const t = simdTranspose(b);
          const sum = tf.sum(t, 1);
          t.dispose();
          return sum;
        }),
      ),
    };
  }
  tf.dispose([a, aT, b]);

  const w = WORKLOADS.b;
  const data = syntheticDataset(w.batch, 45, 9);
  const weights = initialWeights(weightLayout(w.spec), new Rng(2));
  const gradientMs: Required<KernelResult['gradientMs']> = { dense: [], tape: [], denseStockTranspose: [] };
  const results: Record<string, Float32Array> = {};
  const engines = {
    dense: createEngine(w.spec, 'dense'),
    tape: createEngine(w.spec, 'tape'),
    denseStockTranspose: new DenseGradientEngine(w.spec, null),
  };
  for (const [name, engine] of Object.entries(engines)) {
    engine.setWeights(weights);
    results[name] = (await engine.gradient(data.x, data.y, w.batch)).gradient;
  }
  const timeGradient = async (name: keyof typeof engines): Promise<void> => {
    const t0 = performance.now();
    await engines[name].gradient(data.x, data.y, w.batch);
    gradientMs[name].push(performance.now() - t0);
  };
  for (let i = 0; i < repeats; i++) await timeGradient('tape');
  // the two Dense variants alternate, so that they see the same machine
  for (let i = 0; i < 2 * repeats; i++) for (const name of i % 2 ? (['dense', 'denseStockTranspose'] as const) : (['denseStockTranspose', 'dense'] as const)) await timeGradient(name);
  for (const engine of Object.values(engines)) engine.dispose();
  let maxRel = 0;
  const scale = results['tape']!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  results['dense']!.forEach((v, i) => (maxRel = Math.max(maxRel, Math.abs(v - results['tape']![i]!) / scale)));
  return { backend: used, matMulGflops, gradientMs, maxRelativeDifference: maxRel, ...(transposeMs && { transposeMs }), ...(columnSumMs && { columnSumMs }) };
}
