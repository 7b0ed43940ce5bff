/**
 * The CNN backward-pass kernels of cnn-backward.wat (max-pool gradient, sums of rows) behind
 * Float32Array calls: inputs are copied into the kernel's memory, which grows to the largest
 * call seen; results are views of that memory, valid until the next call.
 */
import { PAGE, instantiate, type WasmMemory } from './kernels.js';
import { CNN_BACKWARD_WASM_BASE64 } from './cnn-backward-binary.js';

interface CnnBackwardExports {
  readonly memory: WasmMemory;
  maxPoolGrad(x: number, dy: number, out: number, batch: number, inH: number, inW: number, c: number, outH: number, outW: number, sH: number, sW: number, fH: number, fW: number, padT: number, padL: number): void;
  sumRows(src: number, dst: number, rows: number, c: number): void;
  im2colT(x: number, cols: number, ...geometry: number[]): void;
  im2col(x: number, cols: number, ...geometry: number[]): void;
  col2im(cols: number, dx: number, ...geometry: number[]): void;
}

/** A convolution's or pool's shapes, as tfjs's Conv2DInfo has them (NHWC; a pool has no dilation). */
export interface ConvGeometry {
  readonly batchSize: number;
  readonly inHeight: number;
  readonly inWidth: number;
  readonly inChannels: number;
  readonly outHeight: number;
  readonly outWidth: number;
  readonly strideHeight: number;
  readonly strideWidth: number;
  readonly filterHeight: number;
  readonly filterWidth: number;
  readonly dilationHeight?: number;
  readonly dilationWidth?: number;
  readonly padInfo: { readonly top: number; readonly left: number };
}

function convArgs(g: ConvGeometry): number[] {
  return [g.batchSize, g.inHeight, g.inWidth, g.inChannels, g.outHeight, g.outWidth, g.strideHeight, g.strideWidth, g.filterHeight, g.filterWidth, g.dilationHeight ?? 1, g.dilationWidth ?? 1, g.padInfo.top, g.padInfo.left];
}

/** Values in a convolution's patches: output positions x filter taps. */
export function patchValues(g: ConvGeometry): number {
  return g.batchSize * g.outHeight * g.outWidth * g.filterHeight * g.filterWidth * g.inChannels;
}


const align = (bytes: number): number => Math.ceil(bytes / 16) * 16;

export class CnnBackward {
  private constructor(private readonly kernel: CnnBackwardExports) {}

  private static instance: CnnBackward | null | undefined;

  /** The kernels (one instance per thread), or null where WebAssembly SIMD does not run. */
  static shared(): CnnBackward | null {
    if (CnnBackward.instance === undefined) {
      const kernel = instantiate<CnnBackwardExports>(CNN_BACKWARD_WASM_BASE64);
      CnnBackward.instance = kernel === null ? null : new CnnBackward(kernel);
    }
    return CnnBackward.instance;
  }

  /** Byte offsets of consecutive regions of `sizes` floats, the memory grown to hold them; undefined if it cannot. */
  private regions(sizes: readonly number[]): number[] | undefined {
    const offsets: number[] = [];
    let end = 0;
    for (const n of sizes) {
      offsets.push(end);
      end += align(n * 4);
    }
    const have = this.kernel.memory.buffer.byteLength;
    try {
      if (end > have) this.kernel.memory.grow(Math.ceil((end - have) / PAGE));
    } catch {
      return undefined;
    }
    return offsets;
  }

  /** dx of a max pool (NHWC; channels a multiple of 4; the window's effective size), or undefined when it does not fit in memory. */
  maxPoolGrad(x: Float32Array, dy: Float32Array, g: ConvGeometry): Float32Array | undefined {
    if (g.inChannels % 4 !== 0) throw new RangeError(`maxPoolGrad takes channels in fours, got ${g.inChannels}`);
    const at = this.regions([x.length, dy.length, x.length]);
    if (!at) return undefined;
    const [xAt, dyAt, outAt] = at as [number, number, number];
    const buffer = this.kernel.memory.buffer;
    new Float32Array(buffer, xAt, x.length).set(x);
    new Float32Array(buffer, dyAt, dy.length).set(dy);
    const out = new Float32Array(buffer, outAt, x.length);
    out.fill(0);
    this.kernel.maxPoolGrad(xAt, dyAt, outAt, g.batchSize, g.inHeight, g.inWidth, g.inChannels, g.outHeight, g.outWidth, g.strideHeight, g.strideWidth, g.filterHeight, g.filterWidth, g.padInfo.top, g.padInfo.left);
    return out;
  }

  /** The patches of `x` laid out transposed (K rows of M values; convolution.ts), or undefined when they do not fit. */
  im2colT(x: Float32Array, g: ConvGeometry): Float32Array | undefined {
    return this.patches('im2colT', x, g);
  }

  /** The patches of `x` row by row (M rows of K values: the native backend's products), or undefined when they do not fit. */
  im2col(x: Float32Array, g: ConvGeometry): Float32Array | undefined {
    return this.patches('im2col', x, g);
  }

  private patches(layout: 'im2col' | 'im2colT', x: Float32Array, g: ConvGeometry): Float32Array | undefined {
    const n = patchValues(g);
    const at = this.regions([x.length, n]);
    if (!at) return undefined;
    const [xAt, colsAt] = at as [number, number];
    new Float32Array(this.kernel.memory.buffer, xAt, x.length).set(x);
    this.kernel[layout](xAt, colsAt, ...convArgs(g));
    return new Float32Array(this.kernel.memory.buffer, colsAt, n);
  }

  /**
   * The input's gradient from its patches' (M rows of K values) that `write` puts straight
   * into the kernel's memory (no copy), or undefined when they do not fit.
   */
  col2imFrom(write: (cols: Float32Array) => void, inputSize: number, g: ConvGeometry): Float32Array | undefined {
    const n = patchValues(g);
    const at = this.regions([n, inputSize]);
    if (!at) return undefined;
    const [colsAt, dxAt] = at as [number, number];
    const buffer = this.kernel.memory.buffer;
    write(new Float32Array(buffer, colsAt, n));
    const dx = new Float32Array(buffer, dxAt, inputSize);
    dx.fill(0);
    this.kernel.col2im(colsAt, dxAt, ...convArgs(g));
    return dx;
  }

  /** The input's gradient from its patches' (M rows of K values), or undefined when they do not fit. */
  col2im(cols: Float32Array, inputSize: number, g: ConvGeometry): Float32Array | undefined {
    const at = this.regions([cols.length, inputSize]);
    if (!at) return undefined;
    const [colsAt, dxAt] = at as [number, number];
    const buffer = this.kernel.memory.buffer;
    new Float32Array(buffer, colsAt, cols.length).set(cols);
    const dx = new Float32Array(buffer, dxAt, inputSize);
    dx.fill(0);
    this.kernel.col2im(colsAt, dxAt, ...convArgs(g));
    return dx;
  }

  /** Column sums of a rows x channels matrix (channels a multiple of 4), in row order in float32. */
  sumRows(values: Float32Array, rows: number, channels: number): Float32Array | undefined {
    if (channels % 4 !== 0) throw new RangeError(`sumRows takes channels in fours, got ${channels}`);
    const at = this.regions([values.length, channels]);
    if (!at) return undefined;
    const [srcAt, dstAt] = at as [number, number];
    new Float32Array(this.kernel.memory.buffer, srcAt, values.length).set(values);
    this.kernel.sumRows(srcAt, dstAt, rows, channels);
    return new Float32Array(this.kernel.memory.buffer, dstAt, channels);
  }
}
