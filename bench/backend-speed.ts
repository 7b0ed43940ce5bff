/**
 * One engine's gradient step per backend, each backend in a fresh process, rounds interleaved:
 * workload (b) (45-512-512-1 at batch 1024) and (c) (the MNIST CNN at batch 128), samples per
 * second. With a GPU this is what a WebGPU node computes; without one, webgpu runs on Mesa's
 * software adapter (llvmpipe), the path CI tests, not a speed a GPU node would see. Writes
 * bench/backend-speed.json (with the adapter, the machine and the date).
 *
 *   node dist/bench/backend-speed.js [--backends webgpu,wasm,cpu] [--workloads b,c] [--skip cpu/c] [--repeats N] [--rounds R] [--out FILE]
 *
 * cpu/c is skipped by default: the cpu backend takes minutes per CNN step (BENCHMARKS.md, (c)).
 */
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { median, type WorkloadName } from './cases.js';

interface Measured {
  readonly backend: string;
  readonly adapter?: string;
  readonly workload: WorkloadName;
  readonly batch: number;
  /** Milliseconds per gradient step, after warm-up. */
  readonly ms: number[];
}

async function measure(backend: string, workload: WorkloadName, repeats: number): Promise<Measured> {
  const [{ backendReport, initBackend }, { createEngine }, { WORKLOADS }, { initialWeights, weightLayout }, { Rng }] = await Promise.all([
    import('../shared/backend.js'),
    import('../compute/gradient.js'),
    import('./cases.js'),
    import('../shared/model/layout.js'),
    import('../shared/math/rng.js'),
  ]);
  await initBackend(backend as never);
  const w = WORKLOADS[workload];
  const engine = createEngine(w.spec, 'dense');
  engine.setWeights(initialWeights(weightLayout(w.spec), new Rng(1)));
  const data = w.dataset();
  const n = w.batch;
  const x = data.x.slice(0, n * data.features);
  const y = data.y.slice(0, n * data.outputs);
  const ms: number[] = [];
  for (let i = 0; i < repeats + 2; i++) {
    const t0 = performance.now();
    await engine.gradient(x, y, n, undefined, undefined, { step: i, rows: Int32Array.from({ length: n }, (_, r) => r) });
    if (i >= 2) ms.push(performance.now() - t0);
  }
  const { adapter } = backendReport();
  return { backend, ...(adapter ? { adapter } : {}), workload, batch: n, ms };
}

function child(backend: string, workload: WorkloadName, repeats: number): Promise<Measured | { backend: string; workload: WorkloadName; error: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', backend, workload, String(repeats)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code === 0 && line.startsWith('{')) resolve(JSON.parse(line) as Measured);
      else resolve({ backend, workload, error: (err.match(/error.*$/im)?.[0] ?? err.trim().split('\n').pop() ?? `exit ${code}`).slice(0, 300) });
    });
  });
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  console.log(JSON.stringify(await measure(args[1]!, args[2] as WorkloadName, Number(args[3]))));
  process.exit(0);
}
const option = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const backends = option('backends', 'webgpu,wasm,cpu').split(',');
const workloads = option('workloads', 'b,c').split(',') as WorkloadName[];
const repeats = Number(option('repeats', '5'));
const rounds = Number(option('rounds', '2'));
const out = option('out', 'bench/backend-speed.json');
const skip = new Set(option('skip', 'cpu/c').split(','));

const results = new Map<string, Measured>();
const errors: string[] = [];
for (let round = 0; round < rounds; round++) {
  for (const workload of workloads) {
    for (const backend of round % 2 ? [...backends].reverse() : backends) {
      const key = `${backend}/${workload}`;
      if (skip.has(key)) continue;
      const r = await child(backend, workload, repeats);
      if ('error' in r) {
        errors.push(`${key}: ${r.error}`);
        continue;
      }
      const before = results.get(key);
      results.set(key, before ? { ...r, ms: [...before.ms, ...r.ms] } : r);
    }
  }
}
const rows = [...results.values()].map((r) => ({
  backend: r.backend,
  ...(r.adapter ? { adapter: r.adapter } : {}),
  workload: r.workload,
  batch: r.batch,
  medianMs: median(r.ms),
  minMs: Math.min(...r.ms),
  maxMs: Math.max(...r.ms),
  samplesPerSecond: (r.batch * 1000) / median(r.ms),
  steps: r.ms.length,
}));
const report = { date: new Date().toISOString(), machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}`, node: process.version, rows, errors };
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
for (const r of rows) {
  console.log(`${r.workload} ${r.backend.padEnd(7)} ${r.samplesPerSecond.toFixed(0).padStart(8)} samples/s (median ${r.medianMs.toFixed(1)} ms, ${r.minMs.toFixed(1)}-${r.maxMs.toFixed(1)}, ${r.steps} steps)${r.adapter ? ` on ${r.adapter}` : ''}`);
}
for (const e of errors) console.log(`error: ${e}`);
console.log(`written: ${out}`);
