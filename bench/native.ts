/**
 * The native backend against what a user would run instead, in one run on one machine
 * (`npm run bench`, or `node dist/bench/native.js [--quick] [--passes N]`). Writes
 * bench/native.json; bench/run.ts renders it into BENCHMARKS.md ("Native backend").
 *
 * - peak: one long onnxruntime product (1536^3, one thread), the machine's reach per core.
 * - products: one lane's gradient on native as a 2-thread step gives it ((b): 512 rows, (c): 64),
 *   its products timed inside the step (for a model the native engine computes, whose products
 *   run inside its sessions, the whole gradient is timed), then the same products (shapes,
 *   transposes, bias)
 *   run standalone on plain arrays; rounds alternate the two, the ratio is the median of rounds.
 * - (a), (b), (c) end to end: each configuration in a process of its own (no idle threads of
 *   another beside it), in passes whose order rotates; ratios are medians over passes of the
 *   ratio of pass medians. PyTorch (Debian's python3-torch) on the same machine: (b) with 1
 *   thread and DistributedDataParallel over 2 ranks (gloo), (c) with 2 threads.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, type Case, type CaseResult, type Config, type Group, type WorkloadName } from './cases.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CASE_MAIN = fileURLToPath(new URL('./case-main.js', import.meta.url));

/** A product's account: how many floating-point operations, in how many milliseconds. */
interface Work {
  flops: number;
  ms: number;
}

export interface ProductsResult {
  readonly workload: WorkloadName;
  readonly rows: number;
  /**
   * What "in the step" timed: each product inside the step ('products'), or, where the engine
   * runs them inside onnxruntime sessions (compute/native-engine.ts), the whole gradient ('gradient':
   * its products' FLOPs over its whole time, a lower bound for the products' own rate).
   */
  readonly inStepTimed: 'products' | 'gradient';
  /** Per round: the lane's gradient (ms), its products inside it, the same products standalone. */
  readonly rounds: { stepMs: number; inStep: Work; standalone: Work }[];
  readonly shapes: string[];
}

export interface PeakResult {
  readonly size: number;
  readonly gflops: number[];
}

/** One end-to-end configuration: ours (a bench case) or PyTorch's. */
export interface Entry {
  readonly id: string;
  readonly workload: WorkloadName;
  readonly what: string;
  /** samples/s per pass (median of that pass's repeats), and every repeat. */
  readonly passMedians: number[];
  readonly samplesPerSecond: number[];
  readonly notComputeShare?: number[];
  readonly error?: string;
}

export interface NativeResults {
  readonly date: string;
  readonly machine: { cpu: string; cores: number };
  readonly versions: Record<string, string>;
  readonly quick: boolean;
  readonly peak: PeakResult | { error: string };
  readonly products: (ProductsResult | { workload: WorkloadName; error: string })[];
  readonly entries: Entry[];
}

/** --child products|peak: measured in this process (a fresh one per call). */
async function childMain(kind: string, arg: string): Promise<unknown> {
  const [{ initBackend }, { NativeProducts }] = await Promise.all([import('../shared/backend.js'), import('../shared/native/onnxruntime.js')]);
  await initBackend('native');
  const products = await NativeProducts.start(1);
  const filled = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.5);
  if (kind === 'peak') {
    const size = 1536;
    const a = filled(size * size);
    const b = filled(size * size);
    const out = new Float32Array(size * size);
    const gflops: number[] = [];
    for (let i = 0; i < Number(arg); i++) {
      const t0 = performance.now();
      products.gemm(a, b, out, { m: size, k: size, n: size, transA: false, transB: false });
      gflops.push((2 * size ** 3) / (performance.now() - t0) / 1e6);
    }
    return { size, gflops } satisfies PeakResult;
  }
  const [workload, roundsArg] = arg.split(':') as [WorkloadName, string];
  const [{ WORKLOADS }, { createEngine }, { initialWeights, weightLayout }, { Rng }, { layerShapes }, { nativeEngineSupports }] = await Promise.all([
    import('./cases.js'),
    import('../compute/gradient.js'),
    import('../shared/model/layout.js'),
    import('../shared/math/rng.js'),
    import('../shared/model/layers.js'),
    import('../compute/native-engine.js'),
  ]);
  const w = WORKLOADS[workload];
  const rows = w.batch / 2;
  const engine = createEngine(w.spec, 'dense');
  engine.setWeights(initialWeights(weightLayout(w.spec), new Rng(1)));
  const data = w.dataset();
  const x = data.x.slice(0, rows * data.features);
  const y = data.y.slice(0, rows * data.outputs);
  const batchRows = { step: 0, rows: Int32Array.from({ length: rows }, (_, r) => r) };
  type Call = { m: number; k: number; n: number; transA: boolean; transB: boolean; bias: boolean; ms: number };
  let calls: Call[] = [];
  products.recorder = (s, bias, ms) => calls.push({ ...s, bias, ms });
  const step = async (): Promise<number> => {
    calls = [];
    const t0 = performance.now();
    await engine.gradient(x, y, rows, undefined, undefined, batchRows);
    return performance.now() - t0;
  };
  for (let i = 0; i < 3; i++) await step();
  // operands for the standalone products, one set per shape
  const operands = new Map<string, { a: Float32Array; b: Float32Array; out: Float32Array; bias: Float32Array }>();
  const key = (c: Call): string => `${c.m}x${c.k}x${c.n}${c.transA ? ' tA' : ''}${c.transB ? ' tB' : ''}${c.bias ? ' +bias' : ''}`;
  const rounds: ProductsResult['rounds'] = [];
  // a model the native engine computes runs its products inside two sessions: their shapes from
  // the model, a convolution's as the im2col products they amount to (patches x kernel)
  const inGraph = calls.length === 0 && nativeEngineSupports(w.spec);
  const graphProducts = (): Call[] => {
    const list: Call[] = [];
    let weighted = 0;
    layerShapes(w.spec).forEach(({ input, output, weights }, i) => {
      const layer = w.spec.layers[i]!;
      if (weights.length === 0) return;
      const bias = weights.length > 1;
      const conv = layer.type === 'conv2d';
      const m = conv ? rows * output[0]! * output[1]! : rows;
      const k = conv ? layer.kernelSize[0] * layer.kernelSize[1] * input[2]! : input[0]!;
      const n = output.at(-1)!;
      list.push({ m, k, n, transA: false, transB: false, bias, ms: 0 });
      list.push({ m: k, k: m, n, transA: true, transB: false, bias: false, ms: 0 });
      if (weighted++ > 0) list.push({ m, k: n, n: k, transA: false, transB: true, bias: false, ms: 0 });
    });
    return list;
  };
  for (let r = 0; r < Number(roundsArg); r++) {
    const stepMs = await step();
    const taken = inGraph ? graphProducts() : calls;
    const inStep: Work = { flops: 0, ms: 0 };
    for (const c of taken) {
      inStep.flops += 2 * c.m * c.k * c.n;
      inStep.ms += c.ms;
    }
    if (inGraph) inStep.ms = stepMs;
    calls = [];
    const standalone: Work = { flops: 0, ms: 0 };
    for (const c of taken) {
      const k = key(c);
      if (!operands.has(k)) operands.set(k, { a: filled(c.m * c.k), b: filled(c.k * c.n), out: new Float32Array(c.m * c.n), bias: filled(c.n) });
      const o = operands.get(k)!;
      products.gemm(o.a, o.b, o.out, c, c.bias ? o.bias : undefined);
    }
    for (const c of calls) {
      standalone.flops += 2 * c.m * c.k * c.n;
      standalone.ms += c.ms;
    }
    rounds.push({ stepMs, inStep, standalone });
  }
  products.recorder = undefined;
  return { workload, rows, inStepTimed: inGraph ? 'gradient' : 'products', rounds, shapes: [...operands.keys()] } satisfies ProductsResult;
}

function runChild<T>(args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): T | { error: string } {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 2 ** 20, env });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status === 0 && /^[[{]/.test(last)) return JSON.parse(last) as T;
  return { error: `exit ${r.status ?? r.signal}: ${((r.stderr ?? '') || (r.stdout ?? '')).trim().split('\n').slice(-3).join(' | ')}` };
}

/** A configuration of the end-to-end comparison, run once per pass. */
interface Plan {
  readonly id: string;
  readonly workload: WorkloadName;
  readonly what: string;
  run(quick: boolean): { samplesPerSecond: number[]; notComputeShare?: number } | { error: string };
}

function ours(id: string, workload: WorkloadName, backend: Case['backend'], config: Config, what: string, env: Record<string, string> = {}): Plan {
  return {
    id,
    workload,
    what,
    run(quick) {
      // a Piscina lane on native takes ~10 steps to reach its speed (its thread's JIT and
      // onnxruntime's arena: 30-45 ms steps, then 11-15 ms, on (b)): warm up past them
      const sizes = workload === 'a' ? { warmupSteps: 30, repeats: quick ? 3 : 12, stepsPerRepeat: 20 } : { warmupSteps: quick ? 3 : workload === 'b' ? 15 : 5, repeats: quick ? 3 : workload === 'b' ? 20 : 10, stepsPerRepeat: 1 };
      const group: Group = { workload, backend, configs: [config], ...sizes };
      const r = runChild<(CaseResult | (Case & { error: string }))[]>([CASE_MAIN, JSON.stringify(group)], 1_800_000, { ...process.env, ...env });
      if ('error' in r) return r;
      const c = r[0]!;
      if ('error' in c) return { error: c.error };
      const p = c.phasesMs;
      return { samplesPerSecond: c.samplesPerSecond, ...(p ? { notComputeShare: (p.step - p.compute) / p.step } : {}) };
    },
  };
}

/** The environment PyTorch runs in: as a user's, without this workplace's OpenBLAS overrides. */
function torchEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['OPENBLAS_CORETYPE'];
  delete env['OPENBLAS_L2_SIZE'];
  return env;
}

function torch(id: string, workload: WorkloadName, what: string, args: (quick: boolean) => string[], pattern: RegExp, batch: number): Plan {
  return {
    id,
    workload,
    what,
    run(quick) {
      for (const python of ['/usr/bin/python3', 'python3']) {
        const r = spawnSync(python, args(quick), { cwd: ROOT, encoding: 'utf8', timeout: 1_800_000, env: torchEnv() });
        const m = pattern.exec(r.stdout ?? '');
        if (r.status === 0 && m) return { samplesPerSecond: [batch / (Number(m[1]) / 1000)] };
        if (r.status !== null && !/No module named 'torch'|ENOENT/.test((r.stderr ?? '') + (r.error?.message ?? ''))) return { error: `${python}: ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}` };
      }
      return { error: 'no python3 with torch (Debian: apt-get install python3-torch libopenblas0-pthread)' };
    },
  };
}

function plans(mnistCsv: string): Plan[] {
  const steps = (quick: boolean): string => (quick ? '8' : '30');
  return [
    ours('a-wasm', 'a', 'wasm', 'in-process', 'dptrain on wasm, one lane (what threads: auto picks)'),
    ours('a-auto', 'a', 'native', 'in-process', 'dptrain on auto (native here), one lane'),
    ours('b-wasm-2', 'b', 'wasm', 'threads-2', 'dptrain on wasm, 2 threads'),
    ours('b-native-2', 'b', 'native', 'threads-2', 'dptrain on native, 2 threads'),
    ours('b-native-1', 'b', 'native', 'in-process', 'dptrain on native, one lane'),
    ours('b-native-1x2', 'b', 'native', 'in-process', 'dptrain on native, one lane of 2 onnxruntime threads (DPTRAIN_NATIVE_THREADS=2)', { DPTRAIN_NATIVE_THREADS: '2' }),
    torch('b-torch-ddp2', 'b', 'PyTorch DDP, 2 ranks (gloo), 1 thread each', (q) => [join(ROOT, 'bench', 'mlp_torch.py'), '--configs', 'ddp2', '--steps', steps(q), '--warmup', '15'], /ddp2: median ([\d.]+) ms\/step/, 1024),
    torch('b-torch-1', 'b', 'PyTorch, 1 thread', (q) => [join(ROOT, 'bench', 'mlp_torch.py'), '--configs', '1', '--steps', steps(q), '--warmup', '15'], /, 1: median ([\d.]+) ms\/step/, 1024),
    ours('c-wasm-2', 'c', 'wasm', 'threads-2', 'dptrain on wasm, 2 threads'),
    ours('c-native-2', 'c', 'native', 'threads-2', 'dptrain on native, 2 threads'),
    torch('c-torch-2', 'c', 'PyTorch, 2 threads', (q) => [join(ROOT, 'bench', 'mnist_cnn_torch.py'), mnistCsv, '--threads', '2', '--epochs', '0', '--steps', steps(q)], /2 thread\(s\): median ([\d.]+) ms per step/, 128),
  ];
}

function version(pkg: string): string {
  try {
    return (JSON.parse(spawnSync(process.execPath, ['-p', `JSON.stringify(require('${pkg}/package.json'))`], { cwd: ROOT, encoding: 'utf8' }).stdout) as { version: string }).version;
  } catch {
    return 'absent';
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { child: { type: 'string' }, arg: { type: 'string' }, quick: { type: 'boolean' }, passes: { type: 'string' }, out: { type: 'string' } }, strict: true });
  if (values.child) {
    console.log(JSON.stringify(await childMain(values.child, values.arg ?? '')));
    process.exit(0);
  }
  const quick = values.quick === true;
  const passes = Number(values.passes ?? (quick ? 1 : 3));
  const self = fileURLToPath(import.meta.url);
  const mnistCsv = join(mkdtempSync(join(tmpdir(), 'dptrain-native-bench-')), 'mnist.csv');
  spawnSync(process.execPath, [join(ROOT, 'scripts', 'mnist-csv.mjs'), '--out', mnistCsv], { encoding: 'utf8' });
  console.error('native: peak (one long onnxruntime product) ...');
  const peak = runChild<PeakResult>([self, '--child', 'peak', '--arg', quick ? '3' : '8'], 600_000);
  const products: NativeResults['products'] = [];
  for (const workload of ['b', 'c'] as const) {
    console.error(`native: (${workload}) products in the step vs standalone ...`);
    const r = runChild<ProductsResult>([self, '--child', 'products', '--arg', `${workload}:${quick ? 3 : 12}`], 900_000, { ...process.env, DPTRAIN_NATIVE_MIN_FLOPS: '' });
    products.push('error' in r ? { workload, error: r.error } : r);
  }
  const list = plans(mnistCsv);
  const runs = new Map<string, { samplesPerSecond: number[]; notComputeShare?: number }[]>(list.map((p) => [p.id, []]));
  const errors = new Map<string, string>();
  for (let pass = 0; pass < passes; pass++) {
    for (let k = 0; k < list.length; k++) {
      const p = list[(pass + k) % list.length]!;
      if (errors.has(p.id)) continue;
      console.error(`native: pass ${pass + 1}/${passes}: (${p.workload}) ${p.what} ...`);
      const r = p.run(quick);
      if ('error' in r) errors.set(p.id, r.error);
      else runs.get(p.id)!.push(r);
    }
  }
  const entries: Entry[] = list.map((p) => {
    const got = runs.get(p.id)!;
    const shares = got.flatMap((g) => (g.notComputeShare === undefined ? [] : [g.notComputeShare]));
    return {
      id: p.id,
      workload: p.workload,
      what: p.what,
      passMedians: got.map((g) => median(g.samplesPerSecond)),
      samplesPerSecond: got.flatMap((g) => g.samplesPerSecond),
      ...(shares.length ? { notComputeShare: shares } : {}),
      ...(errors.has(p.id) ? { error: errors.get(p.id)! } : {}),
    };
  });
  const torchVersion = spawnSync('/usr/bin/python3', ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout?.trim() || 'absent';
  const results: NativeResults = {
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length },
    versions: { 'onnxruntime-node': version('onnxruntime-node'), '@tensorflow/tfjs-backend-wasm': version('@tensorflow/tfjs-backend-wasm'), torch: torchVersion, node: process.version },
    quick,
    peak,
    products,
    entries,
  };
  const out = values.out ?? join(ROOT, 'bench', 'native.json');
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.error(`wrote ${out}`);
}

await main();
