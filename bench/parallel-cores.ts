/**
 * How much two cores give this machine for our work, with no dptrain code between them: the
 * workload (b) gradient of 512 rows on wasm, computed in one process alone, then in two processes
 * at the same time. On two full cores both pairs take what one takes alone; a synchronous step
 * with two threads waits for the slower of its halves, so the slower process's time bounds what
 * two threads can give (BENCHMARKS.md).
 *
 *   node dist/bench/parallel-cores.js [repeats]
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median } from './cases.js';

const ROWS = 512;

async function measure(repeats: number): Promise<number[]> {
  const [{ initBackend }, { createEngine }, { WORKLOADS, syntheticDataset }] = await Promise.all([
    import('../shared/backend.js'),
    import('../compute/gradient.js'),
    import('./cases.js'),
  ]);
  await initBackend('wasm');
  const engine = createEngine(WORKLOADS.b.spec, 'dense');
  const data = syntheticDataset(ROWS, WORKLOADS.b.spec.inputDim, 3);
  const times: number[] = [];
  for (let i = 0; i < repeats + 3; i++) {
    const t0 = performance.now();
    await engine.gradient(data.x, data.y, ROWS);
    if (i >= 3) times.push(performance.now() - t0);
  }
  return times;
}

function child(repeats: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', String(repeats)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as number[]) : reject(new Error(`child exited ${code}`))));
  });
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  console.log(JSON.stringify(await measure(Number(args[1]))));
  process.exit(0);
}
const repeats = Number(args[0] ?? 40);
const show = (times: number[]): string => `median ${median(times).toFixed(1)} ms, fastest ${Math.min(...times).toFixed(1)} ms`;
console.log(`${ROWS}-row (b) gradient on wasm, ${repeats} repeats`);
console.log(`  one process alone:        ${show(await child(repeats))}`);
const [a, b] = await Promise.all([child(repeats), child(repeats)]);
const [faster, slower] = median(a) <= median(b) ? [a, b] : [b, a];
console.log(`  two processes at once:    ${show(faster)} | ${show(slower)}`);
