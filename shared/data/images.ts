/**
 * Image data as Keras's `image_dataset_from_directory` reads it: a folder with one sub-folder per
 * class (classes sorted by name), PNG and JPEG files decoded (pngjs, jpeg-js: pure JavaScript,
 * nothing native), converted to grayscale or RGB, resized with bilinear interpolation (half-pixel
 * centres, as tf.image.resize) to `imageSize`, kept as uint8. Files that are not images are
 * ignored; a file that does not decode, or declares more than MAX_IMAGE_MEGAPIXELS, is skipped
 * with a warning naming it; an empty class folder is skipped with a warning; without `imageSize`,
 * every image must have the first one's size.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { DataError } from '../errors.js';
import { sortStrings } from './label.js';
import { decodePng } from './png.js';

export type ColorMode = 'grayscale' | 'rgb';

export interface ImageOptions {
  /** [height, width] to resize to; without it, all images must have the same size. */
  readonly imageSize?: readonly [number, number] | undefined;
  readonly colorMode: ColorMode;
}

export interface ImageSet {
  /** Pixels, row-major [images, height, width, channels], 0..255. */
  readonly pixels: Uint8Array;
  /** Class index of each image (into `classes`). */
  readonly labels: Int32Array;
  readonly classes: readonly string[];
  /** Each image's file, relative to the folder. */
  readonly files: readonly string[];
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly warnings: readonly string[];
}

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'] as const;

interface Decoded {
  readonly width: number;
  readonly height: number;
  /** RGBA, 4 bytes a pixel. */
  readonly rgba: Uint8Array;
}

/**
 * Most pixels (width x height) an image may have. Decoding takes some 16 bytes a pixel (RGBA,
 * then float channels), so 100 megapixels is about 1.6 GB. The decoders allocate for what a file's
 * header declares, and a few kilobytes of PNG can declare 30000x30000: the header is checked first.
 */
export const MAX_IMAGE_MEGAPIXELS = 100;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** PNG's largest width or height (2^31 - 1). */
const PNG_MAX_SIDE = 0x7fffffff;

/**
 * Checks a PNG's width and height as its IHDR chunk declares them, before anything is decoded: the
 * format puts IHDR first, right after the 8-byte signature (length, "IHDR", then width and height
 * as big-endian uint32 at bytes 16-23). Throws a reason if they are missing, zero or past the cap.
 */
function checkPngSize(bytes: Uint8Array): void {
  const ihdr = bytes.length >= 24 && PNG_SIGNATURE.every((b, i) => bytes[i] === b) && String.fromCharCode(...bytes.subarray(12, 16)) === 'IHDR';
  if (!ihdr) throw new Error(`a PNG file that does not decode (${bytes.length} bytes: no IHDR header after the signature)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  if (width === 0 || height === 0 || width > PNG_MAX_SIDE || height > PNG_MAX_SIDE) {
    throw new Error(`a PNG file that declares ${width}x${height} pixels (width and height must be 1 to 2^31-1: the file is corrupt)`);
  }
  if (width * height > MAX_IMAGE_MEGAPIXELS * 1e6) {
    throw new Error(`a PNG file that declares ${width}x${height} pixels (${Math.round((width * height) / 1e6)} megapixels, more than the ${MAX_IMAGE_MEGAPIXELS} an image may have: resize it)`);
  }
}

/** png.ts's decode of the common PNG formats, its errors worded as pngjs's are here; undefined for the others. */
function decodeOwnPng(bytes: Uint8Array): Decoded | undefined {
  try {
    return decodePng(bytes);
  } catch (err) {
    const reason = (err as Error).message;
    throw new Error(`a PNG file that does not decode (${bytes.length} bytes: ${reason.startsWith('cut short') ? 'cut short or corrupt' : reason})`);
  }
}

/**
 * Decodes a PNG or JPEG file (by its bytes, not its name). Throws with a reason in our words (the
 * decoders' own messages are internal): training skips such a file, evaluate and predict list it.
 * Images over MAX_IMAGE_MEGAPIXELS are refused from their header, before any pixel is allocated.
 */
export function decodeImage(bytes: Uint8Array): Decoded {
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    checkPngSize(bytes);
    const fast = decodeOwnPng(bytes);
    if (fast) return fast;
    let png;
    try {
      png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch {
      throw new Error(`a PNG file that does not decode (${bytes.length} bytes: cut short or corrupt)`);
    }
    return { width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    let img;
    try {
      img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_IMAGE_MEGAPIXELS, maxMemoryUsageInMB: 2048 });
    } catch {
      throw new Error(`a JPEG file that does not decode (${bytes.length} bytes: cut short, corrupt or larger than ${MAX_IMAGE_MEGAPIXELS} megapixels)`);
    }
    return { width: img.width, height: img.height, rgba: img.data };
  }
  throw new Error('not a PNG or JPEG file (by its first bytes)');
}

/** RGBA to `channels` (1: luma as tf.image.rgbToGrayscale weighs it; 3: RGB), alpha dropped. */
function toChannels(img: Decoded, channels: number): Float32Array {
  const n = img.width * img.height;
  const out = new Float32Array(n * channels);
  for (let i = 0; i < n; i++) {
    const r = img.rgba[4 * i]!;
    const g = img.rgba[4 * i + 1]!;
    const b = img.rgba[4 * i + 2]!;
    if (channels === 1) out[i] = 0.2989 * r + 0.587 * g + 0.114 * b;
    else {
      out[3 * i] = r;
      out[3 * i + 1] = g;
      out[3 * i + 2] = b;
    }
  }
  return out;
}

/** toChannels rounded to uint8 into `out`, without the float copy (the luma rounded to float32 first, as toChannels stores it). */
function sameSize(img: Decoded, channels: number, out: Uint8Array): void {
  const { rgba } = img;
  const n = img.width * img.height;
  if (channels === 1) for (let i = 0; i < n; i++) out[i] = Math.round(Math.fround(0.2989 * rgba[4 * i]! + 0.587 * rgba[4 * i + 1]! + 0.114 * rgba[4 * i + 2]!));
  else
    for (let i = 0; i < n; i++) {
      out[3 * i] = rgba[4 * i]!;
      out[3 * i + 1] = rgba[4 * i + 1]!;
      out[3 * i + 2] = rgba[4 * i + 2]!;
    }
}

/**
 * Bilinear resize of [h, w, c] values to [outH, outW, c] with half-pixel centres (TensorFlow's
 * resize_bilinear with half_pixel_centers, what tf.image.resize does), rounded to uint8.
 */
export function resizeBilinear(src: Float32Array, h: number, w: number, c: number, outH: number, outW: number, out: Uint8Array): void {
  const sy = h / outH;
  const sx = w / outW;
  for (let y = 0; y < outH; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(h - 1, Math.floor(fy));
    const y1 = Math.min(h - 1, y0 + 1);
    const dy = fy - y0;
    for (let x = 0; x < outW; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5);
      const x0 = Math.min(w - 1, Math.floor(fx));
      const x1 = Math.min(w - 1, x0 + 1);
      const dx = fx - x0;
      for (let k = 0; k < c; k++) {
        const top = src[(y0 * w + x0) * c + k]! * (1 - dx) + src[(y0 * w + x1) * c + k]! * dx;
        const bottom = src[(y1 * w + x0) * c + k]! * (1 - dx) + src[(y1 * w + x1) * c + k]! * dx;
        out[(y * outW + x) * c + k] = Math.round(top * (1 - dy) + bottom * dy);
      }
    }
  }
}

/** One image file as uint8 [height, width, channels] at the given size (resized when it differs). */
export function readImage(file: string, channels: number, size: readonly [number, number] | undefined): { pixels: Uint8Array; height: number; width: number } {
  return imagePixels(readFileSync(file), channels, size);
}

/** An image's bytes (PNG, JPEG) as uint8 [height, width, channels] at the given size (resized when it differs). */
export function imagePixels(bytes: Uint8Array, channels: number, size: readonly [number, number] | undefined): { pixels: Uint8Array; height: number; width: number } {
  const img = decodeImage(bytes);
  const [height, width] = size ?? [img.height, img.width];
  const pixels = new Uint8Array(height * width * channels);
  if (height === img.height && width === img.width) sameSize(img, channels, pixels);
  else resizeBilinear(toChannels(img, channels), img.height, img.width, channels, height, width, pixels);
  return { pixels, height, width };
}

function isImageFile(name: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extname(name).toLowerCase());
}

/** Image files under `dir` (all depths), sorted. */
function imageFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) for (const file of imageFiles(path)) out.push(file);
    else if (entry.isFile() && isImageFile(entry.name)) out.push(path);
  }
  return sortStrings(out);
}

/**
 * Images for a trained model: `path` an image file or a folder. A folder whose sub-folders are
 * named after the model's classes gives labels (an unknown class folder is an error naming it);
 * otherwise every image under it is read, unlabelled. A file that does not decode is left out and
 * listed in `skipped` with the reason, as training skips it.
 */
export function readImagesFor(
  path: string,
  shape: readonly [number, number, number],
  classes: readonly string[],
  requireLabel: boolean,
): { pixels: Uint8Array; labels: Int32Array | undefined; files: string[]; skipped: { file: string; reason: string }[] } {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new DataError(`${path}: no such file or folder`);
  }
  const [height, width, channels] = shape;
  let files: string[];
  let labels: number[] | undefined;
  if (stat.isFile()) files = [path];
  else {
    const subdirs = sortStrings(readdirSync(path, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name));
    const known = subdirs.filter((d) => classes.includes(d));
    if (requireLabel || (subdirs.length > 0 && known.length === subdirs.length)) {
      const unknown = subdirs.find((d) => !classes.includes(d));
      if (unknown !== undefined) throw new DataError(`${join(path, unknown)}: "${unknown}" is not one of the model's classes (${classes.join(', ')})`);
      if (subdirs.length === 0) throw new DataError(`${path}: evaluating needs a sub-folder per class (${classes.join(', ')}) with the images`);
      files = [];
      labels = [];
      for (const d of subdirs) {
        const inClass = imageFiles(join(path, d));
        // loops, not push(...): a folder of ~100k images would overflow the call stack
        for (const file of inClass) {
          files.push(file);
          labels.push(classes.indexOf(d));
        }
      }
    } else files = imageFiles(path);
  }
  if (files.length === 0) throw new DataError(`${path}: no PNG or JPEG files`);
  const size = height * width * channels;
  const pixels = new Uint8Array(files.length * size);
  const kept: string[] = [];
  const keptLabels: number[] = [];
  const skipped: { file: string; reason: string }[] = [];
  const shown = (file: string): string => (stat.isFile() ? file : relative(path, file));
  files.forEach((file, i) => {
    let image;
    try {
      image = readImage(file, channels, [height, width]).pixels;
    } catch (err) {
      skipped.push({ file: shown(file), reason: (err as Error).message });
      return;
    }
    pixels.set(image, kept.length * size);
    kept.push(shown(file));
    if (labels) keptLabels.push(labels[i]!);
  });
  return { pixels: pixels.subarray(0, kept.length * size), labels: labels && Int32Array.from(keptLabels), files: kept, skipped };
}

/** Reads a class-folder tree. Throws DataError naming the folder or file where it cannot go on. */
export function readImageFolder(dir: string, options: ImageOptions): ImageSet {
  let stat;
  try {
    stat = statSync(dir);
  } catch {
    throw new DataError(`${dir}: no such folder`);
  }
  if (!stat.isDirectory()) throw new DataError(`${dir}: not a folder (an image data set is a folder with one sub-folder per class)`);
  const warnings: string[] = [];
  const classDirs = sortStrings(readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name));
  const classes: string[] = [];
  const perClass: string[][] = [];
  for (const name of classDirs) {
    const files = imageFiles(join(dir, name));
    if (files.length === 0) {
      warnings.push(`${join(dir, name)}: no PNG or JPEG files; class "${name}" left out`);
      continue;
    }
    classes.push(name);
    perClass.push(files);
  }
  if (classes.length < 2) {
    throw new DataError(`${dir}: ${classes.length} class folder(s) with images${classDirs.length === 0 ? ' (no sub-folders)' : ''}; an image data set needs a sub-folder per class, at least 2, with PNG or JPEG files`);
  }
  const channels = options.colorMode === 'grayscale' ? 1 : 3;
  let size = options.imageSize;
  const images: Uint8Array[] = [];
  const labels: number[] = [];
  const files: string[] = [];
  const skipped: string[] = [];
  let firstFile = '';
  perClass.forEach((list, label) => {
    for (const file of list) {
      let img;
      try {
        img = readImage(file, channels, options.imageSize);
      } catch (err) {
        skipped.push(`${file} (${(err as Error).message})`);
        continue;
      }
      if (!size) {
        size = [img.height, img.width];
        firstFile = file;
      } else if (img.height !== size[0] || img.width !== size[1]) {
        throw new DataError(`${file}: the image is ${img.height}x${img.width}, ${firstFile} is ${size[0]}x${size[1]}: set data.imageSize (e.g. [${size[0]}, ${size[1]}]) to resize every image to one size`);
      }
      images.push(img.pixels);
      labels.push(label);
      files.push(relative(dir, file));
    }
  });
  if (skipped.length > 0) {
    warnings.push(`${skipped.length} image file(s) skipped: ${skipped.slice(0, 5).join('; ')}${skipped.length > 5 ? '; ...' : ''}`);
  }
  if (images.length === 0) throw new DataError(`${dir}: no image could be decoded`);
  const [height, width] = size!;
  const pixels = new Uint8Array(images.length * height * width * channels);
  images.forEach((img, i) => pixels.set(img, i * img.length));
  return { pixels, labels: Int32Array.from(labels), classes, files, height, width, channels, warnings };
}
