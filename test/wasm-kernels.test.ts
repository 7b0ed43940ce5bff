/**
 * The WebAssembly SIMD optimizer kernels: the committed bytes are the assembled source, and each
 * kernel gives the same bits as the JavaScript reference (which optimizers.test.ts holds to
 * tf.train), on sizes that are not a multiple of 4 and on extreme values.
 */
import { readFileSync } from 'node:fs';
import wabtInit from 'wabt';
import { describe, expect, it } from 'vitest';
import { createOptimizer, type OptimizerConfig } from '../shared/math/optimizers.js';
import { Rng } from '../shared/math/rng.js';
import { kernelArena, kernelsAvailable } from '../shared/math/wasm/kernels.js';
import { OPTIMIZERS_WASM_BASE64 } from '../shared/math/wasm/optimizers-binary.js';

const configs: OptimizerConfig[] = [
  { name: 'adam', learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
  { name: 'adam', learningRate: 0.3, beta1: 0.5, beta2: 0.9, epsilon: 1e-3 },
  { name: 'sgd', learningRate: 0.1, momentum: 0, nesterov: false },
  { name: 'sgd', learningRate: 0.01, momentum: 0.9, nesterov: false },
  { name: 'sgd', learningRate: 0.01, momentum: 0.9, nesterov: true },
  { name: 'rmsprop', learningRate: 0.001, rho: 0.9, momentum: 0, epsilon: 1e-7 },
  { name: 'rmsprop', learningRate: 0.01, rho: 0.95, momentum: 0.5, epsilon: 1e-6 },
];

/** Gradients mixing ordinary, tiny (subnormal squares), huge and exactly zero values. */
function gradients(steps: number, size: number, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  const scales = [1, 1e-3, 1e-20, 1e-38, 1e15, 0];
  return Array.from({ length: steps }, () => Float32Array.from({ length: size }, () => rng.normal() * scales[Math.floor(rng.next() * scales.length)]!));
}

describe('WebAssembly optimizer kernels', () => {
  it('the committed binary is optimizers.wat assembled (run `npm run build:wasm` after editing it)', async () => {
    const wabt = await wabtInit();
    const source = readFileSync(new URL('../shared/math/wasm/optimizers.wat', import.meta.url), 'utf8');
    const module = wabt.parseWat('optimizers.wat', source, { simd: true });
    const { buffer } = module.toBinary({});
    module.destroy();
    expect(Buffer.from(buffer).toString('base64')).toBe(OPTIMIZERS_WASM_BASE64);
  });

  it('run on this Node (WebAssembly SIMD), and optimizers use them by default', () => {
    expect(kernelsAvailable()).toBe(true);
    expect(createOptimizer(configs[0]!, 10).implementation).toBe('wasm');
  });

  it('arena arrays are padded to 4 floats and do not overlap', () => {
    const arena = kernelArena(1029, 2)!;
    expect(arena.padded).toBe(1032);
    const arrays = [arena.weights, arena.gradient, ...arena.slots];
    expect(arrays.map((a) => a.offset)).toEqual([0, 1, 2, 3].map((k) => k * 1032 * 4));
    expect(arrays.every((a) => a.view.length === 1029)).toBe(true);
  });

  it('give way to the reference loops when the arrays do not fit in one WebAssembly memory', () => {
    // 4 arrays x 300M floats = 4.8 GB > 4 GiB: growing fails at once, nothing is allocated.
    expect(kernelArena(300_000_000, 2)).toBeNull();
  });

  for (const config of configs) {
    it(`equal the reference bit for bit: ${JSON.stringify(config)}`, () => {
      const size = 1029;
      const [init] = gradients(1, size, 11);
      const grads = gradients(30, size, 12);
      const fast = createOptimizer(config, size, undefined, 'wasm');
      const reference = createOptimizer(config, size, undefined, 'js');
      const a = init!.slice();
      const b = init!.slice();
      grads.forEach((g, step) => {
        fast.apply(a, g);
        reference.apply(b, g);
        // Compare bits (NaN payloads and signed zeros included) after every step.
        expect(new Uint32Array(a.buffer), `step ${step}`).toEqual(new Uint32Array(b.buffer));
      });
      const [fs, rs] = [fast.state(), reference.state()];
      expect(fs.iterations).toBe(rs.iterations);
      expect(fs.scalars).toEqual(rs.scalars);
      for (const name of Object.keys(rs.slots)) {
        expect(new Uint32Array(fs.slots[name]!.buffer), name).toEqual(new Uint32Array(rs.slots[name]!.buffer));
      }
    });
  }

  it('a state saved by one implementation continues exactly in the other', () => {
    const config = configs[0]!;
    const grads = gradients(12, 37, 3);
    const straight = new Float32Array(37);
    const js = createOptimizer(config, 37, undefined, 'js');
    grads.forEach((g) => js.apply(straight, g));
    const mixed = new Float32Array(37);
    const first = createOptimizer(config, 37, undefined, 'wasm');
    grads.slice(0, 5).forEach((g) => first.apply(mixed, g));
    const second = createOptimizer(config, 37, first.state(), 'js');
    grads.slice(5, 9).forEach((g) => second.apply(mixed, g));
    const third = createOptimizer(config, 37, second.state(), 'wasm');
    grads.slice(9).forEach((g) => third.apply(mixed, g));
    expect(Array.from(mixed)).toEqual(Array.from(straight));
  });

  it('refuses a saved slot of the wrong size', () => {
    const state = createOptimizer(configs[0]!, 8).state();
    expect(() => createOptimizer(configs[0]!, 9, state)).toThrow(/slot m has 8 values, expected 9/);
  });
});
