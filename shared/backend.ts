/**
 * Chooses and starts the TensorFlow.js backend: `auto | tensorflow | wasm | cpu`.
 *
 * - wasm: @tensorflow/tfjs-backend-wasm, whose binaries ship in the npm package. The default;
 *   dptrain adds the kernels it lacks for training convolutions (wasm-kernels/).
 * - cpu: plain JavaScript kernels; always there, slower.
 * - tensorflow: @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node (native libtensorflow). Optional
 *   packages, loaded only in a process's main thread: tfjs-node is not safe in worker_threads.
 * - auto: wasm, falling back to cpu with a message.
 */
import { isMainThread } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from './errors.js';
import { registerWasmKernels } from './wasm-kernels/register.js';

import { BACKENDS, type BackendChoice } from './backend-choice.js';

export { BACKENDS, type BackendChoice };

export const TENSORFLOW_INSTALL_HINT =
  'install it on this node with `npm install @tensorflow/tfjs-node-gpu@4.22.0` (needs CUDA 11.2, cuDNN 8.1 and ' +
  'network access to download libtensorflow 2.9.1) or `npm install @tensorflow/tfjs-node@4.22.0` for the CPU build';

async function startWasm(): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  registerWasmKernels();
  if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") returned false');
}

async function startCpu(): Promise<void> {
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error('tf.setBackend("cpu") returned false');
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
  wasm: startWasm,
  cpu: startCpu,
};

/**
 * Starts the asked-for backend and returns the name of the one running. `onFallback` hears why
 * `auto` did not get wasm.
 */
export async function initBackend(choice: BackendChoice, onFallback?: (message: string) => void): Promise<string> {
  // PROD silences tfjs's console advice ("install our node backend") on every cpu start.
  tf.env().set('PROD', true);
  if (choice === 'auto') {
    try {
      await startWasm();
    } catch (err) {
      onFallback?.(`wasm backend unavailable (${(err as Error).message}); using cpu`);
      await startCpu();
    }
  } else {
    const start = starters[choice];
    if (!start) throw new BackendError(`unknown backend "${String(choice)}"; expected one of ${BACKENDS.join(', ')}`);
    try {
      await start();
    } catch (err) {
      if (err instanceof BackendError) throw err;
      throw new BackendError(`backend "${choice}" failed to start: ${(err as Error).message}`);
    }
  }
  await tf.ready();
  return tf.getBackend();
}
