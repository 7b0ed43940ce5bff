/**
 * Positioned reads of data files left on disk (.npy, tar shards): a file opened for one call and
 * closed after it, so nothing holds a descriptor between steps, with an error naming the file
 * where it cannot be opened; a span read whole (short only at the end of the file).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { DataError } from '../errors.js';

/** Runs `use` on `path` opened for reading, and closes it. */
export function withFile<T>(path: string, use: (fd: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new DataError(`${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return use(fd);
  } finally {
    closeSync(fd);
  }
}

/** Fills `bytes` from `position` on; the count read, less than asked only at the end of the file. */
export function readSpan(fd: number, bytes: Uint8Array, position: number): number {
  let got = 0;
  while (got < bytes.length) {
    const n = readSync(fd, bytes, got, bytes.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}
