/**
 * Both reductions on a network: the coordinator on one host of a NetBed (network namespaces joined
 * by shaped veth links, netbed.ts) and n worker nodes on n others, training a model whose
 * gradient is large and whose compute is small (a wide Dense layer at a small batch), so the
 * links, not the two cores, set the pace. For each n: the bytes each link carried per step (from
 * the interfaces' counters, over the steps after the first epoch's warm-up), the step time, and
 * the bounds: the star's 2n·S/B (n gradients into the coordinator's link, then n copies of the
 * weights out of it, one after the other) against a ring's 2(n-1)/n·S/B per node (reduce-scatter
 * then all-gather, each node sending and receiving at once); S: the gradient's bytes, B: the
 * link rate. The same job with cluster.reduction: peers (nodes all-reduce among themselves) is
 * measured beside it and held to the ring bound plus what a step costs on links too fast to matter.
 * Needs root and iproute2.
 *
 *   sudo node dist/bench/scale-out.js [--nodes 2,4,8] [--rate 1gbit] [--units 2048] [--out FILE] [--plot BASE]
 *   node dist/bench/scale-out.js --from FILE [--plot BASE]      (simulate from saved measurements)
 */
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { NetBed, rateBytes } from './netbed.js';
import { builtPeerSteps, peerSteps, starSteps, stepMs } from './scale-sim.js';
import { writeChart } from '../coordinator/plot.js';
import { Rng } from '../shared/math/rng.js';

// the repository, whether this runs compiled (dist/bench) or from source (bench, under vitest)
const ROOT = fileURLToPath(existsSync(new URL('../package.json', import.meta.url)) ? new URL('..', import.meta.url) : new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'dptrain.js');

export interface StarOptions {
  readonly nodes: number;
  readonly rate: string;
  /** Features per row and units of the wide layer: S = 4 x (features x units + 2 units + 1) bytes. */
  readonly features: number;
  readonly units: number;
  readonly batch: number;
  readonly rows: number;
  readonly epochs: number;
  /** The bed's namespace prefix (netbed.ts). */
  readonly prefix?: string;
  /** cluster.reduction (default coordinator: the star). */
  readonly reduction?: 'coordinator' | 'peers';
}

export interface StarResult {
  readonly nodes: number;
  readonly rate: string;
  readonly parameters: number;
  /** Steps measured (those after the first epoch). */
  readonly steps: number;
  readonly msPerStep: number;
  /** Per step: the coordinator's link each way, and the mean worker's. */
  readonly coordinatorSent: number;
  readonly coordinatorReceived: number;
  readonly workerSent: number;
  readonly workerReceived: number;
  /** Mean ms per measured step in the coordinator's phases (events.jsonl's step records). */
  readonly phases: { readonly compute: number; readonly reduce: number; readonly apply: number; readonly broadcast: number };
}

function writeJob(dir: string, o: StarOptions): { config: string; token: string } {
  const rng = new Rng(7);
  const lines = [[...Array.from({ length: o.features }, (_, i) => `f${i}`), 'y'].join(',')];
  for (let r = 0; r < o.rows; r++) {
    const x = Array.from({ length: o.features }, () => rng.normal());
    lines.push([...x.map((v) => v.toFixed(4)), x[0]! + x[1]! > 0 ? '1' : '0'].join(','));
  }
  writeFileSync(join(dir, 'wide.csv'), lines.join('\n') + '\n');
  const token = join(dir, 'token');
  writeFileSync(token, 'netbed-token-'.padEnd(40, 'x'), { mode: 0o600 });
  const config = join(dir, 'wide.yaml');
  writeFileSync(
    config,
    [
      'seed: 1',
      'data: { path: wide.csv, label: { column: y, positive: "1", negative: "0" }, testSize: 0.01 }',
      `model: { layers: [ { units: ${o.units}, activation: relu }, { units: 1, activation: sigmoid } ] }`,
      'compile: { optimizer: { name: adam, learningRate: 0.001 }, loss: binaryCrossentropy, metrics: [accuracy] }',
      `fit: { epochs: ${o.epochs}, batchSize: ${o.batch} }`,
      `cluster: { threads: 0, listen: "10.213.0.1:7070", tokenFile: token, startWorkers: ${o.nodes}, minWorkers: ${o.nodes}, balance: equal, reduction: ${o.reduction ?? 'coordinator'} }`,
      'metrics: { listen: false }',
      'checkpoint: { epochEnd: false }',
      '',
    ].join('\n'),
  );
  return { config, token };
}

/** The mean of the phases of the step records after step `from` up to step `to`, weighted by their steps. */
function meanPhases(events: string, from: number, to: number): StarResult['phases'] {
  const sums = { compute: 0, reduce: 0, apply: 0, broadcast: 0 };
  let steps = 0;
  for (const line of readFileSync(events, 'utf8').trim().split('\n')) {
    if (!line.includes('"type":"step"')) continue;
    const r = JSON.parse(line) as { step: number; steps: number; phases: typeof sums };
    if (r.step <= from || r.step > to) continue;
    for (const k of Object.keys(sums) as (keyof typeof sums)[]) sums[k] += r.phases[k] * r.steps;
    steps += r.steps;
  }
  // the records hold seconds
  const mean = (k: keyof typeof sums): number => (steps > 0 ? (1000 * sums[k]) / steps : 0);
  return { compute: mean('compute'), reduce: mean('reduce'), apply: mean('apply'), broadcast: mean('broadcast') };
}

/** The last step record of a run's events.jsonl: its step and epoch, or undefined before the first. */
function lastStep(events: string): { step: number; epoch: number } | undefined {
  if (!existsSync(events)) return undefined;
  const lines = readFileSync(events, 'utf8').trim().split('\n').reverse();
  for (const line of lines) {
    if (!line.includes('"type":"step"')) continue;
    const r = JSON.parse(line) as { step: number; epoch: number };
    return { step: r.step, epoch: r.epoch };
  }
  return undefined;
}

const exited = (p: ChildProcess): Promise<number | null> => new Promise((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.once('exit', resolve)));

/** One run of the star with `o.nodes` worker nodes on a fresh bed. */
export async function measureStar(o: StarOptions, log: (line: string) => void = () => {}): Promise<StarResult> {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-netbed-'));
  const { config, token } = writeJob(dir, o);
  const bed = NetBed.create({ hosts: o.nodes + 1, rate: o.rate, ...(o.prefix ? { prefix: o.prefix } : {}) });
  const procs: ChildProcess[] = [];
  const out = join(dir, 'run');
  let output = '';
  try {
    const coordinator = bed.spawn(0, process.execPath, [BIN, 'start', '--config', config, '--out', out], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(coordinator);
    coordinator.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    coordinator.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 120_000;
    while (!output.includes('listening for worker nodes on')) {
      if (coordinator.exitCode !== null || Date.now() > deadline) throw new Error(`the coordinator did not start listening: ${output.slice(-800)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let h = 1; h <= o.nodes; h++) {
      const worker = bed.spawn(h, process.execPath, [BIN, 'worker', 'start', '--connect', 'ws://10.213.0.1:7070', '--token-file', token, '--metrics-listen', 'off', '--name', `node-${h}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
      worker.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      procs.push(worker);
    }
    // samples of (step, bytes of every link), taken as step records appear
    const events = join(out, 'events.jsonl');
    const samples: { step: number; time: number; bytes: ReturnType<NetBed['bytes']>[] }[] = [];
    let seen = -1;
    while (coordinator.exitCode === null) {
      const last = lastStep(events);
      if (last && last.step !== seen && last.epoch >= 2) {
        seen = last.step;
        samples.push({ step: last.step, time: performance.now(), bytes: bed.hosts.map((_, h) => bed.bytes(h)) });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const code = await exited(coordinator);
    if (code !== 0) throw new Error(`the coordinator exited ${code}: ${output.slice(-800)}`);
    if (samples.length < 2) throw new Error(`too few steps measured (${samples.length} samples); give more rows or epochs`);
    const [first, last] = [samples[0]!, samples.at(-1)!];
    const steps = last.step - first.step;
    const per = (h: number, k: 'sent' | 'received'): number => (last.bytes[h]![k] - first.bytes[h]![k]) / steps;
    const workers = Array.from({ length: o.nodes }, (_, i) => i + 1);
    const mean = (k: 'sent' | 'received'): number => workers.reduce((a, h) => a + per(h, k), 0) / o.nodes;
    const parameters = o.features * o.units + o.units + o.units + 1;
    const result: StarResult = {
      nodes: o.nodes,
      rate: o.rate,
      parameters,
      steps,
      msPerStep: (last.time - first.time) / steps,
      coordinatorSent: per(0, 'sent'),
      coordinatorReceived: per(0, 'received'),
      workerSent: mean('sent'),
      workerReceived: mean('received'),
      phases: meanPhases(events, first.step, last.step),
    };
    if (o.reduction === 'peers' && /reduced through the coordinator|round among peers failed/.test(output)) log(`warning: steps went through the coordinator: ${output.slice(-400)}`);
    log(`n=${o.nodes} ${o.reduction ?? 'coordinator'}: ${result.msPerStep.toFixed(1)} ms/step over ${steps} steps; coordinator ${(result.coordinatorSent / 1e6).toFixed(2)} MB sent, ${(result.coordinatorReceived / 1e6).toFixed(2)} MB received per step`);
    return result;
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await Promise.all(procs.map(exited));
    bed.destroy();
  }
}

/**
 * The star's task graph simulated at the shaped run's rate, with the costs measured: the
 * coordinator's reduce and apply from the shaped run, and as each node's compute what the same
 * job took per step on links too fast to matter (`fast`), less those two: everything but the
 * links (computation, encoding and decoding, scheduling), which the coordinator's own "compute"
 * phase cannot give (it includes the wait for the gradients).
 */
function simulatedStar(shaped: StarResult, fast: StarResult, bytesPerMs: number): number {
  const bytes = 4 * shaped.parameters;
  const computeMs = Math.max(0, fast.msPerStep - fast.phases.reduce - fast.phases.apply);
  const costs = { computeMs, reduceMs: shaped.phases.reduce, applyMs: shaped.phases.apply, bytes, buckets: Math.ceil(bytes / 262_144) };
  return stepMs(starSteps(shaped.nodes, costs, 4), { hosts: shaped.nodes + 1, bytesPerMs, latencyMs: 0.05 });
}

/** Links too fast to matter, for measuring everything else. */
const FAST = '40gbit';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { nodes: { type: 'string' }, rate: { type: 'string' }, units: { type: 'string' }, out: { type: 'string' }, from: { type: 'string' }, plot: { type: 'string' }, 'project-bytes': { type: 'string' }, 'project-compute-ms': { type: 'string' } },
    strict: true,
  });
  let rate = values.rate ?? '1gbit';
  let results: StarResult[] = [];
  let fast: StarResult[] = [];
  let peers: StarResult[] = [];
  let peersFast: StarResult[] = [];
  let date = new Date().toISOString();
  let units = Number(values.units ?? 2048);
  if (values.from) {
    // measured before (no root needed to simulate)
    ({ rate, results, fast, date, units, peers = [], peersFast = [] } = JSON.parse(readFileSync(values.from, 'utf8')) as { rate: string; results: StarResult[]; fast: StarResult[]; date: string; units: number; peers?: StarResult[]; peersFast?: StarResult[] });
  } else {
    const nodes = (values.nodes ?? '2,4,8').split(',').map(Number);
    for (const n of nodes) {
      const job = { nodes: n, features: 256, units, batch: 8 * n, rows: 64 * 8 * n, epochs: 3 };
      results.push(await measureStar({ ...job, rate }, (l) => console.error(`${rate}: ${l}`)));
      fast.push(await measureStar({ ...job, rate: FAST }, (l) => console.error(`${FAST}: ${l}`)));
      peers.push(await measureStar({ ...job, rate, reduction: 'peers' }, (l) => console.error(`${rate}: ${l}`)));
      peersFast.push(await measureStar({ ...job, rate: FAST, reduction: 'peers' }, (l) => console.error(`${FAST}: ${l}`)));
    }
    if (values.out) writeFileSync(values.out, JSON.stringify({ date, machine: `${cpus().length} x ${cpus()[0]?.model.trim()}`, rate, units, results, fast, peers, peersFast }, null, 2) + '\n');
  }
  const S = 4 * results[0]!.parameters;
  const B = rateBytes(rate);
  const mb = (b: number): string => `${(b / 1e6).toFixed(2)} MB`;
  const lines = [
    `Today's star on a NetBed (${date}): the coordinator and n worker nodes, each in its own network namespace behind a ${rate} link each way (tbf), a 256-${units}-1 model (S = ${mb(S)} of float32 gradient), batch 8 per node. "simulated": the flow simulation of the same protocol (bench/scale-sim.ts) with the costs measured (each node's compute: the same job's step on ${FAST} links, less the coordinator's reduce and apply).`,
    '',
    `| nodes | ms/step | on ${FAST} links | simulated | coordinator sent / step | coordinator received / step | per node sent / received | n·S | star bound 2n·S/B | ring bound 2(n-1)/n·S/B |`,
    '|---|---|---|---|---|---|---|---|---|---|',
    ...results.map((r, i) => {
      const sim = simulatedStar(r, fast[i]!, B / 1000);
      return `| ${r.nodes} | ${r.msPerStep.toFixed(1)} | ${fast[i]!.msPerStep.toFixed(1)} | ${sim.toFixed(1)} (${(sim / r.msPerStep).toFixed(2)}x measured) | ${mb(r.coordinatorSent)} | ${mb(r.coordinatorReceived)} | ${mb(r.workerSent)} / ${mb(r.workerReceived)} | ${mb(r.nodes * S)} | ${((2 * r.nodes * S * 1000) / B).toFixed(1)} ms | ${(((2 * (r.nodes - 1)) / r.nodes) * ((S * 1000) / B)).toFixed(1)} ms |`;
    }),
  ];
  if (peers.length > 0) {
    lines.push(
      '',
      `The same job with cluster.reduction: peers (the nodes all-reduce among themselves and each steps the optimizer; the coordinator observes): "bound": the ring's 2(n-1)/n·S/B plus the same job's step on ${FAST} links (everything but the links).`,
      '',
      `| nodes | ms/step | on ${FAST} links | ring bound + that | measured / bound | star ms/step | speedup over the star | coordinator sent / received per step | per node sent / received |`,
      '|---|---|---|---|---|---|---|---|---|',
      ...peers.map((r, i) => {
        const bound = ((2 * (r.nodes - 1)) / r.nodes) * ((S * 1000) / B) + peersFast[i]!.msPerStep;
        const star = results.find((q) => q.nodes === r.nodes);
        return `| ${r.nodes} | ${r.msPerStep.toFixed(1)} | ${peersFast[i]!.msPerStep.toFixed(1)} | ${bound.toFixed(1)} | ${(r.msPerStep / bound).toFixed(2)} | ${star ? star.msPerStep.toFixed(1) : '-'} | ${star ? `${(star.msPerStep / r.msPerStep).toFixed(1)}x` : '-'} | ${mb(r.coordinatorSent)} / ${mb(r.coordinatorReceived)} | ${mb(r.workerSent)} / ${mb(r.workerReceived)} |`;
      }),
    );
  }
  // the issue's example at scale: both reductions simulated
  const bytes = Number(values['project-bytes'] ?? 100e6);
  const computeMs = Number(values['project-compute-ms'] ?? 200);
  const applyMs = (results[0]!.phases.apply * bytes) / S;
  const reduceMs = (results[0]!.phases.reduce * bytes) / S;
  lines.push(
    '',
    `Simulated at scale: S = ${mb(bytes)} (25M float32 parameters), ${computeMs} ms of compute per node and step (its batch part fixed as nodes are added), ${rate} links, the optimizer step and reduction scaled from the runs above (${applyMs.toFixed(0)} and ${reduceMs.toFixed(0)} ms for the whole gradient). Star: today's protocol, 256 KiB buckets. Peers (ring): each node owns 1/n of the parameters; 4 buckets reduce-scattered round a ring during the backward pass, each owner's optimizer step on its shard, an all-gather round the ring. Peers as built (cluster.reduction: peers): each shard of a node's block straight to its owner once the backward pass (4 chunks) has finished it; each owner's mean, once its own block is out, to every node and to the coordinator; every node's step of the whole optimizer as soon as its mean is whole, beside the coordinator's step, then the commit and the next step.`,
    '',
    '| nodes | star ms/step | peers (ring) ms/step | peers as built ms/step | speedup of as built | ring bound 2(n-1)/n·S/B | ring / bound | as built / bound |',
    '|---|---|---|---|---|---|---|---|',
  );
  const points: { nodes: number; series: string; ms: number }[] = [];
  for (const n of [2, 4, 8, 16, 32, 64, 128, 256]) {
    const net = { hosts: n + 1, bytesPerMs: B / 1000, latencyMs: 0.05 };
    const star = stepMs(starSteps(n, { computeMs, reduceMs, applyMs, bytes, buckets: Math.ceil(bytes / 262_144) }, 3), net);
    const peers = stepMs(peerSteps(n, { computeMs, reduceMs, applyMs, bytes, buckets: 4 }, 3), net);
    const built = stepMs(builtPeerSteps(n, { computeMs, reduceMs, applyMs, bytes, buckets: 4 }, 3), net);
    const bound = (((2 * (n - 1)) / n) * bytes) / (B / 1000);
    lines.push(`| ${n} | ${star.toFixed(0)} | ${peers.toFixed(0)} | ${built.toFixed(0)} | ${(star / built).toFixed(1)}x | ${bound.toFixed(0)} | ${(peers / bound).toFixed(2)} | ${(built / bound).toFixed(2)} |`);
    points.push(
      { nodes: n, series: 'star (today), simulated', ms: star },
      { nodes: n, series: 'peers (ring, ZeRO-1), simulated', ms: peers },
      { nodes: n, series: 'peers as built, simulated', ms: built },
      { nodes: n, series: 'ring bound 2(n-1)/n·S/B', ms: bound },
    );
    console.error(`simulated n=${n}`);
  }
  console.log(lines.join('\n'));
  if (values.plot) {
    const spec = {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: `Step time against nodes: S = ${mb(bytes)}, ${computeMs} ms compute a node, ${rate} links`,
      width: 520,
      height: 320,
      data: { values: points },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'nodes', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'worker nodes' },
        y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'ms per step' },
        color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 320, orient: 'bottom', direction: 'vertical' } },
      },
    };
    for (const file of await writeChart(spec, values.plot)) console.error(`wrote ${file}`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
