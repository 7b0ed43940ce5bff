/**
 * The weighted mean of gradients as a WebAssembly SIMD kernel (source: reduce.wat). Its memory
 * holds a table of the parts (one page), the mean, and one array per part, each padded to a
 * multiple of four floats; the parts are copied in and the mean out, so callers keep plain
 * Float32Arrays. The memory grows when a call brings more parts than it has room for.
 */
import { PAGE, instantiate, type WasmMemory } from './kernels.js';
import { REDUCE_WASM_BASE64 } from './reduce-binary.js';

/** The function reduce.wat exports; offsets in bytes, `n` a multiple of 4; returns 1 when the mean is finite. */
interface ReduceExports {
  readonly memory: WasmMemory;
  mean(table: number, parts: number, out: number, n: number, total: number): number;
}

/** Bytes per table entry: the part's byte offset (i32), 4 unused, its sample count (f64). */
const ENTRY = 16;
/** Most parts one call takes: the table fills its page. */
export const MAX_KERNEL_PARTS = PAGE / ENTRY;

export class MeanKernel {
  /** Floats the kernel processes: the length rounded up to a multiple of 4. */
  readonly padded: number;
  private capacity = 0;
  private table!: DataView;
  private out!: Float32Array;
  private parts: Float32Array[] = [];

  private constructor(
    private readonly kernel: ReduceExports,
    readonly length: number,
  ) {
    this.padded = Math.ceil(length / 4) * 4;
    this.views();
  }

  /** A kernel for gradients of `length` floats, or null where WebAssembly SIMD does not run. */
  static create(length: number): MeanKernel | null {
    const kernel = instantiate<ReduceExports>(REDUCE_WASM_BASE64);
    return kernel === null ? null : new MeanKernel(kernel, length);
  }

  private offset(array: number): number {
    return PAGE + array * this.padded * Float32Array.BYTES_PER_ELEMENT;
  }

  /** (Re)makes the views after the memory changed size: the mean is array 0, part k is array k + 1. */
  private views(): void {
    const buffer = this.kernel.memory.buffer;
    const arrays = Math.floor((buffer.byteLength - PAGE) / (this.padded * Float32Array.BYTES_PER_ELEMENT));
    this.capacity = Math.max(0, arrays - 1);
    this.table = new DataView(buffer, 0, PAGE);
    this.out = arrays > 0 ? new Float32Array(buffer, this.offset(0), this.length) : new Float32Array(0);
    this.parts = Array.from({ length: this.capacity }, (_, k) => new Float32Array(buffer, this.offset(k + 1), this.length));
  }

  /** Makes room for `parts` parts; false when the memory cannot hold them (4 GiB at most). */
  private reserve(parts: number): boolean {
    if (parts > MAX_KERNEL_PARTS) return false;
    if (parts <= this.capacity) return true;
    const need = this.offset(parts + 1) - this.kernel.memory.buffer.byteLength;
    try {
      this.kernel.memory.grow(Math.ceil(need / PAGE));
    } catch {
      return false;
    }
    this.views();
    return true;
  }

  /**
   * Writes sum_k(counts[k] * gradients[k]) / total into `out` and says whether every value is
   * finite; undefined (nothing written) when the parts do not fit, for the caller's fallback.
   * The caller has checked the lengths and counts.
   */
  mean(gradients: readonly Float32Array[], counts: readonly number[], total: number, out: Float32Array): boolean | undefined {
    if (!this.reserve(gradients.length)) return undefined;
    gradients.forEach((gradient, k) => {
      this.parts[k]!.set(gradient);
      this.table.setInt32(k * ENTRY, this.offset(k + 1), true);
      this.table.setFloat64(k * ENTRY + 8, counts[k]!, true);
    });
    const finite = this.kernel.mean(0, gradients.length, this.offset(0), this.padded, total) === 1;
    out.set(this.out);
    return finite;
  }
}
