/** The "Native backend" section of BENCHMARKS.md, from bench/native.json (bench/native.ts). */
import { median } from './cases.js';
import type { Entry, NativeResults, ProductsResult } from './native.js';

const f0 = (v: number): string => (Number.isFinite(v) ? v.toFixed(0) : '–');
const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '–');
const f3 = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '–');
const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '–');
const gflops = (w: { flops: number; ms: number }): number => w.flops / w.ms / 1e6;

/** a over b: the median over passes of the ratio of their pass medians. */
function ratio(a: Entry | undefined, b: Entry | undefined): { median: number; each: number[] } {
  if (!a || !b) return { median: NaN, each: [] };
  const n = Math.min(a.passMedians.length, b.passMedians.length);
  const each = Array.from({ length: n }, (_, i) => a.passMedians[i]! / b.passMedians[i]!);
  return { median: n ? median(each) : NaN, each };
}

const verdict = (v: number, met: boolean): string => (!Number.isFinite(v) ? 'not measured' : met ? 'met' : 'not met');

/** Products inside the step over the same products standalone, per round; their median. */
function productsRatio(p: ProductsResult): number {
  return median(p.rounds.map((r) => gflops(r.inStep) / gflops(r.standalone)));
}

export function nativeMarkdown(r: NativeResults): string[] {
  const by = (id: string): Entry | undefined => r.entries.find((e) => e.id === id && !e.error);
  const peak = 'error' in r.peak ? NaN : Math.max(...r.peak.gflops);
  const peakMedian = 'error' in r.peak ? NaN : median(r.peak.gflops);
  const out: string[] = [
    `## Native backend: onnxruntime's products against wasm and PyTorch (bench/native.ts; ${r.date}, ${r.machine.cores} x ${r.machine.cpu})`,
    '',
    `Versions: ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join(', ')}.${r.quick ? ' Measured with --quick (too few steps to mean much).' : ''}`,
    '',
    `The machine's reach: one onnxruntime product of ${'error' in r.peak ? '–' : `${r.peak.size}^3`} on one thread, ${f0(peak)} GFLOP/s at best, ${f0(peakMedian)} at the median${'error' in r.peak ? ` (${r.peak.error})` : ''}. This VM runs at two speeds that alternate within seconds (PyTorch's OpenBLAS shows the same two); every comparison below is of runs measured in the same passes.`,
    '',
    '### The step\'s products against the same products standalone',
    '',
    "One lane's gradient as a 2-thread step gives it; each product timed inside the step (a model the native engine computes runs its products inside two onnxruntime sessions: there the whole gradient is timed, which bounds the products' rate from below; a convolution's products counted as the im2col products they amount to, and timed standalone as those Gemms: onnxruntime's Gemm is far slower on the first convolution's 9-deep product than its Conv is, so for (c) the standalone column understates what onnxruntime reaches), then the same shapes (transposes, bias) on plain arrays. Rounds alternate the two; the ratio is the median of rounds.",
    '',
    '| workload | rows | products | in the step (median GFLOP/s) | standalone | in step / standalone | of peak (in step) | share of the lane\'s gradient in products |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const p of r.products) {
    if ('error' in p) {
      out.push(`| (${p.workload}) | | failed: ${p.error.replaceAll('|', '/')} | | | | | |`);
      continue;
    }
    const inStep = median(p.rounds.map((x) => gflops(x.inStep)));
    const alone = median(p.rounds.map((x) => gflops(x.standalone)));
    const share = median(p.rounds.map((x) => x.inStep.ms / x.stepMs));
    const timed = p.inStepTimed === 'gradient' ? ' (the whole gradient timed: a lower bound)' : '';
    out.push(`| (${p.workload}) | ${p.rows} | ${p.shapes.join(', ')} | ${f0(inStep)}${timed} | ${f0(alone)} | ${f2(productsRatio(p))} | ${pct(inStep / peak)} | ${p.inStepTimed === 'gradient' ? `${pct(median(p.rounds.map((x) => x.standalone.ms / x.stepMs)))} (standalone products / gradient)` : pct(share)} |`);
  }
  out.push('', '### End to end', '', 'Each configuration in a process of its own, passes in rotating order; samples/s is the median of a pass\'s repeats (each pass listed), "not compute" the share of the step outside the slowest participant\'s computation.', '');
  out.push('| workload | configuration | samples/s (per pass) | median | not compute |', '|---|---|---|---|---|');
  for (const e of r.entries) {
    if (e.error) {
      out.push(`| (${e.workload}) | ${e.what} | not measured: ${e.error.replaceAll('|', '/')} | | |`);
      continue;
    }
    out.push(`| (${e.workload}) | ${e.what} | ${e.passMedians.map(f0).join(', ')} | ${f0(median(e.passMedians))} | ${e.notComputeShare ? pct(median(e.notComputeShare)) : '–'} |`);
  }
  const rows: [string, string, { median: number; each: number[] }, number, string?][] = [
    ['(b) native 2 threads vs wasm 2 threads', '>= 3x', ratio(by('b-native-2'), by('b-wasm-2')), 3],
    ['(b) native 2 threads vs PyTorch DDP, 2 ranks', '>= 0.9x', ratio(by('b-native-2'), by('b-torch-ddp2')), 0.9],
    ['(b) native one lane vs PyTorch 1 thread', '>= 0.9x', ratio(by('b-native-1'), by('b-torch-1')), 0.9],
    ['(c) native 2 threads vs PyTorch 2 threads', '>= 1.2x', ratio(by('c-native-2'), by('c-torch-2')), 1.2],
    ['(a) auto (native here) vs wasm, one lane', '>= 1x (not slower)', ratio(by('a-auto'), by('a-wasm')), 1],
    ['(b) one lane, 2 onnxruntime threads vs 1 (DPTRAIN_NATIVE_THREADS=2)', 'measured', ratio(by('b-native-1x2'), by('b-native-1')), NaN],
    ['(c) native 2 threads vs wasm 2 threads', 'measured', ratio(by('c-native-2'), by('c-wasm-2')), NaN],
  ];
  out.push('', '### Targets', '', '| target | wanted | measured (median of per-pass ratios; each pass) | |', '|---|---|---|---|');
  for (const [what, wanted, q, min] of rows) {
    out.push(`| ${what} | ${wanted} | ${f3(q.median)}x (${q.each.map(f2).join(', ')}) | ${Number.isNaN(min) ? '' : verdict(q.median, q.median >= min)} |`);
  }
  for (const p of r.products) {
    if ('error' in p) continue;
    const q = productsRatio(p);
    out.push(`| (${p.workload}) the step's products vs onnxruntime standalone | >= 0.8 | ${f2(q)} | ${verdict(q, q >= 0.8)} |`);
  }
  for (const id of ['b-native-2', 'c-native-2']) {
    const e = by(id);
    const share = e?.notComputeShare ? median(e.notComputeShare) : NaN;
    out.push(`| (${id[0]}) not-compute share, native 2 threads | < 10% | ${pct(share)} | ${verdict(share, share < 0.1)} |`);
  }
  out.push('');
  return out;
}
