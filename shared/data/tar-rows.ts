/**
 * The features of images in tar shards (shards.ts), read and decoded per batch: each row's
 * image is read in place from its shard, decoded (PNG, JPEG), resized where data.imageSize asks,
 * and scaled to float32 as an image folder's pixels are. A member that does not decode is an
 * error naming the shard and the member.
 */
import { DataError } from '../errors.js';
import { imagePixels } from './images.js';
import { readMember, readMemberAt } from './tar.js';
import { withFiles } from './file-reads.js';

/** Images in tar shards: data set row r is sample order[r]. Plain data: it travels to threads (the arrays in SharedArrayBuffers). */
export interface TarOnDisk {
  readonly kind: 'tar';
  readonly shards: readonly string[];
  /** Each shard's size in bytes when indexed (a node reading the shards checks its copies against them). */
  readonly shardBytes: readonly number[];
  /** Per sample: its shard, its image's byte offset and size. */
  readonly shard: Int32Array;
  readonly offset: Float64Array;
  readonly size: Int32Array;
  /** The sample of each data set row ([train | validation | test] order). */
  readonly order: Int32Array;
  /** [height, width, channels] every image becomes; resize: decoded images of another size are resized (data.imageSize), else refused. */
  readonly shape: readonly [number, number, number];
  readonly resize: boolean;
  /** features = pixel x scale. */
  readonly scale: number;
}

/** The name of the member whose data starts at `offset` (its ustar header is the block before). */
function memberName(path: string, offset: number): string {
  try {
    const header = readMember(path, offset - 512, 512);
    const end = header.indexOf(0);
    return Buffer.from(header.subarray(0, end < 0 ? 100 : Math.min(end, 100))).toString('utf8');
  } catch {
    return `the member at byte ${offset}`;
  }
}

/** Sample `s`'s image as uint8 [h, w, c]; `read` reads its bytes (by default, opening its shard for this one read). */
export function tarImage(file: TarOnDisk, s: number, read: (shard: number, offset: number, size: number) => Uint8Array = (shard, offset, size) => readMember(file.shards[shard]!, offset, size)): Uint8Array {
  const path = file.shards[file.shard[s]!]!;
  const offset = file.offset[s]!;
  const [height, width, channels] = file.shape;
  let image;
  try {
    image = imagePixels(read(file.shard[s]!, offset, file.size[s]!), channels, file.resize ? [height, width] : undefined);
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${path}: member ${memberName(path, offset)}: ${(err as Error).message}`);
  }
  if (image.height !== height || image.width !== width) {
    throw new DataError(`${path}: member ${memberName(path, offset)} is ${image.height}x${image.width}, the data set's images are ${height}x${width}: set data.imageSize to resize every image to one size`);
  }
  return image.pixels;
}

/** The features of samples `samples` into out, row i at i x features; each shard opened once for the batch. */
export function readTarRows(file: TarOnDisk, samples: ArrayLike<number>, out: Float32Array): Float32Array {
  const features = file.shape[0] * file.shape[1] * file.shape[2];
  return withFiles(file.shards, (fdOf) => {
    const read = (shard: number, offset: number, size: number): Uint8Array => readMemberAt(fdOf(shard), file.shards[shard]!, offset, size);
    for (let i = 0; i < samples.length; i++) {
      const pixels = tarImage(file, samples[i]!, read);
      const at = i * features;
      for (let k = 0; k < features; k++) out[at + k] = pixels[k]! * file.scale;
    }
    return out;
  });
}
