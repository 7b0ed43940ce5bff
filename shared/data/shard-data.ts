/**
 * Tar shards of images as prepared data: the index read (shards.ts), the classes from the
 * samples' .cls values (sorted, one-hot), the image shape from the first image (or
 * data.imageSize), then either every image decoded into memory (as an image folder's) or the
 * images left in the shards and read per batch (tar-rows.ts).
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { DataError } from '../errors.js';
import { layoutData, type PreparedData, type SplitOptions } from './dataset.js';
import { imagePixels, type ColorMode } from './images.js';
import { prepareImages } from './arrays.js';
import { indexShards, type ShardIndex } from './shards.js';
import { readMember, readMemberAt } from './tar.js';
import { withFiles } from './file-reads.js';
import { tarImage, type TarOnDisk } from './tar-rows.js';
import type { Encoded, Preprocessor } from './preprocess.js';

export interface ShardOptions {
  readonly imageSize?: readonly [number, number] | undefined;
  readonly colorMode: ColorMode;
  readonly scale: number;
  /** Decode every image into memory (true) or read them per batch from the shards (false). */
  readonly inMemory: boolean;
  /** The last this many shards hold the validation set (data.validation). */
  readonly validationShards?: number;
}

/** The classes (sorted distinct .cls values) and each sample's class index. */
function classesOf(index: ShardIndex): { classes: string[]; labels: Int32Array } {
  const values = [...new Set(index.labels)].sort((a, b) => a - b);
  if (values.length < 2) throw new DataError(`${index.shards[0]}: ${values.length} distinct class(es) in the .cls members; need at least 2`);
  const position = new Map(values.map((v, k) => [v, k]));
  return { classes: values.map(String), labels: Int32Array.from(index.labels, (v) => position.get(v)!) };
}

export function prepareShards(paths: readonly string[], options: ShardOptions, split: SplitOptions, seed: number): PreparedData {
  const index = indexShards(paths);
  // samples are in shard order: the validation shards' come last
  const mainShards = paths.length - (options.validationShards ?? 0);
  const isMain = (s: number): boolean => index.shard[s]! < mainShards;
  const validationFrom = options.validationShards ? index.shard.findIndex((shard) => shard >= mainShards) : undefined;
  if (validationFrom === -1) throw new DataError(`${paths[mainShards]}: no validation samples in the data.validation shards`);
  const { classes, labels } = classesOf(index);
  const channels = options.colorMode === 'grayscale' ? 1 : 3;
  const source = paths.length === 1 ? paths[0]! : `${paths[0]} (+${paths.length - 1} shards)`;
  const first = imagePixels(readMember(index.shards[index.shard[0]!]!, index.offset[0]!, index.size[0]!), channels, options.imageSize);
  const shape: [number, number, number] = [first.height, first.width, channels];
  const file: Omit<TarOnDisk, 'order'> = { kind: 'tar', shards: index.shards, shardBytes: index.shardBytes, shard: shared(index.shard), offset: sharedFloat64(index.offset), size: shared(index.size), shape, resize: options.imageSize !== undefined, scale: options.scale };
  if (options.inMemory) {
    const features = shape[0] * shape[1] * shape[2];
    const pixels = new Uint8Array(labels.length * features);
    const kept: number[] = [];
    const skipped: string[] = [];
    const onDisk = { ...file, order: new Int32Array(0) };
    withFiles(index.shards, (fdOf) => {
      const read = (shard: number, offset: number, size: number): Uint8Array => readMemberAt(fdOf(shard), index.shards[shard]!, offset, size);
      for (let s = 0; s < labels.length; s++) {
        try {
          pixels.set(tarImage(onDisk, s, read), kept.length * features);
          kept.push(s);
        } catch (err) {
          skipped.push((err as Error).message);
        }
      }
    });
    const warnings = [...index.warnings, ...(skipped.length > 0 ? [`${skipped.length} image(s) skipped: ${skipped.slice(0, 3).join('; ')}${skipped.length > 3 ? '; ...' : ''}`] : [])];
    const set = { pixels: pixels.subarray(0, kept.length * features), labels: Int32Array.from(kept, (s) => labels[s]!), classes, files: kept.map(String), height: shape[0], width: shape[1], channels, warnings };
    const prepared = prepareImages(set, source, options.scale, { ...split, ...(validationFrom !== undefined ? { validationFrom: kept.filter(isMain).length } : {}) }, seed);
    // a data set row's line is its kept image's number, from 1
    return withIdentity(prepared, index, (line) => kept[line - 1]!);
  }
  const outputs = classes.length;
  const y = new Float32Array(labels.length * outputs);
  labels.forEach((k, i) => (y[i * outputs + k] = 1));
  const enc: Encoded = { x: new Float32Array(0), y, rows: labels.length, features: shape[0] * shape[1] * shape[2], outputs, lines: Array.from({ length: labels.length }, (_, i) => i + 1), rejected: [] };
  const preprocessor: Preprocessor = {
    version: 1,
    drop: [],
    columns: [],
    features: [],
    label: { column: '.cls', type: 'categorical', classes },
    input: { kind: 'images', shape, colorMode: options.colorMode, scale: options.scale },
  };
  const prepared = layoutData(enc, preprocessor, { ...split, ...(validationFrom !== undefined ? { validationFrom } : {}) }, seed, { source, rowsRead: labels.length, warnings: index.warnings, onDisk: file });
  // a data set row's line is its sample's number, from 1
  return withIdentity(prepared, index, (line) => line - 1);
}

/** Samples of tar shards decoded for a saved model: pixels, class indexes (requireLabel), names ("shard: key"). */
export interface ShardChunk {
  readonly pixels: Uint8Array;
  readonly labels: Int32Array | undefined;
  readonly files: string[];
}

/**
 * The samples of the shards `paths` for a saved model (evaluate, predict), `size` decoded at a
 * time as they are asked for (all at once without `size`): each image decoded and resized to
 * `shape` as in training, its class from its .cls (the model's `classes` are the .cls values it
 * was trained on; another value is refused, naming the member). `requireLabel: false` keeps
 * images without a .cls. Images that do not decode go to `skipped` with the reason as they are met.
 */
export function shardChunks(paths: readonly string[], shape: readonly [number, number, number], classes: readonly string[], requireLabel: boolean, size?: number): { chunks: Generator<ShardChunk>; skipped: { file: string; reason: string }[] } {
  const index = indexShards(paths, { unlabelled: requireLabel ? 'leave out' : 'keep' });
  const [height, width, channels] = shape;
  const features = height * width * channels;
  const file: TarOnDisk = { kind: 'tar', shards: index.shards, shardBytes: index.shardBytes, shard: index.shard, offset: index.offset, size: index.size, order: new Int32Array(0), shape: [height, width, channels], resize: true, scale: 1 };
  const skipped: { file: string; reason: string }[] = [];
  const total = index.keys.length;
  const chunk = Math.max(1, size ?? total);
  function* chunks(): Generator<ShardChunk> {
    for (let s = 0; s < total; ) {
      const pixels = new Uint8Array(Math.min(chunk, total - s) * features);
      const files: string[] = [];
      const labels: number[] = [];
      s = withFiles(index.shards, (fdOf) => {
        const read = (shard: number, offset: number, bytes: number): Uint8Array => readMemberAt(fdOf(shard), index.shards[shard]!, offset, bytes);
        let t = s;
        for (; t < total && t - s < chunk; t++) {
          const k = index.labels[t]! < 0 ? -1 : classes.indexOf(String(index.labels[t]));
          if (requireLabel && k < 0) throw new DataError(`${index.keys[t]}: class ${index.labels[t]} (its .cls) is not one of the model's classes (${classes.join(', ')})`);
          try {
            pixels.set(tarImage(file, t, read), files.length * features);
          } catch (err) {
            skipped.push({ file: index.keys[t]!, reason: (err as Error).message.replace(`${index.shards[index.shard[t]!]}: `, '') });
            continue;
          }
          files.push(index.keys[t]!);
          labels.push(k);
        }
        return t;
      });
      if (files.length > 0) yield { pixels: pixels.subarray(0, files.length * features), labels: requireLabel ? Int32Array.from(labels) : undefined, files };
    }
  }
  return { chunks: chunks(), skipped };
}

/**
 * The data set with its identity (Dataset.identity): the shards' names and sizes, and the shard,
 * offset and size of each training row's sample in row order, hashed; `sampleOf` maps a row's
 * line to its sample.
 */
function withIdentity(prepared: PreparedData, index: ShardIndex, sampleOf: (line: number) => number): PreparedData {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ shards: index.shards.map((path) => basename(path)), bytes: index.shardBytes }));
  const lines = prepared.lines.train;
  const where = new Float64Array(3 * lines.length);
  lines.forEach((line, r) => {
    const s = sampleOf(line);
    where.set([index.shard[s]!, index.offset[s]!, index.size[s]!], 3 * r);
  });
  hash.update(new Uint8Array(where.buffer));
  return { ...prepared, dataset: { ...prepared.dataset, identity: hash.digest('hex') } };
}

function shared(values: Int32Array): Int32Array {
  const out = new Int32Array(new SharedArrayBuffer(Math.max(1, values.length) * 4), 0, values.length);
  out.set(values);
  return out;
}

function sharedFloat64(values: Float64Array): Float64Array {
  const out = new Float64Array(new SharedArrayBuffer(Math.max(1, values.length) * 8), 0, values.length);
  out.set(values);
  return out;
}
