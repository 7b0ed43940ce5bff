/**
 * Matrix transpose as a WebAssembly SIMD kernel (source: transpose.wat): the matrix is copied into
 * the kernel's memory and transposed there; the result is a view of that memory, valid until the
 * next call. The memory grows to the largest matrix seen.
 */
import { PAGE, instantiate, type WasmMemory } from './kernels.js';
import { TRANSPOSE_WASM_BASE64 } from './transpose-binary.js';

interface TransposeExports {
  readonly memory: WasmMemory;
  transpose(src: number, dst: number, rows: number, cols: number): void;
}

export class Transposer {
  private constructor(private readonly kernel: TransposeExports) {}

  /** A transposer, or null where WebAssembly SIMD does not run. */
  static create(): Transposer | null {
    const kernel = instantiate<TransposeExports>(TRANSPOSE_WASM_BASE64);
    return kernel === null ? null : new Transposer(kernel);
  }

  /**
   * The cols x rows transpose of `src` (rows x cols, row-major), as a view valid until the next
   * call; undefined when the matrix does not fit in a WebAssembly memory (4 GiB for both copies).
   */
  transpose(src: Float32Array, rows: number, cols: number): Float32Array | undefined {
    const n = rows * cols;
    if (src.length !== n) throw new RangeError(`a ${rows} x ${cols} matrix has ${n} values, got ${src.length}`);
    const bytes = n * Float32Array.BYTES_PER_ELEMENT;
    const dst = Math.ceil(bytes / 16) * 16;
    const have = this.kernel.memory.buffer.byteLength;
    try {
      if (dst + bytes > have) this.kernel.memory.grow(Math.ceil((dst + bytes - have) / PAGE));
    } catch {
      return undefined;
    }
    const buffer = this.kernel.memory.buffer;
    new Float32Array(buffer, 0, n).set(src);
    this.kernel.transpose(0, dst, rows, cols);
    return new Float32Array(buffer, dst, n);
  }
}
