/**
 * Where the coordinator's files meet the disk. Every write goes through `fsOps` (tests replace
 * its functions to play a full disk or a file system turned read-only), checks that every byte
 * was written, and fails with a StorageError that names the file and what the errno means.
 */
import { close, closeSync, fsync, fsyncSync, mkdirSync, open, openSync, readdirSync, readFileSync, renameSync, rmSync, write, writeSync } from 'node:fs';
import { readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StorageError } from '../shared/errors.js';

/** A callback-style fs call as a promise. */
function settle<T>(call: (done: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value))));
}

/**
 * The file system calls the coordinator's writes use (replaceable for fault injection): the
 * synchronous ones, and the asynchronous ones the checkpoints are written with, so that the
 * event loop that answers worker nodes' heartbeats is free while a large checkpoint is written,
 * fsynced and read back.
 */
export const fsOps = {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
  openAsync: (path: string, flags: string): Promise<number> => settle((done) => open(path, flags, done)),
  writeAsync: (fd: number, bytes: Uint8Array, offset: number, length: number): Promise<number> => settle((done) => write(fd, bytes, offset, length, null, done)),
  fsyncAsync: (fd: number): Promise<void> => settle<void>((done) => fsync(fd, (err) => done(err, undefined))),
  closeAsync: (fd: number): Promise<void> => settle<void>((done) => close(fd, (err) => done(err, undefined))),
  readFileAsync: (path: string): Promise<Buffer> => readFile(path),
  renameAsync: (from: string, to: string): Promise<void> => rename(from, to),
};

const ERRNO_MEANING: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files on this system',
  ENOENT: 'no such file or folder',
  ENOTDIR: 'a part of the path is not a folder',
  EISDIR: 'it is a folder',
  EIO: 'input/output error',
  EEXIST: 'it already exists',
};

/** A StorageError for `err` while doing `action` on `file`. */
export function storageError(err: unknown, action: string, file: string): StorageError {
  if (err instanceof StorageError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const meaning = code ? (ERRNO_MEANING[code] ?? (err as Error).message) : (err as Error).message;
  return new StorageError(`cannot ${action} ${file}: ${meaning}${code ? ` (${code})` : ''}`, code, { cause: err });
}

/** Writes all of `bytes` to `fd` (writeSync may write fewer bytes than asked). */
function writeAll(fd: number, bytes: Uint8Array, file: string): void {
  let at = 0;
  while (at < bytes.byteLength) {
    const n = fsOps.writeSync(fd, bytes, at, bytes.byteLength - at);
    if (!(n > 0)) throw new StorageError(`cannot write ${file}: wrote ${at} of ${bytes.byteLength} bytes (short write: is the disk full?)`, 'ENOSPC');
    at += n;
  }
}

/** writeAll's asynchronous twin. */
async function writeAllAsync(fd: number, bytes: Uint8Array, file: string): Promise<void> {
  let at = 0;
  while (at < bytes.byteLength) {
    const n = await fsOps.writeAsync(fd, bytes, at, bytes.byteLength - at);
    if (!(n > 0)) throw new StorageError(`cannot write ${file}: wrote ${at} of ${bytes.byteLength} bytes (short write: is the disk full?)`, 'ENOSPC');
    at += n;
  }
}

/** fsync of a folder, so a rename in it survives a crash. */
export function syncFolder(dir: string): void {
  const fd = fsOps.openSync(dir, 'r');
  try {
    fsOps.fsyncSync(fd);
  } finally {
    fsOps.closeSync(fd);
  }
}

/**
 * Writes `bytes` to `target` atomically: a temp file written in full and fsynced, checked with
 * `verify` (given what was read back) before the rename, then the folder fsynced. On any failure
 * the temp file is removed and the target is left as it was.
 */
export function writeFileAtomic(target: string, bytes: Uint8Array, verify?: (readBack: Buffer) => void): void {
  const temp = `${target}.tmp-${process.pid}`;
  try {
    const fd = fsOps.openSync(temp, 'w');
    try {
      writeAll(fd, bytes, temp);
      fsOps.fsyncSync(fd);
    } finally {
      fsOps.closeSync(fd);
    }
    if (verify) verify(fsOps.readFileSync(temp));
    fsOps.renameSync(temp, target);
    syncFolder(dirname(target));
  } catch (err) {
    throw failedWrite(err, temp, target);
  }
}

/** A write that failed: its temp file removed (where the file system lets it), the error naming the target. */
function failedWrite(err: unknown, temp: string, target: string): StorageError {
  try {
    fsOps.rmSync(temp, { force: true });
  } catch {
    // the temp file may not exist, or the file system may refuse even that
  }
  return storageError(err, 'write', target);
}

/**
 * writeFileAtomic without blocking the event loop: the same steps (temp file written in full and
 * fsynced, read back and verified, renamed, folder fsynced), each awaited.
 */
export async function writeFileAtomicAsync(target: string, bytes: Uint8Array, verify?: (readBack: Buffer) => void): Promise<void> {
  const temp = `${target}.tmp-${process.pid}`;
  try {
    const fd = await fsOps.openAsync(temp, 'w');
    try {
      await writeAllAsync(fd, bytes, temp);
      await fsOps.fsyncAsync(fd);
    } finally {
      await fsOps.closeAsync(fd);
    }
    if (verify) verify(await fsOps.readFileAsync(temp));
    await fsOps.renameAsync(temp, target);
    syncFolder(dirname(target));
  } catch (err) {
    throw failedWrite(err, temp, target);
  }
}

/** mkdir -p, as a StorageError naming the folder. */
export function makeFolder(dir: string): void {
  try {
    fsOps.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw storageError(err, 'create the folder', dir);
  }
}

/**
 * That `dir` can take files, found before training starts: a probe file written, synced and
 * removed.
 */
export function checkWritable(dir: string): void {
  makeFolder(dir);
  const probe = `${dir}/.dptrain-write-test-${process.pid}`;
  try {
    writeFileAtomic(probe, Buffer.from('ok\n'));
    fsOps.rmSync(probe, { force: true });
  } catch (err) {
    throw storageError(err, 'write into the run folder', dir);
  }
}
