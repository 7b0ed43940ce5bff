/**
 * Chooses and starts the TensorFlow.js backend: `auto | tensorflow | webgpu | native | wasm | cpu`.
 *
 * - native: the wasm backend with its matrix products and convolutions on onnxruntime-node's
 *   CPU kernels (native/), whose binaries ship in the npm package; everything else on wasm.
 *   `tf.getBackend()` says 'wasm' (it is that backend); backendReport() says 'native'.
 * - wasm: @tensorflow/tfjs-backend-wasm, whose binaries ship in the npm package; dptrain adds the kernels it lacks for training convolutions (shared/wasm/tfjs/).
 * - cpu: plain JavaScript kernels; always there, slower.
 * - tensorflow: @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node (native libtensorflow). Optional
 *   packages, loaded only in a process's main thread: tfjs-node is not safe in worker_threads.
 * - webgpu: @tensorflow/tfjs-backend-webgpu on Dawn (the `webgpu` package, webgpu.ts): Vulkan,
 *   Metal or Direct3D 12; runs in worker threads too. A software adapter (llvmpipe) is used
 *   when asked for by name, never by `auto`. `DPTRAIN_WEBGPU_ADAPTER` picks an adapter by name.
 * - auto: in a process's main thread, tensorflow where an NVIDIA driver is loaded and
 *   tfjs-node-gpu is installed, then webgpu on a hardware adapter; then (in worker threads
 *   first) native, then wasm where onnxruntime-node cannot load, then cpu where wasm cannot
 *   start. `backendReport()` says what ran and why.
 */
import { isMainThread } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from './errors.js';
import { nativeKernels } from './native/kernels.js';
import { NativeProducts, nativeThreads, ORT_PACKAGE } from './native/onnxruntime.js';
import { registerWasmKernels, wasmKernel } from './wasm/tfjs/register.js';
import { describeAdapter, driverHint, hasNvidiaDriver, mayHaveGpu, startDawn, type AdapterFacts } from './webgpu.js';

import { BACKENDS, type BackendChoice } from './backend-choice.js';

export { BACKENDS, type BackendChoice };

export const TENSORFLOW_INSTALL_HINT =
  'install it on this node with `npm install @tensorflow/tfjs-node-gpu@4.22.0` (needs CUDA 11.2, cuDNN 8.1 and ' +
  'network access to download libtensorflow 2.9.1) or `npm install @tensorflow/tfjs-node@4.22.0` for the CPU build';

async function startWasm(): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  registerWasmKernels();
  native = undefined;
  if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") returned false');
}

/**
 * Products below this many floating-point operations stay on wasm: onnxruntime's call costs
 * ~10-40 us, more than wasm takes for the smallest products (BENCHMARKS.md, "Native backend").
 * DPTRAIN_NATIVE_MIN_FLOPS sets another (the test suite sets 0: every product on onnxruntime).
 */
export const NATIVE_MIN_FLOPS = 1_000_000;

function nativeMinFlops(): number {
  const raw = process.env['DPTRAIN_NATIVE_MIN_FLOPS'];
  if (raw === undefined || raw === '') return NATIVE_MIN_FLOPS;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new BackendError(`DPTRAIN_NATIVE_MIN_FLOPS must be a number >= 0, got "${raw}"`);
  return n;
}

/** The threshold the running native backend uses. */
let minFlops = NATIVE_MIN_FLOPS;

/** The products of a started native backend, for backendReport(). */
let native: NativeProducts | undefined;

/** Starts native; throws why it cannot (onnxruntime-node missing or broken, a bad variable). */
async function startNativeOrSayWhy(): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  const products = await NativeProducts.start(nativeThreads());
  minFlops = nativeMinFlops();
  registerWasmKernels(nativeKernels({ products, wasmKernel, minFlops }));
  if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") returned false');
  native = products;
}

async function startNative(): Promise<void> {
  try {
    await startNativeOrSayWhy();
  } catch (err) {
    throw new BackendError(`backend "native" is not available: ${(err as Error).message}`);
  }
}

async function startCpu(): Promise<void> {
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error('tf.setBackend("cpu") returned false');
}

/** The adapter of a started webgpu backend, for backendReport(). */
let adapter: AdapterFacts | undefined;
/** Why `auto` chose what it did. */
let autoReason: string | undefined;

async function startWebgpu(allowSoftware = true): Promise<void> {
  // one Dawn instance per thread: the backend keeps the device of the first start (a second
  // instance in navigator.gpu would let the first be collected under it)
  if (adapter) {
    if (adapter.software && !allowSoftware) throw new BackendError(`WebGPU's adapter here is a software renderer (${describeAdapter(adapter)}), not a GPU`);
    if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") returned false');
    return;
  }
  const adapterName = process.env['DPTRAIN_WEBGPU_ADAPTER'] || undefined;
  const facts = await startDawn({ ...(adapterName ? { adapterName } : {}), allowSoftware });
  // tfjs-backend-webgpu registers itself on import only where navigator.gpu exists (set above)
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error(`tf.setBackend("webgpu") returned false on ${describeAdapter(facts)}`);
  adapter = facts;
}

async function startTensorflow(): Promise<void> {
  if (!isMainThread) {
    throw new BackendError(
      'the tensorflow backend (tfjs-node) is not safe inside worker threads; use it on a worker node (`worker start --backend tensorflow`) and wasm or cpu for coordinator threads',
    );
  }
  const candidates = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];
  for (const name of candidates) {
    try {
      await import(name);
      if (await tf.setBackend('tensorflow')) return;
    } catch {
      // try the next candidate
    }
  }
  throw new BackendError(`backend "tensorflow" is not available: neither ${candidates.join(' nor ')} could be loaded; ${TENSORFLOW_INSTALL_HINT}`);
}

const starters: Record<Exclude<BackendChoice, 'auto'>, () => Promise<void>> = {
  tensorflow: startTensorflow,
  webgpu: () => startWebgpu(true),
  native: startNative,
  wasm: startWasm,
  cpu: startCpu,
};

/** What the started backend is, on what, and (for `auto`) why. */
export interface BackendReport {
  readonly name: string;
  /** The WebGPU adapter, described ("nvidia ampere (NVIDIA A100)"). */
  readonly adapter?: string;
  readonly reason?: string;
}

/** The running backend's name as a user asks for it ('native' for wasm with onnxruntime's products). */
export function backendName(): string {
  const name = tf.getBackend();
  return name === 'wasm' && native ? 'native' : name;
}

/**
 * Whether a product of `flops` floating-point operations takes its transposes as flags at no
 * cost here (native, at or above its threshold): an engine then passes transposeA/B instead
 * of transposing first, as it must on wasm, whose transposed products are slow.
 */
export function foldsTransposes(flops: number): boolean {
  return native !== undefined && tf.getBackend() === 'wasm' && flops >= minFlops;
}

export function backendReport(): BackendReport {
  const name = backendName();
  const on = name === 'webgpu' && adapter ? describeAdapter(adapter) : name === 'native' && native ? `${ORT_PACKAGE} ${native.version}, ${native.threads} thread(s) a lane` : undefined;
  return { name, ...(on ? { adapter: on } : {}), ...(autoReason ? { reason: autoReason } : {}) };
}

/** `auto`: the first hardware backend that starts (main thread only), else wasm, else cpu. */
async function startAuto(onFallback?: (message: string) => void): Promise<void> {
  const skipped: string[] = [];
  if (isMainThread) {
    if (hasNvidiaDriver()) {
      try {
        // a variable: an optional package that may be absent (tsc must not resolve it)
        const tfjsNodeGpu = '@tensorflow/tfjs-node-gpu';
        await import(tfjsNodeGpu);
        if (await tf.setBackend('tensorflow')) {
          autoReason = 'auto: an NVIDIA driver and @tensorflow/tfjs-node-gpu';
          return;
        }
      } catch {
        skipped.push('an NVIDIA driver but no @tensorflow/tfjs-node-gpu');
      }
    } else skipped.push('no NVIDIA driver');
    if (mayHaveGpu()) {
      try {
        await startWebgpu(false);
        autoReason = `auto: WebGPU on ${describeAdapter(adapter!)}`;
        return;
      } catch (err) {
        skipped.push(`WebGPU: ${(err as Error).message}`);
      }
    } else skipped.push('no GPU device for WebGPU');
  } else skipped.push('a worker thread');
  const noGpu = `no GPU (${skipped.join('; ')})`;
  try {
    await startNativeOrSayWhy();
    autoReason = `auto: ${noGpu}; onnxruntime's CPU kernels`;
    return;
  } catch (err) {
    // the whole reason with its fix once, its first clause in the start line
    const why = (err as Error).message;
    onFallback?.(`native backend unavailable (${why}); using wasm`);
    skipped.push(`native: ${why.split(';')[0]}`);
  }
  try {
    await startWasm();
    autoReason = `auto: no GPU (${skipped.join('; ')})`;
  } catch (err) {
    onFallback?.(`wasm backend unavailable (${(err as Error).message}); using cpu`);
    await startCpu();
    autoReason = `auto: no GPU, and wasm did not start (${(err as Error).message})`;
  }
}

/**
 * Starts the asked-for backend and returns the name of the one running. `onFallback` hears why
 * `auto` did not get wasm.
 */
export async function initBackend(choice: BackendChoice, onFallback?: (message: string) => void): Promise<string> {
  // PROD silences tfjs's console advice ("install our node backend") on every cpu start.
  tf.env().set('PROD', true);
  autoReason = undefined;
  if (choice === 'auto') {
    await startAuto(onFallback);
  } else {
    const start = starters[choice];
    if (!start) throw new BackendError(`unknown backend "${String(choice)}"; expected one of ${BACKENDS.join(', ')}`);
    try {
      await start();
    } catch (err) {
      if (err instanceof BackendError) throw err;
      throw new BackendError(`backend "${choice}" failed to start: ${(err as Error).message}${choice === 'webgpu' ? `. ${driverHint()}` : ''}`);
    }
  }
  await tf.ready();
  return backendName();
}
