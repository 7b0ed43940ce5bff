/**
 * Streaming from tar shards against the same images in memory: the 10,000 MNIST digits as PNGs
 * in 10 tar shards (scripts/mnist-csv.mjs --shards), the CNN of examples/mnist-cnn-images.yaml on
 * 2 threads for one epoch: in memory, streamed with the default read-ahead and streamed without
 * (data.readAhead 0), in rotating order (each run its own `coordinator start`); the training
 * throughput of each run from its summary (samples/s of the epoch, start-up and indexing not
 * included), and the peak RSS.
 *
 *   npm run build && node dist/bench/shards-throughput.js [--passes 5] [--out bench/shards.json]
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
  const { values } = parseArgs({ options: { passes: { type: 'string', default: '5' }, out: { type: 'string', default: 'bench/shards.json' } } });
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-shards-bench-'));
  const made = spawnSync(process.execPath, [join(ROOT, 'scripts', 'mnist-csv.mjs'), '--shards', join(dir, 'shards')], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(made.stderr);
  const example = parse(readFileSync(join(ROOT, 'examples', 'mnist-cnn-images.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
  const kinds = { memory: { inMemory: true }, streamed: { inMemory: false }, unread: { inMemory: false, readAhead: 0 } } as const;
  type Kind = keyof typeof kinds;
  const label: Record<Kind, string> = { memory: 'in memory', streamed: 'streamed, read ahead', unread: 'streamed, no read-ahead' };
  const configs = (Object.keys(kinds) as Kind[]).map((kind) => {
    const file = join(dir, `${kind}.json`);
    const config = { ...example, data: { ...example['data'], path: join(dir, 'shards', 'mnist-*.tar'), ...kinds[kind] }, fit: { ...example['fit'], epochs: 1 }, cluster: { ...example['cluster'], threads: 2 } };
    writeFileSync(file, JSON.stringify(config));
    return { kind, file };
  });
  const results: Record<Kind, { samplesPerSecond: number; wallSeconds: number; peakMiB: number }[]> = { memory: [], streamed: [], unread: [] };
  for (let pass = 0; pass < Number(values.passes); pass++) {
    // rotate which goes first, so a drift in the machine's speed does not favour one
    const order = [...configs.slice(pass % configs.length), ...configs.slice(0, pass % configs.length)];
    for (const { kind, file } of order) {
      const r = await run(file, join(dir, `run-${kind}`));
      results[kind].push(r);
      console.log(`pass ${pass + 1}, ${label[kind]}: ${r.samplesPerSecond.toFixed(0)} samples/s, ${r.wallSeconds.toFixed(1)} s wall, peak RSS ${r.peakMiB.toFixed(0)} MiB`);
    }
  }
  const ratioOf = (kind: Kind): number[] => results[kind].map((s, i) => s.samplesPerSecond / results.memory[i]!.samplesPerSecond);
  const ratios = { streamed: ratioOf('streamed'), unread: ratioOf('unread') };
  for (const kind of ['streamed', 'unread'] as const) {
    console.log(`${label[kind]} / in memory, samples/s: median ${median(ratios[kind]).toFixed(3)} (passes: ${ratios[kind].map((r) => r.toFixed(3)).join(', ')})`);
  }
  const report = { date: new Date().toISOString(), machine: `${cpus().length} x ${cpus()[0]?.model.trim() ?? '?'}`, node: process.version, results, ratios, medianRatio: { streamed: median(ratios.streamed), unread: median(ratios.unread) } };
  writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
}

await main();
