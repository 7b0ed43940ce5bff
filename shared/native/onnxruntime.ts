/**
 * onnxruntime-node's CPU kernels (MLAS) as synchronous matrix products on Float32Arrays: what the
 * native backend's tfjs kernels call. The package's binding runs a session synchronously (its
 * JS wrapper only defers that with setImmediate), which a tfjs kernel needs, so it is loaded
 * directly. Its inputs are read where they lie (a view of the wasm heap: no copy) and its output
 * is written into the array given (preallocated fetch).
 *
 * One session per Gemm variant (transA, transB, bias), created once per thread with symbolic
 * dimensions so that it serves every shape. Each session computes on `threads` intra-op threads:
 * one per lane by default, so a process with two lanes uses two cores.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { onnxModel } from './onnx-model.js';

/** The package, and how to get it where it is missing. */
export const ORT_PACKAGE = 'onnxruntime-node';
export const ORT_INSTALL_HINT =
  `install it with \`ONNXRUNTIME_NODE_INSTALL=skip npm install ${ORT_PACKAGE}\` (its CPU binaries ship in the npm package; ` +
  'the variable skips the CUDA provider download, which the native backend does not use)';

interface TensorLike {
  readonly type: 'float32' | 'int64';
  readonly dims: readonly number[];
  readonly data: Float32Array | BigInt64Array;
  readonly location: 'cpu';
}

interface BindingSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): Promise<void> | void;
  run(feeds: Record<string, TensorLike>, fetches: Record<string, TensorLike | null>, options: object): Record<string, unknown>;
  dispose(): void;
}

interface Binding {
  InferenceSession: new () => BindingSession;
  initOrtOnce(logLevel: number, tensorConstructor: unknown, isMainThread: boolean): void;
}

/** Why the package cannot be used here, or its binding. */
type Loaded = { readonly binding: Binding; readonly version: string } | { readonly error: string };

let loaded: Loaded | undefined;

/** Loads the binding once per thread (never throws: says why it cannot). */
export function loadOnnxruntime(): Loaded {
  if (loaded) return loaded;
  loaded = (() => {
    const require = createRequire(import.meta.url);
    let root: string;
    try {
      root = dirname(require.resolve(`${ORT_PACKAGE}/package.json`));
    } catch {
      return { error: `${ORT_PACKAGE} is not installed; ${ORT_INSTALL_HINT}` };
    }
    const version = (require(join(root, 'package.json')) as { version: string }).version;
    const file = join(root, 'bin', 'napi-v6', process.platform, process.arch, 'onnxruntime_binding.node');
    if (!existsSync(file)) return { error: `${ORT_PACKAGE} ${version} ships no CPU binaries for ${process.platform}/${process.arch}` };
    try {
      const binding = require(file) as Binding;
      const fromOrt = createRequire(join(root, 'package.json'));
      const { Tensor } = fromOrt('onnxruntime-common') as { Tensor: unknown };
      // log level 3: errors only (its warnings about thread affinity would reach every log)
      binding.initOrtOnce(3, Tensor, isMainThread);
      return { binding, version };
    } catch (err) {
      return { error: `${ORT_PACKAGE} ${version} did not load on ${process.platform}/${process.arch} (${(err as Error).message.split('\n')[0]}); reinstall it: ${ORT_INSTALL_HINT}` };
    }
  })();
  return loaded;
}

const tensor = (data: Float32Array | BigInt64Array, dims: readonly number[]): TensorLike => ({ type: data instanceof BigInt64Array ? 'int64' : 'float32', dims, data, location: 'cpu' });

/** A product's operands: op(A) is m x k, op(B) is k x n; A is stored k x m when transA, B n x k when transB. */
export interface GemmShape {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly transA: boolean;
  readonly transB: boolean;
}

export class NativeProducts {
  /** Products computed so far in this thread (tests check that a computation ran here). */
  calls = 0;
  /** Hears each product's shape and milliseconds (the benchmark's account of a step's products). */
  recorder: ((shape: GemmShape, bias: boolean, ms: number) => void) | undefined;

  private constructor(
    private readonly sessions: ReadonlyMap<string, BindingSession>,
    readonly threads: number,
    readonly version: string,
  ) {}

  /** This thread's products, by intra-op thread count. */
  private static readonly started = new Map<number, Promise<NativeProducts>>();

  /** This thread's products on `threads` intra-op threads (sessions made on the first call). Throws why the package cannot be used. */
  static start(threads: number): Promise<NativeProducts> {
    let products = NativeProducts.started.get(threads);
    if (!products) {
      products = NativeProducts.create(threads).catch((err: unknown) => {
        NativeProducts.started.delete(threads);
        throw err;
      });
      NativeProducts.started.set(threads, products);
    }
    return products;
  }

  private static async create(threads: number): Promise<NativeProducts> {
    const ort = loadOnnxruntime();
    if ('error' in ort) throw new Error(ort.error);
    const sessions = new Map<string, BindingSession>();
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const bias of [false, true]) {
          const bytes = onnxModel({
            nodes: [{ op: 'Gemm', inputs: bias ? ['A', 'B', 'C'] : ['A', 'B'], outputs: ['Y'], attributes: { transA: Number(transA), transB: Number(transB) } }],
            inputs: { A: transA ? ['K', 'M'] : ['M', 'K'], B: transB ? ['N', 'K'] : ['K', 'N'], ...(bias ? { C: ['N'] } : {}) },
            outputs: { Y: ['M', 'N'] },
          });
          sessions.set(key(transA, transB, bias), await loadSession(ort.binding, bytes, threads));
        }
      }
    }
    return new NativeProducts(sessions, threads, ort.version);
  }

  /**
   * out (m x n) = op(A) op(B) [+ bias (n values) on every row]. Synchronous; `out` must not
   * overlap the operands.
   */
  gemm(a: Float32Array, b: Float32Array, out: Float32Array, s: GemmShape, bias?: Float32Array): void {
    const { m, k, n, transA, transB } = s;
    if (m * n === 0) return;
    if (k === 0) {
      for (let r = 0; r < m; r++) {
        if (bias) out.set(bias.subarray(0, n), r * n);
        else out.fill(0, r * n, (r + 1) * n);
      }
      return;
    }
    this.calls++;
    const session = this.sessions.get(key(transA, transB, bias !== undefined))!;
    const feeds: Record<string, TensorLike> = {
      A: tensor(a.subarray(0, m * k), transA ? [k, m] : [m, k]),
      B: tensor(b.subarray(0, k * n), transB ? [n, k] : [k, n]),
    };
    if (bias) feeds['C'] = tensor(bias.subarray(0, n), [n]);
    const t0 = this.recorder ? performance.now() : 0;
    session.run(feeds, { Y: tensor(out.subarray(0, m * n), [m, n]) }, {});
    this.recorder?.(s, bias !== undefined, performance.now() - t0);
  }
}

const key = (transA: boolean, transB: boolean, bias: boolean): string => `${Number(transA)}${Number(transB)}${Number(bias)}`;

/**
 * A session on `threads` intra-op threads that sleep rather than spin between runs (spinning
 * threads took the other lanes' cores: one lane of 2 ran at half the speed of one of 1), with
 * every graph optimization but the layout ones: their NCHWc convolutions and pools cost a
 * channels-blocked copy of each conv net's largest activation (~2 ms of a 10 ms forward pass
 * here) and gained less.
 */
async function loadSession(binding: Binding, model: Uint8Array, threads: number): Promise<BindingSession> {
  const options = { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'extended', enableCpuMemArena: true, extra: { session: { intra_op: { allow_spinning: '0' } } } };
  const session = new binding.InferenceSession();
  await session.loadModel(model.buffer as ArrayBuffer, model.byteOffset, model.byteLength, options);
  return session;
}

/** A float32 array and its dimensions, as a session takes or fills it. */
export type Float32Value = readonly [Float32Array, readonly number[]];
/** A float32 or int64 array (argmax indices) and its dimensions. */
export type NativeValue = readonly [Float32Array | BigInt64Array, readonly number[]];

/** A whole model as one onnxruntime session, run synchronously on typed arrays (inputs read in place, outputs written into the arrays given). */
export class NativeSession {
  private constructor(private readonly session: BindingSession) {}

  static async create(model: Uint8Array, threads: number): Promise<NativeSession> {
    const ort = loadOnnxruntime();
    if ('error' in ort) throw new Error(ort.error);
    return new NativeSession(await loadSession(ort.binding, model, threads));
  }

  run(inputs: Readonly<Record<string, NativeValue>>, outputs: Readonly<Record<string, NativeValue>>): void {
    const as = (values: Readonly<Record<string, NativeValue>>): Record<string, TensorLike> =>
      Object.fromEntries(Object.entries(values).map(([name, [data, dims]]) => [name, tensor(data.subarray(0, dims.reduce((a, d) => a * d, 1)), dims)]));
    this.session.run(as(inputs), as(outputs), {});
  }

  dispose(): void {
    this.session.dispose();
  }
}

/** Intra-op threads per lane: DPTRAIN_NATIVE_THREADS, else 1. */
export function nativeThreads(): number {
  const raw = process.env['DPTRAIN_NATIVE_THREADS'];
  const n = raw === undefined || raw === '' ? 1 : Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError(`DPTRAIN_NATIVE_THREADS must be a whole number from 1 to 256, got "${raw}"`);
  return n;
}
