/**
 * `npm run bench`: workload (a) as groups (a workload on a backend, all its configurations
 * measured interleaved round by round in one process); workload (b) with each configuration in a
 * process of its own, in several passes whose order rotates (so no configuration's threads or
 * worker processes sit beside another's while it is measured, and machine drift is shared out).
 * One process at a time (nothing else should run meanwhile), then BENCHMARKS.md (machine,
 * versions, date, tables, targets; its hand-written part below HAND_WRITTEN is kept as it is) and
 * bench/results.json (raw numbers).
 *
 *   node dist/bench/run.js [--quick] [--workload a|b|c|backends|native|memory|shards] [--merge bench/results.json] [--out DIR]
 *   node dist/bench/run.js --render bench/results.json   (rewrite BENCHMARKS.md from saved numbers)
 *
 * --quick: few steps per case (checks the harness; the numbers mean little).
 * --merge FILE: keep FILE's results of the workloads not measured now (each workload says when
 * and on what it was measured).
 * Workload (c), the MNIST CNN, also runs bench/mnist_cnn_torch.py where python3 has torch.
 * A full run (no --workload) or --workload backends also runs bench/backend-speed.ts: one
 * gradient step of (b) and (c) per backend, webgpu included (bench/backend-speed.json); a full
 * run or --workload native runs bench/native.ts: the native backend against wasm and PyTorch
 * (bench/native.json). A full run or --workload memory runs bench/data-memory.ts: the coordinator's peak RSS
 * per byte of in-memory data for .npy, CSV and image folders (bench/data-memory.json; its table
 * is in BENCHMARKS.md's hand-written part). A full run or --workload shards runs
 * bench/shards-throughput.ts: MNIST in tar shards streamed against in memory (bench/shards.json).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WORKLOADS, median, type Case, type CaseResult, type Config, type Group, type PhasesMs, type WorkloadName } from './cases.js';
import type { KernelResult } from './kernels.js';
import type { NativeResults } from './native.js';
import { nativeMarkdown } from './native-report.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CASE_MAIN = fileURLToPath(new URL('./case-main.js', import.meta.url));

interface Results {
  readonly date: string;
  readonly machine: { cpu: string; cores: number; memoryGiB: number; os: string; calibrationMs: number; mallocEnv?: Record<string, string> };
  readonly versions: Record<string, string>;
  readonly quick: boolean;
  /** Configurations of a group measured round by round (same-round repeats are comparable); absent in older files. */
  readonly interleaved?: boolean;
  readonly kernels: (KernelResult | { error: string })[];
  readonly cases: (MeasuredCase | (Case & { error: string }))[];
  /** When each workload was measured, and the calibration then (merged runs; absent in older files). */
  readonly workloads?: Partial<Record<WorkloadName, { date: string; calibrationMs: number; cpu: string }>>;
  /** PyTorch on the same machine, the same CNN (bench/mnist_cnn_torch.py): samples/s by thread count. */
  readonly torch?: { version: string; samplesPerSecond: Record<string, number> } | { error: string };
}

/** A case; measured in passes, it also has each pass's median samples/s. */
type MeasuredCase = CaseResult & { readonly passMedians?: number[] };

/** A plan entry: a group measured interleaved in one process, or its configurations each in their own process, `passes` times. */
type Planned = Group & { readonly passes?: number };

function version(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'absent';
  }
}

/** A fixed JS loop, to tell a slow or throttled machine from a slow program. */
function calibrate(): number {
  const t0 = performance.now();
  let s = 0;
  for (let i = 0; i < 1e8; i++) s += i & 7;
  if (s < 0) console.log(s);
  return performance.now() - t0;
}

function child<T>(arg: unknown, timeoutMs: number): T | { error: string } {
  const r = spawnSync(process.execPath, [CASE_MAIN, JSON.stringify(arg)], { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 2 ** 20 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status === 0 && /^[[{]/.test(last)) return JSON.parse(last) as T;
  return { error: `exit ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}` };
}

function plan(quick: boolean, only: WorkloadName | undefined): Planned[] {
  const groups: Planned[] = [];
  const configs: Config[] = ['fit', 'in-process', 'threads-1', 'threads-2', 'nodes-2', 'mixed'];
  const add = (workload: WorkloadName, backend: Group['backend'], list: Config[], sizes: Pick<Planned, 'warmupSteps' | 'repeats' | 'stepsPerRepeat' | 'passes'>): void => {
    if (!only || only === workload) groups.push({ workload, backend, configs: quick ? list.filter((c) => c !== 'mixed') : list, ...sizes });
  };
  // Many short repeats, interleaved: on a machine whose speed changes from second to second,
  // same-round ratios, the median and the best repeat say more than a few long repeats.
  const a = quick ? { warmupSteps: 3, repeats: 2, stepsPerRepeat: 5 } : { warmupSteps: 30, repeats: 15, stepsPerRepeat: 20 };
  // (b): one configuration per process (idle threads and worker processes of the others cost
  // the measured one up to a third of its speed here), 3 passes of 12 one-step repeats.
  const b = quick ? { warmupSteps: 1, repeats: 2, stepsPerRepeat: 1, passes: 1 } : { warmupSteps: 3, repeats: 12, stepsPerRepeat: 1, passes: 3 };
  add('a', 'wasm', configs, a);
  if (!quick) add('a', 'cpu', configs, a);
  add('b', 'wasm', [...configs, 'nodes-2-f16', 'nodes-2-whole'], b);
  // (c): the CNN, one configuration per process like (b); stock model.fit on wasm runs on
  // dptrain's kernels (stock tfjs-backend-wasm has no Conv2DBackpropFilter), on cpu one step
  const c = quick ? { warmupSteps: 1, repeats: 2, stepsPerRepeat: 1, passes: 1 } : { warmupSteps: 2, repeats: 8, stepsPerRepeat: 1, passes: 3 };
  add('c', 'wasm', ['fit', 'in-process', 'threads-1', 'threads-2', 'nodes-2'], c);
  if (!quick) add('c', 'cpu', ['fit'], { warmupSteps: 0, repeats: 1, stepsPerRepeat: 1, passes: 1 });
  return groups;
}

const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '–');
const f0 = (v: number): string => (Number.isFinite(v) ? v.toFixed(0) : '–');

function caseRow(r: Results['cases'][number]): string {
  if ('error' in r) return `| ${r.config} | ${r.backend} | failed: ${r.error.replaceAll('|', '/')} | | | | | | | | |`;
  const sps = r.samplesPerSecond;
  const p = r.phasesMs;
  const overhead = p ? ((p.step - p.compute) / p.step) * 100 : NaN;
  return `| ${r.config} | ${r.backend} | ${f0(median(sps))} (${f0(Math.min(...sps))}–${f0(Math.max(...sps))}) | ${f1((r.batch / median(sps)) * 1000)} | ${p ? f1(p.step) : '–'} | ${p ? f1(p.compute) : '–'} | ${p ? f1(p.transfer) : '–'} | ${p ? f1(p.reduce) : '–'} | ${p ? f1(p.apply) : '–'} | ${p ? f1(p.broadcast) : '–'} | ${p ? `${f1(overhead)}%` : '–'} |`;
}

function find(results: Results, workload: WorkloadName, config: Config, backend = 'wasm'): MeasuredCase | undefined {
  const r = results.cases.find((c) => c.workload === workload && c.config === config && c.backend === backend);
  return r && !('error' in r) ? r : undefined;
}

const verdict = (value: number, met: boolean): string => (!Number.isFinite(value) ? 'not measured' : met ? 'met' : 'not met');

/**
 * a's samples/s over b's, compared like for like: the median over passes of the ratio of their
 * pass medians (configurations measured in passes), or over rounds of same-round repeats.
 */
function pairedRatio(a: MeasuredCase | undefined, b: MeasuredCase | undefined): number {
  if (!a || !b) return NaN;
  if (a.passMedians && b.passMedians) {
    const n = Math.min(a.passMedians.length, b.passMedians.length);
    return n === 0 ? NaN : median(Array.from({ length: n }, (_, i) => a.passMedians![i]! / b.passMedians![i]!));
  }
  const n = Math.min(a.samplesPerSecond.length, b.samplesPerSecond.length);
  return n === 0 ? NaN : median(Array.from({ length: n }, (_, i) => a.samplesPerSecond[i]! / b.samplesPerSecond[i]!));
}

/** One case from its passes: all repeats, phases averaged over every measured step, the fastest repeat's split. */
function mergePasses(parts: readonly CaseResult[]): MeasuredCase {
  const first = parts[0]!;
  const samplesPerSecond = parts.flatMap((p) => p.samplesPerSecond);
  const weight = (p: CaseResult): number => p.samplesPerSecond.length;
  const total = parts.reduce((a, p) => a + weight(p), 0);
  const phases = parts.every((p) => p.phasesMs)
    ? (Object.fromEntries(Object.keys(first.phasesMs!).map((k) => [k, parts.reduce((a, p) => a + p.phasesMs![k as keyof PhasesMs] * weight(p), 0) / total])) as unknown as PhasesMs)
    : undefined;
  const fastest = parts.reduce((a, p) => (Math.max(...p.samplesPerSecond) > Math.max(...a.samplesPerSecond) ? p : a));
  return {
    ...first,
    repeats: total,
    samplesPerSecond,
    ...(phases && { phasesMs: phases }),
    ...(fastest.fastestRepeatPhasesMs && { fastestRepeatPhasesMs: fastest.fastestRepeatPhasesMs }),
    passMedians: parts.map((p) => median(p.samplesPerSecond)),
  };
}

/** PyTorch's samples/s on the CNN at 1 and 2 threads (bench/mnist_cnn_torch.py), where python3 has torch. */
function torchCnn(quick: boolean): Results['torch'] {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-torch-'));
  const csv = join(dir, 'mnist.csv');
  const written = spawnSync(process.execPath, [join(ROOT, 'scripts', 'mnist-csv.mjs'), '--out', csv], { encoding: 'utf8' });
  if (written.status !== 0) return { error: `mnist-csv.mjs: ${written.stderr.trim()}` };
  for (const python of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(python, [join(ROOT, 'bench', 'mnist_cnn_torch.py'), csv, '--threads', '1,2', '--epochs', '0', '--steps', quick ? '5' : '40'], { encoding: 'utf8', timeout: 1_800_000 });
    const lines = [...(r.stdout ?? '').matchAll(/^torch (\S+), (\d+) thread\(s\): .*?, (\d+) samples\/s/gm)];
    if (r.status === 0 && lines.length > 0) return { version: lines[0]![1]!, samplesPerSecond: Object.fromEntries(lines.map((m) => [m[2]!, Number(m[3])])) };
  }
  return { error: 'no python3 with torch (Debian: apt-get install python3-torch)' };
}

function targets(results: Results): string[] {
  const sps = (r: CaseResult | undefined): number => (r ? median(r.samplesPerSecond) : NaN);
  const best = (r: CaseResult | undefined): number => (r ? Math.max(...r.samplesPerSecond) : NaN);
  const times = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}x` : '–');
  const b1 = find(results, 'b', 'threads-1');
  const b2 = find(results, 'b', 'threads-2');
  const bNodes = find(results, 'b', 'nodes-2');
  const ratio = results.interleaved ? pairedRatio(b2, b1) : sps(b2) / sps(b1);
  const stepMs = b2?.phasesMs?.step ?? NaN;
  const share = (p: PhasesMs | undefined): number => (p ? ((p.step - p.compute) / p.step) * 100 : NaN);
  const over = (r: CaseResult | undefined): number => share(r?.phasesMs);
  // On a machine slowed in bursts the fastest repeat is the one that ran at full speed.
  const overFastest = (r: CaseResult | undefined): string => (r?.fastestRepeatPhasesMs ? ` (fastest repeat: ${f1(share(r.fastestRepeatPhasesMs))}%)` : '');
  const lines = [
    `| (b) 2 threads vs 1 thread | >= 1.8x | ${times(ratio)}${b2?.passMedians ? ' (median of per-pass ratios)' : results.interleaved ? ' (median of same-round ratios)' : ''} (best repeats: ${times(best(b2) / best(b1))}; vs in-process: ${times(results.interleaved ? pairedRatio(b2, find(results, 'b', 'in-process')) : NaN)}) | ${verdict(ratio, ratio >= 1.8)} |`,
    `| (b) 2 threads, ms per step (wasm) | <= 60 ms | ${f1(stepMs)} ms (best repeat: ${f1(b2 ? (b2.batch / best(b2)) * 1000 : NaN)} ms) | ${verdict(stepMs, stepMs <= 60)} |`,
    `| (b) not-compute share, 2 threads | <= 10% | ${f1(over(b2))}%${overFastest(b2)} | ${verdict(over(b2), over(b2) <= 10)} |`,
    `| (b) not-compute share, 2 worker processes | <= 10% | ${f1(over(bNodes))}%${overFastest(bNodes)} | ${verdict(over(bNodes), over(bNodes) <= 10)} |`,
  ];
  const c2 = find(results, 'c', 'threads-2');
  const torch2 = results.torch && 'samplesPerSecond' in results.torch ? results.torch.samplesPerSecond['2'] : undefined;
  if (c2 || torch2 !== undefined) {
    const ratio = c2 && torch2 ? sps(c2) / torch2 : NaN;
    lines.push(`| (c) CNN, 2 threads vs PyTorch 2 threads | >= 0.5x | ${times(ratio)} (${f0(sps(c2))} vs ${torch2 ?? '–'} samples/s) | ${verdict(ratio, ratio >= 0.5)} |`);
  }
  for (const backend of ['wasm', 'cpu']) {
    const fit = find(results, 'a', 'fit', backend);
    for (const [config, what] of [['in-process', 'one lane in-process (what threads: auto picks for this model)'], ['threads-1', '1 Piscina thread']] as const) {
      const ours = find(results, 'a', config, backend);
      const ratio = results.interleaved ? pairedRatio(ours, fit) : sps(ours) / sps(fit);
      const bestRatio = best(ours) / best(fit);
      lines.push(`| (a) ${what} vs model.fit (${backend}) | >= 0.9x | ${times(ratio)} (best repeats: ${times(bestRatio)}) | ${verdict(ratio, ratio >= 0.9)} |`);
    }
  }
  return lines;
}

function markdown(results: Results): string {
  const m = results.machine;
  // workloads measured one configuration per process, in passes
  const isolated = [...new Set(results.cases.filter((c) => 'passMedians' in c && c.passMedians).map((c) => c.workload))];
  const out: string[] = [
    '# Benchmarks',
    '',
    `Written by \`npm run bench\` (\`bench/run.ts\`) on ${results.date}${results.quick ? ' with --quick (too few steps to mean much)' : ''}. Raw numbers: \`bench/results.json\`.`,
    '',
    'How to run the benchmarks and what each workload and configuration is: CONTRIBUTING.md, "Benchmarks". Each section says when and on what machine it was measured; these are small VMs whose speed wanders, so read every median with its min–max.',
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB.toFixed(0)} GiB, ${m.os}. Calibration: a 1e8-iteration JS loop took ${m.calibrationMs.toFixed(0)} ms (about 100 ms on an unthrottled core; much more means the machine was slowed down while measuring, and every number below is slowed with it).`,
    `Versions: ${Object.entries(results.versions).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    ...(m.mallocEnv
      ? [
          Object.keys(m.mallocEnv).length > 0
            ? `Memory allocator: glibc with ${Object.entries(m.mallocEnv).map(([k, v]) => `\`${k}=${v}\``).join(' ')}, as the Docker images set (docs/deployment.md, "Memory allocator").`
            : 'Memory allocator: glibc defaults (the Docker images tune it; docs/deployment.md, "Memory allocator").',
        ]
      : []),
    '',
    (results.interleaved
      ? 'Each workload and backend runs in a fresh process; its configurations are measured interleaved: every round runs one repeat of each, in an order that rotates, so same-round repeats were measured seconds apart and their ratio compares code rather than the machine\'s speed at the time (the targets use the median of those ratios).'
      : 'Each case runs in a fresh process, one at a time.') +
      (isolated.length
        ? ` Except workload ${isolated.map((w) => `(${w})`).join(', ')}: there every configuration runs in a process of its own (the idle threads and worker processes of the others cost the measured one up to a third of its speed on this machine), in passes whose order rotates; ratios are the median over passes of the ratio of pass medians.`
        : '') +
      ' samples/s: median of the repeats after warm-up steps (min–max in brackets). Step time split (ms, mean per step): compute = slowest participant\'s own time on its part (gathering rows + gradient); transfer = the rest of the wait for it (messages, scheduling, copies); reduce = weighted average; apply = optimizer step; broadcast = publishing the weights. "not compute" = (step - compute) / step. `fit` is plain tfjs-layers `model.fit` in one process (no split). Nodes send the end of their gradient while they compute the rest (`cluster.gradientBucketBytes`, 256 KiB); `nodes-2-whole` sends whole gradients, `nodes-2-f16` float16 ones. A node\'s compute excludes its sending.',
    '',
  ];
  for (const w of ['a', 'b', 'c'] as const) {
    const rows = results.cases.filter((c) => c.workload === w);
    if (rows.length === 0) continue;
    const first = rows[0]!;
    const passes = (first as MeasuredCase).passMedians?.length;
    const when = results.workloads?.[w];
    out.push(
      `## ${WORKLOADS[w].title}`,
      '',
      `${when ? `Measured ${when.date} (${when.cpu}; calibration ${when.calibrationMs.toFixed(0)} ms). ` : ''}${first.warmupSteps} warm-up steps, ${first.repeats} repeats of ${first.stepsPerRepeat} steps${passes ? ` (${passes} passes, a process per configuration and pass)` : ''}.`,
      '',
    );
    out.push('| config | backend | samples/s | ms/step (from the median) | ms/step (mean) | compute | transfer | reduce | apply | broadcast | not compute |', '|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) out.push(caseRow(r));
    out.push('');
    if (w === 'c' && results.torch) {
      out.push(
        'torch' in results && 'samplesPerSecond' in results.torch
          ? `PyTorch ${results.torch.version} on the same machine, the same net, batch 128 (\`bench/mnist_cnn_torch.py\`, median step after 5 warm-up steps): ${Object.entries(results.torch.samplesPerSecond).map(([t, v]) => `${t} thread(s) ${v} samples/s`).join(', ')}.`
          : `PyTorch: not measured (${(results.torch as { error: string }).error}).`,
        '',
      );
    }
  }
  out.push('## Kernels: matMul with transposes, direct Dense gradients vs the stock tape, the engine\'s transposes', '');
  if (results.kernels.length === 0) out.push('Not run (`--quick --workload` skips them).', '');
  for (const k of results.kernels) {
    if ('error' in k) {
      out.push(`failed: ${k.error}`, '');
      continue;
    }
    out.push(
      `On ${k.backend}: matMul [1024x512]x[512x512]: plain ${f1(k.matMulGflops.plain)} GFLOP/s, transposeA ${f1(k.matMulGflops.transposeA)}, transposeB ${f1(k.matMulGflops.transposeB)}. ` +
        `Gradient of 45-512-512-1 at batch 1024: direct Dense engine ${f1(median(k.gradientMs.dense))} ms, stock tfjs-layers + tape ${f1(median(k.gradientMs.tape))} ms ` +
        `(${(median(k.gradientMs.tape) / median(k.gradientMs.dense)).toFixed(1)}x); largest difference ${k.maxRelativeDifference.toExponential(1)} of the largest gradient value.`,
      '',
    );
    if (k.transposeMs && k.columnSumMs && k.gradientMs.denseStockTranspose?.length) {
      const f2 = (v: number): string => v.toFixed(2);
      out.push(
        `The engine's transposes (512x512, including the copies): tfjs's transpose ${f2(k.transposeMs.tfjs)} ms, the SIMD kernel ${f2(k.transposeMs.simd)} ms; ` +
          `sum over axis 0: tfjs ${f2(k.columnSumMs.tfjs)} ms, kernel transpose + row sums ${f2(k.columnSumMs.simd)} ms (same bits). ` +
          `The Dense engine's gradient with tf.transpose and tf.sum(axis 0) instead: ${f1(median(k.gradientMs.denseStockTranspose))} ms.`,
        '',
      );
    }
  }
  out.push(...backendSpeedSection());
  const native = join(ROOT, 'bench', 'native.json');
  if (existsSync(native)) out.push(...nativeMarkdown(JSON.parse(readFileSync(native, 'utf8')) as NativeResults));
  out.push('## Targets', '', '| target | wanted | measured | |', '|---|---|---|---|', ...targets(results), '');
  out.push(...handWritten());
  return `${out.join('\n')}\n`;
}

/** The line of BENCHMARKS.md below which it is written by hand (results of the scripts run by hand); every rewrite keeps that part. */
const HAND_WRITTEN = '<!-- npm run bench keeps everything below this line -->';

/** The hand-written part of the current BENCHMARKS.md, from its marker line on (nothing without one). */
function handWritten(): string[] {
  const file = join(ROOT, 'BENCHMARKS.md');
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const at = text.indexOf(HAND_WRITTEN);
  return at < 0 ? [] : [text.slice(at).trim(), ''];
}

interface BackendSpeed {
  readonly date: string;
  readonly machine: string;
  readonly rows: { backend: string; adapter?: string; workload: string; batch: number; medianMs: number; minMs: number; maxMs: number; samplesPerSecond: number; steps: number }[];
  readonly errors: string[];
}

/** The backends table from bench/backend-speed.json (bench/backend-speed.ts), where it exists. */
function backendSpeedSection(): string[] {
  const file = join(ROOT, 'bench', 'backend-speed.json');
  if (!existsSync(file)) return [];
  const r = JSON.parse(readFileSync(file, 'utf8')) as BackendSpeed;
  const adapters = [...new Set(r.rows.flatMap((x) => (x.adapter ? [x.adapter] : [])))];
  return [
    `## Backends: one gradient step (bench/backend-speed.ts; ${r.date.slice(0, 16).replace('T', ' ')} UTC, ${r.machine})`,
    '',
    'Each backend in a fresh process, rounds interleaved; the engine gradient of one global batch (no optimizer, no transport). ' +
      `webgpu ran on ${adapters.join(', ') || 'no adapter'}${adapters.some((a) => a.endsWith('software')) ? ': a software renderer on the CPU, the code path CI tests, not a GPU speed' : ''}.`,
    '',
    '| workload | backend | samples/s | median ms (min-max) | steps |',
    '|---|---|---|---|---|',
    ...r.rows.map((x) => `| (${x.workload}) batch ${x.batch} | ${x.backend} | ${x.samplesPerSecond.toFixed(0)} | ${x.medianMs.toFixed(1)} (${x.minMs.toFixed(1)}-${x.maxMs.toFixed(1)}) | ${x.steps} |`),
    ...(r.errors.length ? ['', ...r.errors.map((e) => `Not measured: ${e}`)] : []),
    '',
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, workload: { type: 'string' }, out: { type: 'string' }, render: { type: 'string' }, merge: { type: 'string' } }, strict: true });
  if (values.render) {
    const saved = JSON.parse(readFileSync(values.render, 'utf8')) as Results;
    writeFileSync(join(values.out ?? ROOT, 'BENCHMARKS.md'), markdown(saved));
    return;
  }
  const quick = values.quick === true;
  if (values.workload === 'backends') {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('./backend-speed.js', import.meta.url))], { stdio: 'inherit', cwd: ROOT });
    if (r.status !== 0) throw new Error(`backend-speed exited ${r.status}`);
    writeFileSync(join(values.out ?? ROOT, 'BENCHMARKS.md'), markdown(JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results));
    return;
  }
  if (values.workload === 'native') {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('./native.js', import.meta.url)), ...(quick ? ['--quick'] : [])], { stdio: 'inherit', cwd: ROOT });
    if (r.status !== 0) throw new Error(`native exited ${r.status}`);
    writeFileSync(join(values.out ?? ROOT, 'BENCHMARKS.md'), markdown(JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results));
    return;
  }
  if (values.workload === 'memory') {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('./data-memory.js', import.meta.url)), ...(quick ? ['--rows', '8000'] : [])], { stdio: 'inherit', cwd: ROOT });
    if (r.status !== 0) throw new Error(`data-memory exited ${r.status}`);
    return;
  }
  if (values.workload === 'shards') {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('./shards-throughput.js', import.meta.url)), ...(quick ? ['--passes', '1'] : [])], { stdio: 'inherit', cwd: ROOT });
    if (r.status !== 0) throw new Error(`shards-throughput exited ${r.status}`);
    return;
  }
  const only = values.workload as WorkloadName | undefined;
  if (only && !(only in WORKLOADS)) throw new Error(`--workload must be a, b, c, backends, native, memory or shards, got ${only}`);
  const outDir = values.out ?? ROOT;
  const results: Results = {
    date: new Date().toISOString(),
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: totalmem() / 2 ** 30,
      os: `Linux ${release()}`,
      calibrationMs: calibrate(),
      // glibc allocator settings the case processes inherit (docs/deployment.md, "Memory allocator")
      mallocEnv: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[0].startsWith('MALLOC_') && e[1] !== undefined)),
    },
    versions: Object.fromEntries(['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-wasm', 'piscina', 'ws', 'msgpackr'].map((p) => [p, version(p)]).concat([['node', process.version]])),
    quick,
    interleaved: true,
    kernels: [],
    cases: [],
  };
  if (!quick || only === undefined) {
    console.error('kernels (wasm) ...');
    results.kernels.push(child<KernelResult>({ kernels: 'wasm' }, 600_000));
  }
  for (const g of plan(quick, only)) {
    if (g.passes === undefined) {
      console.error(`(${g.workload}) on ${g.backend}: ${g.configs.join(', ')} ...`);
      const r = child<(CaseResult | (Case & { error: string }))[]>(g, 7_200_000);
      const cases: Results['cases'] = 'error' in r ? g.configs.map((config) => ({ workload: g.workload, config, backend: g.backend, warmupSteps: g.warmupSteps, repeats: g.repeats, stepsPerRepeat: g.stepsPerRepeat, error: r.error })) : r;
      results.cases.push(...cases);
      for (const c of cases) console.error(`  ${c.config}: ${'error' in c ? c.error : `${median(c.samplesPerSecond).toFixed(0)} samples/s`}`);
      continue;
    }
    const passes = new Map<Config, (CaseResult | { error: string })[]>(g.configs.map((c) => [c, []]));
    for (let pass = 0; pass < g.passes; pass++) {
      console.error(`(${g.workload}) on ${g.backend}, pass ${pass + 1}/${g.passes}, one process per configuration ...`);
      for (let k = 0; k < g.configs.length; k++) {
        const config = g.configs[(pass + k) % g.configs.length]!;
        const r = child<(CaseResult | (Case & { error: string }))[]>({ ...g, configs: [config] }, 3_600_000);
        const one = 'error' in r ? r : r[0]!;
        passes.get(config)!.push(one);
        console.error(`  ${config}: ${'error' in one ? one.error : `${median(one.samplesPerSecond).toFixed(0)} samples/s`}`);
      }
    }
    for (const [config, parts] of passes) {
      const failed = parts.find((p): p is { error: string } => 'error' in p);
      results.cases.push(failed ? { workload: g.workload, config, backend: g.backend, warmupSteps: g.warmupSteps, repeats: g.repeats, stepsPerRepeat: g.stepsPerRepeat, error: failed.error } : mergePasses(parts as CaseResult[]));
    }
  }
  if (!quick && only === undefined) {
    console.error('backends: one gradient step per backend ...');
    spawnSync(process.execPath, [fileURLToPath(new URL('./backend-speed.js', import.meta.url))], { stdio: 'inherit', cwd: ROOT });
    console.error('native backend against wasm and PyTorch ...');
    spawnSync(process.execPath, [fileURLToPath(new URL('./native.js', import.meta.url))], { stdio: 'inherit', cwd: ROOT });
    console.error('data in memory: peak RSS per byte of data ...');
    spawnSync(process.execPath, [fileURLToPath(new URL('./data-memory.js', import.meta.url))], { stdio: 'inherit', cwd: ROOT });
    console.error('tar shards streamed against the same images in memory ...');
    spawnSync(process.execPath, [fileURLToPath(new URL('./shards-throughput.js', import.meta.url))], { stdio: 'inherit', cwd: ROOT });
  }
  if (plan(quick, only).some((g) => g.workload === 'c')) {
    console.error('(c) PyTorch on the same machine ...');
    (results as { torch?: Results['torch'] }).torch = torchCnn(quick);
  }
  results.machine.calibrationMs = Math.max(results.machine.calibrationMs, calibrate());
  const measured = [...new Set(results.cases.map((c) => c.workload))];
  const now = Object.fromEntries(measured.map((w) => [w, { date: results.date, calibrationMs: results.machine.calibrationMs, cpu: results.machine.cpu }]));
  let merged: Results = { ...results, workloads: now };
  if (values.merge) {
    const old = JSON.parse(readFileSync(values.merge, 'utf8')) as Results;
    const kept = old.cases.filter((c) => !measured.includes(c.workload));
    const keptDates = Object.fromEntries([...new Set(kept.map((c) => c.workload))].map((w) => [w, old.workloads?.[w] ?? { date: old.date, calibrationMs: old.machine.calibrationMs, cpu: old.machine.cpu }]));
    merged = {
      ...results,
      kernels: results.kernels.length > 0 ? results.kernels : old.kernels,
      cases: [...kept, ...results.cases].sort((a, b) => a.workload.localeCompare(b.workload)),
      workloads: { ...keptDates, ...now },
      ...(results.torch ? {} : old.torch ? { torch: old.torch } : {}),
    };
  }
  const final = merged;
  mkdirSync(join(outDir, 'bench'), { recursive: true });
  writeFileSync(join(outDir, 'bench', 'results.json'), `${JSON.stringify(final, null, 2)}\n`);
  writeFileSync(join(outDir, 'BENCHMARKS.md'), markdown(final));
  console.error(`wrote ${join(outDir, 'BENCHMARKS.md')} and ${join(outDir, 'bench', 'results.json')}`);
}

await main();
