/**
 * Piscina thread entry. Starts the backend and builds the model once (top-level await), then
 * answers tasks: gradient of a set of rows, evaluation of a range, info. Rows are read in place
 * from the shared data set; weights are reloaded from shared memory when the version changes.
 */
import { workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { Piscina } from 'piscina';
import { initBackend } from '../shared/backend.js';
import { performance } from 'node:perf_hooks';
import { packGradient } from '../shared/protocol/gradient-packet.js';
import type { EvaluateAnswer, InfoAnswer, ThreadInit, ThreadTask } from '../shared/protocol/thread-tasks.js';
import { createEngine } from './gradient.js';

const init = workerData as ThreadInit;
const backend = await initBackend(init.backend);
const engine = createEngine(init.spec, init.engine);
const x = new Float32Array(init.x);
const y = new Float32Array(init.y);
const sharedWeights = new Float32Array(init.weights);
let loadedVersion = -1;

function useVersion(version: number): void {
  if (version !== loadedVersion) {
    engine.setWeights(sharedWeights);
    loadedVersion = version;
  }
}

function gatherRows(rows: Int32Array): { xs: Float32Array; ys: Float32Array } {
  const { features, outputs } = init;
  const xs = new Float32Array(rows.length * features);
  const ys = new Float32Array(rows.length * outputs);
  rows.forEach((r, i) => {
    xs.set(x.subarray(r * features, (r + 1) * features), i * features);
    ys.set(y.subarray(r * outputs, (r + 1) * outputs), i * outputs);
  });
  return { xs, ys };
}

export default function handle(task: ThreadTask): unknown {
  switch (task.kind) {
    case 'gradient': {
      const started = performance.now();
      useVersion(task.version);
      const { xs, ys } = gatherRows(task.rows);
      const result = engine.gradient(xs, ys, task.rows.length);
      const packet = packGradient({ ...result, numTensors: tf.memory().numTensors, computeMs: performance.now() - started });
      return Piscina.move(packet);
    }
    case 'evaluate': {
      useVersion(task.version);
      const { features, outputs } = init;
      const end = task.start + task.count;
      const sums = engine.evaluate(x.slice(task.start * features, end * features), y.slice(task.start * outputs, end * outputs), task.count);
      const answer: EvaluateAnswer = { ...sums, numTensors: tf.memory().numTensors };
      return answer;
    }
    case 'info': {
      const answer: InfoAnswer = { backend, numTensors: tf.memory().numTensors };
      return answer;
    }
  }
}
