/**
 * A .npy file served over HTTP(S), read with byte-range requests (object stores and static
 * servers answer them): its header from the first bytes, then the rows a batch needs, runs of
 * consecutive rows in one request, a few requests at a time. A server that ignores ranges, a
 * short answer or an unreachable URL is an error naming the URL.
 */
import { DataError } from '../errors.js';
import { parseNpyHeader, type NpyHeader } from './npy.js';
import { npyRuns, scaleRun, type NpyFiles } from './npy-parts.js';
import { applyScaler } from './scaler.js';

/** Requests in flight at once for one batch. */
const PARALLEL = 8;
/** One request asks for at most this many bytes. */
const MAX_RANGE_BYTES = 1 << 22;
const TIMEOUT_MS = 60_000;

/**
 * Bytes first..last (inclusive) of `url`, and the file's size from Content-Range. The body is
 * read up to the length asked for: a server that sends more is refused, not buffered.
 */
export async function fetchRange(url: string, first: number, last: number): Promise<{ bytes: Uint8Array; size: number }> {
  let response: Response;
  try {
    response = await fetch(url, { headers: { Range: `bytes=${first}-${last}` }, signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new DataError(`${url}: cannot be read (${cause?.code ?? cause?.message ?? (err as Error).message})`);
  }
  if (response.status !== 206) {
    await response.body?.cancel();
    throw new DataError(response.ok ? `${url}: the server ignored the byte range (HTTP ${response.status}); serve the file from a server that answers Range requests` : `${url}: HTTP ${response.status} ${response.statusText}`);
  }
  const size = Number(/\/(\d+)$/.exec(response.headers.get('content-range') ?? '')?.[1] ?? Number.NaN);
  return { bytes: await readBody(response, last - first + 1, url), size };
}

/** A response's body of at most `limit` bytes. */
async function readBody(response: Response, limit: number, url: string): Promise<Uint8Array> {
  const bytes = new Uint8Array(limit);
  let got = 0;
  if (!response.body) return bytes.subarray(0, 0);
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return bytes.subarray(0, got);
    if (got + value.length > limit) {
      await reader.cancel();
      throw new DataError(`${url}: the server sent more than the ${limit} bytes asked for`);
    }
    bytes.set(value, got);
    got += value.length;
  }
}

/** The header of the .npy file at `url` and the file's size, from its first 64 KiB. */
export async function readNpyHeaderHttp(url: string): Promise<NpyHeader & { readonly fileBytes: number }> {
  const { bytes, size } = await fetchRange(url, 0, (1 << 16) - 1);
  if (!Number.isFinite(size)) throw new DataError(`${url}: the answer has no Content-Range with the file's size`);
  const header = parseNpyHeader(bytes, url);
  const count = header.shape.reduce((a, n) => a * n, 1);
  if (size - header.dataOffset < count * header.width) throw new DataError(`${url}: the header says ${count} values of ${header.width} bytes, the file has ${size - header.dataOffset} bytes of data (truncated?)`);
  return { ...header, fileBytes: size };
}

/** Rows of .npy files at URLs (files.parts' paths) into out, as readNpyRows does from disk; a few ranges in flight at once. */
export async function readNpyRowsHttp(files: NpyFiles, features: number, rows: ArrayLike<number>, out: Float32Array): Promise<Float32Array> {
  const rowBytes = features * files.width;
  const runs = npyRuns(files, features, rows, MAX_RANGE_BYTES);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < runs.length) {
      const run = runs[next++]!;
      const part = files.parts[run.part]!;
      const start = part.dataOffset + run.first * rowBytes;
      const { bytes } = await fetchRange(part.path, start, start + run.count * rowBytes - 1);
      if (bytes.length !== run.count * rowBytes) throw new DataError(`${part.path}: asked for rows ${run.first}-${run.first + run.count - 1} (${run.count * rowBytes} bytes), got ${bytes.length} bytes`);
      scaleRun(files, features, run, bytes, out);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, runs.length) }, worker));
  if (files.standardize) applyScaler(out.subarray(0, rows.length * features), files.standardize);
  return out;
}
