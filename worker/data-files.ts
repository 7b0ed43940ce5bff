/**
 * A worker node's own reading of the job's data (worker start --data-dir, --data-url): the files
 * the coordinator names (job.dataFile) found in the node's folder or under its URL and checked
 * against what the coordinator says they hold, then a reader of the rows a shard chunk names: a
 * .npy file's rows, images in tar shards by (shard, offset, size), or CSV records by (file,
 * offset, size), parsed and encoded as the coordinator encodes them. A file that is missing or
 * differs refuses the job, naming it (it would on every reconnect).
 */
import { join } from 'node:path';
import { statSync } from 'node:fs';
import { DataError, JobRefusedError, WorkerError } from '../shared/errors.js';
import { readNpyRows } from '../shared/data/feature-rows.js';
import { imagePixels } from '../shared/data/images.js';
import { NPY_WIDTHS, readNpyHeader } from '../shared/data/npy.js';
import { fetchRange, readNpyHeaderHttp, readNpyRowsHttp } from '../shared/data/npy-http.js';
import { readMember } from '../shared/data/tar.js';
import { csvReads, encodeRead, type CsvSource } from '../shared/data/csv-rows.js';
import { applyScaler } from '../shared/data/scaler.js';
import type { JobMessage } from '../shared/protocol/schemas.js';

type DataFile = NonNullable<JobMessage['dataFile']>;
export type DataSource = { readonly dir: string } | { readonly url: string };

/** Reads the rows a shard chunk names (refWidth numbers a row: a .npy file row; a tar member's shard, offset, size) as float32 features into out. */
export interface DataFileReader {
  readonly path: string;
  readonly refWidth: 1 | 3;
  /** Reads wait on the network (--data-url): worth starting a step ahead, while the node computes. */
  readonly remote: boolean;
  /** Why `refs` cannot be read (out of the files' bounds), or undefined. */
  check(refs: Float64Array): string | undefined;
  read(refs: Float64Array, out: Float32Array): Promise<unknown>;
}

function locate(data: DataSource, name: string): { flag: string; path: string } {
  if ('dir' in data) return { flag: '--data-dir', path: join(data.dir, name) };
  return { flag: '--data-url', path: new URL(encodeURIComponent(name), data.url.endsWith('/') ? data.url : `${data.url}/`).href };
}

export async function openDataFile(job: JobMessage, data: DataSource, log: (line: string) => void): Promise<DataFileReader> {
  const expected = job.dataFile!;
  if (expected.kind === 'csv') return openCsv(job, expected, data, log);
  return expected.kind === 'npy' ? openNpy(job, expected, data, log) : openShards(job, expected, data, log);
}

async function openNpy(job: JobMessage, expected: Extract<DataFile, { kind: 'npy' }>, data: DataSource, log: (line: string) => void): Promise<DataFileReader> {
  const parts = [];
  for (const part of expected.parts) {
    const { flag, path } = locate(data, part.name);
    let header;
    try {
      header = 'dir' in data ? readNpyHeader(path) : await readNpyHeaderHttp(path);
    } catch (err) {
      throw new JobRefusedError(`${flag}: ${(err as Error).message}; the coordinator trains on ${part.name} (${part.bytes} bytes): put that file there`);
    }
    const features = header.shape.slice(1).reduce((a, n) => a * n, 1);
    const differs = [
      header.fileBytes !== part.bytes && `${header.fileBytes} bytes, the coordinator's has ${part.bytes}`,
      header.dtype !== expected.dtype && `dtype ${header.dtype}, the coordinator's is ${expected.dtype}`,
      (header.shape[0] !== part.rows || features !== job.features) && `${header.shape[0]} rows of ${features} values, the coordinator's has ${part.rows} of ${job.features}`,
      header.dataOffset !== part.dataOffset && `its values start at byte ${header.dataOffset}, the coordinator's at ${part.dataOffset}`,
    ].filter((d): d is string => typeof d === 'string');
    if (differs.length > 0) throw new JobRefusedError(`${flag}: ${path} is not the file the coordinator trains on: ${differs.join('; ')}`);
    parts.push({ path, dataOffset: part.dataOffset, bytes: part.bytes, rows: part.rows });
  }
  const files = { dtype: expected.dtype, width: NPY_WIDTHS[expected.dtype]!, scale: expected.scale, parts };
  const rows = parts.reduce((a, p) => a + p.rows, 0);
  log(`reading this node's rows from ${parts[0]!.path}${parts.length > 1 ? ` and ${parts.length - 1} more file(s)` : ''} (${rows} rows)`);
  return {
    path: parts[0]!.path,
    refWidth: 1,
    remote: !('dir' in data),
    check: (refs) => {
      const bad = refs.findIndex((r) => !(Number.isInteger(r) && r >= 0 && r < rows));
      return bad < 0 ? undefined : `row ${refs[bad]}, and the job's .npy files have ${rows}`;
    },
    read: async (refs, out) => ('dir' in data ? readNpyRows(files, job.features, refs, out) : readNpyRowsHttp(files, job.features, refs, out)),
  };
}

/** A file's size: from the file system, or from a one-byte range request's Content-Range. */
async function sizeOf(data: DataSource, path: string): Promise<number> {
  if ('dir' in data) {
    try {
      return statSync(path).size;
    } catch (err) {
      throw new DataError(`${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  return (await fetchRange(path, 0, 0)).size;
}

/** The files `names` where `data` says, each of the size the coordinator's has (`bytes`); one that is missing or differs refuses the job, naming it. */
async function locateSized(data: DataSource, names: readonly string[], bytes: readonly number[], noun: string): Promise<{ flag: string; path: string }[]> {
  const located = names.map((name) => locate(data, name));
  for (const [i, { flag, path }] of located.entries()) {
    let size;
    try {
      size = await sizeOf(data, path);
    } catch (err) {
      throw new JobRefusedError(`${flag}: ${(err as Error).message}; the coordinator trains on ${names[i]} (${bytes[i]} bytes): put that ${noun} there`);
    }
    if (size !== bytes[i]) throw new JobRefusedError(`${flag}: ${path} is not the ${noun} the coordinator trains on: ${size} bytes, the coordinator's has ${bytes[i]}`);
  }
  return located;
}

/** Why (file, offset, size) triples `refs` are not inside files of `fileBytes` bytes, naming the first as a `what`, or undefined. */
function spanRefsCheck(refs: Float64Array, fileBytes: readonly number[], what: string, files: string): string | undefined {
  for (let i = 0; i < refs.length; i += 3) {
    const [file, offset, size] = [refs[i]!, refs[i + 1]!, refs[i + 2]!];
    const ok = Number.isInteger(file) && file >= 0 && file < fileBytes.length && Number.isInteger(offset) && offset >= 0 && Number.isInteger(size) && size > 0 && offset + size <= fileBytes[file]!;
    if (!ok) return `${what} (${file}, ${offset}, ${size}) outside the job's ${fileBytes.length} ${files}`;
  }
  return undefined;
}

/** The job's CSV files (CSV left on disk): each row named by (file, byte offset, size), parsed and encoded with the job's encoding. */
async function openCsv(job: JobMessage, expected: Extract<DataFile, { kind: 'csv' }>, data: DataSource, log: (line: string) => void): Promise<DataFileReader> {
  const fileBytes = expected.files.map((f) => f.bytes);
  const located = await locateSized(data, expected.files.map((f) => f.name), fileBytes, 'file');
  const features = expected.columns.flatMap((c) => (c.kind === 'numeric' ? [c.name] : c.categories.map((cat) => `${c.name}_${cat}`)));
  if (features.length !== job.features) throw new WorkerError(`the job's CSV encoding makes ${features.length} features, and it has ${job.features}`);
  // what reads the rows: the encoding of the features (no label is read here)
  const source: CsvSource = {
    files: expected.files.map((f, i) => ({ path: located[i]!.path, lineOffset: 0, ...(f.columns ? { columns: f.columns } : {}) })),
    header: expected.header,
    encoding: { columns: expected.columns, features, label: { column: '', type: 'numeric' } },
    ...(expected.standardize ? { standardize: expected.standardize } : {}),
  };
  log(`reading this node's rows from ${located[0]!.path}${located.length > 1 ? ` and ${located.length - 1} more file(s)` : ''}`);
  return {
    path: located[0]!.path,
    refWidth: 3,
    remote: !('dir' in data),
    check: (refs) => spanRefsCheck(refs, fileBytes, 'row', 'CSV file(s)'),
    read: async (refs, out) => {
      const rows = refs.length / 3;
      const spans = { part: new Int32Array(rows), start: new Float64Array(rows), end: new Float64Array(rows) };
      for (let i = 0; i < rows; i++) {
        spans.part[i] = refs[3 * i]!;
        spans.start[i] = refs[3 * i + 1]!;
        spans.end[i] = refs[3 * i + 1]! + refs[3 * i + 2]!;
      }
      const order = Int32Array.from({ length: rows }, (_, i) => i);
      for (const read of csvReads(spans, order)) {
        const { path } = source.files[read.part]!;
        const bytes = 'dir' in data ? readMember(path, read.from, read.to - read.from) : (await fetchRange(path, read.from, read.to - 1)).bytes;
        encodeRead(source, spans, order, read, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'), job.features, out);
      }
      if (source.standardize) applyScaler(out.subarray(0, rows * job.features), source.standardize);
    },
  };
}

async function openShards(job: JobMessage, expected: Extract<DataFile, { kind: 'tar' }>, data: DataSource, log: (line: string) => void): Promise<DataFileReader> {
  const [height, width, channels] = expected.shape;
  if (height * width * channels !== job.features) throw new WorkerError(`the job's images are ${height}x${width}x${channels}, and it has ${job.features} features`);
  if (expected.fileBytes.length !== expected.names.length) throw new WorkerError(`the job names ${expected.names.length} shards and ${expected.fileBytes.length} sizes`);
  const paths = await locateSized(data, expected.names, expected.fileBytes, 'shard');
  log(`reading this node's images from ${paths.length} tar shard(s) at ${paths[0]!.path}${paths.length > 1 ? ', ...' : ''}`);
  const image = async (shard: number, offset: number, size: number): Promise<Uint8Array> => {
    const { path } = paths[shard]!;
    const bytes = 'dir' in data ? readMember(path, offset, size) : (await fetchRange(path, offset, offset + size - 1)).bytes;
    let decoded;
    try {
      decoded = imagePixels(bytes, channels, expected.resize ? [height, width] : undefined);
    } catch (err) {
      throw new DataError(`${path}: the member at byte ${offset}: ${(err as Error).message}`);
    }
    if (decoded.height !== height || decoded.width !== width) throw new DataError(`${path}: the member at byte ${offset} is ${decoded.height}x${decoded.width}, the data set's images are ${height}x${width}`);
    return decoded.pixels;
  };
  return {
    path: paths[0]!.path,
    refWidth: 3,
    remote: !('dir' in data),
    check: (refs) => spanRefsCheck(refs, expected.fileBytes, 'image', 'shard(s)'),
    read: async (refs, out) => {
      const features = height * width * channels;
      const rows = refs.length / 3;
      // a few requests in flight at once over HTTP; on disk the reads are synchronous anyway
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < rows) {
          const i = next++;
          const pixels = await image(refs[3 * i]!, refs[3 * i + 1]!, refs[3 * i + 2]!);
          for (let k = 0; k < features; k++) out[i * features + k] = pixels[k]! * expected.scale;
        }
      };
      await Promise.all(Array.from({ length: Math.min(8, rows) }, worker));
    },
  };
}
