/**
 * Positioned reads of data files left on disk (.npy, tar shards): a file opened for one call and
 * closed after it, so nothing holds a descriptor between steps, with an error naming the file
 * where it cannot be opened; a span read whole (short only at the end of the file).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { DataError } from '../errors.js';

/** `path` opened for reading; an error names the file. */
function openData(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    throw new DataError(`${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Runs `use` on `path` opened for reading, and closes it. */
export function withFile<T>(path: string, use: (fd: number) => T): T {
  const fd = openData(path);
  try {
    return use(fd);
  } finally {
    closeSync(fd);
  }
}

/** Runs `use` with a descriptor for each of `paths` opened on first use (fdOf), and closes those opened. */
export function withFiles<T>(paths: readonly string[], use: (fdOf: (i: number) => number) => T): T {
  const fds = new Map<number, number>();
  try {
    return use((i) => {
      let fd = fds.get(i);
      if (fd === undefined) {
        fd = openData(paths[i]!);
        fds.set(i, fd);
      }
      return fd;
    });
  } finally {
    for (const fd of fds.values()) closeSync(fd);
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
