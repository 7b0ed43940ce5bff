/**
 * IEEE 754 half precision (float16) for gradients on the wire: half the bytes of float32.
 *
 * A gradient is scaled by one power of two per message before rounding, so its largest value
 * lands in [2^14, 2^15): the scaling itself is exact, the 11-bit significand keeps every value
 * within 2^-11 relative (round to nearest, ties to even), and values down to 2^-38 of the
 * largest survive (as subnormals) instead of flushing to zero the way plain float16 would.
 * NaN and Infinity stay NaN and Infinity, so the receiver's finiteness check still sees them.
 *
 * The loops here are the reference; encodeFloat16 and decodeFloat16 run WebAssembly SIMD kernels
 * (wasm/float16.wat) with the same bits where they run (timings in BENCHMARKS.md).
 */
import { Float16Kernel } from '../wasm/float16-kernel.js';

export const GRADIENT_DTYPES = ['float32', 'float16'] as const;
export type GradientDtype = (typeof GRADIENT_DTYPES)[number];

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float16 bit pattern nearest to x (ties to even); overflow gives Infinity, NaN 0x7e00. */
export function toFloat16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return mantissa !== 0 ? 0x7e00 : sign | 0x7c00; // NaN (its sign is not portable), Inf
  const e = exponent - 127 + 15; // biased float16 exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal float16 (or zero): significand = (1.mantissa) * 2^(e - 14), in units of 2^-24
    if (e < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - e;
    const rest = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    let h = full >>> shift;
    if (rest > halfway || (rest === halfway && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is right, up to Infinity
  return sign | h;
}

/** The value of a float16 bit pattern. */
export function fromFloat16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m !== 0 ? NaN : sign * Infinity;
  return sign * (1024 + m) * 2 ** (e - 25);
}

let table: Float32Array | undefined;
/** All 65536 float16 values, built on first use (256 KiB). */
function decodeTable(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = fromFloat16Bits(h);
  }
  return table;
}

/** Largest finite |value| lands in [2^14, 2^15) after scaling by 2^scaleExp. */
export function float16ScaleExp(values: Float32Array): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]!);
    if (a > max && a !== Infinity) max = a;
  }
  return scaleExpFor(max);
}

/** The scale exponent for a largest finite magnitude `max`. */
function scaleExpFor(max: number): number {
  if (max === 0) return 0;
  let exp = 14 - Math.floor(Math.log2(max));
  // Math.log2 may be off by one ulp near powers of two: settle it exactly.
  while (max * 2 ** exp >= 2 ** 15) exp--;
  while (max * 2 ** exp < 2 ** 14) exp++;
  return exp;
}

export interface Float16Encoded {
  readonly halves: Uint16Array;
  /** The values were multiplied by 2^scaleExp before rounding. */
  readonly scaleExp: number;
}

/** 'wasm': the SIMD kernels (the default where they run); 'js': the reference loops. */
export type Float16Implementation = 'wasm' | 'js';

let kernel: Float16Kernel | null | undefined;
/** The kernels for `n` values, or null: asked for the reference, no WebAssembly SIMD, or too many values for its memory. */
function simd(implementation: Float16Implementation, n: number): Float16Kernel | null {
  if (implementation === 'js') return null;
  if (kernel === undefined) kernel = Float16Kernel.create();
  return kernel?.fits(n) ? kernel : null;
}

export function encodeFloat16(values: Float32Array, implementation: Float16Implementation = 'wasm'): Float16Encoded {
  const halves = new Uint16Array(values.length);
  const fast = simd(implementation, values.length);
  if (fast) {
    return { halves, scaleExp: fast.encode(values, halves, scaleExpFor) };
  }
  const scaleExp = float16ScaleExp(values);
  const scale = 2 ** scaleExp;
  for (let i = 0; i < values.length; i++) halves[i] = toFloat16Bits(values[i]! * scale);
  return { halves, scaleExp };
}

export function decodeFloat16(halves: Uint16Array, scaleExp: number, out = new Float32Array(halves.length), implementation: Float16Implementation = 'wasm'): Float32Array {
  if (out.length !== halves.length) throw new RangeError(`decodeFloat16: output has ${out.length} values, input ${halves.length}`);
  const fast = simd(implementation, halves.length);
  if (fast) {
    fast.decode(halves, scaleExp, out);
    return out;
  }
  const values = decodeTable();
  const unscale = 2 ** -scaleExp;
  for (let i = 0; i < halves.length; i++) out[i] = values[halves[i]!]! * unscale;
  return out;
}
