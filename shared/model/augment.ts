/**
 * Image augmentation as Keras's preprocessing layers (RandomFlip, RandomTranslation,
 * RandomRotation, RandomZoom, RandomContrast), applied to a training batch before the model and
 * never at evaluation or prediction. Every draw is a function of (layer seed, step, training
 * row) (math/dropout-mask.ts's counter hash), so a row is augmented the same whichever
 * participant computes it: N participants still give one process's model.
 *
 * Geometric layers resample with bilinear interpolation around the image centre, points outside
 * the image filled as Keras's fill_mode says (reflect by default).
 */
import { elementDraw, rowKey } from '../math/dropout-mask.js';

export type FillMode = 'reflect' | 'wrap' | 'constant' | 'nearest';
export const FILL_MODES = ['reflect', 'wrap', 'constant', 'nearest'] as const;
export const FLIP_MODES = ['horizontal', 'vertical', 'horizontal_and_vertical'] as const;

/** A range [lower, upper] a layer draws its factor from, uniformly. */
export type Range = readonly [number, number];

export type AugmentLayerSpec =
  | { readonly type: 'randomFlip'; readonly mode: (typeof FLIP_MODES)[number]; readonly seed: number }
  | { readonly type: 'randomTranslation'; readonly height: Range; readonly width: Range; readonly fillMode: FillMode; readonly fillValue: number; readonly seed: number }
  | { readonly type: 'randomRotation'; readonly factor: Range; readonly fillMode: FillMode; readonly fillValue: number; readonly seed: number }
  /** width absent: the height's draw for both axes (the aspect kept), as Keras's width_factor None. */
  | { readonly type: 'randomZoom'; readonly height: Range; readonly width?: Range; readonly fillMode: FillMode; readonly fillValue: number; readonly seed: number }
  | { readonly type: 'randomContrast'; readonly factor: Range; readonly valueRange: Range; readonly seed: number };

export const AUGMENT_TYPES = ['randomFlip', 'randomTranslation', 'randomRotation', 'randomZoom', 'randomContrast'] as const;

/** The augmentation of a model's input: the image shape [h, w, c] it sees and its layers in order. */
export interface AugmentSpec {
  readonly shape: readonly [number, number, number];
  readonly layers: readonly AugmentLayerSpec[];
}

/** A draw in [lower, upper] from `u` in [0, 1). */
const inRange = (range: Range, u: number): number => range[0] + (range[1] - range[0]) * u;

/**
 * Augments `count` samples of x (row-major [count, h, w, c]) in place; `rows` are their training
 * rows and `step` the step (the draws' keys).
 */
export function augmentBatch(x: Float32Array, count: number, augment: AugmentSpec, step: number, rows: ArrayLike<number>): void {
  const [h, w, c] = augment.shape;
  const size = h * w * c;
  if (x.length !== count * size) throw new RangeError(`augmentation of ${count} images of [${h}, ${w}, ${c}] got ${x.length} values`);
  if (rows.length !== count) throw new RangeError(`augmentation of ${count} images got ${rows.length} row ids`);
  const scratch = new Float32Array(size);
  for (let i = 0; i < count; i++) {
    const image = x.subarray(i * size, (i + 1) * size);
    for (const layer of augment.layers) {
      const key = rowKey(layer.seed, step, rows[i]!);
      applyLayer(image, scratch, augment.shape, layer, (j) => elementDraw(key, j));
    }
  }
}

function applyLayer(image: Float32Array, scratch: Float32Array, shape: AugmentSpec['shape'], layer: AugmentLayerSpec, draw: (j: number) => number): void {
  const [h, w] = shape;
  switch (layer.type) {
    case 'randomFlip': {
      const horizontal = layer.mode !== 'vertical' && draw(0) < 0.5;
      const vertical = layer.mode !== 'horizontal' && draw(1) < 0.5;
      if (horizontal || vertical) flip(image, scratch, shape, horizontal, vertical);
      return;
    }
    case 'randomTranslation': {
      // Keras: a positive factor moves the image down (height) or right (width)
      const dy = inRange(layer.height, draw(0)) * h;
      const dx = inRange(layer.width, draw(1)) * w;
      resample(image, scratch, shape, { a: 1, b: 0, c: -dx, d: 0, e: 1, f: -dy }, layer.fillMode, layer.fillValue);
      return;
    }
    case 'randomRotation': {
      const angle = inRange(layer.factor, draw(0)) * 2 * Math.PI;
      resample(image, scratch, shape, centred(shape, Math.cos(angle), Math.sin(angle), -Math.sin(angle), Math.cos(angle)), layer.fillMode, layer.fillValue);
      return;
    }
    case 'randomZoom': {
      // Keras: a positive factor zooms out (the output shows more of the image)
      const zy = 1 + inRange(layer.height, draw(0));
      const zx = layer.width ? 1 + inRange(layer.width, draw(1)) : zy;
      resample(image, scratch, shape, centred(shape, zx, 0, 0, zy), layer.fillMode, layer.fillValue);
      return;
    }
    case 'randomContrast':
      contrast(image, shape, inRange([1 - layer.factor[0], 1 + layer.factor[1]], draw(0)), layer.valueRange);
      return;
  }
}

/** Output (x, y) reads input (a x + b y + c, d x + e y + f). */
interface Affine {
  readonly a: number;
  readonly b: number;
  readonly c: number;
  readonly d: number;
  readonly e: number;
  readonly f: number;
}

/** The map [[a, b], [d, e]] about the image centre ((w - 1) / 2, (h - 1) / 2). */
function centred([h, w]: AugmentSpec['shape'], a: number, b: number, d: number, e: number): Affine {
  const cx = (w - 1) / 2;
  const cy = (h - 1) / 2;
  return { a, b, c: cx - a * cx - b * cy, d, e, f: cy - d * cx - e * cy };
}

function flip(image: Float32Array, scratch: Float32Array, [h, w, c]: AugmentSpec['shape'], horizontal: boolean, vertical: boolean): void {
  scratch.set(image);
  for (let y = 0; y < h; y++) {
    const sy = vertical ? h - 1 - y : y;
    for (let x = 0; x < w; x++) {
      const sx = horizontal ? w - 1 - x : x;
      for (let k = 0; k < c; k++) image[(y * w + x) * c + k] = scratch[(sy * w + sx) * c + k]!;
    }
  }
}

/** A coordinate outside [0, n - 1] mapped into it as the fill mode says (TensorFlow's ImageProjectiveTransform); constant keeps it (read as the fill value). */
function mapCoordinate(t: number, n: number, mode: FillMode): number {
  if (mode === 'constant' || (t >= 0 && t <= n - 1)) return t;
  if (mode === 'nearest' || n <= 1) return Math.min(Math.max(t, 0), n - 1);
  if (mode === 'wrap') {
    const period = n - 1;
    const wrapped = t - period * Math.floor(t / period);
    return Math.min(Math.max(wrapped, 0), n - 1);
  }
  // reflect: (d c b a | a b c d | d c b a), about the outer edges of the first and last pixels
  const period = 2 * n;
  let r = t - period * Math.floor(t / period);
  if (r >= n) r = period - r - 1;
  return Math.min(Math.max(r, 0), n - 1);
}

function resample(image: Float32Array, scratch: Float32Array, shape: AugmentSpec['shape'], m: Affine, mode: FillMode, fill: number): void {
  const [h, w, c] = shape;
  scratch.set(image);
  const read = (y: number, x: number, k: number): number => (y < 0 || y >= h || x < 0 || x >= w ? fill : scratch[(y * w + x) * c + k]!);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = mapCoordinate(m.a * x + m.b * y + m.c, w, mode);
      const sy = mapCoordinate(m.d * x + m.e * y + m.f, h, mode);
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      for (let k = 0; k < c; k++) {
        const top = read(y0, x0, k) * (1 - fx) + (fx > 0 ? read(y0, x0 + 1, k) * fx : 0);
        const bottom = fy > 0 ? read(y0 + 1, x0, k) * (1 - fx) + (fx > 0 ? read(y0 + 1, x0 + 1, k) * fx : 0) : 0;
        image[(y * w + x) * c + k] = top * (1 - fy) + bottom * fy;
      }
    }
  }
}

/** Keras's RandomContrast: per channel, (x - mean) x factor + mean, clipped to the value range. */
function contrast(image: Float32Array, [h, w, c]: AugmentSpec['shape'], factor: number, [lo, hi]: Range): void {
  for (let k = 0; k < c; k++) {
    let sum = 0;
    for (let p = 0; p < h * w; p++) sum += image[p * c + k]!;
    const mean = sum / (h * w);
    for (let p = 0; p < h * w; p++) image[p * c + k] = Math.min(Math.max((image[p * c + k]! - mean) * factor + mean, lo), hi);
  }
}
