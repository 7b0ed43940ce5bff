/**
 * The members of a tar file (POSIX ustar, with GNU long names and pax path records), read from
 * their 512-byte headers only: each regular file's name, and where its bytes are. A data set in
 * tar shards is indexed this way without reading a sample; members are then read in place.
 */
import { fstatSync } from 'node:fs';
import { DataError } from '../errors.js';
import { readSpan, withFile } from './file-reads.js';

export interface TarMember {
  readonly name: string;
  /** Byte offset of the member's data in the file. */
  readonly offset: number;
  readonly size: number;
}

const BLOCK = 512;

/** An octal field (NUL- or space-terminated); base-256 (GNU, for sizes of 8 GB and more) where its first byte has the high bit. */
function octal(header: Uint8Array, at: number, length: number): number {
  if (header[at]! & 0x80) {
    let value = header[at]! & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + header[at + i]!;
    return value;
  }
  const text = String.fromCharCode(...header.subarray(at, at + length)).replace(/[\0 ]+$/, '').trim();
  return text === '' ? 0 : Number.parseInt(text, 8);
}

function text(header: Uint8Array, at: number, length: number): string {
  const field = header.subarray(at, at + length);
  const end = field.indexOf(0);
  return Buffer.from(field.subarray(0, end < 0 ? length : end)).toString('utf8');
}

/** The header's checksum: the sum of its bytes with the checksum field read as spaces. */
function checksumOk(header: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum === octal(header, 148, 8);
}

/** Every regular file in the tar at `path`, in archive order. A damaged or cut-short archive is refused, naming the file and where. */
export function readTarMembers(path: string): TarMember[] {
  return withFile(path, (fd) => {
    const fileBytes = fstatSync(fd).size;
    const members: TarMember[] = [];
    const header = new Uint8Array(BLOCK);
    let position = 0;
    let longName: string | undefined;
    while (position + BLOCK <= fileBytes) {
      readSpan(fd, header, position);
      if (header.every((b) => b === 0)) return members; // the end-of-archive blocks
      if (!checksumOk(header)) throw new DataError(`${path}: the tar header at byte ${position} is damaged (checksum); not a tar file, or a corrupt one`);
      const size = octal(header, 124, 12);
      const type = String.fromCharCode(header[156]!);
      const offset = position + BLOCK;
      const name = longName ?? [text(header, 345, 155), text(header, 0, 100)].filter((p) => p !== '').join('/');
      if (offset + size > fileBytes) throw new DataError(`${path}: member ${name} (${size} bytes at byte ${offset}) is cut short: the file ends at byte ${fileBytes} (a truncated tar)`);
      longName = undefined;
      if (type === 'L' || type === 'x') {
        const body = new Uint8Array(size);
        readSpan(fd, body, offset);
        const value = Buffer.from(body).toString('utf8');
        longName = type === 'L' ? value.replace(/\0+$/, '') : /(?:^|\n)\d+ path=([^\n]*)\n/.exec(value)?.[1];
      } else if (type === '0' || type === '\0' || type === '7') {
        members.push({ name, offset, size });
      }
      position = offset + Math.ceil(size / BLOCK) * BLOCK;
    }
    if (position < fileBytes || members.length === 0) throw new DataError(`${path}: ends inside a tar header at byte ${position} (a truncated tar)`);
    return members;
  });
}

/** Bytes offset..offset+size-1 of `path`. */
export function readMember(path: string, offset: number, size: number): Uint8Array {
  return withFile(path, (fd) => readMemberAt(fd, path, offset, size));
}

/** Bytes offset..offset+size-1 of `path`, open as `fd`. */
export function readMemberAt(fd: number, path: string, offset: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  if (readSpan(fd, bytes, offset) !== size) throw new DataError(`${path}: ended inside a member at byte ${offset} (the file shrank while training?)`);
  return bytes;
}

/** A tar archive of `files` (name and bytes), ustar with 512-byte blocks, as the tests and benchmarks write shards. */
export function writeTar(files: readonly { readonly name: string; readonly bytes: Uint8Array }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const file of files) {
    const header = Buffer.alloc(BLOCK);
    header.write(file.name, 0, 100, 'utf8');
    header.write('0000644\0', 100);
    header.write('0000000\0', 108);
    header.write('0000000\0', 116);
    header.write(`${file.bytes.length.toString(8).padStart(11, '0')}\0`, 124);
    header.write('00000000000\0', 136);
    header.write('        ', 148);
    header[156] = 0x30;
    header.write('ustar\0', 257);
    header.write('00', 263);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(header, Buffer.from(file.bytes), Buffer.alloc((BLOCK - (file.bytes.length % BLOCK)) % BLOCK));
  }
  blocks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(blocks);
}
