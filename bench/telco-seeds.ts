/**
 * `npm run telco-seeds`: BENCHMARKS.md's Telco tables. The Keras notebook's exact setup
 * (examples/telco-churn.yaml: raw features, EarlyStopping(val_loss, patience 50), no restore)
 * and the patience-5 + restoreBestWeights variant, for seeds 1-7 and 42, on one lane and on two
 * threads. Prints a Markdown table per setup and writes the numbers to a JSON file.
 *
 *   node dist/bench/telco-seeds.js [--data telco.csv] [--out bench/telco-seeds.json] [--seeds 1,2,42]
 *   node dist/bench/telco-seeds.js --export DIR    (each seed's split as DIR/seed-N.json, for
 *                                                   bench/telco_keras_like.py)
 *
 * Default data: ../shared/data/telco-customer-churn.csv beside the checkout.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { prepareJobData } from '../coordinator/job.js';
import { train } from '../index.js';
import { loadConfig } from '../shared/config/load.js';
import { readCsv } from '../shared/data/csv.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Variant {
  readonly name: string;
  readonly overrides: Record<string, unknown>;
}

const VARIANTS: readonly Variant[] = [
  { name: 'seed setup (patience 50, no restore, epochs 1000)', overrides: {} },
  { name: 'patience 5 + restoreBestWeights', overrides: { 'fit.earlyStopping.patience': 5, 'fit.earlyStopping.restoreBestWeights': true } },
];

interface Row {
  readonly variant: string;
  readonly seed: number;
  readonly threads: number;
  readonly accuracy: number;
  readonly loss: number;
  readonly epochs: number;
  readonly bestEpoch: number;
  readonly seconds: number;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string', default: join(ROOT, '..', 'shared', 'data', 'telco-customer-churn.csv') },
      out: { type: 'string', default: join(ROOT, 'bench', 'telco-seeds.json') },
      seeds: { type: 'string', default: '1,2,3,4,5,6,7,42' },
      variants: { type: 'string', default: VARIANTS.map((_, i) => i).join(',') },
      export: { type: 'string' },
    },
  });
  const seeds = values.seeds.split(',').map(Number);
  if (values.export) {
    exportSplits(values.data, seeds, values.export);
    return;
  }
  const variants = values.variants.split(',').map((i) => VARIANTS[Number(i)]!);
  const rows: Row[] = [];
  for (const variant of variants) {
    for (const threads of [1, 2]) {
      for (const seed of seeds) {
        const out = mkdtempSync(join(tmpdir(), 'dptrain-telco-'));
        const { summary } = await train(join(ROOT, 'examples', 'telco-churn.yaml'), {
          overrides: { ...variant.overrides, seed, 'data.path': values.data, 'cluster.threads': threads, 'output.dir': out, 'metrics.listen': false },
          log: () => {},
        });
        rmSync(out, { recursive: true, force: true });
        const row: Row = {
          variant: variant.name,
          seed,
          threads,
          accuracy: summary.test['accuracy']!,
          loss: summary.test.loss,
          epochs: summary.epochs,
          bestEpoch: summary.bestEpoch,
          seconds: summary.wallSeconds,
        };
        rows.push(row);
        console.error(`${variant.name}, ${threads === 1 ? 'one lane' : '2 threads'}, seed ${seed}: accuracy ${row.accuracy.toFixed(4)}, loss ${row.loss.toFixed(4)}, ${row.epochs} epochs (best ${row.bestEpoch}), ${row.seconds.toFixed(0)} s`);
      }
    }
  }
  const date = new Date().toISOString().slice(0, 10);
  const lines = [`Measured ${date} on ${cpus()[0]?.model ?? 'unknown cpu'} (${cpus().length} cores), wasm, \`npm run telco-seeds\`.`, ''];
  for (const variant of variants) {
    lines.push(`**${variant.name}**`, '', `| lanes | ${seeds.map((s) => `seed ${s}`).join(' | ')} | min accuracy | median loss |`, `|---|${seeds.map(() => '---').join('|')}|---|---|`);
    for (const threads of [1, 2]) {
      const mine = rows.filter((r) => r.variant === variant.name && r.threads === threads);
      const cells = mine.map((r) => `${r.accuracy.toFixed(3)} / ${r.loss.toFixed(3)} (${r.epochs})`);
      lines.push(`| ${threads === 1 ? 'one lane' : '2 threads'} | ${cells.join(' | ')} | ${Math.min(...mine.map((r) => r.accuracy)).toFixed(3)} | ${median(mine.map((r) => r.loss)).toFixed(3)} |`);
    }
    lines.push('');
  }
  lines.push('Cells: test accuracy / test loss (epochs trained).');
  console.log(lines.join('\n'));
  writeFileSync(values.out, `${JSON.stringify({ date, cpu: cpus()[0]?.model, cores: cpus().length, rows }, null, 2)}\n`);
}

/** Each seed's train / validation / test rows as the job prepares them (raw features), as JSON. */
function exportSplits(data: string, seeds: readonly number[], dir: string): void {
  const table = readCsv(data);
  for (const seed of seeds) {
    const config = loadConfig(join(ROOT, 'examples', 'telco-churn.yaml'), { seed, 'data.path': data });
    const { dataset } = prepareJobData(config, table);
    const part = ({ start, count }: { start: number; count: number }): { x: number[][]; y: number[] } => ({
      x: Array.from({ length: count }, (_, i) => Array.from(dataset.x.subarray((start + i) * dataset.features, (start + i + 1) * dataset.features))),
      y: Array.from(dataset.y.subarray(start, start + count)),
    });
    writeFileSync(join(dir, `seed-${seed}.json`), JSON.stringify({ seed, train: part(dataset.train), val: part(dataset.val), test: part(dataset.test) }));
    console.error(`wrote ${join(dir, `seed-${seed}.json`)}`);
  }
}

await main();
