/**
 * Image samples in tar shards, WebDataset's layout: the members of one sample share a key (the
 * name up to its first dot) and sit next to each other, `key.png` (or .jpg/.jpeg) with
 * `key.cls` (the class as an integer). The index holds, per sample, its shard, where its image
 * is and its class; the images stay in the shards and are read and decoded per batch.
 */
import { statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { DataError } from '../errors.js';
import { readMember, readTarMembers } from './tar.js';

export interface ShardIndex {
  readonly shards: readonly string[];
  /** Each shard's size in bytes when indexed. */
  readonly shardBytes: readonly number[];
  /** Per sample: its shard (index into shards), its image's byte offset and size. */
  readonly shard: Int32Array;
  readonly offset: Float64Array;
  readonly size: Int32Array;
  /** Per sample: its .cls value. */
  readonly labels: Int32Array;
  /** Each sample's shard and key, for messages. */
  readonly keys: readonly string[];
  readonly warnings: readonly string[];
}

const IMAGE = /\.(png|jpe?g)$/i;
const LABEL = /\.(cls|class)$/i;

/** Whether data.path names tar shards (a .tar file, a pattern or a brace range of them). */
export function isShardPath(path: string): boolean {
  return /\.tar$/i.test(path);
}

/**
 * The samples of the shards `paths`, in shard order then archive order. An image without a .cls
 * is left out and counted in a warning, or (`unlabelled: 'keep'`, for predictions) kept with the
 * label -1.
 */
export function indexShards(paths: readonly string[], { unlabelled: policy = 'leave out' }: { unlabelled?: 'leave out' | 'keep' } = {}): ShardIndex {
  const shard: number[] = [];
  const offset: number[] = [];
  const size: number[] = [];
  const labels: number[] = [];
  const keys: string[] = [];
  const unlabelled: string[] = [];
  const shardBytes: number[] = [];
  paths.forEach((path, s) => {
    const samples = new Map<string, { image?: { offset: number; size: number }; label?: number }>();
    const members = readTarMembers(path);
    shardBytes.push(statSync(path).size);
    for (const member of members) {
      const file = basename(member.name);
      const dot = file.indexOf('.');
      if (dot <= 0) continue;
      const key = `${dirname(member.name)}/${file.slice(0, dot)}`;
      const ext = file.slice(dot);
      const sample = samples.get(key) ?? {};
      samples.set(key, sample);
      if (IMAGE.test(ext)) sample.image = { offset: member.offset, size: member.size };
      else if (LABEL.test(ext)) {
        const value = Buffer.from(readMember(path, member.offset, Math.min(member.size, 64))).toString('utf8').trim();
        if (!/^\d+$/.test(value)) throw new DataError(`${path}: member ${member.name} holds "${value.slice(0, 20)}", not a class number`);
        sample.label = Number(value);
      }
    }
    for (const [key, sample] of samples) {
      const name = `${path}: ${key.replace(/^\.\//, '')}`;
      if (!sample.image) continue;
      if (sample.label === undefined && policy === 'leave out') {
        unlabelled.push(name);
        continue;
      }
      shard.push(s);
      offset.push(sample.image.offset);
      size.push(sample.image.size);
      labels.push(sample.label ?? -1);
      keys.push(name);
    }
  });
  const warnings = unlabelled.length > 0 ? [`${unlabelled.length} sample(s) with an image and no .cls left out: ${unlabelled.slice(0, 3).join('; ')}${unlabelled.length > 3 ? '; ...' : ''}`] : [];
  if (keys.length === 0) throw new DataError(`${paths[0]}${paths.length > 1 ? ` (and ${paths.length - 1} more)` : ''}: no sample with an image (.png, .jpg)${policy === 'keep' ? '' : ' and a class (.cls)'}`);
  return { shards: [...paths], shardBytes, shard: Int32Array.from(shard), offset: Float64Array.from(offset), size: Int32Array.from(size), labels: Int32Array.from(labels), keys, warnings };
}
