/**
 * png.ts against pngjs: the same RGBA for every 8-bit colour type and every row filter (pngjs
 * writes the files, with each filter forced in turn), a palette image written by hand, the
 * formats it leaves to pngjs (16-bit, interlaced) still decoding through imagePixels, and
 * corrupt files (a flipped byte, a cut-short file, a wrong CRC) refused with a reason.
 */
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { crc32, decodePng } from '../shared/data/png.js';
import { imagePixels } from '../shared/data/images.js';
import { Rng } from '../shared/math/rng.js';

/** A width x height image with noise and smooth gradients, so every filter has work to do. */
function picture(width: number, height: number, seed: number): PNG {
  const png = new PNG({ width, height });
  const rng = new Rng(seed);
  for (let i = 0; i < width * height; i++) {
    const x = i % width;
    const y = Math.floor(i / width);
    png.data[4 * i] = (x * 9 + y * 3) & 0xff;
    png.data[4 * i + 1] = Math.floor(rng.next() * 256);
    png.data[4 * i + 2] = (x * y) & 0xff;
    png.data[4 * i + 3] = (200 + x) & 0xff;
  }
  return png;
}

const pngjsRgba = (bytes: Uint8Array): Uint8Array => new Uint8Array(PNG.sync.read(Buffer.from(bytes)).data);

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out, 4, 8 + data.length), 8 + data.length);
  return out;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A palette PNG of `indices` (width x height, unfiltered rows) over `palette` (RGB triples). */
function palettePng(width: number, height: number, palette: number[], indices: number[]): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 3, 0, 0, 0], 8);
  const raw = Buffer.alloc(height * (width + 1));
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw[y * (width + 1) + 1 + x] = indices[y * width + x]!;
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('PLTE', Uint8Array.from(palette)), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

describe('decodePng', () => {
  it('decodes every 8-bit colour type and row filter as pngjs does', () => {
    const source = picture(23, 17, 5);
    for (const colorType of [0, 2, 4, 6] as const) {
      for (const filterType of [0, 1, 2, 3, 4, -1]) {
        const bytes = PNG.sync.write(source, { colorType, inputColorType: 6, filterType });
        const decoded = decodePng(bytes);
        expect(decoded, `colour type ${colorType}, filter ${filterType}`).toBeDefined();
        expect([decoded!.width, decoded!.height]).toEqual([23, 17]);
        expect(Buffer.from(decoded!.rgba).equals(Buffer.from(pngjsRgba(bytes))), `colour type ${colorType}, filter ${filterType}`).toBe(true);
      }
    }
  });

  it('decodes a palette image through its PLTE colours', () => {
    const palette = [10, 20, 30, 200, 100, 0, 255, 255, 255];
    const indices = [0, 1, 2, 2, 1, 0];
    const decoded = decodePng(palettePng(3, 2, palette, indices))!;
    expect(Array.from(decoded.rgba)).toEqual(indices.flatMap((k) => [palette[3 * k]!, palette[3 * k + 1]!, palette[3 * k + 2]!, 255]));
    expect(() => decodePng(palettePng(1, 1, palette, [7]))).toThrow(/indexes past the palette's 3 colours/);
  });

  it('leaves 16-bit and interlaced files to pngjs, which imagePixels still decodes', () => {
    const source = picture(9, 7, 2);
    const deep = PNG.sync.write(source, { colorType: 2, inputColorType: 6, bitDepth: 16 });
    expect(decodePng(deep)).toBeUndefined();
    const rgba = pngjsRgba(deep);
    expect(Array.from(imagePixels(deep, 3, undefined).pixels)).toEqual(Array.from(rgba).filter((_, i) => i % 4 !== 3));
    const interlaced = Buffer.from(PNG.sync.write(source, { colorType: 0, inputColorType: 6 }));
    interlaced[28] = 1; // IHDR's interlace byte (its CRC then fails, but the format is read first)
    interlaced.writeUInt32BE(crc32(interlaced, 12, 29), 29);
    expect(decodePng(interlaced)).toBeUndefined();
  });

  it('refuses corrupt files with the reason', () => {
    const bytes = Buffer.from(PNG.sync.write(picture(20, 20, 1), { colorType: 2, inputColorType: 6 }));
    expect(() => decodePng(bytes.subarray(0, bytes.length - 30))).toThrow(/cut short/);
    const flipped = Buffer.from(bytes);
    flipped[60] = flipped[60]! ^ 0xff;
    expect(() => decodePng(flipped)).toThrow(/CRC/);
    // a damaged IDAT whose CRC was recomputed: the inflate fails instead
    const idat = bytes.indexOf('IDAT', 0, 'latin1');
    const length = bytes.readUInt32BE(idat - 4);
    const damaged = Buffer.from(bytes);
    for (let i = idat + 10; i < idat + 4 + length - 4; i++) damaged[i] = 0x55;
    damaged.writeUInt32BE(crc32(damaged, idat, idat + 4 + length), idat + 4 + length);
    expect(() => decodePng(damaged)).toThrow(/does not inflate|cut short/);
    expect(() => imagePixels(damaged, 3, undefined)).toThrow(/a PNG file that does not decode/);
  });
});
