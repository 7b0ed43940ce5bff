/**
 * Streaming from tar shards against the same images in memory: the 10,000 MNIST digits as PNGs
 * in 10 tar shards (scripts/mnist-csv.mjs --shards), the CNN of examples/mnist-cnn-images.yaml on
 * 2 threads for one epoch, with data.inMemory true and false in alternating runs (each its own
 * `coordinator start`); the training throughput of each run from its summary (samples/s of the
 * epoch, start-up and indexing not included), and the peak RSS.
 *
 *   npm run build && node dist/bench/shards-throughput.js [--passes 3] [--out bench/shards.json]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COORDINATOR = join(ROOT, 'bin', 'coordinator.js');

function run(configFile: string, out: string): Promise<{ samplesPerSecond: number; wallSeconds: number; peakMiB: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [COORDINATOR, 'start', '--config', configFile, '--out', out, '--overwrite', '--metrics-listen', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let peak = 0;
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setInterval(() => {
      try {
        const kB = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
        if (kB) peak = Math.max(peak, Number(kB) / 1024);
      } catch {
        // exited between samples
      }
    }, 50);
    child.on('exit', (code) => {
      clearInterval(timer);
      if (code !== 0) return reject(new Error(`coordinator exited ${code}\n${output.slice(-2000)}`));
      const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { samplesPerSecond: number; wallSeconds: number };
      resolve({ samplesPerSecond: summary.samplesPerSecond, wallSeconds: summary.wallSeconds, peakMiB: peak });
    });
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { passes: { type: 'string', default: '3' }, out: { type: 'string', default: 'bench/shards.json' } } });
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-shards-bench-'));
  const made = spawnSync(process.execPath, [join(ROOT, 'scripts', 'mnist-csv.mjs'), '--shards', join(dir, 'shards')], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(made.stderr);
  const example = parse(readFileSync(join(ROOT, 'examples', 'mnist-cnn-images.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
  const configs = ([true, false] as const).map((inMemory) => {
    const file = join(dir, `${inMemory ? 'memory' : 'streamed'}.json`);
    const config = { ...example, data: { ...example['data'], path: join(dir, 'shards', 'mnist-*.tar'), inMemory }, fit: { ...example['fit'], epochs: 1 }, cluster: { ...example['cluster'], threads: 2 } };
    writeFileSync(file, JSON.stringify(config));
    return { inMemory, file };
  });
  const results: Record<'memory' | 'streamed', { samplesPerSecond: number; wallSeconds: number; peakMiB: number }[]> = { memory: [], streamed: [] };
  for (let pass = 0; pass < Number(values.passes); pass++) {
    // alternate which goes first, so a drift in the machine's speed does not favour one
    const order = pass % 2 === 0 ? configs : [...configs].reverse();
    for (const { inMemory, file } of order) {
      const r = await run(file, join(dir, `run-${inMemory}`));
      results[inMemory ? 'memory' : 'streamed'].push(r);
      console.log(`pass ${pass + 1}, ${inMemory ? 'in memory' : 'streamed from the shards'}: ${r.samplesPerSecond.toFixed(0)} samples/s, ${r.wallSeconds.toFixed(1)} s wall, peak RSS ${r.peakMiB.toFixed(0)} MiB`);
    }
  }
  const ratios = results.streamed.map((s, i) => s.samplesPerSecond / results.memory[i]!.samplesPerSecond);
  console.log(`streamed / in memory, samples/s: median ${median(ratios).toFixed(3)} (passes: ${ratios.map((r) => r.toFixed(3)).join(', ')})`);
  const report = { date: new Date().toISOString(), machine: `${cpus().length} x ${cpus()[0]?.model.trim() ?? '?'}`, node: process.version, results, ratios, medianRatio: median(ratios) };
  writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
}

await main();
