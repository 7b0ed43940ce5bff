/**
 * float16 encoding and decoding as WebAssembly SIMD kernels (source: float16.wat). Values are
 * copied into the kernel's memory, padded with zeros to a multiple of 8, and the results copied
 * out; the memory grows to the largest array seen.
 */
import { PAGE, instantiate, type WasmMemory } from './kernels.js';
import { FLOAT16_WASM_BASE64 } from './float16-binary.js';

interface Float16Exports {
  readonly memory: WasmMemory;
  maxAbs(src: number, n: number): number;
  encode(src: number, dst: number, n: number, scale1: number, scale2: number): void;
  decode(src: number, dst: number, n: number, unscale: number): void;
}

export class Float16Kernel {
  private constructor(private readonly kernel: Float16Exports) {}

  /** The kernels, or null where WebAssembly SIMD does not run. */
  static create(): Float16Kernel | null {
    const kernel = instantiate<Float16Exports>(FLOAT16_WASM_BASE64);
    return kernel === null ? null : new Float16Kernel(kernel);
  }

  /** Whether `n` values fit (float32s and halves: 6 bytes each, at most 4 GiB in all). */
  fits(n: number): boolean {
    const need = Math.ceil(n / 8) * 8 * 6;
    const have = this.kernel.memory.buffer.byteLength;
    if (need <= have) return true;
    try {
      this.kernel.memory.grow(Math.ceil((need - have) / PAGE));
      return true;
    } catch {
      return false;
    }
  }

  /** Room for n float32s at 0 and n halves after them (checked by `fits`); n rounded up to 8 and the halves' offset. */
  private layout(n: number): { padded: number; halves: number } {
    if (!this.fits(n)) throw new RangeError(`${n} values do not fit in a WebAssembly memory`);
    const padded = Math.ceil(n / 8) * 8;
    return { padded, halves: padded * 4 };
  }

  /** Copies `values` in, zero-padded; returns the padded length and the halves' offset. */
  private load(values: Float32Array): { padded: number; halves: number } {
    const at = this.layout(values.length);
    const floats = new Float32Array(this.kernel.memory.buffer, 0, at.padded);
    floats.set(values);
    floats.fill(0, values.length);
    return at;
  }

  /**
   * float16 bits of values[i] * 2^scaleExp into `out`, where scaleExp = scaleExpFor(the largest
   * finite |value|, 0 when there is none); returns scaleExp. The values are copied in once.
   */
  encode(values: Float32Array, out: Uint16Array, scaleExpFor: (maxAbs: number) => number): number {
    const { padded, halves } = this.load(values);
    const scaleExp = scaleExpFor(this.kernel.maxAbs(0, padded));
    const first = Math.min(scaleExp, 127);
    this.kernel.encode(0, halves, padded, 2 ** first, 2 ** (scaleExp - first));
    out.set(new Uint16Array(this.kernel.memory.buffer, halves, values.length));
    return scaleExp;
  }

  /** float32 of halves[i] * 2^-scaleExp (rounded once), into `out`. */
  decode(halves: Uint16Array, scaleExp: number, out: Float32Array): void {
    const at = this.layout(halves.length);
    const input = new Uint16Array(this.kernel.memory.buffer, at.halves, at.padded);
    input.set(halves);
    input.fill(0, halves.length);
    this.kernel.decode(at.halves, 0, at.padded, 2 ** -scaleExp);
    out.set(new Float32Array(this.kernel.memory.buffer, 0, halves.length));
  }
}
