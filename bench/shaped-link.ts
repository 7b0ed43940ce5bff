/**
 * Worker nodes behind a slower link: shapes this machine's loopback to RATE (Linux `tc`, a token
 * bucket filter; needs root), measures workload (b) with 2 worker processes sending their
 * gradients in buckets (the default), whole, and as float16, in alternating rounds, and removes
 * the shaping at the end (also on failure). What it cannot show: on one machine the "network" is
 * still this machine's CPU, and the shaped loopback's packet work lands on whatever runs, the
 * computing workers included; on separate machines a network card does it.
 *
 *   sudo node dist/bench/shaped-link.js [rate=1gbit] [rounds=3]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median, type CaseResult, type Config } from './cases.js';

const [rate = '1gbit', roundsArg = '3'] = process.argv.slice(2);
const rounds = Number(roundsArg);
const configs: Config[] = ['nodes-2', 'nodes-2-whole', 'nodes-2-f16'];
const caseMain = fileURLToPath(new URL('./case-main.js', import.meta.url));

function tc(args: string[]): { ok: boolean; error: string } {
  const r = spawnSync('tc', args, { encoding: 'utf8' });
  return { ok: r.status === 0, error: r.error?.message ?? r.stderr.trim() };
}

const shaped = tc(['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', rate, 'burst', '128kb', 'latency', '100ms']);
if (!shaped.ok) {
  console.error(`cannot shape the loopback with tc (root and the tbf qdisc are needed): ${shaped.error}`);
  process.exit(1);
}
const results = new Map<Config, CaseResult[]>(configs.map((c) => [c, []]));
try {
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < configs.length; k++) {
      const config = configs[(round + k) % configs.length]!;
      const group = { workload: 'b', backend: 'wasm', configs: [config], warmupSteps: 3, repeats: 20, stepsPerRepeat: 1 };
      const run = spawnSync(process.execPath, [caseMain, JSON.stringify(group)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 });
      if (run.status !== 0) throw new Error(`${config} failed (exit ${run.status})`);
      results.get(config)!.push((JSON.parse(run.stdout) as CaseResult[])[0]!);
    }
  }
} finally {
  const removed = tc(['qdisc', 'del', 'dev', 'lo', 'root']);
  if (!removed.ok) console.error(`could not remove the shaping: ${removed.error}; run: tc qdisc del dev lo root`);
}

console.log(`workload (b), 2 worker processes, loopback shaped to ${rate}, ${rounds} alternating rounds of 20 single steps (median over rounds):`);
console.log('| config | samples/s | ms/step | compute | transfer | not compute |');
console.log('|---|---|---|---|---|---|');
for (const [config, runs] of results) {
  const of = (f: (r: CaseResult) => number): string => median(runs.map(f)).toFixed(1);
  const phase = (r: CaseResult): NonNullable<CaseResult['phasesMs']> => r.phasesMs!;
  console.log(
    `| ${config} | ${median(runs.map((r) => median(r.samplesPerSecond))).toFixed(0)} | ${of((r) => phase(r).step)} | ${of((r) => phase(r).compute)} | ${of((r) => phase(r).transfer)} | ${of((r) => (100 * (phase(r).step - phase(r).compute)) / phase(r).step)}% |`,
  );
}
