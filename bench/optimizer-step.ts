/**
 * One optimizer step on workload (b)'s 286,721 parameters, the JavaScript reference loop against
 * the WebAssembly SIMD kernel (same bits; copies in and out of the kernel's memory included):
 *   npm run build && node dist/bench/optimizer-step.js [steps]
 * Prints the fastest and the median step of each, in ms. The fastest is the one to compare on a
 * machine that is slowed in bursts.
 */
import { performance } from 'node:perf_hooks';
import { createOptimizer, type OptimizerConfig, type OptimizerImplementation } from '../shared/optimize/optimizers.js';
import { optimizerDefaults } from '../shared/config/optimizer-config.js';
import { Rng } from '../shared/math/rng.js';

const SIZE = 286_721;
const steps = Number(process.argv[2] ?? 200);
const rng = new Rng(7);
const gradients = Array.from({ length: 4 }, () => Float32Array.from({ length: SIZE }, () => rng.normal() * 0.01));
const configs: OptimizerConfig[] = [
  { name: 'adam', ...optimizerDefaults.adam },
  { name: 'sgd', ...optimizerDefaults.sgd, momentum: 0.9 },
  { name: 'rmsprop', ...optimizerDefaults.rmsprop },
];
for (const config of configs) {
  const line: string[] = [];
  for (const implementation of ['js', 'wasm'] as OptimizerImplementation[]) {
    const optimizer = createOptimizer(config, SIZE, undefined, implementation);
    const weights = new Float32Array(SIZE);
    const ms: number[] = [];
    for (let s = 0; s < steps; s++) {
      const t0 = performance.now();
      optimizer.apply(weights, gradients[s % gradients.length]!);
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    line.push(`${implementation} fastest ${ms[0]!.toFixed(2)} ms, median ${ms[ms.length >> 1]!.toFixed(2)} ms`);
  }
  console.log(`${config.name} (${SIZE} parameters, ${steps} steps): ${line.join('; ')}`);
}
