/**
 * Piscina thread entry. Starts the backend and builds the model once (top-level await), then
 * answers tasks with a LocalLane over the shared data set and weights: gradient of a set of rows
 * (sent back as a transferred GradientPacket), evaluation of a range, info.
 */
import { workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { Piscina } from 'piscina';
import { backendReport, initBackend } from '../shared/backend.js';
import { GradientPacketBuilder } from '../shared/protocol/gradient-packet.js';
import type { InfoAnswer, ThreadInit, ThreadTask } from '../shared/protocol/thread-tasks.js';
import { LocalLane } from '../compute/local-lane.js';
import { featureRows } from '../shared/data/feature-rows.js';
import { ReadAheadRing, RingRows } from '../shared/data/read-ahead-ring.js';
import { metricLayoutOf } from '../shared/model/metric-sums.js';

const init = workerData as ThreadInit;
const backend = await initBackend(init.backend);
const disk = featureRows({ x: new Float32Array(init.x), features: init.features, onDisk: init.onDisk });
const lane = new LocalLane({
  spec: init.spec,
  engine: init.engine,
  x: init.readAhead ? new RingRows(new ReadAheadRing(init.readAhead), disk) : disk,
  y: new Float32Array(init.y),
  outputs: init.outputs,
  weights: new Float32Array(init.weights),
  ...(init.sampleWeights ? { sampleWeights: new Float32Array(init.sampleWeights) } : {}),
});

export default async function handle(task: ThreadTask): Promise<unknown> {
  switch (task.kind) {
    case 'gradient': {
      // the engine writes the gradient straight into the buffer that is transferred back
      const packet = new GradientPacketBuilder(lane.parameters, metricLayoutOf(init.spec).width);
      return Piscina.move(packet.seal(await lane.gradient(task.version, { step: task.step, rows: task.rows, ...(task.groups ? { groups: task.groups } : {}) }, packet.gradient)));
    }
    case 'evaluate':
      return lane.evaluate(task.version, task.start, task.count);
    case 'info': {
      const { adapter: on, reason } = backendReport();
      // what it runs on, and why where `auto` chose (the start line shows it)
      const adapter = [on, init.backend === 'auto' ? reason : undefined].filter(Boolean).join('; ');
      const answer: InfoAnswer = { backend, ...(adapter ? { adapter } : {}), numTensors: tf.memory().numTensors };
      return answer;
    }
  }
}
