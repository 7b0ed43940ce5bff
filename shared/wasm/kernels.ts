/**
 * The optimizers' update rules as WebAssembly SIMD kernels (source: optimizers.wat), and the
 * arena an optimizer keeps its arrays in; also how every kernel module here is compiled.
 *
 * An arena is one WebAssembly memory holding the weights, the gradient and the optimizer's slots
 * (Adam's m and v, ...), each padded to a multiple of four floats. Slots live there for the
 * optimizer's whole life; weights and gradient are copied in and out around each step, so the
 * optimizer's interface stays plain Float32Arrays. The memory is sized once and never grows, so
 * the views stay valid.
 */
import { OPTIMIZERS_WASM_BASE64 } from './optimizers-binary.js';

/** The part of Node's WebAssembly global used here (TypeScript declares it only in the DOM lib). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: unknown };
}
const WebAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Bytes of a WebAssembly memory page. */
export const PAGE = 65536;
const compiled = new Map<string, object | null>();

/** The module of a `*-binary.ts` file, compiled once, or null where this runtime cannot run WebAssembly SIMD. */
function compiledModule(base64: string): object | null {
  let module = compiled.get(base64);
  if (module === undefined) {
    const bytes = Buffer.from(base64, 'base64');
    module = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
    compiled.set(base64, module);
  }
  return module;
}

/** A fresh instance (with its own memory) of a kernel module, or null without WebAssembly SIMD. */
export function instantiate<Exports>(base64: string): Exports | null {
  const module = compiledModule(base64);
  return module === null ? null : (new WebAssembly.Instance(module, {}).exports as Exports);
}

/** The functions optimizers.wat exports; array arguments are byte offsets, `n` a multiple of 4. */
export interface OptimizerKernels {
  readonly memory: WasmMemory;
  adam(w: number, g: number, m: number, v: number, n: number, b1: number, b2: number, oneMinusB1: number, oneMinusB2: number, c1: number, c2: number, eps: number, negLr: number): void;
  sgd(w: number, g: number, n: number, negLr: number): void;
  momentum(w: number, g: number, a: number, n: number, negLr: number, mom: number, nesterov: number): void;
  rmsprop(w: number, g: number, s: number, mo: number, n: number, rho: number, oneMinusRho: number, lr: number, mom: number, eps: number): void;
}

/** An array of the arena: its byte offset for the kernels and a view of its first `size` floats. */
export interface ArenaArray {
  readonly offset: number;
  readonly view: Float32Array;
}

export interface KernelArena {
  readonly kernels: OptimizerKernels;
  /** Floats each kernel call processes: the size rounded up to a multiple of 4. */
  readonly padded: number;
  readonly weights: ArenaArray;
  readonly gradient: ArenaArray;
  readonly slots: readonly ArenaArray[];
}

/**
 * A fresh arena for `size` parameters and `slotCount` slot arrays, or null without SIMD or when the
 * arrays do not fit in one WebAssembly memory (4 GiB: over ~250M parameters with Adam).
 */
export function kernelArena(size: number, slotCount: number): KernelArena | null {
  const kernels = instantiate<OptimizerKernels>(OPTIMIZERS_WASM_BASE64);
  if (kernels === null) return null;
  const padded = Math.ceil(size / 4) * 4;
  const arrays = 2 + slotCount;
  const bytes = arrays * padded * Float32Array.BYTES_PER_ELEMENT;
  const have = kernels.memory.buffer.byteLength;
  try {
    if (bytes > have) kernels.memory.grow(Math.ceil((bytes - have) / PAGE));
  } catch {
    return null; // beyond a 32-bit WebAssembly memory (4 GiB): the reference loops take over
  }
  const buffer = kernels.memory.buffer;
  const array = (k: number): ArenaArray => {
    const offset = k * padded * Float32Array.BYTES_PER_ELEMENT;
    return { offset, view: new Float32Array(buffer, offset, size) };
  };
  return { kernels, padded, weights: array(0), gradient: array(1), slots: Array.from({ length: slotCount }, (_, k) => array(2 + k)) };
}
