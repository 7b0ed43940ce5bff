/**
 * The reader thread of a job whose data stays on disk: fills the read-ahead ring's slots with the
 * rows of coming steps (read and decoded here, so the lanes' steps do not wait for the disk or
 * the image decoder), one fill at a time, in the order the coordinator asks.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { featureRows } from '../shared/data/feature-rows.js';
import { ReadAheadRing, type FillRequest, type ReaderInit } from '../shared/data/read-ahead-ring.js';

const init = workerData as ReaderInit;
const ring = new ReadAheadRing(init.ring);
const source = featureRows({ x: new Float32Array(0), features: init.ring.features, onDisk: init.onDisk });

parentPort!.on('message', (request: FillRequest) => {
  try {
    ring.fill(request.slot, request.step, request.rows, source);
  } catch {
    // the slot is left empty: the lanes read those rows themselves and report what is wrong
  }
});
