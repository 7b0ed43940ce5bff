/**
 * Max-pooling's argmax (source: max-pool.wat) over values that already lie in the kernel's
 * memory: the caller takes its arrays from `arena`, lets onnxruntime write a forward pass's
 * values there, and asks for the indices in place, with no copy. Without WebAssembly SIMD the
 * arrays are plain ones and a JavaScript loop computes the same indices.
 */
import { PAGE, instantiate, type WasmMemory } from './kernels.js';
import { MAX_POOL_WASM_BASE64 } from './max-pool-binary.js';

interface MaxPoolExports {
  readonly memory: WasmMemory;
  argmax(src: number, dst: number, planes: number, h: number, w: number, ho: number, wo: number, ph: number, pw: number): void;
}

/** A pool whose windows tile its input: planes (samples x channels) of h x w, windows ph x pw, ho x wo of them. */
export interface TiledPool {
  readonly planes: number;
  readonly h: number;
  readonly w: number;
  readonly ho: number;
  readonly wo: number;
  readonly ph: number;
  readonly pw: number;
}

export class MaxPoolArgmax {
  private readonly kernel: MaxPoolExports | null;

  constructor() {
    this.kernel = instantiate<MaxPoolExports>(MAX_POOL_WASM_BASE64);
  }

  /**
   * `floats` float32s and `indices` int64s, as views valid until the next call (the memory may
   * grow and move).
   */
  arena(floats: number, indices: number): { floats: Float32Array; indices: BigInt64Array } {
    if (!this.kernel) return { floats: new Float32Array(floats), indices: new BigInt64Array(indices) };
    const indexBytes = indices * 8;
    const bytes = indexBytes + Math.ceil(floats / 4) * 16;
    const have = this.kernel.memory.buffer.byteLength;
    if (bytes > have) this.kernel.memory.grow(Math.ceil((bytes - have) / PAGE));
    const buffer = this.kernel.memory.buffer;
    return { indices: new BigInt64Array(buffer, 0, indices), floats: new Float32Array(buffer, indexBytes, floats) };
  }

  /** Writes into `out` (planes x ho x wo) each window's flat index of its first largest value in `src`. */
  argmax(src: Float32Array, out: BigInt64Array, pool: TiledPool): void {
    const { planes, h, w, ho, wo, ph, pw } = pool;
    if (src.length < planes * h * w || out.length < planes * ho * wo) throw new RangeError('max-pool argmax: arrays smaller than the pool');
    const memory = this.kernel?.memory.buffer;
    if (this.kernel && src.buffer === memory && out.buffer === memory) {
      this.kernel.argmax(src.byteOffset, out.byteOffset, planes, h, w, ho, wo, ph, pw);
      return;
    }
    // the same in JavaScript; int64s written as their low and high halves
    const halves = new Int32Array(out.buffer, out.byteOffset, out.length * 2);
    let o = 0;
    for (let p = 0; p < planes; p++) {
      for (let i = 0; i < ho; i++) {
        for (let j = 0; j < wo; j++) {
          const at = p * h * w + i * ph * w + j * pw;
          let best = at;
          let max = src[at]!;
          for (let a = 0; a < ph; a++) {
            for (let b = 0; b < pw; b++) {
              const k = at + a * w + b;
              if (src[k]! > max) {
                max = src[k]!;
                best = k;
              }
            }
          }
          halves[2 * o] = best;
          halves[2 * o + 1] = 0;
          o++;
        }
      }
    }
  }
}
