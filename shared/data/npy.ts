/**
 * NumPy .npy files (format versions 1-3): the header's dtype, order and shape, and the values as
 * a typed array. Little-endian float32, float64, int8/16/32/64, uint8/16/32 and bool; C order
 * only (a Fortran-order array is refused, naming the file).
 */
import { fstatSync, readFileSync } from 'node:fs';
import { readSpan, withFile } from './file-reads.js';
import { DataError } from '../errors.js';

export interface NpyArray {
  readonly dtype: string;
  readonly shape: readonly number[];
  /** The values in C order; 64-bit integers are read as numbers (exact to 2^53). */
  readonly values: Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array | Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** What a .npy header says, and where the values start. */
export interface NpyHeader {
  /** The dtype without its byte-order mark: f4, f8, i1, i2, i4, i8, u1, u2, u4, b1. */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Bytes per value. */
  readonly width: number;
  /** Byte offset of the first value in the file. */
  readonly dataOffset: number;
}

/** The header of a .npy file from its first bytes (at least the whole header). */
export function parseNpyHeader(bytes: Uint8Array, source: string): NpyHeader {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new DataError(`${source}: not a .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  if (bytes.length < headerStart + headerLength) throw new DataError(`${source}: the .npy header is cut short (${bytes.length} bytes, the header needs ${headerStart + headerLength})`);
  const header = new TextDecoder().decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new DataError(`${source}: the .npy header cannot be read: ${header.trim()}`);
  if (fortran === 'True') throw new DataError(`${source}: the array is in Fortran order; save it with np.save(path, np.ascontiguousarray(a))`);
  const dims = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  // np.save writes whole decimal numbers; anything else (2.5, -1, 1e3, a name) is a damaged or foreign header
  const bad = dims.find((d) => !/^\d+$/.test(d));
  if (bad !== undefined) throw new DataError(`${source}: the .npy header's shape (${shapeText.trim()}) has the dimension "${bad}"; every dimension must be a whole number >= 0 (the file is damaged or not written by np.save)`);
  const big = descr.startsWith('>') && !descr.endsWith('1');
  if (big) throw new DataError(`${source}: big-endian dtype ${descr}; save it as little-endian (a.astype('<${descr.slice(2)}'))`);
  const dtype = descr.replace(/^[<|=]/, '');
  const width = NPY_WIDTHS[dtype];
  if (width === undefined) throw new DataError(`${source}: dtype ${descr} is not supported (float32/64, int8-64, uint8-32, bool are)`);
  return { dtype, shape: dims.map(Number), width, dataOffset: headerStart + headerLength };
}

/** Bytes per value of each dtype. */
export const NPY_WIDTHS: Readonly<Record<string, number>> = { f4: 4, f8: 8, i1: 1, i2: 2, i4: 4, i8: 8, u1: 1, u2: 2, u4: 4, b1: 1 };

/** `count` values of `dtype` starting at `at` in `buffer` (aligned for the dtype's width) as a typed array; int64 as float64 numbers. */
export function npyValues(dtype: string, buffer: ArrayBufferLike, at: number, count: number): NpyArray['values'] {
  switch (dtype) {
    case 'f4': return new Float32Array(buffer, at, count);
    case 'f8': return new Float64Array(buffer, at, count);
    case 'i1': return new Int8Array(buffer, at, count);
    case 'i2': return new Int16Array(buffer, at, count);
    case 'i4': return new Int32Array(buffer, at, count);
    case 'i8': return bigIntsAsNumbers(new BigInt64Array(buffer, at, count));
    case 'u1': case 'b1': return new Uint8Array(buffer, at, count);
    case 'u2': return new Uint16Array(buffer, at, count);
    default: return new Uint32Array(buffer, at, count);
  }
}

export function parseNpy(bytes: Uint8Array, source: string): NpyArray {
  const { dtype: kind, shape, width, dataOffset: offset } = parseNpyHeader(bytes, source);
  const count = shape.reduce((a, n) => a * n, 1);
  const data = bytes.subarray(offset);
  if (data.length < count * width) throw new DataError(`${source}: the header says ${count} values of ${width} bytes, the file has ${data.length} bytes of data`);
  // np.save pads the header so the data starts on a 64-byte boundary: the values are read in
  // place where the bytes are aligned for their width (no copy of a large file), else copied once
  const inPlace = (data.byteOffset % Math.max(width, 1)) === 0;
  const aligned = inPlace ? data.buffer : new Uint8Array(data.subarray(0, count * width)).buffer;
  const at = inPlace ? data.byteOffset : 0;
  const values = npyValues(kind, aligned, at, count);
  return { dtype: kind, shape, values };
}

/** int64 values as float64 numbers (exact to 2^53), without an intermediate array. */
function bigIntsAsNumbers(ints: BigInt64Array): Float64Array {
  const out = new Float64Array(ints.length);
  for (let i = 0; i < ints.length; i++) out[i] = Number(ints[i]!);
  return out;
}

export function readNpy(path: string): NpyArray {
  let bytes;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new DataError(`${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseNpy(bytes, path);
}

/** The header of a .npy file and its size, reading only the header; a file shorter than its header's shape is refused. */
export function readNpyHeader(path: string): NpyHeader & { readonly fileBytes: number } {
  return withFile(path, (fd) => {
    const fileBytes = fstatSync(fd).size;
    const head = new Uint8Array(Math.min(fileBytes, 1 << 16));
    readSpan(fd, head, 0);
    const header = parseNpyHeader(head, path);
    const count = header.shape.reduce((a, n) => a * n, 1);
    const have = fileBytes - header.dataOffset;
    if (have < count * header.width) throw new DataError(`${path}: the header says ${count} values of ${header.width} bytes, the file has ${have} bytes of data (truncated?)`);
    return { ...header, fileBytes };
  });
}
