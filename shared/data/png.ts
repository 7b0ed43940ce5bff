/**
 * A PNG decoder for the files data sets are made of: 8-bit samples (grayscale, RGB, palette,
 * with or without alpha), not interlaced. It reads the chunks, checks each one's CRC, inflates
 * the IDAT data with node:zlib (bounded to the size the header declares) and undoes the row
 * filters into RGBA, as pngjs does, with a few allocations per image instead of pngjs's stream
 * objects: tar shards are decoded per batch on the threads that train, so this is on the step's
 * path. Any other PNG (16-bit or 1-4-bit samples, interlaced) gives `undefined`, and the caller
 * decodes it with pngjs. A corrupt file throws an Error saying what is wrong.
 */
import { inflateSync } from 'node:zlib';

export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  /** RGBA, 4 bytes a pixel. */
  readonly rgba: Uint8Array;
}

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC-32 of bytes[start..end) (PNG's, over a chunk's type and data). */
export function crc32(bytes: Uint8Array, start: number, end: number): number {
  let c = -1;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

const type = (name: string): number => ((name.charCodeAt(0) << 24) | (name.charCodeAt(1) << 16) | (name.charCodeAt(2) << 8) | name.charCodeAt(3)) >>> 0;
const IHDR = type('IHDR');
const PLTE = type('PLTE');
const IDAT = type('IDAT');
const IEND = type('IEND');

/** Samples per pixel of each 8-bit colour type: 0 grey, 2 RGB, 3 palette index, 4 grey + alpha, 6 RGBA. */
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function fail(reason: string): never {
  throw new Error(reason);
}

/** The image of a PNG file's bytes (signature checked by the caller), or undefined where this decoder does not cover the format. */
export function decodePng(bytes: Uint8Array): RgbaImage | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0;
  let height = 0;
  let samples = 0;
  let colorType = 0;
  let palette: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let at = 8;
  let ended = false;
  while (!ended) {
    if (at + 12 > bytes.length) fail('cut short: no IEND chunk');
    const length = view.getUint32(at);
    const kind = view.getUint32(at + 4);
    const data = at + 8;
    if (length > bytes.length - data - 4) fail(`cut short inside the chunk at byte ${at}`);
    if (crc32(bytes, at + 4, data + length) !== view.getUint32(data + length)) fail(`a chunk at byte ${at} fails its CRC check (corrupt)`);
    if (at === 8 && kind !== IHDR) fail('no IHDR chunk first');
    if (kind === IHDR) {
      if (length < 13) fail('an IHDR chunk shorter than 13 bytes');
      width = view.getUint32(data);
      height = view.getUint32(data + 4);
      const depth = bytes[data + 8]!;
      colorType = bytes[data + 9]!;
      if (bytes[data + 10] !== 0 || bytes[data + 11] !== 0) fail('an unknown compression or filter method');
      samples = SAMPLES[colorType] ?? 0;
      if (depth !== 8 || samples === 0 || bytes[data + 12] !== 0) return undefined;
    } else if (kind === PLTE) palette = bytes.subarray(data, data + length);
    else if (kind === IDAT) idat.push(bytes.subarray(data, data + length));
    else if (kind === IEND) ended = true;
    else if ((bytes[at + 4]! & 0x20) === 0) fail(`an unknown critical chunk ${String.fromCharCode(...bytes.subarray(at + 4, at + 8))}`);
    at = data + length + 4;
  }
  if (idat.length === 0) fail('no IDAT chunk');
  if (colorType === 3 && !palette) fail('a palette image without a PLTE chunk');
  const stride = width * samples;
  const expected = height * (stride + 1);
  let raw: Uint8Array;
  try {
    raw = inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat), { maxOutputLength: expected });
  } catch {
    return fail('image data that does not inflate (cut short or corrupt)');
  }
  if (raw.length < expected) fail(`image data cut short (${raw.length} of ${expected} bytes)`);
  unfilter(raw, height, stride, samples);
  return { width, height, rgba: toRgba(raw, width, height, stride, samples, colorType, palette) };
}

/** Undoes PNG's per-row filters in place: each row is a filter byte and `stride` bytes, `bpp` bytes a pixel. */
function unfilter(raw: Uint8Array, height: number, stride: number, bpp: number): void {
  for (let y = 0; y < height; y++) {
    const row = y * (stride + 1) + 1;
    const up = row - stride - 1;
    const filter = raw[row - 1]!;
    if (filter === 0) continue;
    if (filter > 4) fail(`row ${y} has an unknown filter type ${filter}`);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? raw[row + i - bpp]! : 0;
      const b = y > 0 ? raw[up + i]! : 0;
      let add: number;
      if (filter === 1) add = a;
      else if (filter === 2) add = b;
      else if (filter === 3) add = (a + b) >> 1;
      else {
        const c = y > 0 && i >= bpp ? raw[up + i - bpp]! : 0;
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        add = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      raw[row + i] = (raw[row + i]! + add) & 0xff;
    }
  }
}

/** Unfiltered rows to RGBA: grey to r = g = b, palette indices through PLTE, alpha 255 where the file has none (a tRNS chunk is not applied: every caller drops alpha). */
function toRgba(raw: Uint8Array, width: number, height: number, stride: number, samples: number, colorType: number, palette: Uint8Array | undefined): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    const row = y * (stride + 1) + 1;
    for (let x = 0; x < width; x++) {
      const s = row + x * samples;
      const o = 4 * (y * width + x);
      if (colorType === 0 || colorType === 4) {
        rgba[o] = rgba[o + 1] = rgba[o + 2] = raw[s]!;
        rgba[o + 3] = colorType === 4 ? raw[s + 1]! : 255;
      } else if (colorType === 3) {
        const k = 3 * raw[s]!;
        if (k + 2 >= palette!.length) fail(`pixel ${x},${y} indexes past the palette's ${palette!.length / 3} colours`);
        rgba[o] = palette![k]!;
        rgba[o + 1] = palette![k + 1]!;
        rgba[o + 2] = palette![k + 2]!;
        rgba[o + 3] = 255;
      } else {
        rgba[o] = raw[s]!;
        rgba[o + 1] = raw[s + 1]!;
        rgba[o + 2] = raw[s + 2]!;
        rgba[o + 3] = colorType === 6 ? raw[s + 3]! : 255;
      }
    }
  }
  return rgba;
}
