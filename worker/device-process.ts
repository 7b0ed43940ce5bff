/**
 * One device's compute process (`worker start --devices N`): starts the backend on the device
 * its environment names (CUDA_VISIBLE_DEVICES for tensorflow, DPTRAIN_WEBGPU_ADAPTER for webgpu),
 * then answers the node's requests with a gradient engine. Requests are handled one at a time,
 * in order. It exits when the node's IPC channel closes.
 */
import { performance } from 'node:perf_hooks';
import { backendReport, initBackend } from '../shared/backend.js';
import type { BackendChoice } from '../shared/backend-choice.js';
import type { BatchEngine } from '../compute/engine.js';
import { createEngine } from '../compute/gradient.js';
import type { DeviceReply, DeviceRequest } from './device-messages.js';

const send = (reply: DeviceReply): void => {
  process.send?.(reply);
};

let engine: BatchEngine | undefined;

async function handle(request: DeviceRequest): Promise<void> {
  switch (request.type) {
    case 'job': {
      engine?.dispose();
      engine = createEngine(request.spec, 'dense');
      send({ type: 'job', id: request.id, parameters: engine.layout.size });
      return;
    }
    case 'weights':
      engine?.setWeights(request.weights);
      return;
    case 'gradient': {
      const started = performance.now();
      if (!engine) throw new Error('gradient before the job');
      const rows = request.rows && request.step !== undefined ? { step: request.step, rows: request.rows, ...(request.groups ? { groups: request.groups } : {}), ...(request.weights ? { weights: request.weights } : {}) } : undefined;
      const result = await engine.gradient(request.x, request.y, request.count, undefined, undefined, rows);
      send({ type: 'gradient', id: request.id, gradient: result.gradient, count: result.count, lossSum: result.lossSum, metricSums: result.metricSums, computeMs: performance.now() - started });
      return;
    }
    case 'evaluate': {
      if (!engine) throw new Error('evaluation before the job');
      const sums = await engine.evaluate(request.x, request.y, request.count, request.weights);
      send({ type: 'evaluate', id: request.id, count: sums.count, lossSum: sums.lossSum, metricSums: sums.metricSums });
      return;
    }
  }
}

async function main(): Promise<void> {
  const choice = (process.env['DPTRAIN_DEVICE_BACKEND'] ?? 'auto') as BackendChoice;
  try {
    const backend = await initBackend(choice);
    const { adapter } = backendReport();
    send({ type: 'ready', backend, ...(adapter ? { adapter } : {}) });
  } catch (err) {
    send({ type: 'failed', message: (err as Error).message });
    process.disconnect?.();
    return;
  }
  let queue = Promise.resolve();
  process.on('message', (request: DeviceRequest) => {
    queue = queue.then(async () => {
      try {
        await handle(request);
      } catch (err) {
        if ('id' in request) send({ type: 'error', id: request.id, message: (err as Error).message });
      }
    });
  });
  process.on('disconnect', () => process.exit(0));
}

await main();
